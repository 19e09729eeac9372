//! The run driver: one task per busy session takes queued messages in order and runs each
//! through the agent, one at a time; and the [`RunHost`] the agent reports through.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::SessionManager;
use super::event::EventKind;
use super::model::{HistoryMessage, Part};
use super::state::{ActiveRun, Session};
use crate::agent::{Agent, RunEnd, RunHost, RunStatus};
use crate::error::GatewayError;

/// Runs the session's queue until it is empty (or the session is closing or removed, or the
/// gateway is draining). The caller has set `driver_running`; this task clears it when it stops.
pub(crate) fn spawn_driver(session: Arc<Session>, manager: SessionManager) {
    tokio::spawn(drive(session, manager));
}

async fn drive(session: Arc<Session>, manager: SessionManager) {
    let agent = manager.inner.agent.clone();
    loop {
        let _gate = session.run_gate.lock().await;
        let (mut queued, cancel, model, thinking, started) = {
            let mut state = session.lock();
            if state.closing || state.removed || state.queue.is_empty() || manager.draining() {
                state.driver_running = false;
                return;
            }
            let mut queued = state.queue.pop_front().expect("queue is not empty");
            let cancel = CancellationToken::new();
            let mut run = ActiveRun::new(queued.message_id.clone(), cancel.clone());
            run.waiters.extend(queued.waiters.drain(..).map(|w| (queued.message_id.clone(), w)));
            run.permit = queued.permit.take();
            state.run = Some(run);
            state.mark_started(&queued.message_id);
            // Started is on disk before the model is called: a crash never runs it twice.
            let started = state.commit();
            // Counted under the lock: see `SessionManager::drain`.
            manager.inner.active_runs.send_modify(|n| *n += 1);
            (queued, cancel, state.model.clone(), state.thinking, started)
        };
        if let Err(e) = started.wait().await {
            warn!(session_key = %session.key, message_id = %queued.message_id, error = %e, "cannot record the start of a run");
            session.lock().abandon_run(&GatewayError::from(e).message);
            manager.inner.active_runs.send_modify(|n| *n -= 1);
            continue;
        }
        manager.inner.metrics.runs_started.inc();
        {
            let mut state = session.lock();
            state.emit(EventKind::AgentStart { message_id: queued.message_id.clone() });
            state.commit_user(&queued);
            state.emit_state();
        }
        let message_id = std::mem::take(&mut queued.message_id);
        debug!(session_key = %session.key, %message_id, "run started");
        let run_timeout = manager.inner.config.agent.run_timeout;
        let timer = tokio::spawn({
            let (session, cancel) = (session.clone(), cancel.clone());
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(run_timeout) => {
                        let message = format!(
                            "run timed out after {} (agent.run_timeout)",
                            humantime::format_duration(run_timeout)
                        );
                        session.lock().interrupt("timeout", &message);
                    }
                }
            }
        });
        let host = Host { session: &session, agent: &agent };
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
        timer.abort();
        manager.inner.metrics.run_finished(match &end.status {
            RunStatus::Completed => "ok",
            RunStatus::Aborted => "aborted",
            RunStatus::Failed { code, .. } if code == "interrupted" => "interrupted",
            RunStatus::Failed { .. } => "failed",
        });
        session.lock().finish_run(end);
        manager.inner.active_runs.send_modify(|n| *n -= 1);
    }
}

struct Host<'a> {
    session: &'a Session,
    agent: &'a Agent,
}

impl RunHost for Host<'_> {
    fn emit(&self, event: EventKind) {
        self.session.lock().emit(event);
    }

    fn context(&self) -> Vec<HistoryMessage> {
        self.session.lock().context()
    }

    fn compact(&self, first_kept: &str, summary: String, summary_tokens: u64) {
        self.session.lock().compact(first_kept, summary, summary_tokens);
    }

    fn memory_namespace(&self) -> String {
        self.session.lock().memory_namespace.clone()
    }

    fn system_prompt(&self) -> String {
        let mut state = self.session.lock();
        state.system_prompt.get_or_insert_with(|| self.agent.session_prompt()).clone()
    }

    fn finish_message(&self, error: Option<Part>) -> String {
        self.session.lock().finish_message(error)
    }

    fn take_steering(&self, close_if_none: bool) -> usize {
        self.session.lock().take_steering(close_if_none)
    }

    fn interrupted(&self) -> Option<(String, String)> {
        self.session.lock().run.as_ref().and_then(|run| run.interrupted.clone())
    }
}
