//! A session as clients see it: its snapshot, model, thinking level and usage, its state view
//! and queue listing, and the page shape of every listing.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;

use super::message::HistoryMessage;
use super::send::Source;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRef {
    pub provider: String,
    pub model_id: String,
}

/// `{sessionKey, sessionId, name?, messageCount, ...}` (GATEWAY.md §2).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
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

/// One waiting message of `GET /sessions/:key/queue` / `Sessions.ListQueued`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct QueueView {
    pub queue: Vec<QueuedMessage>,
    pub processing: bool,
}

/// One page of a listing, with an opaque cursor for the next one.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `{session, messages}`: history plus the in-flight draft and pending tool results.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionStateView {
    pub session: Snapshot,
    pub messages: Vec<HistoryMessage>,
}

/// What a session is, apart from its history and queue: held by the live session, stored as
/// its row, and shown (with counts) in its snapshot. The one declaration of these fields.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionMeta {
    /// New on every reset.
    pub session_id: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_active_at: i64,
    pub model: ModelRef,
    pub thinking: ThinkingLevel,
    pub usage: Usage,
    /// Where the session's memory tools and episodes belong.
    pub memory_namespace: String,
    /// The name of the token that created the session (GATEWAY.md §10 `own_sessions_only`).
    pub owner: Option<String>,
    /// Context compaction: for the model, history before this position is replaced by the
    /// summary (history itself keeps everything).
    pub compacted_upto: u64,
    pub compaction_summary: Option<String>,
}

impl SessionMeta {
    /// A new session's: a fresh id, created now, the default thinking level and namespace.
    pub fn new(model: ModelRef, memory_namespace: &str) -> Self {
        let now = now_ms();
        Self {
            session_id: uuid::Uuid::new_v4().to_string(),
            name: None,
            created_at: now,
            updated_at: now,
            last_active_at: now,
            model,
            thinking: ThinkingLevel::default(),
            usage: Usage::default(),
            memory_namespace: memory_namespace.to_string(),
            owner: None,
            compacted_upto: 0,
            compaction_summary: None,
        }
    }
}

/// What a snapshot adds to a session's metadata: where it is and how busy.
pub struct SnapshotCounts {
    pub message_count: usize,
    pub queue_depth: usize,
    pub processing: bool,
    pub loaded: bool,
    pub last_message_preview: Option<String>,
}

impl Snapshot {
    pub fn of(session_key: &str, meta: &SessionMeta, counts: SnapshotCounts) -> Self {
        Snapshot {
            session_key: session_key.to_string(),
            session_id: meta.session_id.clone(),
            name: meta.name.clone(),
            message_count: counts.message_count,
            queue_depth: counts.queue_depth,
            processing: counts.processing,
            loaded: counts.loaded,
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            last_active_at: meta.last_active_at,
            last_message_preview: counts.last_message_preview,
            model_provider: Some(meta.model.provider.clone()),
            model_id: Some(meta.model.model_id.clone()),
            thinking_level: meta.thinking,
            usage: meta.usage,
        }
    }
}
