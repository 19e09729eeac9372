//! The session manager: the one domain API every transport calls (GATEWAY.md §2).
//!
//! It owns the registry of live sessions, creates them on use, and orchestrates what spans
//! more than one lock: starting run drivers, reset and delete (cancel, wait for the run to
//! wind down, then clear or remove), and the idle sweep. Reads are here; sending calls in
//! [`send`]; creation, reset, delete and eviction in [`lifecycle`]; per-session rules in [`state`]; the
//! run driver in [`run`]; stream shapes in [`stream`].

mod draft;
pub mod keys;
mod lifecycle;
pub mod log;
mod run;
mod send;
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
    fn make_room(&self) -> Result<()> {
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
                state.evictable().then(|| (state.last_active_at, key.clone()))
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
        Ok(Some(self.install(&mut registry, key, stored, |state| state.owner = owner)))
    }

    /// The stored key of the caller's `key` (see [`keys`]): scoped to the token for an
    /// `own_sessions_only` caller, except for a session that token created under the plain key
    /// before keys were scoped.
    async fn key_for(&self, caller: &Caller, key: &str) -> Result<String> {
        let Some(owner) = caller.owner().filter(|_| caller.own_sessions_only) else {
            return Ok(key.to_string());
        };
        let legacy = match self.lookup(key) {
            Some(session) => session.lock().owner.as_deref() == Some(owner),
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
                if !caller.sees(state.owner.as_deref()) {
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

    // ---- reads ----------------------------------------------------------------------------

    /// All stored sessions, newest activity first, each with `loaded`; `limit` defaults to
    /// 100 (at most 1000). Live sessions count with their in-memory activity time.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Snapshot>> {
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        let after = cursor.map(decode_list_cursor).transpose()?;
        let live: Vec<_> = self.registry().live.values().cloned().collect();
        let mut snapshots: HashMap<String, Snapshot> = live
            .iter()
            .filter_map(|s| {
                let state = s.lock();
                caller.sees(state.owner.as_deref()).then(|| snapshot_for(&Caller::full(), &state))
            })
            .map(|snapshot| (snapshot.session_key.clone(), snapshot))
            .collect();
        // Stored rows of live sessions may be stale and are replaced below, so fetch enough
        // rows that `limit` of them are certainly not live ones.
        let owner =
            caller.own_sessions_only.then(|| caller.owner().unwrap_or_default().to_string());
        let stored =
            self.inner.store.list(limit + 1 + snapshots.len(), after.clone(), owner).await?;
        for record in stored {
            snapshots.entry(record.key.clone()).or_insert_with(|| stored_snapshot(record));
        }
        let mut items: Vec<Snapshot> = snapshots
            .into_values()
            .filter(|s| match &after {
                Some((at, key)) => {
                    s.last_active_at < *at || (s.last_active_at == *at && s.session_key > *key)
                }
                None => true,
            })
            .collect();
        items.sort_by(|a, b| {
            b.last_active_at.cmp(&a.last_active_at).then_with(|| a.session_key.cmp(&b.session_key))
        });
        items.truncate(limit + 1);
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|s| encode_list_cursor(s.last_active_at, &s.session_key))
        } else {
            None
        };
        for item in &mut items {
            if caller.own_sessions_only {
                item.session_key = keys::shown(&item.session_key).to_string();
            }
        }
        Ok(Page { items, next_cursor })
    }

    /// The config now, live patches applied (`AppState.config.get()`): read the keys of
    /// [`crate::config::LIVE_KEYS`] through it, when they apply.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    /// Reads the gauges of `/metrics`: sessions live and stored, messages waiting, streams
    /// open.
    pub async fn observe(&self) -> Result<()> {
        let metrics = &self.inner.metrics;
        let (mut queued, mut subscribers) = (0, 0);
        let live = self.live();
        for session in &live {
            let state = session.lock();
            queued += state.queue.len() as i64;
            subscribers += state.log.subscribers() as i64;
        }
        metrics.sessions_live.set(live.len() as i64);
        metrics.queue_depth.set(queued);
        metrics.subscribers.set(subscribers);
        metrics.sessions_stored.set(self.inner.store.count_sessions().await? as i64);
        Ok(())
    }

    /// Sessions held in memory.
    pub fn live_count(&self) -> usize {
        self.registry().live.len()
    }

    pub async fn get(&self, caller: &Caller, key: &str) -> Result<Snapshot> {
        Ok(snapshot_for(caller, &self.existing(caller, key).await?.lock()))
    }

    pub async fn history(
        &self,
        caller: &Caller,
        key: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<HistoryMessage>> {
        if limit == Some(0) {
            return Err(GatewayError::invalid("History limit must be a positive integer"));
        }
        let cursor = cursor
            .map(|c| c.parse::<u64>().map_err(|_| GatewayError::invalid("Invalid history cursor")))
            .transpose()?;
        let session = self.existing(caller, key).await?;
        let page = session.lock().history_page(limit, cursor);
        Ok(page)
    }

    /// The messages waiting in the queue, next first.
    pub async fn queue(&self, caller: &Caller, key: &str) -> Result<QueueView> {
        Ok(self.existing(caller, key).await?.lock().queue_view())
    }

    pub async fn state(&self, caller: &Caller, key: &str) -> Result<SessionStateView> {
        Ok(self.existing(caller, key).await?.lock().view())
    }

    /// Live events: `hello`, the logged events after `after_seq`, then live ones.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        key: &str,
        after_seq: Option<u64>,
    ) -> Result<EventStream> {
        let session = self.existing(caller, key).await?;
        let (snapshot, subscription) = {
            let mut state = session.lock();
            self.room_for_subscriber(&state)?;
            let subscription = state.log.subscribe(after_seq);
            (snapshot_for(caller, &state), subscription)
        };
        Ok(stream::subscription(
            session.shown.clone(),
            snapshot,
            subscription,
            self.inner.shutdown.clone(),
            self.inner.metrics.lagged.clone(),
        ))
    }

    /// Picks a run's stream up again (the Vercel and v1 resume routes): run `run` (a message
    /// id: running, queued or still in the log), else the running run, else the run the log
    /// holds events of after `after`. The stream replays the run's logged events after
    /// `after` (from its start without it), follows it live through `agent_end`, and ends with
    /// its outcome. `None`: there is no such run to follow.
    pub async fn resume_run(
        &self,
        caller: &Caller,
        key: &str,
        run: Option<&str>,
        after: Option<u64>,
    ) -> Result<Option<(String, RunStream)>> {
        let session = self.existing(caller, key).await?;
        let mut state = session.lock();
        self.room_for_subscriber(&state)?;
        let running = state.run.as_ref().map(|run| run.message_id.clone());
        let Some(target) = run
            .map(str::to_string)
            .or_else(|| running.clone())
            .or_else(|| after.and_then(|after| state.log.run_after(after)))
        else {
            return Ok(None);
        };
        let span = state.log.find_run(&target);
        let queued = state.queue.iter().any(|q| q.message_id == target);
        let known = running.as_deref() == Some(target.as_str()) || queued;
        if !known && span.start.is_none() && span.end.is_none() {
            return Ok(None);
        }
        // From just before the run's start; a run older than the log starts at its oldest
        // event, and the caller hears how much is gone.
        let underway = span.start.is_none() && !queued;
        let oldest = state.log.oldest_seq().unwrap_or(state.log.last_seq() + 1);
        let from = match span.start {
            Some(start) => start - 1,
            None if queued => state.log.last_seq(),
            None => oldest - 1,
        };
        let seen = after.unwrap_or(from).max(from);
        let missed = if underway { (oldest - 1).saturating_sub(after.unwrap_or(0)) } else { 0 };
        let sub = state.log.subscribe(Some(from));
        drop(state);
        let stream = stream::resumed_run(
            session.shown.clone(),
            target.clone(),
            sub,
            stream::ResumePoint { underway, missed, seen },
            self.inner.shutdown.clone(),
            self.inner.metrics.lagged.clone(),
        );
        Ok(Some((target, stream)))
    }

    fn live(&self) -> Vec<Arc<Session>> {
        self.registry().live.values().cloned().collect()
    }

    // ---- shutdown --------------------------------------------------------------------------

    /// Shutdown, first half (GATEWAY.md §10): sending calls are refused and no new run starts;
    /// running runs get `grace` to finish and are then interrupted as after a crash. Queued
    /// messages stay queued in the store and run after the next start.
    pub async fn drain(&self, grace: Duration) {
        self.inner.draining.cancel();
        info!("draining: new messages are refused");
        // A driver decides to start a run and counts it under the session lock: once every
        // lock has been taken after `draining` was set, the count includes every such run.
        for session in self.live() {
            drop(session.lock());
        }
        let mut runs = self.inner.active_runs.subscribe();
        let busy = *runs.borrow_and_update();
        if busy > 0 {
            info!(runs = busy, ?grace, "draining: letting running runs finish");
        }
        if tokio::time::timeout(grace, runs.wait_for(|n| *n == 0)).await.is_err() {
            warn!(?grace, "runs still going after the shutdown grace period; interrupting them");
            for session in self.live() {
                session.lock().interrupt(crate::domain::Interruption::Shutdown);
            }
            // Cancellation stops them at once; bounded in case a tool ignores it.
            let stopped = runs.wait_for(|n| *n == 0);
            if tokio::time::timeout(Duration::from_secs(5), stopped).await.is_err() {
                warn!("runs did not stop after being interrupted");
            }
        }
        for session in self.live() {
            session.lock().release_waiters();
        }
    }

    /// Shutdown, second half: writes each live session's final row and exact seq, then
    /// closes the store once everything submitted is on disk.
    pub async fn close(&self) {
        let mut last = Ticket::done();
        for session in self.live() {
            let mut state = session.lock();
            state.save_seq();
            last = state.commit();
        }
        // Batches apply in order: the last one resolving means all have been applied.
        if let Err(e) = last.wait().await {
            warn!(error = %e, "cannot store the final session state");
        }
        if let Err(e) = self.inner.store.close().await {
            warn!(error = %e, "cannot close the store cleanly");
        }
    }
}

