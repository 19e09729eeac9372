//! The agent loop: model call → stream events → run the requested tools → next model call,
//! until the model stops or `max_steps`; behind a [`Provider`] trait and a [`tools::Tool`] trait.
//!
//! The loop owns no session state. It reports everything through a [`RunHost`] (the session),
//! which turns each report into state (history, draft, pending tool results) and an event in
//! the same step, so what a subscriber sees and what `state` returns never disagree.

pub mod echo;
pub mod genai_provider;
pub mod provider;
pub mod sandbox;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ModelConfig};
use crate::domain::EventKind;
use crate::domain::ToolSet;
use crate::domain::{
    ABORTED, FailureCode, HistoryMessage, Interruption, ModelRef, Part, Role, RunEnd, RunStatus,
    ThinkingLevel, Usage,
};
use crate::memory::Memory;
use provider::{ModelInfo, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream};
use sandbox::{Hidden, Sandbox, SandboxMode};
use tools::{Tool, ToolContext, ToolOutput, Workspace};

const SUMMARY_SYSTEM: &str = "You summarize conversations between a user and an AI assistant \
so that the assistant can continue them without the full transcript.";
const SUMMARY_REQUEST: &str = "Summarize the conversation above: the user's goals and \
preferences, decisions made, facts learned (including tool results that matter), and what is \
still open. Be concise and concrete; this summary replaces the transcript.";

/// A rough token count (4 characters a token, 1,000 per image) of what a model call sends.
fn estimate_tokens(system_prompt: &str, messages: &[HistoryMessage]) -> u64 {
    let chars: usize = system_prompt.len()
        + messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .map(|part| match part {
                Part::Text { text } | Part::Reasoning { text } => text.len(),
                Part::ToolInvocation { args, result, .. } => {
                    args.to_string().len() + result.as_ref().map_or(0, |r| r.to_string().len())
                }
                Part::Media { .. } => 4000,
                Part::Error { message, .. } => message.len(),
            })
            .sum::<usize>();
    (chars as u64).div_ceil(4)
}

/// Project instructions in the workspace that join the system prompt.
pub const CONTEXT_FILE: &str = "AGENTS.md";

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

/// A model of the registry and the provider that serves it.
struct ModelEntry {
    info: ModelInfo,
    provider: Arc<dyn Provider>,
    /// Tokens the model takes; the context is compacted near it.
    context_window: u64,
}

/// Providers, tools and limits shared by every run.
pub struct Agent {
    models: Vec<ModelEntry>,
    tools: Vec<Arc<dyn Tool>>,
    max_steps: usize,
    system_prompt: String,
    workspace: Arc<Workspace>,
    sandbox_mode: SandboxMode,
    memory: Memory,
    default_model: ModelRef,
    max_retries: u32,
    retry_base_delay: Duration,
    retry_max_delay: Duration,
    call_timeout: Duration,
    compact_at_percent: u64,
}

impl Agent {
    pub fn from_config(config: &Config, memory: Memory) -> std::io::Result<Self> {
        let echo: Arc<dyn Provider> =
            Arc::new(echo::EchoProvider::new(config.agent.echo_token_delay));
        let mut models: Vec<ModelEntry> = echo
            .models()
            .into_iter()
            .map(|info| ModelEntry { info, provider: echo.clone(), context_window: u64::MAX })
            .collect();
        let mut registry = Vec::new();
        if config.provider != "echo" {
            registry.push(ModelConfig {
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
            match registry.iter_mut().find(|m| m.provider == model.provider && m.id == model.id) {
                // A `[[models]]` entry for the default model refines it.
                Some(existing) => *existing = model.clone(),
                None => registry.push(model.clone()),
            }
        }
        for model in registry {
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
            models,
            tools,
            max_steps: config.agent.max_steps,
            system_prompt,
            workspace,
            sandbox_mode,
            memory,
            default_model: ModelRef {
                provider: config.provider.clone(),
                model_id: config.model_id().to_string(),
            },
            max_retries: config.agent.max_retries,
            retry_base_delay: config.agent.retry_base_delay,
            retry_max_delay: config.agent.retry_max_delay,
            call_timeout: config.agent.call_timeout,
            compact_at_percent: config.agent.compact_at_percent as u64,
        })
    }

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

    /// The active sandbox mode of the processes tools start.
    pub fn sandbox_mode(&self) -> SandboxMode {
        self.sandbox_mode
    }

    pub fn default_model(&self) -> &ModelRef {
        &self.default_model
    }

    /// Every model of the registry, the built-in echo model first.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.models.iter().map(|m| m.info.clone()).collect()
    }

