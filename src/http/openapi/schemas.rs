//! The shapes that handlers build in place as JSON (`{ok: true}`, `{ok, model}`, ...) and the
//! bodies they read field by field, declared for the OpenAPI document only: nothing
//! serializes these types. Shapes with a serde type of their own (snapshots, history, memory
//! records, run outcomes, the seed bodies of `rest.rs`) are not repeated here: the document
//! takes them from those types. `scripts/openapi_check.py` checks real answers against them.

use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::agent::provider::ModelInfo;
use crate::domain::{MemoryRecord, ModelRef, SearchHit, SendMode, ThinkingLevel};
use crate::http::extract::ImageJson;
use crate::memory::MemoryStatus;
use crate::service::admin::ChannelStatus;

/// Every refusal (GATEWAY.md §8): a message for humans and a stable code (`invalid_argument`,
/// `unauthenticated`, `permission_denied`, `not_found`, `method_not_allowed`, `conflict`,
/// `payload_too_large`, `queue_full`, `rate_limited`, `failed_precondition`, `unavailable`,
/// `unimplemented`, `internal`).
#[derive(ToSchema)]
pub struct ErrorBody {
    #[schema(example = "Session not found: main")]
    pub error: String,
    #[schema(example = "not_found")]
    pub code: String,
}

#[derive(ToSchema)]
pub struct Health {
    pub ok: bool,
    /// False (and 503) while the gateway drains for shutdown.
    pub ready: bool,
}

#[derive(ToSchema)]
pub struct Ready {
    pub ok: bool,
    pub ready: bool,
    /// Live (loaded) sessions.
    pub sessions: u64,
}

/// `{ok}`: for abort and cancel, whether there was something to stop.
#[derive(ToSchema)]
pub struct OkAnswer {
    pub ok: bool,
}

/// A sending call that did not get a reply: the run failed, was aborted or cancelled, or the
/// queue was full (then without `messageId`, the seed's shape).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SendFailure {
    pub ok: bool,
    pub response: String,
    pub error: String,
    pub session_key: String,
    pub message_id: Option<String>,
}

/// `{text}`, `{prompt}` or a `useChat` body (`{messages}`: the newest `role: "user"` message,
/// its first text part or a string `content`; `file` parts with `data:` image URLs become
/// images).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UserText {
    pub text: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Vec<Value>>,
}

/// The Vercel AI SDK chat body: a user text as [`UserText`], with optional extras.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct VercelChat {
    pub text: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Vec<Value>>,
    pub images: Option<Vec<ImageJson>>,
    /// `followUp` (default) or `steer`.
    pub streaming_behavior: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Steered {
    pub ok: bool,
    pub mode: SendMode,
    pub session_key: String,
}

/// A slash command without its slash (`model`, `thinking`, `help`, ...) and its arguments as
/// one string.
#[derive(ToSchema)]
pub struct Command {
    pub command: String,
    pub args: Option<String>,
}

#[derive(ToSchema)]
pub struct ModelSet {
    pub ok: bool,
    pub model: ModelRef,
}

#[derive(ToSchema)]
pub struct ThinkingSet {
    pub ok: bool,
    pub level: ThinkingLevel,
}

#[derive(ToSchema)]
pub struct Models {
    pub models: Vec<ModelInfo>,
    /// The model of new sessions.
    pub current: ModelRef,
}

/// The patched configuration, secrets removed.
#[derive(ToSchema)]
pub struct ConfigPatched {
    pub ok: bool,
    pub config: Value,
}

#[derive(ToSchema)]
pub struct Channels {
    pub channels: Vec<ChannelStatus>,
}

#[derive(ToSchema)]
pub struct Logs {
    pub logs: Vec<String>,
}

#[derive(ToSchema)]
pub struct MemoryStatusAnswer {
    pub memory: MemoryStatus,
}

#[derive(ToSchema)]
pub struct CoreMemories {
    pub memories: Vec<MemoryRecord>,
}

/// `sessionKey` picks that session's memory namespace (unknown: 404).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct MemorySearch {
    /// Plain words (search syntax is never an error).
    pub query: String,
    /// Default 4.
    pub limit: Option<i64>,
    pub session_key: Option<String>,
}

#[derive(ToSchema)]
pub struct SearchResults {
    pub query: String,
    pub results: Vec<SearchHit>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Remember {
    pub content: String,
    /// `core` or `archival` (default by kind).
    pub bucket: Option<String>,
    /// `profile`, `preference`, `relationship`, `fact` (default) or `secret`.
    pub kind: Option<String>,
    /// Normalised; defaults to the content. Remembering an existing key supersedes it.
    pub key: Option<String>,
    pub session_key: Option<String>,
}

#[derive(ToSchema)]
pub struct Remembered {
    pub ok: bool,
    pub memory: MemoryRecord,
}

/// An `id` or a `key`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Forget {
    pub id: Option<i64>,
    pub key: Option<String>,
    pub session_key: Option<String>,
}

#[derive(ToSchema)]
pub struct Forgotten {
    pub ok: bool,
    /// How many records were forgotten.
    pub forgotten: u64,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Rebuild {
    pub session_key: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Rebuilt {
    pub ok: bool,
    pub memory_rows: u64,
    pub episode_rows: u64,
}

/// `async: true` answers once the message is stored.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WebhookAccepted {
    pub ok: bool,
    pub accepted: bool,
    pub session_key: String,
    pub message_id: String,
}

/// A session under its v1 name.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Conversation {
    pub conversation_id: String,
    pub session_id: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: u64,
    pub processing: bool,
    pub queue_depth: u64,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Conversations {
    pub conversations: Vec<Conversation>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct ConversationAnswer {
    pub conversation: Conversation,
}

/// All optional: a UUID is made when there is no `conversationId`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct NewConversation {
    pub conversation_id: Option<String>,
    pub name: Option<String>,
    pub memory_namespace: Option<String>,
}

#[derive(ToSchema)]
pub struct V1Aborted {
    pub ok: bool,
    /// Whether a run was running.
    pub aborted: bool,
}

/// One message to a conversation (created on use; a new UUID when none is named).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct V1Chat {
    pub conversation_id: Option<String>,
    /// Non-empty.
    pub message: String,
    pub images: Option<Vec<ImageJson>>,
    /// `followUp` (default) or `steer`.
    pub streaming_behavior: Option<String>,
    pub idempotency_key: Option<String>,
}

/// A chat-platform message: `conversationId = source:workspaceId:channelId[:threadId]` and
/// `adapterKey = conversationId[:userId]`; segments hold no `:`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AdapterChat {
    pub source: String,
    pub workspace_id: String,
    pub channel_id: String,
    pub thread_id: Option<String>,
    pub user_id: Option<String>,
    pub message: String,
    pub images: Option<Vec<ImageJson>>,
    pub streaming_behavior: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct V1Reply {
    pub conversation_id: String,
    pub session_id: String,
    pub assistant_text: String,
    /// Adapter routes only.
    pub adapter_key: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The session key: 1-200 characters without line breaks.
    pub key: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConversationPath {
    /// The conversation id (= session key).
    pub id: String,
}

/// One page of a listing: newest first; `cursor` is the `nextCursor` of the page before.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At least 1.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResumeQuery {
    /// Resume after this seq (the `Last-Event-ID` header wins).
    pub after: Option<u64>,
}

/// The memory namespace of this session instead of the default one.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct NamespaceQuery {
    pub session_key: Option<String>,
}
