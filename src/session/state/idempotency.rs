//! Idempotency keys on the session (GATEWAY.md §10): which accepted messages carry a key, the
//! record written with the message's acceptance, and the outcome written when the message is
//! done, so that a repeat (even after a restart) returns the first outcome and runs nothing.

use tokio::sync::{broadcast, oneshot};

use super::State;
use crate::domain::Event;
use crate::domain::RunOutcome;
use crate::store::{IdempotencyRecord, Op};
use std::sync::Arc;

/// A repeat joined to a message still in flight: its outcome and, for a streaming caller, the
/// live feed and the run whose events are the message's.
pub(crate) struct Attached {
    pub outcome: oneshot::Receiver<RunOutcome>,
    pub run_message_id: String,
    pub running: bool,
    pub live: Option<broadcast::Receiver<Arc<Event>>>,
}

impl State {
    /// The message id an unfinished message accepted with `(scope, key)` has.
    pub fn idempotent_message(&self, scope: &str, key: &str) -> Option<String> {
        self.idempotent.get(&(scope.to_string(), key.to_string())).cloned()
    }

    /// Remembers the key of a message being accepted; its record joins the acceptance's batch.
    pub fn register_idempotent(&mut self, scope: &str, key: &str, message_id: &str) {
        let pair = (scope.to_string(), key.to_string());
        self.ops.push(Op::PutIdempotency(IdempotencyRecord {
            scope: pair.0.clone(),
            key: pair.1.clone(),
            session_key: self.key.to_string(),
            message_id: message_id.to_string(),
            outcome: None,
            created_at: crate::domain::now_ms(),
        }));
        self.idempotent_of.insert(message_id.to_string(), pair.clone());
        self.idempotent.insert(pair, message_id.to_string());
    }

    /// Keys of restored messages (after a restart or eviction) whose outcome is still to come.
    pub(super) fn restore_idempotent(&mut self, records: Vec<IdempotencyRecord>) {
        for record in records {
            let pair = (record.scope, record.key);
            self.idempotent_of.insert(record.message_id.clone(), pair.clone());
            self.idempotent.insert(pair, record.message_id);
        }
    }

    /// Forgets the key of a message whose acceptance was not stored (nor its record).
    pub(super) fn forget_idempotent(&mut self, message_id: &str) {
        if let Some(pair) = self.idempotent_of.remove(message_id) {
            self.idempotent.remove(&pair);
        }
    }

    /// Writes a finished message's outcome to its idempotency record, if it has one.
    pub(super) fn record_outcome(&mut self, outcome: &RunOutcome) {
        let Some((scope, key)) = self.idempotent_of.remove(&outcome.message_id) else {
            return;
        };
        self.idempotent.remove(&(scope.clone(), key.clone()));
        self.ops.push(Op::PutIdempotency(IdempotencyRecord {
            scope,
            key,
            session_key: self.key.to_string(),
            message_id: outcome.message_id.clone(),
            outcome: serde_json::to_string(outcome).ok(),
            created_at: crate::domain::now_ms(),
        }));
    }

    /// Another caller of message `message_id` (queued, running, or steering into the run):
    /// it gets the same outcome, and with `subscribe` the run's events from now on.
    pub fn attach(&mut self, message_id: &str, subscribe: bool) -> Option<Attached> {
        let (tx, outcome) = oneshot::channel();
        let live = subscribe.then(|| self.log.subscribe(None).live).flatten();
        if let Some(queued) = self.queue.iter_mut().find(|q| q.message_id == message_id) {
            queued.waiters.push(tx);
            let run_message_id = message_id.to_string();
            return Some(Attached { outcome, run_message_id, running: false, live });
        }
        let run = self.run.as_mut()?;
        let steering = run.steering.iter().any(|q| q.message_id == message_id)
            || run.waiters.iter().any(|(id, _)| id == message_id);
        if run.message_id != message_id && !steering {
            return None;
        }
        run.waiters.push((message_id.to_string(), tx));
        Some(Attached { outcome, run_message_id: run.message_id.clone(), running: true, live })
    }
}