    fn entry(&self, model: &ModelRef) -> Option<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.info.provider == model.provider && m.info.model_id == model.model_id)
    }

    /// Whether a model reference names a known model.
    pub fn has_model(&self, model: &ModelRef) -> bool {
        self.entry(model).is_some()
    }

    /// Runs one user message to its end. The user message is already in the host's history.
    pub async fn run(
        &self,
        host: &dyn RunHost,
        model: &ModelRef,
        thinking: ThinkingLevel,
        cancel: &CancellationToken,
    ) -> RunEnd {
        let mut usage = Usage::default();
        let mut response = String::new();
        let Some(entry) = self.entry(model) else {
            let error = format!("Model not found: {}/{}", model.provider, model.model_id);
            return failed(error, FailureCode::ModelError, response, usage);
        };
        let provider = &entry.provider;
        let specs: Vec<_> = self.tools.iter().map(|t| t.spec().clone()).collect();
        for step in 0.. {
            // Steering text that arrived during the previous turn joins this model call.
            host.take_steering(false);
            if step == self.max_steps {
                let error =
                    format!("Run stopped after {} model calls (agent.max_steps)", self.max_steps);
                return failed(error, FailureCode::MaxSteps, response, usage);
            }
            host.emit(EventKind::TurnStart);
            host.emit(EventKind::MessageStart { role: Role::Assistant.as_str().into() });
            let namespace = host.memory_namespace();
            let system_prompt = self.with_core_memories(host.system_prompt(), &namespace).await;
            let mut messages = host.context();
            let budget = entry.context_window.saturating_mul(self.compact_at_percent) / 100;
            let estimate = estimate_tokens(&system_prompt, &messages);
            if estimate > budget
                && let Some(keep) = messages.iter().rposition(|m| m.role == Role::User)
                && keep > 0
            {
                host.emit(EventKind::CompactionStart {
                    reason: format!(
                        "context of about {estimate} tokens passed {}% of the {} token window",
                        self.compact_at_percent, entry.context_window
                    ),
                });
                match self.summarize(provider, model, &messages[..keep], cancel).await {
                    Some((summary, spent)) => {
                        usage += spent;
                        let tokens = (summary.len() as u64).div_ceil(4);
                        host.compact(&messages[keep].id, summary, tokens);
                        messages = host.context();
                    }
                    None => host.emit(EventKind::CompactionEnd { summary_tokens: 0 }),
                }
                if cancel.is_cancelled() {
                    return stopped(host, &[], true, response, usage);
                }
            }
            let request = ModelRequest {
                model_id: model.model_id.clone(),
                system_prompt,
                messages,
                tools: specs.clone(),
                thinking,
            };
            let Some((first, mut stream, deadline)) =
                self.open_call(host, provider, &request, cancel).await
            else {
                return stopped(host, &[], true, response, usage);
            };
            let mut pending = Some(first);
            // Tool calls the model opened this turn: (id, name, args once complete).
            let mut calls: Vec<(String, String, Option<Value>)> = Vec::new();
            loop {
                let item = match pending.take() {
                    Some(item) => item,
                    None => tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {
                            drop(stream);
                            return stopped(host, &calls, true, response, usage);
                        }
                        _ = tokio::time::sleep_until(deadline) => Some(Err(self.timed_out())),
                        item = stream.next() => item,
                    },
                };
                match item {
                    None => break,
                    Some(Ok(event)) => match event {
                        ProviderEvent::TextDelta { content_index, delta } => {
                            host.emit(EventKind::Token { delta, content_index })
                        }
                        ProviderEvent::ThinkingDelta { content_index, delta } => {
                            host.emit(EventKind::Thinking { delta, content_index })
                        }
                        ProviderEvent::ToolCallStart { id, name } => {
                            calls.push((id.clone(), name.clone(), None));
                            host.emit(EventKind::ToolCallStart {
                                tool_call_id: id,
                                tool_name: name,
                            });
                        }
                        ProviderEvent::ToolCallDelta { id, delta } => {
                            host.emit(EventKind::ToolCallDelta { tool_call_id: id, delta })
                        }
                        ProviderEvent::ToolCallEnd { id, name, args } => {
                            match calls.iter_mut().find(|c| c.0 == id) {
                                Some(call) => call.2 = Some(args.clone()),
                                None => calls.push((id.clone(), name.clone(), Some(args.clone()))),
                            }
                            host.emit(EventKind::ToolCallEnd {
                                tool_call_id: id,
                                tool_name: name,
                                args,
                            });
                        }
                        ProviderEvent::Usage(u) => usage += u,
                    },
                    Some(Err(error)) => {
                        let code = FailureCode::ModelError;
                        host.finish_message(Some(Part::Error {
                            code: code.as_str().into(),
                            message: error.message.clone(),
                        }));
                        close_calls(host, &calls, "model call failed");
                        return failed(error.message, code, response, usage);
                    }
                }
            }
            response = host.finish_message(None);
            if calls.is_empty() {
                host.emit(EventKind::TurnEnd);
                if host.take_steering(true) > 0 {
                    continue;
                }
                break;
            }
            for index in 0..calls.len() {
                let (id, name, args) = calls[index].clone();
                let args = args.unwrap_or(Value::Null);
                host.emit(EventKind::ToolStart {
                    tool_call_id: id.clone(),
                    tool_name: name.clone(),
                    args: args.clone(),
                });
                let output = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => None,
                    output = self.call_tool(host, &id, &name, args, cancel) => Some(output),
                };
                let Some(output) = output else {
                    return stopped(host, &calls[index..], false, response, usage);
                };
                host.emit(EventKind::ToolComplete {
                    tool_call_id: id,
                    tool_name: name,
                    result: output.result,
                    is_error: output.is_error,
                });
            }
            host.emit(EventKind::TurnEnd);
        }
        RunEnd { status: RunStatus::Completed, response, usage }
    }

    /// Asks the model for a summary of `older` (no tools, no thinking). None when it fails
    /// or the run is cancelled: the run then goes on with the whole context.
    async fn summarize(
        &self,
        provider: &Arc<dyn Provider>,
        model: &ModelRef,
        older: &[HistoryMessage],
        cancel: &CancellationToken,
    ) -> Option<(String, Usage)> {
        let mut messages = older.to_vec();
        messages.push(HistoryMessage {
            id: "compaction-request".into(),
            role: Role::User,
            parts: vec![Part::Text { text: SUMMARY_REQUEST.into() }],
            timestamp: 0,
        });
        let request = ModelRequest {
            model_id: model.model_id.clone(),
            system_prompt: SUMMARY_SYSTEM.into(),
            messages,
            tools: Vec::new(),
            thinking: ThinkingLevel::Off,
        };
        let mut stream = provider.stream(request);
        let (mut summary, mut usage) = (String::new(), Usage::default());
        let collect = async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ProviderEvent::TextDelta { delta, .. }) => summary.push_str(&delta),
                    Ok(ProviderEvent::Usage(u)) => usage += u,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error.message, "compaction failed");
                        return false;
                    }
                }
            }
            true
        };
        let done = tokio::select! {
            _ = cancel.cancelled() => false,
            done = tokio::time::timeout(self.call_timeout, collect) => done.unwrap_or(false),
        };
        (done && !summary.trim().is_empty()).then(|| (summary.trim().to_string(), usage))
    }

    /// The namespace's core memories join the system prompt of every model call.
    async fn with_core_memories(&self, mut prompt: String, namespace: &str) -> String {
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

    fn timed_out(&self) -> ProviderError {
        ProviderError::fatal(format!(
            "model call timed out after {} (agent.call_timeout)",
            humantime::format_duration(self.call_timeout)
        ))
    }

    /// Starts a model call and waits for its first item, retrying calls that fail before
    /// they stream anything with 429, 5xx or a connection error (backoff with jitter, or the
    /// server's `Retry-After`), as `retry_start` / `retry_end`. None when cancelled.
    async fn open_call(
        &self,
        host: &dyn RunHost,
        provider: &Arc<dyn Provider>,
        request: &ModelRequest,
        cancel: &CancellationToken,
    ) -> Option<(Option<Result<ProviderEvent, ProviderError>>, ProviderStream, tokio::time::Instant)>
    {
        let mut attempt = 0u32;
        loop {
            let deadline = tokio::time::Instant::now() + self.call_timeout;
            let mut stream = provider.stream(request.clone());
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(deadline) => Some(Err(self.timed_out())),
                first = stream.next() => first,
            };
            match first {
                Some(Err(error)) if error.retryable && attempt < self.max_retries => {
                    attempt += 1;
                    let delay = error.retry_after.unwrap_or_else(|| self.backoff(attempt));
                    host.emit(EventKind::RetryStart {
                        attempt,
                        max_attempts: self.max_retries,
                        delay_ms: delay.as_millis() as u64,
                        error: error.message,
                    });
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                mut first => {
                    if attempt > 0 {
                        let success = !matches!(first, Some(Err(_)));
                        host.emit(EventKind::RetryEnd { attempt, success });
                        if let Some(Err(error)) = first.as_mut() {
                            error.message = format!("{} (after {attempt} retries)", error.message);
                        }
                    }
                    return Some((first, stream, deadline));
                }
            }
        }
    }

    /// `retry_base_delay * 2^(attempt-1)`, capped at `retry_max_delay`, with full jitter in
    /// its upper half so that many sessions retrying together spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.retry_base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let capped = exponential.min(self.retry_max_delay);
        // A fresh v4 UUID is 122 random bits: enough randomness for jitter without a new crate.
        let random = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        capped.mul_f64(0.5 + random / 2.0)
    }

    async fn call_tool(
        &self,
        host: &dyn RunHost,
        id: &str,
        name: &str,
        args: Value,
        cancel: &CancellationToken,
    ) -> ToolOutput {
        let Some(tool) = self.tools.iter().find(|t| t.spec().name == name) else {
            return ToolOutput::error(format!("Tool not found: {name}"));
        };
        let update = |partial: Value| {
            host.emit(EventKind::ToolUpdate {
                tool_call_id: id.to_string(),
                tool_name: name.to_string(),
                partial_result: partial,
            })
        };
        let namespace = host.memory_namespace();
        let episodes_of = host.episodes_of();
        let ctx = ToolContext {
            update: &update,
            cancel,
            namespace: &namespace,
            episodes_of: episodes_of.as_deref(),
        };
        tool.call(args, ctx).await
    }
}

