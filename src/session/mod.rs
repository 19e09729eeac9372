//! The session manager: the one domain API every transport calls (GATEWAY.md §2).
//!
//! It owns the registry of live sessions, creates them on use, and orchestrates what spans
//! more than one lock: starting run drivers, reset and delete (cancel, wait for the run to
//! wind down, then clear or remove), and the idle sweep. Reads and sending calls are here;
//! creation, reset, delete and eviction in [`lifecycle`]; per-session rules in [`state`]; the
//! run driver in [`run`]; stream shapes in [`stream`].

mod draft;
pub mod event;
mod lifecycle;
pub mod log;
pub mod model;
mod run;
mod state;
pub mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::config::Config;
use crate::error::{GatewayError, Result};
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
        if request.idempotency_key.is_some() {
            // Refused until idempotency records exist: running a retry twice is worse.
            return Err(GatewayError::unimplemented("idempotency keys (idempotencyKey)"));
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
            idempotency_key: None,
        };
        Ok(self.admit(request, false).await?.accepted)
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
