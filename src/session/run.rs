//! The run driver: one task per busy session takes queued messages in order and runs each
//! through the agent, one at a time; and the [`RunHost`] the agent reports through.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::event::EventKind;
use super::model::{HistoryMessage, Part};
use super::state::{ActiveRun, Session};
use crate::agent::{Agent, RunEnd, RunHost, RunStatus};

/// Runs the session's queue until it is empty (or the session is closing or removed). The
/// caller has set `driver_running`; this task clears it when it stops.
pub(crate) fn spawn_driver(session: Arc<Session>, agent: Arc<Agent>) {
    tokio::spawn(drive(session, agent));
}

async fn drive(session: Arc<Session>, agent: Arc<Agent>) {
    loop {
        let _gate = session.run_gate.lock().await;
        let (message_id, cancel, model, thinking) = {
            let mut state = session.lock();
            if state.closing || state.removed || state.queue.is_empty() {
                state.driver_running = false;
                return;
            }
            let queued = state.queue.pop_front().expect("queue is not empty");
            let cancel = CancellationToken::new();
            state.run = Some(ActiveRun {
                message_id: queued.message_id.clone(),
                cancel: cancel.clone(),
                steering: Vec::new(),
                closing: false,
                waiters: Vec::new(),
                draft: None,
                pending_tools: Vec::new(),
            });
            state.emit(EventKind::AgentStart { message_id: queued.message_id.clone() });
            state.commit_user(&queued);
            if let Some(run) = state.run.as_mut() {
                run.waiters.extend(queued.waiter.map(|w| (queued.message_id.clone(), w)));
            }
            state.emit_state();
            (queued.message_id, cancel, state.model.clone(), state.thinking)
        };
        debug!(session_key = %session.key, %message_id, "run started");
        let host = Host { session: &session };
        // A bug in a provider or tool must fail this run, not wedge the session for good.
        let end = AssertUnwindSafe(agent.run(&host, &model, thinking, &cancel))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| RunEnd {
                status: RunStatus::Failed {
                    error: "internal error".into(),
                    code: "internal".into(),
                },
                response: String::new(),
                usage: Default::default(),
            });
        match &end.status {
            RunStatus::Completed => {
                debug!(session_key = %session.key, %message_id, "run completed")
            }
            RunStatus::Failed { error, .. } => {
                info!(session_key = %session.key, %message_id, %error, "run failed")
            }
            RunStatus::Aborted => info!(session_key = %session.key, %message_id, "run aborted"),
        }
        session.lock().finish_run(end);
    }
}

struct Host<'a> {
    session: &'a Session,
}

impl RunHost for Host<'_> {
    fn emit(&self, event: EventKind) {
        self.session.lock().emit(event);
    }

    fn context(&self) -> Vec<HistoryMessage> {
        self.session.lock().history.clone()
    }

    fn finish_message(&self, error: Option<Part>) -> String {
        self.session.lock().finish_message(error)
    }

    fn take_steering(&self, close_if_none: bool) -> usize {
        self.session.lock().take_steering(close_if_none)
    }
}