/// Ends a cancelled run: the draft (when `in_message`) keeps its text with an error part,
/// open tool calls get error results. An abort ends as `Aborted`; an interruption with its
/// own status (shutdown: interrupted, as after a crash; the run timeout: a failure).
fn stopped(
    host: &dyn RunHost,
    calls: &[(String, String, Option<Value>)],
    in_message: bool,
    response: String,
    usage: Usage,
) -> RunEnd {
    let status = host.interrupted().map_or(RunStatus::Aborted, |why| why.status());
    let code = status.code().unwrap_or(ABORTED);
    let reason = status.error().unwrap_or(ABORTED);
    if in_message {
        let message = if status == RunStatus::Aborted { "Run aborted" } else { reason };
        host.finish_message(Some(Part::Error { code: code.into(), message: message.into() }));
    }
    close_calls(host, calls, reason);
    RunEnd { status, response, usage }
}

/// Gives every open tool call an error result, so history never holds a dangling call, and
/// ends the turn.
fn close_calls(host: &dyn RunHost, calls: &[(String, String, Option<Value>)], reason: &str) {
    for (id, name, _) in calls {
        host.emit(EventKind::ToolComplete {
            tool_call_id: id.clone(),
            tool_name: name.clone(),
            result: ToolOutput::error(reason).result,
            is_error: true,
        });
    }
    host.emit(EventKind::TurnEnd);
}

fn failed(error: String, code: FailureCode, response: String, usage: Usage) -> RunEnd {
    RunEnd { status: RunStatus::failed(code, error), response, usage }
}
