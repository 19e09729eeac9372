//! The run driver: one task per busy session takes queued messages in order and runs each
//! through the agent, one at a time; and the [`RunHost`] the agent reports through.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::SessionManager;
use super::state::{Session, State};
use crate::agent::{Agent, RunHost};
use crate::domain::EventKind;
use crate::domain::{FailureCode, Interruption, RunEnd, RunStatus};
use crate::domain::{HistoryMessage, Part};
use crate::error::GatewayError;

/// The first wait before retrying a run whose start the store refused, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs the session's queue until it is empty (or the session is closing or removed, or the
/// gateway is draining). The caller has set `driver_running`; this task clears it when it stops.
pub(crate) fn spawn_driver(session: Arc<Session>, manager: SessionManager) {
    tokio::spawn(drive(session, manager));
}

async fn drive(session: Arc<Session>, manager: SessionManager) {
    let agent = manager.inner.agent.clone();
    // After a start the store refused: how long to wait before trying again.
    let mut backoff: Option<Duration> = None;
    loop {
        if let Some(delay) = backoff {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = manager.inner.draining.cancelled() => {}
            }
        }
        let _gate = session.run_gate.lock().await;
        let idle = |state: &mut State| {
            let idle =
                state.closing || state.removed || state.queue.is_empty() || manager.draining();
            if idle {
                state.driver_running = false;
            }
            idle
        };
        // The run's context is read from the store (history is not kept in memory), before
        // the lock is taken to begin it; if anything moved history meanwhile, read again.
        let range = {
            let mut state = session.lock();
            if idle(&mut state) {
                return;
            }
            state.context_range()
        };
        let context = match manager.inner.store.history(&session.key, range.from, range.to).await {
            Ok(context) => context,
            Err(e) => {
                let delay = backoff.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX));
                warn!(session_key = %session.key, error = %e, retry_in = ?delay, "cannot read the context of the next run; it stays queued");
                backoff = Some(delay);
                continue;
            }
        };
        let (mut queued, cancel, model, thinking, started) = {
            let mut state = session.lock();
            if idle(&mut state) {
                return;
            }
            if state.context_range() != range {
                continue;
            }
            let mut queued = state.queue.pop_front().expect("queue is not empty");
            let cancel = CancellationToken::new();
            state.begin_run(&mut queued, cancel.clone(), context);
            // Started is on disk before the model is called: a crash never runs it twice.
            let started = state.commit();
            // Counted under the lock: see `SessionManager::drain`.
            manager.inner.active_runs.send_modify(|n| *n += 1);
            (queued, cancel, state.meta.model.clone(), state.meta.thinking, started)
        };
        if let Err(e) = started.wait().await {
            let delay = backoff.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX));
            warn!(session_key = %session.key, message_id = %queued.message_id, error = %e, retry_in = ?delay, "cannot record the start of a run; it stays queued");
            session.lock().unstart_run(queued);
            manager.inner.active_runs.send_modify(|n| *n -= 1);
            backoff = Some(delay);
            continue;
        }
        backoff = None;
        manager.inner.metrics.runs_started.inc();
        session.lock().announce_start(&queued.message_id);
        let message_id = std::mem::take(&mut queued.message_id);
        debug!(session_key = %session.key, %message_id, "run started");
        let run_timeout = manager.inner.config.startup().agent.run_timeout;
        let timer = tokio::spawn({
            let (session, cancel) = (session.clone(), cancel.clone());
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(run_timeout) => {
                        session.lock().interrupt(Interruption::Timeout { limit: run_timeout });
                    }
                }
            }
        });
        let host = Host { session: &session, agent: &agent, manager: &manager };
        // A bug in a provider or tool must fail this run, not wedge the session for good.
        let end = AssertUnwindSafe(agent.run(&host, &model, thinking, &cancel))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| RunEnd {
                status: RunStatus::failed(FailureCode::Internal, "internal error"),
                response: String::new(),
                usage: Default::default(),
            });
        match &end.status {
            RunStatus::Completed => {
                debug!(session_key = %session.key, %message_id, "run completed")
            }
            RunStatus::Failed { error, .. } | RunStatus::Interrupted { reason: error } => {
                info!(session_key = %session.key, %message_id, %error, "run failed")
            }
            RunStatus::Aborted => info!(session_key = %session.key, %message_id, "run aborted"),
        }
        timer.abort();
        manager.inner.metrics.run_finished(match &end.status {
            RunStatus::Completed => "ok",
            RunStatus::Aborted => "aborted",
            RunStatus::Interrupted { .. } => "interrupted",
            RunStatus::Failed { .. } => "failed",
        });
        // Nobody hears of the end before the store has it (the last history message and the
        // message marked done are in this one batch).
        let (report, stored) = {
            let mut state = session.lock();
            let report = state.finish_run(end);
            (report, state.commit())
        };
        let stored = stored.wait().await.map_err(|e| {
            warn!(session_key = %session.key, %message_id, error = %e, "cannot record the end of a run");
            GatewayError::from(e).message
        });
        session.lock().report_end(report, stored);
        manager.inner.active_runs.send_modify(|n| *n -= 1);
    }
}

struct Host<'a> {
    session: &'a Session,
    agent: &'a Agent,
    manager: &'a SessionManager,
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
        self.session.lock().meta.memory_namespace.clone()
    }

    fn episodes_of(&self) -> Option<String> {
        let owner = self.session.lock().meta.owner.clone()?;
        // Tokens are start-up only.
        let config = self.manager.inner.config.startup();
        let private = config.tokens.iter().any(|t| t.name == owner && t.own_sessions_only);
        private.then_some(owner)
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

    fn interrupted(&self) -> Option<Interruption> {
        self.session.lock().run.as_ref().and_then(|run| run.interrupted)
    }
}
