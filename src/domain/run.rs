//! How a run ended, typed: the agent loop reports a [`RunEnd`], the session turns its
//! [`RunStatus`] into the `error`/`aborted` and `agent_end` events and into its callers'
//! outcome. The wire strings of the codes are written here once; nothing compares them.

use std::time::Duration;

use super::event::EventKind;
use super::session::Usage;

/// The error an aborted run's callers get (`agent_end.error`, the outcome's `error`), and the
/// error result of tool calls an abort cut short.
pub const ABORTED: &str = "aborted";

/// Why a run failed: the `code` of its `error` event and of the error part in history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCode {
    /// The provider failed (after any retries), or the session's model is not in the registry.
    ModelError,
    /// `agent.max_steps` model calls, and the model still wanted another.
    MaxSteps,
    /// The run went past `agent.run_timeout`.
    Timeout,
    /// A bug: a provider or a tool panicked.
    Internal,
    /// The store refused to record the run's end, so the end the run had is not durable.
    Unavailable,
}

impl FailureCode {
    /// The code as events, history and the v1 stream carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::ModelError => "model_error",
            FailureCode::MaxSteps => "max_steps",
            FailureCode::Timeout => "timeout",
            FailureCode::Internal => "internal",
            FailureCode::Unavailable => "unavailable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Completed,
    /// Stopped by an abort (`/abort`, reset, delete, a v1 client that went away).
    Aborted,
    /// Cut short by the gateway itself (shutdown, or a restart after a crash): never re-run,
    /// code `interrupted`. Counted apart from failures.
    Interrupted {
        reason: String,
    },
    Failed {
        error: String,
        code: FailureCode,
    },
}

impl RunStatus {
    pub fn failed(code: FailureCode, error: impl Into<String>) -> Self {
        RunStatus::Failed { error: error.into(), code }
    }

    pub fn is_completed(&self) -> bool {
        matches!(self, RunStatus::Completed)
    }

    /// The code of a run that did not complete, as its `error` event, its history error part
    /// and the v1 stream's `error` frame carry it.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            RunStatus::Completed => None,
            RunStatus::Aborted => Some(ABORTED),
            RunStatus::Interrupted { .. } => Some("interrupted"),
            RunStatus::Failed { code, .. } => Some(code.as_str()),
        }
    }

    /// What the run's callers are told when it did not complete (`agent_end.error`, the
    /// outcome's `error`).
    pub fn error(&self) -> Option<&str> {
        match self {
            RunStatus::Completed => None,
            RunStatus::Aborted => Some(ABORTED),
            RunStatus::Interrupted { reason } => Some(reason),
            RunStatus::Failed { error, .. } => Some(error),
        }
    }

    /// The event that says why the run ended badly, logged right before its `agent_end`:
    /// `aborted`, or `error {error, code}`.
    pub fn end_event(&self) -> Option<EventKind> {
        match self {
            RunStatus::Completed => None,
            RunStatus::Aborted => Some(EventKind::Aborted),
            RunStatus::Interrupted { reason: error } | RunStatus::Failed { error, .. } => {
                Some(EventKind::Error { error: error.clone(), code: self.code()?.into() })
            }
        }
    }
}

/// Why the session cut a running run short, when it was not an abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// The shutdown grace period ran out: the run ends as after a crash.
    Shutdown,
    /// The run went past `agent.run_timeout` (`limit`): it fails.
    Timeout { limit: Duration },
}

impl Interruption {
    /// The status the run ends with.
    pub fn status(self) -> RunStatus {
        match self {
            Interruption::Shutdown => {
                RunStatus::Interrupted { reason: "interrupted by shutdown".into() }
            }
            Interruption::Timeout { limit } => RunStatus::failed(
                FailureCode::Timeout,
                format!(
                    "run timed out after {} (agent.run_timeout)",
                    humantime::format_duration(limit)
                ),
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEnd {
    pub status: RunStatus,
    /// The last assistant text of the run.
    pub response: String,
    pub usage: Usage,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events and history carry these strings: they never change.
    #[test]
    fn codes_are_the_wire_strings() {
        let failed = |code| RunStatus::failed(code, "x").code();
        assert_eq!(failed(FailureCode::ModelError), Some("model_error"));
        assert_eq!(failed(FailureCode::MaxSteps), Some("max_steps"));
        assert_eq!(failed(FailureCode::Timeout), Some("timeout"));
        assert_eq!(failed(FailureCode::Internal), Some("internal"));
        assert_eq!(failed(FailureCode::Unavailable), Some("unavailable"));
        assert_eq!(RunStatus::Aborted.code(), Some("aborted"));
        assert_eq!(RunStatus::Interrupted { reason: "r".into() }.code(), Some("interrupted"));
        assert_eq!(RunStatus::Completed.code(), None);
    }

    #[test]
    fn end_events_and_errors() {
        assert_eq!(RunStatus::Completed.end_event(), None);
        assert_eq!(RunStatus::Aborted.end_event(), Some(EventKind::Aborted));
        assert_eq!(RunStatus::Aborted.error(), Some("aborted"));
        let shutdown = Interruption::Shutdown.status();
        assert_eq!(
            shutdown.end_event(),
            Some(EventKind::Error {
                error: "interrupted by shutdown".into(),
                code: "interrupted".into()
            })
        );
        let timeout = Interruption::Timeout { limit: Duration::from_secs(90) }.status();
        assert_eq!(timeout.error(), Some("run timed out after 1m 30s (agent.run_timeout)"));
        assert_eq!(timeout.code(), Some("timeout"));
    }
}
