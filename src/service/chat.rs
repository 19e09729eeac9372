//! Slash commands (GATEWAY.md §5.4), defined once for every transport: socket.io
//! `command:execute`, `POST /sessions/:key/commands`, `Chat.ExecuteCommand`, and any sending
//! call whose text starts with a known command, which runs at once, outside the queue (so
//! `/abort` stops the run in progress). [`ChatService`] is the sending API all transports call.

use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::{
    Accepted, ModelRef, RunOutcome, SendMode, SendRequest, Snapshot, ThinkingLevel,
};
use crate::domain::{Caller, MemorySource};
use crate::error::Result;
use crate::memory::Remember;
use crate::service::MemoryService;
use crate::session::SessionManager;
use crate::session::stream::{RunItem, RunStream};

/// One command of the manifest.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CommandSpec {
    pub name: &'static str,
    pub usage: &'static str,
    pub description: &'static str,
}

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "help", usage: "/help", description: "List the commands" },
    CommandSpec {
        name: "model",
        usage: "/model [provider/model]",
        description: "Show the session's model and the ones available, or switch to one",
    },
    CommandSpec {
        name: "thinking",
        usage: "/thinking [off|minimal|low|medium|high]",
        description: "Show or set the thinking level",
    },
    CommandSpec {
        name: "reset",
        usage: "/reset",
        description: "Clear the conversation (history and queue) and start over",
    },
    CommandSpec { name: "abort", usage: "/abort", description: "Stop the reply in progress" },
    CommandSpec { name: "queue", usage: "/queue", description: "Show what is waiting" },
    CommandSpec {
        name: "clear-queue",
        usage: "/clear-queue",
        description: "Drop the messages waiting in the queue",
    },
    CommandSpec {
        name: "memory",
        usage: "/memory <query>",
        description: "Search long-term memory",
    },
    CommandSpec {
        name: "remember",
        usage: "/remember <text>",
        description: "Remember something for later conversations",
    },
];

/// `{ok, output, data?}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CommandResult {
    pub ok: bool,
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl CommandResult {
    fn ok(output: impl Into<String>, data: Value) -> Self {
        Self { ok: true, output: output.into(), data: Some(data) }
    }

    fn refused(output: impl Into<String>) -> Self {
        Self { ok: false, output: output.into(), data: None }
    }
}

/// The command a sending call's text names, and its arguments (one string): `/model a/b`.
/// Only known commands count, so a message like `/etc/hosts is missing` stays a message.
pub fn parse(text: &str) -> Option<(&'static str, String)> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let spec = COMMANDS.iter().find(|c| c.name == word)?;
    Some((spec.name, args.trim().to_string()))
}

/// The manifest as socket.io's `commands:manifest` and `/help` show it.
pub fn manifest() -> Value {
    json!(COMMANDS)
}

/// Sending messages and running commands, for every transport.
#[derive(Clone)]
pub struct ChatService {
    sessions: SessionManager,
    memory: MemoryService,
}

impl ChatService {
    pub fn new(sessions: SessionManager, memory: MemoryService) -> Self {
        Self { sessions, memory }
    }

    /// Runs `command` (with or without its slash) on session `key`. A command the session
    /// cannot carry out is `ok: false` with the reason; a call refused outright (unknown
    /// session, missing scope) is an error.
    pub async fn execute(
        &self,
        caller: &Caller,
        key: &str,
        command: &str,
        args: &str,
    ) -> Result<CommandResult> {
        let name = command.trim().trim_start_matches('/');
        if name.is_empty() {
            return Err(crate::error::GatewayError::invalid("Missing command"));
        }
        let Some(spec) = COMMANDS.iter().find(|c| c.name == name) else {
            return Ok(CommandResult::refused(format!("Unknown command: /{name} (try /help)")));
        };
        let args = args.trim();
        if spec.name == "help" {
            let lines: Vec<String> =
                COMMANDS.iter().map(|c| format!("{} — {}", c.usage, c.description)).collect();
            return Ok(CommandResult::ok(lines.join("\n"), json!({ "commands": manifest() })));
        }
        let session = self.sessions.get(caller, key).await?;
        Ok(match spec.name {
            "model" if args.is_empty() => self.show_model(&session),
            "model" => self.set_model(caller, key, args).await?,
            "thinking" if args.is_empty() => show_thinking(session.thinking_level),
            "thinking" => match ThinkingLevel::parse(args) {
                Some(level) => {
                    let level = self.sessions.set_thinking(caller, key, level).await?;
                    CommandResult::ok(
                        format!("Thinking level set to {}", level.as_str()),
                        json!({ "thinkingLevel": level }),
                    )
                }
                None => CommandResult::refused(ThinkingLevel::invalid(args).message),
            },
            "reset" => {
                self.sessions.reset(caller, key).await?;
                CommandResult::ok("Session reset", json!({ "reset": true }))
            }
            "abort" => {
                let aborted = self.sessions.abort(caller, key).await?;
                let output =
                    if aborted { "Aborted the reply in progress" } else { "Nothing is running" };
                CommandResult::ok(output, json!({ "aborted": aborted }))
            }
            "queue" => CommandResult::ok(
                format!(
                    "{} waiting; {}",
                    session.queue_depth,
                    if session.processing { "a reply is in progress" } else { "idle" }
                ),
                json!({ "queueDepth": session.queue_depth, "processing": session.processing }),
            ),
            "clear-queue" => {
                let cleared = self.sessions.clear_queue(caller, key).await?;
                CommandResult::ok(
                    format!(
                        "Cleared {cleared} waiting message{}",
                        if cleared == 1 { "" } else { "s" }
                    ),
                    json!({ "cleared": cleared }),
                )
            }
            "memory" if args.is_empty() => CommandResult::refused("Use /memory <query>"),
            "memory" => {
                let results = self.memory.search(caller, Some(key), args, None).await?;
                let lines: Vec<String> =
                    results.iter().map(|r| format!("- {}", r.content)).collect();
                let output = if lines.is_empty() {
                    "No memories match".to_string()
                } else {
                    lines.join("\n")
                };
                CommandResult::ok(output, json!({ "results": results }))
            }
            "remember" if args.is_empty() => CommandResult::refused("Use /remember <text>"),
            "remember" => {
                let request = Remember {
                    content: args.to_string(),
                    source: MemorySource::Manual,
                    ..Default::default()
                };
                let memory = self.memory.remember(caller, Some(key), request).await?;
                CommandResult::ok(
                    format!("Remembered (id {})", memory.id),
                    json!({ "memory": memory }),
                )
            }
            _ => unreachable!("every command of COMMANDS is handled"),
        })
    }

