//! The session manager: the one domain API every transport calls (GATEWAY.md §2).
//!
//! It owns the registry of live sessions, creates them on use, and orchestrates what spans
//! more than one lock: starting run drivers, reset and delete (cancel, wait for the run to
//! wind down, then clear or remove), and the idle sweep. Reads in [`reads`]; sending calls in
//! [`send`]; draining and closing in [`shutdown`]; creation, reset, delete and eviction in [`lifecycle`]; per-session rules in [`state`]; the
//! run driver in [`run`]; stream shapes in [`stream`].

mod draft;
pub mod keys;
mod lifecycle;
pub mod log;
mod reads;
mod run;
mod send;
mod shutdown;
mod state;
pub mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::agent::Agent;
use crate::config::{Config, Live};
use crate::domain::Caller;
use crate::domain::*;
use crate::error::{GatewayError, Result};
use crate::store::{SessionRecord, Store, Stored, Ticket};
use crate::telemetry::Metrics;
use log::EventLog;
use state::{Session, State};
use stream::{EventStream, RunStream};

/// Cheap to clone; every clone drives the same sessions.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    /// The gateway's one live config (shared with `AppState`): live keys through
    /// [`SessionManager::config`], start-up-only keys through `config.startup()`.
    config: Arc<Live>,
    agent: Arc<Agent>,
    store: Arc<dyn Store>,
    registry: Mutex<Registry>,
    /// Held while a key is looked up in the store and installed, so two callers never load
    /// the same key twice and a load never resurrects a session being removed.
    loading: tokio::sync::Mutex<()>,
    /// Cancelled when shutdown begins: sending calls are refused, no new run starts.
    draining: CancellationToken,
    /// Cancelled when the gateway stops: every stream ends.
    shutdown: CancellationToken,
    /// Runs in progress, so draining can wait for them.
    active_runs: watch::Sender<usize>,
}

#[derive(Default)]
struct Registry {
    live: HashMap<String, Arc<Session>>,
}

/// Session keys: 1–200 characters, no line breaks.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > 200 || key.contains(['\n', '\r']) {
        return Err(GatewayError::invalid(
            "Invalid session key: use 1-200 characters without line breaks",
        ));
    }
    Ok(())
}

