//! The session's data as clients see it: history messages and their parts, snapshots, usage,
//! and the requests and outcomes of sending calls. Serde derives here yield exactly the HTTP
//! JSON shapes of GATEWAY.md §2 (pinned by golden fixtures in the tests).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::Caller;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    User,
    Assistant,
    ToolResult,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::ToolResult => "toolResult",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Role::User, Role::Assistant, Role::ToolResult].into_iter().find(|r| r.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolState {
    Call,
    Result,
    Error,
}

/// One part of a history message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Part {
    Text {
        text: String,
    },
    Reasoning {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    ToolInvocation {
        tool_call_id: String,
        tool_name: String,
        args: Value,
        state: ToolState,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
    },
    #[serde(rename_all = "camelCase")]
    Media {
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
    },
    /// Marks a message cut short (`aborted`, `interrupted`, `model_error`).
    Error {
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryMessage {
    pub id: String,
    pub role: Role,
    pub parts: Vec<Part>,
    pub timestamp: i64,
}

impl HistoryMessage {
    /// The concatenated text parts.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The first non-empty text part, for previews.
    pub fn first_text(&self) -> Option<&str> {
        self.parts.iter().find_map(|part| match part {
            Part::Text { text } if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingLevel {
    #[default]
    Off,
    Minimal,
    Low,
    Medium,
    High,
}

impl ThinkingLevel {
    pub const ALL: [ThinkingLevel; 5] = [
        ThinkingLevel::Off,
        ThinkingLevel::Minimal,
        ThinkingLevel::Low,
        ThinkingLevel::Medium,
        ThinkingLevel::High,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingLevel::Off => "off",
            ThinkingLevel::Minimal => "minimal",
            ThinkingLevel::Low => "low",
            ThinkingLevel::Medium => "medium",
            ThinkingLevel::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == text)
    }

    /// `Invalid thinking level: x (use off, minimal, low, medium, high)`.
    pub fn invalid(text: &str) -> crate::error::GatewayError {
        let valid: Vec<&str> = Self::ALL.iter().map(|l| l.as_str()).collect();
        crate::error::GatewayError::invalid(format!(
            "Invalid thinking level: {text} (use {})",
            valid.join(", ")
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelRef {
    pub provider: String,
    pub model_id: String,
}

/// `{sessionKey, sessionId, name?, messageCount, ...}` (GATEWAY.md §2).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub session_key: String,
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub message_count: usize,
    pub queue_depth: usize,
    pub processing: bool,
    pub loaded: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_active_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_preview: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    pub thinking_level: ThinkingLevel,
    pub usage: Usage,
}

/// An image attached to a message (already decoded and validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub data: Vec<u8>,
    pub mime_type: String,
}

impl Image {
    pub fn data_url(&self) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.data);
        format!("data:{};base64,{encoded}", self.mime_type)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamingBehavior {
    /// Queue behind whatever runs (the default).
    #[default]
    FollowUp,
    /// Join the running run at its next model call; queue when idle.
    Steer,
}

/// The transport a message came in by (shown in the queue listing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `POST /sessions/:key/messages` and the other seed REST routes.
    #[default]
    Rest,
    Grpc,
    Webhook,
    /// The v1 conversation API and its adapter routes.
    V1,
    /// The Vercel AI SDK chat route.
    Vercel,
    Socketio,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rest => "rest",
            Source::Grpc => "grpc",
            Source::Webhook => "webhook",
            Source::V1 => "v1",
            Source::Vercel => "vercel",
            Source::Socketio => "socketio",
        }
    }

    /// A stored value; unknown ones (older rows) read as `rest`.
    pub fn parse(text: &str) -> Self {
        [Source::Grpc, Source::Webhook, Source::V1, Source::Vercel, Source::Socketio]
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or_default()
    }
}

/// One waiting message of `GET /sessions/:key/queue` / `Sessions.ListQueued`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedMessage {
    pub message_id: String,
    /// 1 runs next.
    pub position: usize,
    /// The first 120 characters of its text.
    pub text_preview: String,
    pub source: Source,
    pub enqueued_at: i64,
}

/// `{queue, processing}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueView {
    pub queue: Vec<QueuedMessage>,
    pub processing: bool,
}

/// A sending call: messages, webhook, SendMessage/StreamChat.
#[derive(Clone, Debug, Default)]
pub struct SendRequest {
    /// Which transport it came by.
    pub source: Source,
    pub session_key: String,
    pub text: String,
    pub images: Vec<Image>,
    pub behavior: StreamingBehavior,
    /// From `idempotencyKey`, the `Idempotency-Key` header or `idempotency_key`.
    pub idempotency_key: Option<String>,
    /// Who sends: a new session is theirs; one they may not see is 404.
    pub caller: Caller,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// Waits in the queue for its own run.
    Queued,
    /// Joined the running run.
    Steer,
}

/// What a sending call gets at once: its message id and whether it queued or steered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub session_key: String,
    pub message_id: String,
    pub mode: SendMode,
    /// A repeat of an earlier call with the same idempotency key: the message is that call's,
    /// and nothing new runs.
    pub repeat: bool,
}

/// The end of a run as its callers see it (`{ok, response, error?, sessionKey, messageId}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub ok: bool,
    pub response: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub session_key: String,
    pub message_id: String,
}

/// Explicit creation (`CreateSession`, `POST /v1/conversations`).
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    /// None: a new UUID.
    pub session_key: Option<String>,
    pub name: Option<String>,
    pub model: Option<ModelRef>,
    pub memory_namespace: Option<String>,
    /// Who creates it: the session records the token's name as its owner.
    pub caller: Caller,
}

/// One page of a listing, with an opaque cursor for the next one.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `{session, messages}`: history plus the in-flight draft and pending tool results.
#[derive(Clone, Debug, Serialize)]
pub struct SessionStateView {
    pub session: Snapshot,
    pub messages: Vec<HistoryMessage>,
}
