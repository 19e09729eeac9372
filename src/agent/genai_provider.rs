//! OpenAI-compatible Chat Completions and Anthropic Messages, both streaming, through the
//! `genai` crate: it speaks the wire protocols; the gateway keeps the loop, abort, retries and
//! events. One provider per registry entry, with its own endpoint and key.
//!
//! genai reports tool calls as chunks carrying the arguments accumulated so far (with
//! `capture_tool_calls`), so argument deltas are the difference from the previous chunk of the
//! same call; the complete calls arrive with the end of the stream.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use genai::adapter::AdapterKind;
use genai::chat::{
    ChatMessage, ChatOptions, ChatRequest, ChatStreamEvent, ContentPart, MessageContent,
    ReasoningEffort, Tool, ToolCall, ToolResponse,
};
use genai::resolver::{AuthData, Endpoint, ServiceTargetResolver};
use genai::{Client, ModelIden, ServiceTarget};
use serde_json::Value;

use super::provider::{
    ModelInfo, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream,
};
use super::tools::result_text;
use crate::config::ModelConfig;
use crate::domain::{Part, Role, ThinkingLevel, Usage};

pub struct GenaiProvider {
    name: String,
    client: Client,
    info: ModelInfo,
    max_output_tokens: u32,
}

impl GenaiProvider {
    /// `api_key` is already resolved (entry, environment, or the provider's key setting).
    pub fn new(model: &ModelConfig, api_key: String) -> Result<Self, String> {
        let kind = match model.provider.as_str() {
            "anthropic" => AdapterKind::Anthropic,
            _ => AdapterKind::OpenAI,
        };
        // genai joins paths onto the base URL, which therefore needs its trailing slash.
        let base_url = match model.base_url.trim() {
            "" if kind == AdapterKind::Anthropic => "https://api.anthropic.com/v1/".to_string(),
            "" => "https://api.openai.com/v1/".to_string(),
            url if url.ends_with('/') => url.to_string(),
            url => format!("{url}/"),
        };
        let model_id = model.id.clone();
        let resolver = ServiceTargetResolver::from_resolver_fn(
            move |_: ServiceTarget| -> Result<ServiceTarget, genai::resolver::Error> {
                Ok(ServiceTarget {
                    endpoint: Endpoint::from_owned(base_url.clone()),
                    auth: AuthData::from_single(api_key.clone()),
                    model: ModelIden::new(kind, model_id.clone()),
                })
            },
        );
        let client = Client::builder()
            .with_service_target_resolver(resolver)
            .build()
            .map_err(|e| format!("model {}/{}: {e}", model.provider, model.id))?;
        let display_name =
            if model.name.is_empty() { model.id.clone() } else { model.name.clone() };
        Ok(Self {
            name: model.provider.clone(),
            client,
            info: ModelInfo {
                provider: model.provider.clone(),
                model_id: model.id.clone(),
                display_name,
                capabilities: vec!["tools".into(), "reasoning".into(), "images".into()],
            },
            max_output_tokens: model.max_output_tokens,
        })
    }
}

/// A model call's context in genai's terms.
fn chat_request(request: &ModelRequest) -> ChatRequest {
    let mut messages = Vec::new();
    for message in &request.messages {
        match message.role {
            Role::User => {
                let mut parts = Vec::new();
                for part in &message.parts {
                    match part {
                        Part::Text { text } => parts.push(ContentPart::from_text(text.clone())),
                        Part::Media { url, mime_type } => {
                            if let Some((meta, data)) =
                                url.strip_prefix("data:").and_then(|u| u.split_once(','))
                            {
                                let mime = mime_type.clone().unwrap_or_else(|| {
                                    meta.trim_end_matches(";base64").to_string()
                                });
                                parts.push(ContentPart::from_binary_base64(mime, data, None));
                            }
                        }
                        _ => {}
                    }
                }
                if !parts.is_empty() {
                    messages.push(ChatMessage::user(MessageContent::from_parts(parts)));
                }
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                let text = message.text();
                if !text.is_empty() {
                    parts.push(ContentPart::from_text(text));
                }
                for part in &message.parts {
                    if let Part::ToolInvocation { tool_call_id, tool_name, args, .. } = part {
                        parts.push(ContentPart::ToolCall(ToolCall {
                            call_id: tool_call_id.clone(),
                            fn_name: tool_name.clone(),
                            fn_arguments: args.clone(),
                            thought_signatures: None,
                        }));
                    }
                }
                if !parts.is_empty() {
                    messages.push(ChatMessage::assistant(MessageContent::from_parts(parts)));
                }
            }
            Role::ToolResult => {
                for part in &message.parts {
                    if let Part::ToolInvocation { tool_call_id, result, .. } = part {
                        let content = result.as_ref().map(result_text).unwrap_or_default();
                        messages.push(ChatMessage::from(ToolResponse::new(
                            tool_call_id.clone(),
                            content,
                        )));
                    }
                }
            }
        }
    }
    let tools: Vec<Tool> = request
        .tools
        .iter()
        .map(|t| {
            Tool::new(t.name.clone())
                .with_description(t.description.clone())
                .with_schema(t.parameters.clone())
        })
        .collect();
    let mut chat = ChatRequest::new(messages).with_system(request.system_prompt.clone());
    if !tools.is_empty() {
        chat = chat.with_tools(tools);
    }
    chat
}

