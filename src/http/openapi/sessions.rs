//! The OpenAPI operations of the session routes that read and manage sessions (GATEWAY.md
//! §5.1, the `sessions` scope): each function only carries its `#[utoipa::path]`; the handlers
//! are in `rest.rs` and `sse.rs`, and the test in `tests/integration/openapi.rs` keeps the two
//! in step.
#![allow(dead_code)]

use super::schemas::{
    ErrorBody, KeyPath, ModelSet, Models, OkAnswer, PageQuery, ResumeQuery, ThinkingSet,
};
use crate::domain::{QueueView, SessionStateView};
use crate::http::rest::{
    HistoryPage, ModelBody, RenameBody, SessionAnswer, SessionList, ThinkingBody,
};

/// List sessions
///
/// Every stored session, newest activity first, each with a `loaded` flag.
#[utoipa::path(get, path = "/sessions", tag = "sessions", params(PageQuery),
    responses(
        (status = 200, description = "One page of sessions", body = SessionList),
        (status = 400, description = "`limit` is not a positive integer, or a bad cursor",
            body = ErrorBody),
    ))]
fn list_sessions() {}

/// Get a session
#[utoipa::path(get, path = "/sessions/{key}", tag = "sessions", params(KeyPath),
    responses(
        (status = 200, description = "The session's snapshot", body = SessionAnswer),
        (status = 404, description = "`Session not found: <key>`", body = ErrorBody),
    ))]
fn get_session() {}

/// Rename a session
#[utoipa::path(patch, path = "/sessions/{key}", tag = "sessions", params(KeyPath),
    request_body = RenameBody,
    responses(
        (status = 200, description = "Renamed (a missing or null name clears it)", body = OkAnswer),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn rename_session() {}

/// Delete a session
///
/// Aborts its run, rejects its queue (`Session deleted: <key>`) and removes it, its history
/// and its episodes; its event streams end with `session_deleted`.
#[utoipa::path(delete, path = "/sessions/{key}", tag = "sessions", params(KeyPath),
    responses(
        (status = 200, description = "Deleted", body = OkAnswer),
        (status = 400, description = "The primary session cannot be deleted", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn delete_session() {}

/// Subscribe to a session's events
///
/// Server-Sent Events: `hello` first (no `id:` line), then the logged events after the resume
/// point (`id: <seq>`), then live ones; `lagged` when events were missed; `:` heartbeats. The
/// stream ends on `session_deleted` or shutdown.
#[utoipa::path(get, path = "/sessions/{key}/events", tag = "sessions",
    params(KeyPath, ResumeQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last seq this client saw")),
    responses(
        (status = 200, description = "The event stream (`data: <event JSON>` frames)",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "A resume point that is not a seq number", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn session_events() {}

/// Reset a session
///
/// Aborts, rejects the queue (`Session reset`), clears history and gives a new session id;
/// a session other than the primary one is removed.
#[utoipa::path(post, path = "/sessions/{key}/reset", tag = "sessions", params(KeyPath),
    responses(
        (status = 200, description = "Reset", body = OkAnswer),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn reset_session() {}

/// Read history
///
/// The newest `limit` messages; `nextCursor` pages to older ones.
#[utoipa::path(get, path = "/sessions/{key}/history", tag = "sessions",
    params(KeyPath, PageQuery),
    responses(
        (status = 200, description = "One page of history, oldest first", body = HistoryPage),
        (status = 400, description = "`limit` is not a positive integer, or a bad cursor",
            body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn session_history() {}

/// List the queue
#[utoipa::path(get, path = "/sessions/{key}/queue", tag = "sessions", params(KeyPath),
    responses(
        (status = 200, description = "The waiting messages, next first", body = QueueView),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn session_queue() {}

/// Read the state
///
/// History plus the in-flight assistant draft (`draft:<key>:<ts>`) and tool results not yet in
/// history (`draft-tool:<key>:<toolCallId>`).
#[utoipa::path(get, path = "/sessions/{key}/state", tag = "sessions", params(KeyPath),
    responses(
        (status = 200, description = "The snapshot and every message", body = SessionStateView),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn session_state() {}

/// Set the model
#[utoipa::path(post, path = "/sessions/{key}/model", tag = "sessions", params(KeyPath),
    request_body = ModelBody,
    responses(
        (status = 200, description = "The session's model", body = ModelSet),
        (status = 400, description = "`Missing provider or modelId`", body = ErrorBody),
        (status = 404, description = "No such session, or a model the registry does not have",
            body = ErrorBody),
    ))]
fn set_model() {}

/// Set the thinking level
#[utoipa::path(post, path = "/sessions/{key}/thinking", tag = "sessions", params(KeyPath),
    request_body = ThinkingBody,
    responses(
        (status = 200, description = "The session's thinking level", body = ThinkingSet),
        (status = 400, description = "A level other than off, minimal, low, medium, high",
            body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn set_thinking() {}

/// Reload a session from the store
#[utoipa::path(post, path = "/sessions/{key}/reload", tag = "sessions", params(KeyPath),
    responses(
        (status = 200, description = "Reloaded", body = OkAnswer),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn reload_session() {}

/// List the models
#[utoipa::path(get, path = "/models", tag = "sessions",
    responses((status = 200, description = "The model registry", body = Models)))]
fn list_models() {}
