//! The model provider trait: one streaming call per turn, as provider-neutral events.

use std::time::Duration;

use futures_util::stream::BoxStream;
use serde_json::Value;

use crate::domain::{HistoryMessage, ThinkingLevel, Usage};

/// A tool as the model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// One model call: the whole context of the turn.
#[derive(Clone, Debug)]
pub struct ModelRequest {
    pub model_id: String,
    pub system_prompt: String,
    pub messages: Vec<HistoryMessage>,
    pub tools: Vec<ToolSpec>,
    pub thinking: ThinkingLevel,
}

/// What a provider streams back. Tool calls arrive as start, argument fragments, then end with
/// the parsed arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderEvent {
    TextDelta { content_index: u32, delta: String },
    ThinkingDelta { content_index: u32, delta: String },
    ToolCallStart { id: String, name: String },
    ToolCallDelta { id: String, delta: String },
    ToolCallEnd { id: String, name: String, args: Value },
    Usage(Usage),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProviderError {
    pub message: String,
    /// 429, 5xx and connection errors may be retried.
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false, retry_after: None }
    }
}

pub type ProviderStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

/// A model listed by `GET /models`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub provider: String,
    pub model_id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
}

pub trait Provider: Send + Sync {
    /// The provider name used in model references (`echo`, `openai`, `anthropic`).
    fn name(&self) -> &str;
    fn models(&self) -> Vec<ModelInfo>;
    /// Starts one model call. Dropping the stream cancels it.
    fn stream(&self, request: ModelRequest) -> ProviderStream;
}
