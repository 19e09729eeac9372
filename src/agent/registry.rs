//! The model registry and the agent's construction from config: the built-in echo models, the
//! configured default model and the `[[models]]` entries, each with the provider that serves
//! it; and the one answer for a model it does not know ([`UnknownModel`]).

use std::sync::Arc;

use super::provider::{ModelInfo, Provider};
use super::sandbox::{Hidden, Sandbox, SandboxMode};
use super::tools::{self, Workspace};
use super::{Agent, echo, genai_provider, retry};
use crate::config::{Config, ModelConfig};
use crate::domain::{ModelRef, ToolSet};
use crate::error::GatewayError;
use crate::memory::Memory;

/// A model reference the registry does not know. Its text is the one message for it,
/// `Model not found: <provider>/<model>`: 404 to a call that names it, the error of a run
/// whose session still has it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Model not found: {}/{}", .0.provider, .0.model_id)]
pub struct UnknownModel(pub ModelRef);

impl From<UnknownModel> for GatewayError {
    fn from(unknown: UnknownModel) -> Self {
        GatewayError::not_found(unknown.to_string())
    }
}

/// A model of the registry and the provider that serves it.
pub(super) struct ModelEntry {
    pub info: ModelInfo,
    pub provider: Arc<dyn Provider>,
    /// Tokens the model takes; the context is compacted near it.
    pub context_window: u64,
}

/// Every model a session may use, the built-in echo models first.
pub(super) struct Registry {
    pub models: Vec<ModelEntry>,
    /// The model of a new session.
    pub default_model: ModelRef,
}

impl Registry {
    fn from_config(config: &Config) -> std::io::Result<Self> {
        let echo: Arc<dyn Provider> =
            Arc::new(echo::EchoProvider::new(config.agent.echo_token_delay));
        let mut models: Vec<ModelEntry> = echo
            .models()
            .into_iter()
            .map(|info| ModelEntry { info, provider: echo.clone(), context_window: u64::MAX })
            .collect();
        let mut configured = Vec::new();
        if config.provider != "echo" {
            configured.push(ModelConfig {
                provider: config.provider.clone(),
                id: config.model_id().to_string(),
                name: String::new(),
                base_url: config.base_url.clone(),
                api_key: String::new(),
                api_key_env: String::new(),
                context_window: config.context_window,
                max_output_tokens: 8192,
            });
        }
        for model in &config.models {
            match configured.iter_mut().find(|m| m.provider == model.provider && m.id == model.id) {
                // A `[[models]]` entry for the default model refines it.
                Some(existing) => *existing = model.clone(),
                None => configured.push(model.clone()),
            }
        }
        for model in configured {
            let key = match (model.api_key.is_empty(), model.provider.as_str()) {
                (false, _) => model.api_key.clone(),
                (true, "anthropic") => config.anthropic_api_key.clone(),
                (true, _) => config.openai_api_key.clone(),
            };
            let provider = Arc::new(
                genai_provider::GenaiProvider::new(&model, key).map_err(std::io::Error::other)?,
            );
            let info = provider.models().remove(0);
            models.push(ModelEntry { info, provider, context_window: model.context_window });
        }
        let default_model =
            ModelRef { provider: config.provider.clone(), model_id: config.model_id().to_string() };
        Ok(Self { models, default_model })
    }

    pub fn lookup(&self, model: &ModelRef) -> Result<&ModelEntry, UnknownModel> {
        self.models
            .iter()
            .find(|m| m.info.provider == model.provider && m.info.model_id == model.model_id)
            .ok_or_else(|| UnknownModel(model.clone()))
    }
}

impl Agent {
    pub fn from_config(config: &Config, memory: Memory) -> std::io::Result<Self> {
        let registry = Registry::from_config(config)?;
        // The gateway's own files: no tool may read them, not even inside the workspace.
        let mut hidden = vec![Hidden { what: "data_dir", path: config.data_dir.clone() }];
        hidden.extend(
            config.config_file.iter().map(|p| Hidden { what: "config file", path: p.clone() }),
        );
        if !config.tls.key.is_empty() {
            hidden.push(Hidden { what: "tls.key", path: config.tls.key.clone().into() });
        }
        let forbidden: Vec<_> = hidden.iter().map(|h| h.path.clone()).collect();
        let workspace = Arc::new(Workspace::new(&config.workspace, &forbidden).map_err(|e| {
            std::io::Error::new(e.kind(), format!("workspace {}: {e}", config.workspace.display()))
        })?);
        let tool_set = ToolSet::parse(&config.tools).map_err(std::io::Error::other)?;
        let commands = tool_set.runs_commands();
        let sandbox = Sandbox::resolve(config.tools_sandbox, commands, workspace.root(), &hidden)
            .map_err(std::io::Error::other)?;
        let sandbox_mode = sandbox.mode();
        match (sandbox_mode, commands) {
            (SandboxMode::None, true) => tracing::warn!(
                "bash runs without a sandbox (tools_sandbox = \"none\"): it can read every file \
                 the gateway's user can, the gateway's config file and environment included"
            ),
            (mode, _) => tracing::info!(mode = mode.as_str(), "tool sandbox"),
        }
        let mut tools = tools::build(&tool_set, workspace.clone(), Arc::new(sandbox));
        // The memory tools are always there (GATEWAY.md §6).
        tools.extend(tools::memory::tools(&memory));
        let mut system_prompt = if config.system_prompt.is_empty() {
            "You are a helpful assistant.".to_string()
        } else {
            config.system_prompt.clone()
        };
        if !config.append_system_prompt.is_empty() {
            system_prompt.push_str("\n\n");
            system_prompt.push_str(&config.append_system_prompt);
        }
        Ok(Self {
            registry,
            tools,
            max_steps: config.agent.max_steps,
            system_prompt,
            workspace,
            sandbox_mode,
            memory,
            retry: retry::RetryPolicy {
                max_retries: config.agent.max_retries,
                base_delay: config.agent.retry_base_delay,
                max_delay: config.agent.retry_max_delay,
            },
            call_timeout: config.agent.call_timeout,
            compact_at_percent: config.agent.compact_at_percent as u64,
        })
    }

    /// The active sandbox mode of the processes tools start.
    pub fn sandbox_mode(&self) -> SandboxMode {
        self.sandbox_mode
    }

    pub fn default_model(&self) -> &ModelRef {
        &self.registry.default_model
    }

    /// Every model of the registry, the built-in echo model first.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.registry.models.iter().map(|m| m.info.clone()).collect()
    }

    /// Whether a model reference names a known model; the error says which one is unknown.
    pub fn check_model(&self, model: &ModelRef) -> Result<(), UnknownModel> {
        self.registry.lookup(model).map(|_| ())
    }
}
