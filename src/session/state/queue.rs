//! Waiting messages: admission (queue or steer), cancel, clear, withdraw, and the answers of
//! callers whose message is not run.

use super::*;

/// A message waiting in the queue (or steering into the running run).
pub(crate) struct Queued {
    pub message_id: String,
    pub text: String,
    pub images: Vec<Image>,
    pub source: Source,
    pub enqueued_at: i64,
    /// Its callers: the one that sent it, and any repeat with the same idempotency key.
    pub waiters: Vec<oneshot::Sender<RunOutcome>>,
    /// Counts against the sending token's `max_concurrent_runs` until the message is done
    /// (it moves into the run when the message starts).
    pub permit: Option<crate::domain::RunPermit>,
}

impl Queued {
    pub(super) fn record(&self, key: &str, joined: Option<String>) -> MessageRecord {
        MessageRecord {
            message_id: self.message_id.clone(),
            session_key: key.to_string(),
            state: if joined.is_some() { MessageState::Started } else { MessageState::Queued },
            joined,
            text: self.text.clone(),
            images: self.images.clone(),
            source: self.source,
            created_at: self.enqueued_at,
            checkpoint: None,
        }
    }

    pub fn user_message(&self) -> HistoryMessage {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(Part::Text { text: self.text.clone() });
        }
        for image in &self.images {
            parts.push(Part::Media {
                url: image.data_url(),
                mime_type: Some(image.mime_type.clone()),
            });
        }
        HistoryMessage { id: self.message_id.clone(), role: Role::User, parts, timestamp: now_ms() }
    }

    /// The outcome of a message that is not run.
    pub(super) fn rejected(&self, session_key: &str, error: &str) -> RunOutcome {
        RunOutcome::failed(error, session_key, self.message_id.clone())
    }

    /// Answers the waiting callers without running the message.
    pub fn reject(self, session_key: &str, error: &str) {
        let outcome = self.rejected(session_key, error);
        for waiter in self.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// What a sending call gets from the session.
pub(crate) struct Admitted {
    pub accepted: Accepted,
    pub outcome: oneshot::Receiver<RunOutcome>,
    /// The message id of the run whose events belong to this caller.
    pub run_message_id: String,
    pub live: Option<broadcast::Receiver<Arc<Event>>>,
    /// The queue has no driver yet: the caller must start one.
    pub start_driver: bool,
    /// The caller joins a run already going: its events stream from now.
    pub joined: bool,
}

impl Admitted {
    /// A repeat of a message that is done: its outcome at once, nothing to stream.
    pub fn finished(session_key: &str, outcome: RunOutcome) -> Self {
        let (tx, rx) = oneshot::channel();
        let message_id = outcome.message_id.clone();
        let _ = tx.send(outcome);
        let accepted = Accepted {
            session_key: session_key.to_string(),
            message_id: message_id.clone(),
            mode: SendMode::Queued,
            repeat: true,
        };
        Self {
            accepted,
            outcome: rx,
            run_message_id: message_id,
            live: None,
            start_driver: false,
            joined: false,
        }
    }

    /// A repeat of a message still in flight: the same outcome, the run's events from now.
    pub fn repeat(session_key: &str, message_id: String, attached: Attached) -> Self {
        let mode =
            if attached.run_message_id == message_id { SendMode::Queued } else { SendMode::Steer };
        let accepted =
            Accepted { session_key: session_key.to_string(), message_id, mode, repeat: true };
        Self {
            accepted,
            outcome: attached.outcome,
            run_message_id: attached.run_message_id,
            live: attached.live,
            start_driver: false,
            joined: attached.running,
        }
    }
}

impl State {
    /// Accepts a message: joins the running run (steer) or waits in the queue.
    pub fn admit(
        &mut self,
        request: SendRequest,
        max_queue: usize,
        subscribe: bool,
    ) -> Result<Admitted, GatewayError> {
        let permit = request.caller.run_permit()?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let (tx, outcome) = oneshot::channel();
        let live = subscribe.then(|| self.log.subscribe(None).live).flatten();
        let joinable = self.run.as_ref().is_some_and(|run| run.started && !run.closing);
        let queued = Queued {
            message_id: message_id.clone(),
            text: request.text,
            images: request.images,
            source: request.source,
            enqueued_at: now_ms(),
            waiters: Vec::new(),
            permit,
        };
        let (mode, run_message_id) = if request.behavior == StreamingBehavior::Steer && joinable {
            let run = self.run.as_mut().expect("joinable implies a run");
            self.ops.push(Op::Accept(queued.record(&self.key, Some(run.message_id.clone()))));
            run.steering.push(queued);
            run.waiters.push((message_id.clone(), tx));
            (SendMode::Steer, run.message_id.clone())
        } else {
            if self.queue.len() >= max_queue {
                let mut error = GatewayError::new(
                    ErrorCode::QueueFull,
                    format!("Queue full ({max_queue} pending)."),
                );
                error.retry_after = Some(1);
                return Err(error);
            }
            self.ops.push(Op::Accept(queued.record(&self.key, None)));
            self.queue.push_back(Queued { waiters: vec![tx], ..queued });
            self.emit_state();
            (SendMode::Queued, message_id.clone())
        };
        self.dirty = true;
        let start_driver = mode == SendMode::Queued && !self.driver_running;
        if start_driver {
            self.driver_running = true;
        }
        let accepted =
            Accepted { session_key: self.shown.to_string(), message_id, mode, repeat: false };
        Ok(Admitted {
            accepted,
            outcome,
            run_message_id,
            live,
            start_driver,
            joined: mode == SendMode::Steer,
        })
    }

    /// Removes one queued message; its caller gets `Cancelled`.
    pub fn cancel_queued(&mut self, message_id: &str) -> bool {
        let Some(position) = self.queue.iter().position(|q| q.message_id == message_id) else {
            return false;
        };
        if let Some(queued) = self.queue.remove(position) {
            self.finish_queued(queued, "Cancelled");
        }
        self.emit_state();
        true
    }

    /// Rejects a queued message: its caller gets `reason`, the store marks it done.
    pub(super) fn finish_queued(&mut self, queued: Queued, reason: &str) {
        let error = Some(reason.to_string());
        self.ops.push(Op::Finish { message_id: queued.message_id.clone(), error });
        self.record_outcome(&queued.rejected(&self.shown, reason));
        queued.reject(&self.shown, reason);
    }

    /// Takes back a message whose acceptance could not be stored: it leaves the queue (or the
    /// run it was steering into) without a trace; its caller gets the store's error.
    pub fn withdraw(&mut self, message_id: &str) {
        self.forget_idempotent(message_id);
        if let Some(position) = self.queue.iter().position(|q| q.message_id == message_id) {
            self.queue.remove(position);
            self.emit_state();
        } else if let Some(run) = self.run.as_mut() {
            run.steering.retain(|q| q.message_id != message_id);
            run.waiters.retain(|(id, _)| id != message_id);
            // Taken by the driver already: its start cannot be stored either (the store has
            // no such message), and then it must not go back to the queue.
            run.withdrawn |= run.message_id == message_id && !run.started;
        }
    }

    /// Callers still waiting on queued messages stop waiting (shutdown): the messages stay
    /// queued in the store and run after the next start.
    pub fn release_waiters(&mut self) {
        for queued in self.queue.iter_mut() {
            queued.waiters.clear();
        }
    }

    /// Drops every queued message with `reason` for their callers; returns how many.
    pub fn reject_queue(&mut self, reason: &str) -> usize {
        let queued: Vec<_> = self.queue.drain(..).collect();
        let count = queued.len();
        for q in queued {
            self.finish_queued(q, reason);
        }
        if count > 0 {
            self.emit_state();
        }
        count
    }
}
