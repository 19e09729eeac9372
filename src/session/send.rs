//! The sending calls on the manager: validation, admission (create on use, queue or steer,
//! accepted-means-durable), idempotency keys, and the run streams a sending caller gets.

use std::sync::Arc;

use tracing::warn;

use super::state::{self, Admitted, Session, State};
use super::stream::{self, RunItem, RunStream};
use super::{SessionManager, run, validate_key};
use crate::domain::Caller;
use crate::domain::*;
use crate::error::{GatewayError, Result};

/// An earlier call with the same idempotency key: its outcome when done, else its message.
struct Earlier {
    scope: String,
    key: String,
    done: Option<RunOutcome>,
    unfinished: Option<String>,
}

impl SessionManager {
    fn check_message(&self, request: &SendRequest) -> Result<()> {
        validate_key(&request.session_key)?;
        let config = self.config();
        let limits = &config.limits;
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
    async fn admit(&self, mut request: SendRequest, subscribe: bool) -> Result<Admitted> {
        if self.draining() {
            return Err(GatewayError::unavailable("Gateway is shutting down"));
        }
        self.check_message(&request)?;
        // From here on the stored key; callers hear the key they used (`shown`).
        let named = std::mem::take(&mut request.session_key);
        request.session_key = self.key_for(&request.caller, &named).await?;
        let idempotency = match &request.idempotency_key {
            Some(key) => Some(self.earlier_call(&request.caller, &request.session_key, key).await?),
            None => None,
        };
        if let Some(Earlier { done: Some(outcome), .. }) = &idempotency {
            return Ok(Admitted::finished(&named, outcome.clone()));
        }
        let max_queue = self.config().session.max_queue;
        loop {
            let session = self.get_or_create(&request.caller, &request.session_key).await?;
            let admitted = {
                let mut state = session.lock();
                if !request.caller.sees(state.meta.owner.as_deref()) {
                    return Err(GatewayError::session_not_found(&named));
                }
                if subscribe {
                    self.room_for_subscriber(&state)?;
                }
                if state.closing || state.removed {
                    None
                } else {
                    if let Some(earlier) = &idempotency {
                        let first = state
                            .idempotent_message(&earlier.scope, &earlier.key)
                            .or_else(|| earlier.unfinished.clone());
                        if let Some(message_id) = first {
                            return Ok(match state.attach(&message_id, subscribe) {
                                Some(attached) => {
                                    Admitted::repeat(&state.shown, message_id, attached)
                                }
                                // Accepted before a crash that cut its run short.
                                None => Admitted::finished(
                                    &state.shown,
                                    // Like an outcome read back from the store: no
                                    // typed end.
                                    RunOutcome::failed(
                                        state::INTERRUPTED_BY_RESTART,
                                        state.shown.to_string(),
                                        message_id,
                                    ),
                                ),
                            });
                        }
                    }
                    let admitted = state.admit(request.clone(), max_queue, subscribe)?;
                    if let Some(earlier) = &idempotency {
                        let message_id = &admitted.accepted.message_id;
                        state.register_idempotent(&earlier.scope, &earlier.key, message_id);
                    }
                    Some((admitted, state.commit()))
                }
            };
            let Some((admitted, stored)) = admitted else {
                Self::wait_settled(&session).await;
                continue;
            };
            if admitted.start_driver {
                run::spawn_driver(session.clone(), self.clone());
            }
            // Accepted means durable: the caller hears nothing before the store has it.
            if let Err(e) = stored.wait().await {
                warn!(session_key = %session.key, error = %e, "cannot store an accepted message");
                session.lock().withdraw(&admitted.accepted.message_id);
                self.drop_if_empty(&session);
                return Err(e.into());
            }
            return Ok(admitted);
        }
    }

    /// What the store knows of an earlier call with this idempotency key (GATEWAY.md §10).
    /// Keys belong to the caller's token; one used for another session is 409.
    /// `session_key` is the stored key.
    async fn earlier_call(&self, caller: &Caller, session_key: &str, key: &str) -> Result<Earlier> {
        if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
            return Err(GatewayError::invalid(
                "Idempotency key must be 1-200 characters without control characters",
            ));
        }
        let scope = caller.owner().unwrap_or_default().to_string();
        let mut earlier = Earlier { scope, key: key.to_string(), done: None, unfinished: None };
        if let Some(record) = self.inner.store.idempotency(&earlier.scope, key).await? {
            if record.session_key != session_key {
                return Err(GatewayError::conflict(format!(
                    "Idempotency key {key} was used for session {}",
                    super::keys::shown(&record.session_key)
                )));
            }
            match record.outcome {
                Some(outcome) => {
                    earlier.done = Some(serde_json::from_str(&outcome).map_err(|e| {
                        GatewayError::internal(format!("stored idempotency outcome: {e}"))
                    })?)
                }
                None => earlier.unfinished = Some(record.message_id),
            }
        }
        Ok(earlier)
    }

