//! How a run ended, as the agent loop reports it to the session.

use super::session::Usage;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Completed,
    Failed { error: String, code: String },
    Aborted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEnd {
    pub status: RunStatus,
    /// The last assistant text of the run.
    pub response: String,
    pub usage: Usage,
}