fn reasoning_effort(level: ThinkingLevel) -> Option<ReasoningEffort> {
    match level {
        ThinkingLevel::Off => None,
        ThinkingLevel::Minimal => Some(ReasoningEffort::Minimal),
        ThinkingLevel::Low => Some(ReasoningEffort::Low),
        ThinkingLevel::Medium => Some(ReasoningEffort::Medium),
        ThinkingLevel::High => Some(ReasoningEffort::High),
    }
}

/// 429, 5xx and connection failures may be retried; `Retry-After` (seconds) or
/// `retry-after-ms` says when.
fn provider_error(error: genai::Error) -> ProviderError {
    let inner = match &error {
        genai::Error::WebStream { error, .. } => error.downcast_ref::<genai::Error>(),
        _ => None,
    };
    let source = inner.unwrap_or(&error);
    let status = source.status();
    let headers = source.headers();
    let retry_after = headers.and_then(|h| {
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        header("retry-after-ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .or_else(|| {
                header("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs)
            })
    });
    let retryable = match status {
        Some(status) => status.as_u16() == 429 || status.is_server_error(),
        // No HTTP status: the connection failed or broke off.
        None => matches!(
            source,
            genai::Error::WebModelCall { .. }
                | genai::Error::WebAdapterCall { .. }
                | genai::Error::WebStream { .. }
        ),
    };
    let message = match (status, source) {
        (Some(status), genai::Error::HttpError { body, .. }) => {
            format!("model API answered {status}: {}", body.chars().take(500).collect::<String>())
        }
        (Some(status), _) => format!("model API answered {status}"),
        (None, source) => format!("model call failed: {}", first_line(&source.to_string())),
    };
    ProviderError { message, retryable, retry_after }
}

fn first_line(text: &str) -> String {
    text.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" ")
}

impl Provider for GenaiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![self.info.clone()]
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let client = self.client.clone();
        let model = self.info.model_id.clone();
        let chat = chat_request(&request);
        let mut options = ChatOptions::default()
            .with_capture_usage(true)
            .with_capture_tool_calls(true)
            .with_max_tokens(self.max_output_tokens);
        if let Some(effort) = reasoning_effort(request.thinking) {
            options = options.with_reasoning_effort(effort);
        }
        let stream = async_stream::stream! {
            let response = match client.exec_chat_stream(model.as_str(), chat, Some(&options)).await {
                Ok(response) => response,
                Err(error) => {
                    yield Err(provider_error(error));
                    return;
                }
            };
            let mut stream = response.stream;
            // Argument text seen so far per call id, in the order the calls started.
            let mut calls: Vec<(String, String, usize)> = Vec::new();
            let mut ids_by_index: HashMap<String, usize> = HashMap::new();
            while let Some(event) = stream.next().await {
                match event {
                    Err(error) => {
                        yield Err(provider_error(error));
                        return;
                    }
                    Ok(ChatStreamEvent::Chunk(chunk)) if !chunk.content.is_empty() => {
                        yield Ok(ProviderEvent::TextDelta { content_index: 0, delta: chunk.content });
                    }
                    Ok(ChatStreamEvent::ReasoningChunk(chunk)) if !chunk.content.is_empty() => {
                        yield Ok(ProviderEvent::ThinkingDelta { content_index: 0, delta: chunk.content });
                    }
                    Ok(ChatStreamEvent::ToolCallChunk(chunk)) => {
                        let call = chunk.tool_call;
                        let so_far = match &call.fn_arguments {
                            Value::String(text) => text.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        let position = match ids_by_index.get(&call.call_id) {
                            Some(position) => *position,
                            None => {
                                calls.push((call.call_id.clone(), call.fn_name.clone(), 0));
                                ids_by_index.insert(call.call_id.clone(), calls.len() - 1);
                                yield Ok(ProviderEvent::ToolCallStart { id: call.call_id.clone(), name: call.fn_name.clone() });
                                calls.len() - 1
                            }
                        };
                        let seen = calls[position].2;
                        if so_far.len() > seen && so_far.is_char_boundary(seen) {
                            calls[position].2 = so_far.len();
                            yield Ok(ProviderEvent::ToolCallDelta { id: call.call_id.clone(), delta: so_far[seen..].to_string() });
                        }
                    }
                    Ok(ChatStreamEvent::End(end)) => {
                        if let Some(usage) = &end.captured_usage {
                            yield Ok(ProviderEvent::Usage(Usage {
                                input_tokens: usage.prompt_tokens.unwrap_or(0).max(0) as u64,
                                output_tokens: usage.completion_tokens.unwrap_or(0).max(0) as u64,
                            }));
                        }
                        let captured = end.captured_content.map(|c| c.into_parts()).unwrap_or_default();
                        for part in captured {
                            if let ContentPart::ToolCall(call) = part {
                                let args = match call.fn_arguments {
                                    Value::String(text) if text.trim().is_empty() => Value::Object(Default::default()),
                                    Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                                    other => other,
                                };
                                if !ids_by_index.contains_key(&call.call_id) {
                                    yield Ok(ProviderEvent::ToolCallStart { id: call.call_id.clone(), name: call.fn_name.clone() });
                                }
                                yield Ok(ProviderEvent::ToolCallEnd { id: call.call_id, name: call.fn_name, args });
                            }
                        }
                    }
                    Ok(_) => {}
                }
            }
        };
        stream.boxed()
    }
}