    fn show_model(&self, session: &Snapshot) -> CommandResult {
        let (models, _) = self.sessions.models();
        let current = format!(
            "{}/{}",
            session.model_provider.as_deref().unwrap_or_default(),
            session.model_id.as_deref().unwrap_or_default()
        );
        let available: Vec<String> =
            models.iter().map(|m| format!("{}/{}", m.provider, m.model_id)).collect();
        CommandResult::ok(
            format!("Model: {current} (available: {})", available.join(", ")),
            json!({
                "current": {"provider": session.model_provider, "modelId": session.model_id},
                "models": models,
            }),
        )
    }

    async fn set_model(&self, caller: &Caller, key: &str, args: &str) -> Result<CommandResult> {
        let Some((provider, model_id)) = args.split_once('/') else {
            return Ok(CommandResult::refused("Use /model <provider>/<model>"));
        };
        let model = ModelRef { provider: provider.into(), model_id: model_id.into() };
        // An unknown model is the command's refusal; anything else refuses the call.
        if let Err(unknown) = self.sessions.check_model(&model) {
            return Ok(CommandResult::refused(unknown.to_string()));
        }
        let model = self.sessions.set_model(caller, key, model).await?;
        Ok(CommandResult::ok(
            format!("Model set to {}/{}", model.provider, model.model_id),
            json!({ "model": model }),
        ))
    }

    /// A sending call: a message, or a command when its text starts with one (run at once;
    /// the session is created on use, as for a message). The receiver has the outcome.
    pub async fn send(
        &self,
        request: SendRequest,
    ) -> Result<(Accepted, tokio::sync::oneshot::Receiver<RunOutcome>)> {
        match parse(&request.text) {
            Some((command, args)) => {
                let (accepted, outcome) = self.command(&request, command, &args).await?;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = tx.send(outcome);
                Ok((accepted, rx))
            }
            None => self.sessions.send(request).await,
        }
    }

    /// Like [`send`](Self::send), with the run's events; a command's stream is its outcome.
    pub async fn send_stream(&self, request: SendRequest) -> Result<(Accepted, RunStream)> {
        match parse(&request.text) {
            Some((command, args)) => {
                let (accepted, outcome) = self.command(&request, command, &args).await?;
                let stream: RunStream =
                    Box::pin(futures_util::stream::once(async { RunItem::Outcome(outcome) }));
                Ok((accepted, stream))
            }
            None => self.sessions.send_stream(request).await,
        }
    }

    /// A command sent as a message: its output is the reply, a refusal the error.
    async fn command(
        &self,
        request: &SendRequest,
        command: &str,
        args: &str,
    ) -> Result<(Accepted, RunOutcome)> {
        self.sessions.ensure(&request.caller, &request.session_key).await?;
        let accepted = |message_id: &str, repeat| Accepted {
            session_key: request.session_key.clone(),
            message_id: message_id.to_string(),
            mode: SendMode::Queued,
            repeat,
        };
        // With an idempotency key, a repeat gets the first outcome and runs nothing.
        if let Some(outcome) = self.sessions.earlier_command(request).await? {
            return Ok((accepted(&outcome.message_id, true), outcome));
        }
        let result = self.execute(&request.caller, &request.session_key, command, args).await?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let outcome = RunOutcome {
            ok: result.ok,
            response: if result.ok { result.output.clone() } else { String::new() },
            error: (!result.ok).then_some(result.output),
            session_key: request.session_key.clone(),
            message_id: message_id.clone(),
            // A command is no run.
            status: None,
        };
        self.sessions.record_command(request, &outcome).await?;
        Ok((accepted(&message_id, false), outcome))
    }
}

fn show_thinking(level: ThinkingLevel) -> CommandResult {
    let available: Vec<&str> = ThinkingLevel::ALL.iter().map(|l| l.as_str()).collect();
    CommandResult::ok(
        format!("Thinking level: {} (available: {})", level.as_str(), available.join(", ")),
        json!({ "thinkingLevel": level, "availableThinkingLevels": available }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_commands_are_commands() {
        assert_eq!(parse("/abort"), Some(("abort", String::new())));
        assert_eq!(parse("  /model openai/gpt-4o  "), Some(("model", "openai/gpt-4o".into())));
        assert_eq!(
            parse("/remember I like tea\nand cake"),
            Some(("remember", "I like tea\nand cake".into()))
        );
        assert_eq!(parse("/etc/hosts is missing"), None);
        assert_eq!(parse("hello /abort"), None);
        assert_eq!(parse("/"), None);
    }
}