/// The snapshot as `caller` sees it: named by the key its owner used for an
/// `own_sessions_only` caller, by the stored key for callers that see every session.
fn snapshot_for(caller: &Caller, state: &State) -> Snapshot {
    let mut snapshot = state.snapshot();
    if !caller.own_sessions_only {
        snapshot.session_key = state.key.to_string();
    }
    snapshot
}

/// The snapshot of a session that is only in the store.
fn stored_snapshot(record: SessionRecord) -> Snapshot {
    Snapshot {
        session_key: record.key,
        session_id: record.session_id,
        name: record.name,
        message_count: record.message_count as usize,
        queue_depth: 0,
        processing: false,
        loaded: false,
        created_at: record.created_at,
        updated_at: record.updated_at,
        last_active_at: record.last_active_at,
        last_message_preview: record.preview,
        model_provider: Some(record.model.provider),
        model_id: Some(record.model.model_id),
        thinking_level: record.thinking,
        usage: record.usage,
    }
}

fn encode_list_cursor(last_active_at: i64, key: &str) -> String {
    format!("{last_active_at}\n{key}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_list_cursor(cursor: &str) -> Result<(i64, String)> {
    let invalid = || GatewayError::invalid("Invalid cursor");
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, key) = text.split_once('\n').ok_or_else(invalid)?;
    Ok((at.parse().map_err(|_| invalid())?, key.to_string()))
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
        assert_eq!(stored.history, before, "nothing half-written");
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
    fn list_cursor_round_trips() {
        let cursor = encode_list_cursor(1_700_000_000_000, "a:b c/é");
        assert_eq!(
            decode_list_cursor(&cursor).unwrap(),
            (1_700_000_000_000, "a:b c/é".to_string())
        );
        assert!(decode_list_cursor("zz").is_err());
        assert!(decode_list_cursor("abc").is_err());
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