impl SessionManager {
    /// Opens the manager over `store`: picks up the work a previous process left (queued
    /// messages run in order; started runs are closed as interrupted) and loads or creates
    /// the primary session. `shutdown` ends every stream. `config` comes with the live patches
    /// an earlier process stored already applied (`service::admin::restore_live_config`).
    pub async fn open(
        config: Arc<Live>,
        agent: Arc<Agent>,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        metrics: Metrics,
    ) -> Result<Self> {
        let manager = Self {
            inner: Arc::new(Inner {
                metrics,
                config,
                agent,
                store,
                registry: Mutex::new(Registry::default()),
                loading: tokio::sync::Mutex::new(()),
                draining: CancellationToken::new(),
                shutdown,
                active_runs: watch::Sender::new(0),
            }),
        };
        let pending = manager.inner.store.pending_sessions().await.map_err(GatewayError::from)?;
        if !pending.is_empty() {
            info!(sessions = pending.len(), "resuming work left by the previous run");
        }
        for key in pending {
            manager.resolve(&key, None).await?;
        }
        let primary = manager.inner.config.startup().primary_session.clone();
        let primary = manager.get_or_create(&Caller::full(), &primary).await?;
        // Also proves the store takes writes before the gateway accepts any.
        let stored = primary.lock().commit();
        stored.wait().await?;
        Ok(manager)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once shutdown has begun.
    pub fn draining(&self) -> bool {
        self.inner.draining.is_cancelled()
    }

    /// Puts a session into memory: restored from `stored`, or new. Starts its driver when it
    /// has queued work.
    fn install(
        &self,
        registry: &mut Registry,
        key: &str,
        stored: Stored,
        init: impl FnOnce(&mut State),
    ) -> Arc<Session> {
        let key: Arc<str> = key.into();
        // Start-up only: event log sizes and the primary session's name.
        let config = self.inner.config.startup();
        let log = EventLog::new(
            keys::shown(&key).into(),
            stored.seq,
            config.session.event_log,
            config.session.subscriber_buffer,
        )
        .counting(self.inner.metrics.events_logged.clone());
        let restored = stored.session.is_some();
        let mut state = match stored.session {
            Some(stored) => State::restore(stored, log),
            None => State::new(key.clone(), self.inner.agent.default_model().clone(), log),
        };
        init(&mut state);
        // Emitted on the bare state: a new session's writes (its row, its first seq block)
        // join the batch of the call that created it, so a message the store refuses leaves
        // no empty session behind.
        state.emit_state();
        let primary = *key == *config.primary_session;
        let session = Arc::new(Session::new(key.clone(), primary, state, self.inner.store.clone()));
        registry.live.insert(key.to_string(), session.clone());
        if restored {
            // Flushes what recovery wrote (interrupted runs closed) and resumes the queue.
            let mut state = session.lock();
            for _ in 0..std::mem::take(&mut state.closed_at_restore) {
                self.inner.metrics.run_finished("interrupted");
            }
            if !state.queue.is_empty() && !self.draining() {
                state.driver_running = true;
                run::spawn_driver(session.clone(), self.clone());
            }
        }
        session
    }

    /// Keeps live sessions under `limits.max_live_sessions`: at the cap, the longest idle
    /// sessions with nothing to do are evicted (they stay stored); when none can go, 429.
    pub(super) fn make_room(&self) -> Result<()> {
        let max = self.config().limits.max_live_sessions;
        let mut registry = self.registry();
        if registry.live.len() < max {
            return Ok(());
        }
        let mut idle: Vec<(i64, String)> = registry
            .live
            .iter()
            .filter(|(_, s)| !s.primary)
            .filter_map(|(key, s)| {
                let state = s.lock();
                state.evictable().then(|| (state.meta.last_active_at, key.clone()))
            })
            .collect();
        idle.sort();
        let excess = registry.live.len() + 1 - max;
        for (_, key) in idle.into_iter().take(excess) {
            if let Some(session) = registry.live.remove(&key) {
                let mut state = session.lock();
                state.removed = true;
                state.save_seq();
                drop(state.commit());
            }
        }
        if registry.live.len() >= max {
            return Err(GatewayError::rate_limited(
                format!("Too many live sessions (max {max})"),
                1,
            ));
        }
        Ok(())
    }

    fn lookup(&self, key: &str) -> Option<Arc<Session>> {
        self.registry().live.get(key).cloned()
    }

    /// The live session, else the stored one loaded into memory, else (with `create`) a new
    /// one; `None` when it exists nowhere and `create` is false.
    async fn resolve(&self, key: &str, create: Option<&Caller>) -> Result<Option<Arc<Session>>> {
        if let Some(session) = self.lookup(key) {
            return Ok(Some(session));
        }
        let _loading = self.inner.loading.lock().await;
        if let Some(session) = self.lookup(key) {
            return Ok(Some(session));
        }
        let stored = self.inner.store.load(key).await?;
        if stored.session.is_some() || create.is_some() {
            self.make_room()?;
        }
        let Some(creator) = create.filter(|_| stored.session.is_none()) else {
            if stored.session.is_none() {
                return Ok(None);
            }
            let mut registry = self.registry();
            return Ok(Some(self.install(&mut registry, key, stored, |_| {})));
        };
        let owner = creator.owner().map(str::to_string);
        let mut registry = self.registry();
        Ok(Some(self.install(&mut registry, key, stored, |state| state.meta.owner = owner)))
    }

    /// The stored key of the caller's `key` (see [`keys`]): scoped to the token for an
    /// `own_sessions_only` caller, except for a session that token created under the plain key
    /// before keys were scoped.
    async fn key_for(&self, caller: &Caller, key: &str) -> Result<String> {
        let Some(owner) = caller.owner().filter(|_| caller.own_sessions_only) else {
            return Ok(key.to_string());
        };
        let legacy = match self.lookup(key) {
            Some(session) => session.lock().meta.owner.as_deref() == Some(owner),
            None => self.inner.store.owner(key).await?.flatten().as_deref() == Some(owner),
        };
        Ok(if legacy { key.to_string() } else { keys::scoped(owner, key) })
    }

    /// The session, created (owned by `caller`) when new. Whether the caller may see it is
    /// for the caller's critical section to check: taking the lock here would flush a new
    /// session's row on its own, before the batch of the call that created it. `key` is the
    /// stored key ([`Self::key_for`]).
    async fn get_or_create(&self, caller: &Caller, key: &str) -> Result<Arc<Session>> {
        Ok(self.resolve(key, Some(caller)).await?.expect("resolve with create yields a session"))
    }

    /// Waits while the session is being reset or deleted; true if it had to wait (the caller
    /// should look the key up again).
    async fn wait_settled(session: &Session) -> bool {
        let mut closing = session.closing.subscribe();
        if !*closing.borrow_and_update() {
            return false;
        }
        let _ = closing.wait_for(|closing| !*closing).await;
        true
    }

    /// An existing session (live or stored) the caller may see, or `Session not found: <key>`
    /// (also for a session of another token, to an `own_sessions_only` caller).
    async fn existing(&self, caller: &Caller, key: &str) -> Result<Arc<Session>> {
        validate_key(key)?;
        let stored = self.key_for(caller, key).await?;
        loop {
            let session = self
                .resolve(&stored, None)
                .await?
                .ok_or_else(|| GatewayError::session_not_found(key))?;
            if !Self::wait_settled(&session).await {
                let state = session.lock();
                if state.removed {
                    continue;
                }
                if !caller.sees(state.meta.owner.as_deref()) {
                    return Err(GatewayError::session_not_found(key));
                }
                drop(state);
                return Ok(session);
            }
        }
    }

    /// Runs `change` in one critical section of `session` and returns once its batch is
    /// durable: whatever a call acknowledges survives a crash right after the answer.
    async fn durably<T>(session: &Session, change: impl FnOnce(&mut State) -> T) -> Result<T> {
        let (value, stored) = {
            let mut state = session.lock();
            let value = change(&mut state);
            (value, state.commit())
        };
        stored.wait().await?;
        Ok(value)
    }

    /// The config now, live patches applied (`AppState.config.get()`): read the keys of
    /// [`crate::config::LIVE_KEYS`] through it, when they apply.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    /// Sessions held in memory.
    pub fn live_count(&self) -> usize {
        self.registry().live.len()
    }

    fn live(&self) -> Vec<Arc<Session>> {
        self.registry().live.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn a_message_the_store_cannot_take_is_refused_and_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        let config = Arc::new(Live::new(config));
        let store = Arc::new(SqliteStore::in_memory());
        let memory = crate::memory::Memory::new(store.clone());
        let agent = Arc::new(Agent::from_config(config.startup(), memory).unwrap());
        let manager = SessionManager::open(
            config,
            agent,
            store.clone(),
            CancellationToken::new(),
            Metrics::new(),
        )
        .await
        .unwrap();
        let (_, outcome) = manager.send(text_message("k", "fits")).await.unwrap();
        assert!(outcome.await.unwrap().ok);
        let before = manager.history(&Caller::full(), "k", None, None).await.unwrap().items;

        store.fill_up().await.unwrap();
        let mut events = manager.subscribe(&Caller::full(), "k", None).await.unwrap();
        let error = manager.send(text_message("k", &"x".repeat(90_000))).await.unwrap_err();
        assert_eq!(error.code, crate::error::ErrorCode::Unavailable);
        assert!(error.message.starts_with("Store unavailable"), "{}", error.message);
        // Taken back out of the queue, or (if the driver took it first) its run abandoned
        // before any model call: either way the session settles idle with nothing queued.
        use futures_util::StreamExt;
        while let Some(event) = events.next().await {
            if let event::EventKind::SessionState { snapshot } = &event.kind
                && snapshot.queue_depth == 0
                && !snapshot.processing
            {
                break;
            }
            assert!(!matches!(event.kind, event::EventKind::AgentStart { .. }), "it never runs");
        }
        assert_eq!(manager.history(&Caller::full(), "k", None, None).await.unwrap().items, before);
        let stored = store.load("k").await.unwrap().session.unwrap();
        assert_eq!(stored.record.message_count, before.len() as u64, "nothing half-written");
        assert_eq!(store.history("k", 0, u64::MAX).await.unwrap(), before);
        assert!(stored.messages.is_empty());
        assert!(manager.send(text_message("new", &"y".repeat(90_000))).await.is_err());
        assert!(store.load("new").await.unwrap().session.is_none());
    }

    fn text_message(key: &str, text: &str) -> SendRequest {
        SendRequest {
            session_key: key.into(),
            text: text.into(),
            caller: Caller::full(),
            ..Default::default()
        }
    }

    #[test]
    fn keys() {
        assert!(validate_key("main").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a\nb").is_err());
        assert!(validate_key(&"x".repeat(201)).is_err());
        assert!(validate_key(&"é".repeat(200)).is_ok());
    }
}
