//! The system prompt of a model call: the configured prompt, the workspace's project
//! instructions (`AGENTS.md`, read when a session first runs or reloads), and the core
//! memories of the session's namespace (read again for every model call).

use super::Agent;

/// Project instructions in the workspace that join the system prompt.
pub const CONTEXT_FILE: &str = "AGENTS.md";

impl Agent {
    /// A session's system prompt as of now: the configured prompt, then the workspace's
    /// `AGENTS.md` (project instructions) when there is one. Sessions keep it until reloaded.
    pub fn session_prompt(&self) -> String {
        let mut prompt = self.system_prompt.clone();
        // Opened like any tool's path: a link out of the workspace or to the gateway's files
        // (its config file) is not followed.
        if let Ok(bytes) = self.workspace.read(std::path::Path::new(CONTEXT_FILE))
            && let Ok(text) = String::from_utf8(bytes)
            && !text.trim().is_empty()
        {
            prompt.push_str(&format!("\n\n# {CONTEXT_FILE}\n\n{}", text.trim()));
        }
        prompt
    }

    /// The namespace's core memories join the system prompt of every model call.
    pub(super) async fn with_core_memories(&self, mut prompt: String, namespace: &str) -> String {
        match self.memory.core(namespace).await {
            Ok(core) if !core.is_empty() => {
                prompt.push_str("\n\n# What you remember about the user\n");
                for record in core {
                    prompt.push_str(&format!("- [{}] {}\n", record.key, record.content));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "cannot read core memories"),
        }
        prompt
    }
}
