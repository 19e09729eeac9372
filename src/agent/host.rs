//! The seam between a run and its session: everything the loop reports, and the little it
//! reads back, goes through [`RunHost`], so the loop can be driven by a fake in tests.

use crate::domain::{EventKind, HistoryMessage, Interruption, Part};

/// The session side of a run.
pub trait RunHost: Send + Sync {
    /// Records the event (and its effect on the session's draft and history) and publishes it.
    fn emit(&self, event: EventKind);
    /// The conversation so far, for the next model call.
    fn context(&self) -> Vec<HistoryMessage>;
    /// The session's system prompt (read again by a reload), for the next model call.
    fn system_prompt(&self) -> String;
    /// The session's memory namespace.
    fn memory_namespace(&self) -> String;
    /// The owner whose sessions' episodes the memory tools may find, when the session belongs
    /// to an `own_sessions_only` token (`None`: every session of the namespace).
    fn episodes_of(&self) -> Option<String>;
    /// Replaces, for the model, the context before message `first_kept` with `summary`, and
    /// emits `compaction_end`.
    fn compact(&self, first_kept: &str, summary: String, summary_tokens: u64);
    /// Moves the draft assistant message into history (with `error` as a last part, when cut
    /// short), emits `message_complete`, and returns the message's text.
    fn finish_message(&self, error: Option<Part>) -> String;
    /// Moves steering messages that arrived into history and returns how many. With
    /// `close_if_none`, an empty inbox marks the run as closing, so later steers queue instead.
    fn take_steering(&self, close_if_none: bool) -> usize;
    /// Why a cancelled run was cut short, when it was not an abort (shutdown, run timeout).
    fn interrupted(&self) -> Option<Interruption>;
}
