//! The OpenAPI operations of the sending routes (the `chat` scope): the seed's messages,
//! steer, abort, queue and commands (GATEWAY.md §5.1), the Vercel AI SDK stream (§5.3) and the
//! v1 conversation API (§5.2). Each function only carries its `#[utoipa::path]`; the handlers
//! are in `rest.rs`, `vercel.rs` and `v1/`.
#![allow(dead_code)]

use super::schemas::{
    AdapterChat, Command, ConversationAnswer, ConversationPath, Conversations, ErrorBody, KeyPath,
    NewConversation, OkAnswer, PageQuery, ResumeQuery, SendFailure, Steered, UserText, V1Aborted,
    V1Chat, V1Reply, VercelChat,
};
use crate::domain::RunOutcome;
use crate::http::rest::MessageBody;
use crate::service::chat::CommandResult;

/// Send a message and wait for its run
///
/// Creates the session on first use. The message is queued behind any running run and is in
/// the store before the call is answered; a text starting with `/<command>` runs that command
/// at once. A repeated `idempotencyKey` (body or `Idempotency-Key` header) within 24 h returns
/// the first call's outcome.
#[utoipa::path(post, path = "/sessions/{key}/messages", tag = "chat", params(KeyPath,
        ("Idempotency-Key" = Option<String>, Header, description = "Instead of `idempotencyKey`")),
    request_body = MessageBody,
    responses(
        (status = 200, description = "The run completed", body = RunOutcome),
        (status = 400, description = "`Missing text`, or invalid images", body = ErrorBody),
        (status = 500, description = "No reply: failed, aborted, cancelled, or a full queue",
            body = SendFailure),
        (status = 503, description = "The gateway is shutting down", body = ErrorBody),
    ))]
fn send_message() {}

/// Chat as a Vercel AI SDK UI message stream
///
/// For `useChat`: the stream carries the chunks of this message's run only (`start`,
/// `start-step`, `text-*`, `reasoning-*`, `tool-*`, `finish-step`, `finish`, or `error` /
/// `abort`) as `data: <json>` frames, then `data: [DONE]`. A disconnect stops the stream, not
/// the run.
#[utoipa::path(post, path = "/sessions/{key}/chat", tag = "chat", params(KeyPath),
    request_body = VercelChat,
    responses(
        (status = 200, description = "The UI message stream",
            content_type = "text/event-stream", body = String,
            headers(("x-vercel-ai-ui-message-stream" = String, description = "`v1`"))),
        (status = 400, description = "`Missing user message text`, or invalid images",
            body = ErrorBody),
        (status = 429, description = "The session's queue is full", body = ErrorBody),
    ))]
fn vercel_chat() {}

/// Resume a Vercel AI SDK stream
///
/// `useChat({resume: true})`: `id` names a run (a message id); otherwise the session's running
/// run is picked up. With `Last-Event-ID`, only the chunks after it.
#[utoipa::path(get, path = "/sessions/{key}/chat/{id}/stream", tag = "chat",
    params(KeyPath, ("id" = String, Path, description = "A message id, or the chat id"),
        ResumeQuery, ("Last-Event-ID" = Option<u64>, Header, description = "The last seq seen")),
    responses(
        (status = 200, description = "The UI message stream",
            content_type = "text/event-stream", body = String),
        (status = 204, description = "Nothing to resume"),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn vercel_resume() {}

/// Steer the running run
///
/// While a run is active, the text joins it at its next model call (`mode: "steer"`);
/// otherwise it is queued (`mode: "queued"`).
#[utoipa::path(post, path = "/sessions/{key}/steer", tag = "chat", params(KeyPath),
    request_body = UserText,
    responses(
        (status = 200, description = "Steered or queued", body = Steered),
        (status = 400, description = "`Missing user message text`", body = ErrorBody),
        (status = 409, description = "Idle and the queue is full", body = ErrorBody),
    ))]
fn steer() {}

