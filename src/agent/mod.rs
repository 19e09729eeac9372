//! The agent: model call → stream events → run the requested tools → next model call, until the
//! model stops or `max_steps`; behind a [`provider::Provider`] trait and a [`tools::Tool`] trait.
//!
//! The loop owns no session state. It reports everything through a [`RunHost`] (the session),
//! which turns each report into state (history, draft, pending tool results) and an event in
//! the same step, so what a subscriber sees and what `state` returns never disagree.
//!
//! Filed by responsibility: the model registry and the agent's construction
//! ([`registry`]), the loop (`run`), retries of a model call (`retry`), compaction of a long
//! context (`compaction`), and the system prompt with the workspace's instructions and the
//! core memories (`prompt`).

mod compaction;
pub mod echo;
pub mod genai_provider;
mod host;
mod prompt;
pub mod provider;
pub mod registry;
mod retry;
mod run;
pub mod sandbox;
pub mod tools;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::memory::Memory;

pub use host::RunHost;
pub use prompt::CONTEXT_FILE;
pub use registry::UnknownModel;

/// Providers, tools and limits shared by every run.
pub struct Agent {
    registry: registry::Registry,
    tools: Vec<Arc<dyn tools::Tool>>,
    max_steps: usize,
    /// The configured prompt (`system_prompt` + `append_system_prompt`), before the workspace's
    /// instructions and the core memories join it.
    system_prompt: String,
    workspace: Arc<tools::Workspace>,
    sandbox_mode: sandbox::SandboxMode,
    memory: Memory,
    retry: retry::RetryPolicy,
    /// How long one model call may take, from its start to its last item.
    call_timeout: Duration,
    /// The context is compacted once it passes this share of the model's window.
    compact_at_percent: u64,
}
