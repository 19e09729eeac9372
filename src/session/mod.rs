//! The session manager: the one domain API every transport calls (GATEWAY.md §2).
//!
//! It owns the registry of live sessions, creates them on use, and orchestrates what spans
//! more than one lock: starting run drivers, reset and delete (cancel, wait for the run to
//! wind down, then clear or remove), and the idle sweep. Per-session rules live in
//! [`state`]; the run loop in [`run`]; stream shapes in [`stream`].

pub mod event;
pub mod log;
pub mod model;
mod run;
mod state;
pub mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::agent::Agent;
use crate::config::Config;
use crate::error::{GatewayError, Result};
use event::EventKind;
use log::EventLog;
use model::*;
use state::{Admitted, Session, State};
use stream::{EventStream, RunStream};

/// Cheap to clone; every clone drives the same sessions.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    agent: Arc<Agent>,
    registry: Mutex<Registry>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Registry {
    live: HashMap<String, Arc<Session>>,
    /// Last seq of keys no longer in memory, so a recreated session keeps counting upwards.
    gone_seq: HashMap<String, u64>,
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
    /// Creates the manager and its primary session; `shutdown` ends every stream.
    pub fn new(config: Arc<Config>, agent: Arc<Agent>, shutdown: CancellationToken) -> Self {
        let manager = Self {
            inner: Arc::new(Inner {
                config,
                agent,
                registry: Mutex::new(Registry::default()),
                shutdown,
            }),
        };
        let primary = manager.inner.config.primary_session.clone();
        manager.get_or_create(&primary);
        manager
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.inner.agent
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_session(&self, registry: &mut Registry, key: &str) -> Arc<Session> {
        let key: Arc<str> = key.into();
        let config = &self.inner.config;
        let last_seq = registry.gone_seq.remove(&*key).unwrap_or(0);
        let log = EventLog::new(
            key.clone(),
            last_seq,
            config.session.event_log,
            config.session.subscriber_buffer,
        );
        let state = State::new(key.clone(), self.inner.agent.default_model().clone(), log);
        let primary = *key == *config.primary_session;
        let session = Arc::new(Session::new(key.clone(), primary, state));
        registry.live.insert(key.to_string(), session.clone());
        session.lock().emit_state();
        session
    }

    fn get_or_create(&self, key: &str) -> Arc<Session> {
        let mut registry = self.registry();
        match registry.live.get(key) {
            Some(session) => session.clone(),
            None => self.new_session(&mut registry, key),
        }
    }

    fn lookup(&self, key: &str) -> Option<Arc<Session>> {
        self.registry().live.get(key).cloned()
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

    /// An existing session, or `Session not found: <key>`.
    async fn existing(&self, key: &str) -> Result<Arc<Session>> {
        validate_key(key)?;
        loop {
            let session = self.lookup(key).ok_or_else(|| GatewayError::session_not_found(key))?;
            if !Self::wait_settled(&session).await {
                return Ok(session);
            }
        }
    }

    // ---- reads ----------------------------------------------------------------------------

    /// All sessions, newest activity first; `limit` defaults to 100 (at most 1000).
    pub fn list(&self, limit: Option<usize>, cursor: Option<&str>) -> Result<Page<Snapshot>> {
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        let after = cursor.map(decode_list_cursor).transpose()?;
        let sessions: Vec<_> = self.registry().live.values().cloned().collect();
        let mut snapshots: Vec<Snapshot> = sessions.iter().map(|s| s.lock().snapshot()).collect();
        snapshots.sort_by(|a, b| {
            b.last_active_at.cmp(&a.last_active_at).then_with(|| a.session_key.cmp(&b.session_key))
        });
        let mut items: Vec<Snapshot> = snapshots
            .into_iter()
            .filter(|s| match &after {
                Some((at, key)) => {
                    s.last_active_at < *at || (s.last_active_at == *at && s.session_key > *key)
                }
                None => true,
            })
            .take(limit + 1)
            .collect();
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|s| encode_list_cursor(s.last_active_at, &s.session_key))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Sessions held in memory.
    pub fn live_count(&self) -> usize {
        self.registry().live.len()
    }

    pub async fn get(&self, key: &str) -> Result<Snapshot> {
        Ok(self.existing(key).await?.lock().snapshot())
    }

    pub async fn history(
        &self,
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
        let session = self.existing(key).await?;
        let page = session.lock().history_page(limit, cursor);
        Ok(page)
    }

    pub async fn state(&self, key: &str) -> Result<SessionStateView> {
        Ok(self.existing(key).await?.lock().view())
    }

    /// Live events: `hello`, the logged events after `after_seq`, then live ones.
    pub async fn subscribe(&self, key: &str, after_seq: Option<u64>) -> Result<EventStream> {
        let session = self.existing(key).await?;
        let (snapshot, subscription) = {
            let mut state = session.lock();
            let subscription = state.log.subscribe(after_seq);
            (state.snapshot(), subscription)
        };
        Ok(stream::subscription(
            session.key.clone(),
            snapshot,
            subscription,
            self.inner.shutdown.clone(),
        ))
    }

    // ---- sending ---------------------------------------------------------------------------

    fn check_message(&self, request: &SendRequest) -> Result<()> {
        validate_key(&request.session_key)?;
        let limits = &self.inner.config.limits;
        if request.text.trim().is_empty() {
            return Err(GatewayError::invalid("Missing text"));
        }
        if request.text.chars().count() > limits.max_text {
            return Err(GatewayError::too_large(format!(
                "Text too long (max {} characters)",
                limits.max_text
            )));
        }
        if request.images.len() > limits.max_images {
            return Err(GatewayError::too_large(format!(
                "Too many images (max {})",
                limits.max_images
            )));
        }
        for image in &request.images {
            if !image.mime_type.starts_with("image/") {
                return Err(GatewayError::invalid(format!(
                    "Unsupported image type: {}",
                    image.mime_type
                )));
            }
            if image.data.len() > limits.max_image_bytes {
                return Err(GatewayError::too_large(format!(
                    "Image too large (max {} bytes)",
                    limits.max_image_bytes
                )));
            }
        }
        Ok(())
    }

    /// Accepts a message, creating the session on first use.
    async fn admit(&self, request: SendRequest, subscribe: bool) -> Result<Admitted> {
        if self.inner.shutdown.is_cancelled() {
            return Err(GatewayError::unavailable("Gateway is shutting down"));
        }
        self.check_message(&request)?;
        let max_queue = self.inner.config.session.max_queue;
        loop {
            let session = self.get_or_create(&request.session_key);
            let admitted = {
                let mut state = session.lock();
                if state.closing || state.removed {
                    None
                } else {
                    Some(state.admit(request.clone(), max_queue, subscribe)?)
                }
            };
            match admitted {
                Some(admitted) => {
                    if admitted.start_driver {
                        run::spawn_driver(session, self.inner.agent.clone());
                    }
                    return Ok(admitted);
                }
                None => {
                    Self::wait_settled(&session).await;
                }
            }
        }
    }

    /// Queues a message (or joins the running run with `Steer`); the receiver resolves with
    /// the outcome of the run the message belongs to.
    pub async fn send(
        &self,
        request: SendRequest,
    ) -> Result<(Accepted, tokio::sync::oneshot::Receiver<RunOutcome>)> {
        let admitted = self.admit(request, false).await?;
        Ok((admitted.accepted, admitted.outcome))
    }

    /// Like [`send`](Self::send), streaming the run's events before its outcome.
    pub async fn send_stream(&self, request: SendRequest) -> Result<(Accepted, RunStream)> {
        let admitted = self.admit(request, true).await?;
        let joined = admitted.accepted.mode == SendMode::Steer;
        let live = admitted
            .live
            .ok_or_else(|| GatewayError::session_not_found(&admitted.accepted.session_key))?;
        let stream = stream::run_events(
            admitted.accepted.session_key.as_str().into(),
            admitted.run_message_id,
            joined,
            live,
            admitted.outcome,
            self.inner.shutdown.clone(),
        );
        Ok((admitted.accepted, stream))
    }

    /// Steers an existing session: joins the running run, or queues the text when idle.
    pub async fn steer(&self, key: &str, text: String) -> Result<Accepted> {
        self.existing(key).await?;
        let request = SendRequest {
            session_key: key.to_string(),
            text,
            images: Vec::new(),
            behavior: StreamingBehavior::Steer,
        };
        Ok(self.admit(request, false).await?.accepted)
    }

    // ---- control ---------------------------------------------------------------------------

    pub async fn create(&self, request: CreateRequest) -> Result<Snapshot> {
        let key = request.session_key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        validate_key(&key)?;
        if request.memory_namespace.is_some() {
            return Err(GatewayError::unimplemented(
                "memory namespaces (memoryNamespace) arrive with the memory service",
            ));
        }
        if let Some(name) = &request.name {
            validate_name(name)?;
        }
        if let Some(model) = &request.model
            && !self.inner.agent.has_model(model)
        {
            return Err(GatewayError::not_found(format!(
                "Model not found: {}/{}",
                model.provider, model.model_id
            )));
        }
        let session = {
            let mut registry = self.registry();
            if registry.live.contains_key(&key) {
                return Err(GatewayError::conflict(format!("Session already exists: {key}")));
            }
            self.new_session(&mut registry, &key)
        };
        let mut state = session.lock();
        state.name = request.name.filter(|n| !n.is_empty());
        if let Some(model) = request.model {
            state.model = model;
        }
        state.emit_state();
        Ok(state.snapshot())
    }

    pub async fn rename(&self, key: &str, name: Option<String>) -> Result<()> {
        if let Some(name) = &name {
            validate_name(name)?;
        }
        let session = self.existing(key).await?;
        let mut state = session.lock();
        if let Some(name) = name {
            state.name = (!name.is_empty()).then_some(name);
            state.updated_at = now_ms();
            state.emit_state();
        }
        Ok(())
    }

    /// Aborts the running run; whether one was running.
    pub async fn abort(&self, key: &str) -> Result<bool> {
        Ok(self.existing(key).await?.lock().abort())
    }

    pub async fn cancel_queued(&self, key: &str, message_id: &str) -> Result<bool> {
        Ok(self.existing(key).await?.lock().cancel_queued(message_id))
    }

    pub async fn clear_queue(&self, key: &str) -> Result<usize> {
        Ok(self.existing(key).await?.lock().reject_queue("Queue cleared"))
    }

    /// Aborts, rejects the queue with `Session reset`, clears history under a new session id.
    /// The primary session resets in place; any other is removed until a message recreates it.
    pub async fn reset(&self, key: &str) -> Result<()> {
        let session = self.close(key, "Session reset").await?;
        let mut state = session.lock();
        let old_id = state.session_id.clone();
        if session.primary {
            state.clear();
            state.emit(EventKind::SessionReset { session_id: old_id });
            state.emit_state();
            session.set_closing(&mut state, false);
            let has_work = !state.queue.is_empty() && !state.driver_running;
            if has_work {
                state.driver_running = true;
                drop(state);
                run::spawn_driver(session.clone(), self.inner.agent.clone());
            }
        } else {
            state.emit(EventKind::SessionReset { session_id: old_id });
            drop(state);
            self.remove(&session);
        }
        info!(session_key = key, "session reset");
        Ok(())
    }

    /// Aborts, rejects the queue with `Session deleted: <key>`, removes the session; every
    /// stream of it ends after `session_deleted`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        if key == self.inner.config.primary_session {
            return Err(GatewayError::failed_precondition("Cannot delete primary session"));
        }
        let session = self.close(key, &format!("Session deleted: {key}")).await?;
        {
            let mut state = session.lock();
            let session_id = state.session_id.clone();
            state.emit(EventKind::SessionDeleted { session_id });
        }
        self.remove(&session);
        info!(session_key = key, "session deleted");
        Ok(())
    }

    /// First half of reset and delete: mark closing, reject the queue, abort, and wait until
    /// the run has wound down. Returns with the session still closing.
    async fn close(&self, key: &str, reason: &str) -> Result<Arc<Session>> {
        let session = loop {
            let session = self.existing(key).await?;
            let mut state = session.lock();
            if state.closing || state.removed {
                continue;
            }
            session.set_closing(&mut state, true);
            state.reject_queue(reason);
            state.abort();
            drop(state);
            break session;
        };
        drop(session.run_gate.lock().await);
        Ok(session)
    }

    /// Second half of delete (and reset of a non-primary session): out of the registry, every
    /// stream ended, waiting callers released to look the key up afresh.
    fn remove(&self, session: &Arc<Session>) {
        // Registry before session: the one lock order used everywhere.
        let mut registry = self.registry();
        let mut state = session.lock();
        state.removed = true;
        state.log.close();
        if registry.live.get(&*session.key).is_some_and(|s| Arc::ptr_eq(s, session)) {
            registry.live.remove(&*session.key);
        }
        registry.gone_seq.insert(session.key.to_string(), state.log.last_seq());
        session.set_closing(&mut state, false);
    }

    // ---- eviction --------------------------------------------------------------------------

    /// Drops sessions idle longer than `session.idle` that are not processing, have nothing
    /// queued and nobody subscribed. The primary session is never evicted.
    pub fn evict_idle(&self) -> usize {
        let cutoff = now_ms() - self.inner.config.session.idle.as_millis() as i64;
        let mut registry = self.registry();
        let Registry { live, gone_seq } = &mut *registry;
        let before = live.len();
        live.retain(|key, session| {
            if session.primary {
                return true;
            }
            let mut state = session.lock();
            let idle = state.last_active_at <= cutoff
                && !state.processing()
                && !state.driver_running
                && state.queue.is_empty()
                && !state.closing
                && state.log.subscribers() == 0;
            if idle {
                // A caller that looked the session up just before must not queue on it now.
                state.removed = true;
                gone_seq.insert(key.clone(), state.log.last_seq());
                info!(session_key = %key, "evicted idle session");
            }
            !idle
        });
        before - live.len()
    }

    /// Runs the idle sweep every `session.sweep_interval` until shutdown.
    pub fn spawn_sweeper(&self) {
        let manager = self.clone();
        let every = self.inner.config.session.sweep_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = manager.inner.shutdown.cancelled() => return,
                    _ = ticker.tick() => { manager.evict_idle(); }
                }
            }
        });
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.chars().count() > 200 || name.contains(['\n', '\r']) {
        return Err(GatewayError::invalid(
            "Invalid name: use at most 200 characters without line breaks",
        ));
    }
    Ok(())
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