    /// The outcome of an earlier command sent with this request's idempotency key (commands
    /// run at once, so theirs is recorded done). A key held by a message still in flight is
    /// 409.
    pub async fn earlier_command(&self, request: &SendRequest) -> Result<Option<RunOutcome>> {
        let Some(key) = &request.idempotency_key else { return Ok(None) };
        let session_key = self.key_for(&request.caller, &request.session_key).await?;
        let earlier = self.earlier_call(&request.caller, &session_key, key).await?;
        if earlier.unfinished.is_some() {
            return Err(GatewayError::conflict(format!(
                "Idempotency key {key} is used by a message still in flight"
            )));
        }
        Ok(earlier.done)
    }

    /// Records a command's outcome under the request's idempotency key, if it has one.
    pub async fn record_command(&self, request: &SendRequest, outcome: &RunOutcome) -> Result<()> {
        let Some(key) = &request.idempotency_key else { return Ok(()) };
        let record = crate::store::IdempotencyRecord {
            scope: request.caller.owner().unwrap_or_default().to_string(),
            key: key.clone(),
            session_key: self.key_for(&request.caller, &request.session_key).await?,
            message_id: outcome.message_id.clone(),
            outcome: serde_json::to_string(outcome).ok(),
            created_at: now_ms(),
        };
        Ok(self.inner.store.write(vec![crate::store::Op::PutIdempotency(record)]).wait().await?)
    }

    /// `limits.max_subscribers` streams per session.
    pub(super) fn room_for_subscriber(&self, state: &State) -> Result<()> {
        let max = self.config().limits.max_subscribers;
        if state.log.subscribers() >= max {
            return Err(GatewayError::rate_limited(
                format!("Too many streams on session {} (max {max})", state.shown),
                1,
            ));
        }
        Ok(())
    }

    /// A session left with nothing in it after its first message was refused leaves memory
    /// without a write, so a refused message never leaves an empty session behind (it would
    /// be written by the next flush once the store recovers).
    fn drop_if_empty(&self, session: &Arc<Session>) {
        let mut registry = self.registry();
        let mut state = session.lock();
        let empty = !session.primary
            && state.message_count == 0
            && state.queue.is_empty()
            && state.run.is_none()
            && state.log.subscribers() == 0;
        if empty && registry.live.get(&*session.key).is_some_and(|s| Arc::ptr_eq(s, session)) {
            state.removed = true;
            state.discard_writes();
            registry.live.remove(&*session.key);
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
        let joined = admitted.joined;
        let Some(live) = admitted.live else {
            // A repeat of a finished message: its outcome is all there is.
            let outcome = admitted.outcome;
            let stream: RunStream = Box::pin(futures_util::stream::once(async move {
                outcome.await.map(RunItem::Outcome).unwrap_or(RunItem::Stopped)
            }));
            return Ok((admitted.accepted, stream));
        };
        let stream = stream::run_events(
            admitted.accepted.session_key.as_str().into(),
            admitted.run_message_id,
            joined,
            live,
            admitted.outcome,
            self.inner.shutdown.clone(),
            self.inner.metrics.lagged.clone(),
        );
        Ok((admitted.accepted, stream))
    }

    /// Steers an existing session: joins the running run, or queues the text when idle.
    pub async fn steer(
        &self,
        caller: &Caller,
        key: &str,
        text: String,
        source: Source,
    ) -> Result<Accepted> {
        self.existing(caller, key).await?;
        let request = SendRequest {
            source,
            session_key: key.to_string(),
            text,
            images: Vec::new(),
            behavior: StreamingBehavior::Steer,
            idempotency_key: None,
            caller: caller.clone(),
        };
        Ok(self.admit(request, false).await?.accepted)
    }
}