/// Abort the running run
#[utoipa::path(post, path = "/sessions/{key}/abort", tag = "chat", params(KeyPath),
    responses(
        (status = 200, description = "`ok`: whether a run was running", body = OkAnswer),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn abort() {}

/// Cancel a queued message
///
/// Its waiting caller gets `ok: false, error: "Cancelled"`.
#[utoipa::path(delete, path = "/sessions/{key}/queue/{messageId}", tag = "chat",
    params(KeyPath,
        ("messageId" = String, Path, description = "The message id a sending call returned")),
    responses(
        (status = 200, description = "`ok`: whether it was still waiting", body = OkAnswer),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn cancel_queued() {}

/// Run a slash command
///
/// `/help`, `/model`, `/thinking`, `/reset`, `/abort`, `/queue`, `/clear-queue`, `/memory`,
/// `/remember`; outside the queue.
#[utoipa::path(post, path = "/sessions/{key}/commands", tag = "chat", params(KeyPath),
    request_body = Command,
    responses(
        (status = 200, description = "The result (`ok: false` with the reason if it was not done)",
            body = CommandResult),
        (status = 400, description = "`Missing command`", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn command() {}

/// List conversations
#[utoipa::path(get, path = "/v1/conversations", tag = "v1", params(PageQuery),
    responses(
        (status = 200, description = "One page of conversations", body = Conversations),
        (status = 400, description = "`limit` is not a positive integer", body = ErrorBody),
    ))]
fn list_conversations() {}

/// Create a conversation
#[utoipa::path(post, path = "/v1/conversations", tag = "v1", request_body = NewConversation,
    responses(
        (status = 201, description = "Created", body = ConversationAnswer),
        (status = 400, description = "An invalid id", body = ErrorBody),
        (status = 409, description = "The conversation exists", body = ErrorBody),
    ))]
fn create_conversation() {}

/// Get a conversation
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "v1", params(ConversationPath),
    responses(
        (status = 200, description = "The conversation", body = ConversationAnswer),
        (status = 404, description = "No such conversation", body = ErrorBody),
    ))]
fn get_conversation() {}

/// Delete a conversation
#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "v1", params(ConversationPath),
    responses(
        (status = 200, description = "Deleted", body = OkAnswer),
        (status = 404, description = "No such conversation", body = ErrorBody),
    ))]
fn delete_conversation() {}

/// Abort a conversation's run
#[utoipa::path(post, path = "/v1/conversations/{id}/abort", tag = "v1", params(ConversationPath),
    responses(
        (status = 200, description = "`aborted`: whether a run was running", body = V1Aborted),
        (status = 404, description = "No such conversation", body = ErrorBody),
    ))]
fn abort_conversation() {}

/// Resume a v1 stream
///
/// The named events of a run (as `POST /v1/chat/stream`) after `Last-Event-ID` or `after`;
/// `messageId` names the run (default: the running one). Leaving it cancels nothing.
#[utoipa::path(get, path = "/v1/conversations/{id}/stream", tag = "v1",
    params(ConversationPath, ResumeQuery,
        ("messageId" = Option<String>, Query, description = "The run to resume"),
        ("Last-Event-ID" = Option<u64>, Header, description = "The last seq seen")),
    responses(
        (status = 200, description = "Named events",
            content_type = "text/event-stream", body = String),
        (status = 204, description = "Nothing to resume"),
        (status = 404, description = "No such conversation", body = ErrorBody),
    ))]
fn resume_conversation_stream() {}

/// Chat and wait for the reply
#[utoipa::path(post, path = "/v1/chat", tag = "v1", request_body = V1Chat,
    responses(
        (status = 200, description = "The assistant's reply", body = V1Reply),
        (status = 400, description = "An invalid message, id, images or streamingBehavior",
            body = ErrorBody),
        (status = 429, description = "The queue is full", body = ErrorBody),
        (status = 500, description = "The run failed", body = ErrorBody),
    ))]
fn v1_chat() {}

/// Chat as a stream of named events
///
/// `event: <name>` + `data: <json>`: `ready` first, then `agent_start`,
/// `assistant_text_delta`, `assistant_thinking_delta`, `tool_start`, `tool_update`,
/// `tool_end`, `retry_*`, `compaction_*`, `agent_end`, and last `done` or `error`. A client
/// that named its conversation and disconnects cancels its own message.
#[utoipa::path(post, path = "/v1/chat/stream", tag = "v1", request_body = V1Chat,
    responses(
        (status = 200, description = "Named events",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "An invalid message, id, images or streamingBehavior",
            body = ErrorBody),
        (status = 429, description = "The queue is full", body = ErrorBody),
    ))]
fn v1_chat_stream() {}

/// Chat from a chat-platform adapter
#[utoipa::path(post, path = "/v1/adapters/chat", tag = "v1", request_body = AdapterChat,
    responses(
        (status = 200, description = "The assistant's reply, with `adapterKey`", body = V1Reply),
        (status = 400, description = "A missing or invalid id segment, or message",
            body = ErrorBody),
        (status = 429, description = "The queue is full", body = ErrorBody),
        (status = 500, description = "The run failed", body = ErrorBody),
    ))]
fn v1_adapter_chat() {}

/// Chat from a chat-platform adapter, as a stream
#[utoipa::path(post, path = "/v1/adapters/chat/stream", tag = "v1", request_body = AdapterChat,
    responses(
        (status = 200, description = "Named events, as `POST /v1/chat/stream`",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "A missing or invalid id segment, or message",
            body = ErrorBody),
        (status = 429, description = "The queue is full", body = ErrorBody),
    ))]
fn v1_adapter_chat_stream() {}
