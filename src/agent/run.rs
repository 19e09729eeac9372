//! The loop of one run: per turn, steering text joins, the context is compacted if need be,
//! the model is called (with retries) and streamed, and the tools it asked for are run; until
//! the model stops, `max_steps`, a failure, or cancellation. How the run ended is a typed
//! [`RunStatus`]; a run cut short leaves no dangling tool call behind.

use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::provider::{ModelRequest, ProviderEvent};
use super::retry::OpenCall;
use super::tools::{ToolContext, ToolOutput};
use super::{Agent, RunHost};
use crate::domain::{
    ABORTED, EventKind, FailureCode, ModelRef, Part, Role, RunEnd, RunStatus, ThinkingLevel, Usage,
};

/// A tool call the model opened this turn; `args` once its arguments are complete.
#[derive(Clone)]
struct ToolCall {
    id: String,
    name: String,
    args: Option<Value>,
}

impl Agent {
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
        let entry = match self.registry.lookup(model) {
            Ok(entry) => entry,
            Err(unknown) => {
                return failed(unknown.to_string(), FailureCode::ModelError, response, usage);
            }
        };
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
            let context = host.context();
            let compacted =
                self.compacted(host, entry, &system_prompt, context, &mut usage, cancel).await;
            let Some(messages) = compacted else {
                return stopped(host, &[], true, response, usage);
            };
            let request = ModelRequest {
                model_id: model.model_id.clone(),
                system_prompt,
                messages,
                tools: specs.clone(),
                thinking,
            };
            let Some(OpenCall { first, mut stream, deadline }) =
                self.open_call(host, &entry.provider, &request, cancel).await
            else {
                return stopped(host, &[], true, response, usage);
            };
            let mut pending = Some(first);
            let mut calls: Vec<ToolCall> = Vec::new();
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
                    Some(Ok(event)) => {
                        if let Some(event) = streamed(event, &mut calls, &mut usage) {
                            host.emit(event);
                        }
                    }
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
                let ToolCall { id, name, args } = calls[index].clone();
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

/// The event of a streamed provider item, keeping track of the tool calls the model opens;
/// usage is counted, not announced.
fn streamed(
    event: ProviderEvent,
    calls: &mut Vec<ToolCall>,
    usage: &mut Usage,
) -> Option<EventKind> {
    Some(match event {
        ProviderEvent::TextDelta { content_index, delta } => {
            EventKind::Token { delta, content_index }
        }
        ProviderEvent::ThinkingDelta { content_index, delta } => {
            EventKind::Thinking { delta, content_index }
        }
        ProviderEvent::ToolCallStart { id, name } => {
            calls.push(ToolCall { id: id.clone(), name: name.clone(), args: None });
            EventKind::ToolCallStart { tool_call_id: id, tool_name: name }
        }
        ProviderEvent::ToolCallDelta { id, delta } => {
            EventKind::ToolCallDelta { tool_call_id: id, delta }
        }
        ProviderEvent::ToolCallEnd { id, name, args } => {
            match calls.iter_mut().find(|c| c.id == id) {
                Some(call) => call.args = Some(args.clone()),
                None => calls.push(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    args: Some(args.clone()),
                }),
            }
            EventKind::ToolCallEnd { tool_call_id: id, tool_name: name, args }
        }
        ProviderEvent::Usage(u) => {
            *usage += u;
            return None;
        }
    })
}

/// Ends a cancelled run: the draft (when `in_message`) keeps its text with an error part,
/// open tool calls get error results. An abort ends as `Aborted`; an interruption with its
/// own status (shutdown: interrupted, as after a crash; the run timeout: a failure).
fn stopped(
    host: &dyn RunHost,
    calls: &[ToolCall],
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
fn close_calls(host: &dyn RunHost, calls: &[ToolCall], reason: &str) {
    for call in calls {
        host.emit(EventKind::ToolComplete {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            result: ToolOutput::error(reason).result,
            is_error: true,
        });
    }
    host.emit(EventKind::TurnEnd);
}

fn failed(error: String, code: FailureCode, response: String, usage: Usage) -> RunEnd {
    RunEnd { status: RunStatus::failed(code, error), response, usage }
}
