//! The v1 conversation API of seed 003 (GATEWAY.md §5.2): conversations are sessions under
//! another name (`conversationId` = session key), chat as JSON or as named SSE events, and the
//! adapter routes that build the id from `source:workspaceId:channelId:threadId`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode, Version};
use serde_json::{Value, json};

use super::extract::{ImageJson, JsonBody, PathParams, decode_images, streaming_behavior};
use super::sse::{named_frame, resume_point, stream_response};
use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::EventKind;
use crate::domain::{CreateRequest, SendRequest, Snapshot};
use crate::error::GatewayError;
use crate::session::stream::{RunItem, RunStream};
use crate::session::{SessionManager, validate_key};

type Answer = Result<Response, GatewayError>;

/// `{conversationId, sessionId, name?, createdAt, updatedAt, messageCount, processing,
/// queueDepth}`.
fn conversation(s: &Snapshot) -> Value {
    let mut value = json!({
        "conversationId": s.session_key,
        "sessionId": s.session_id,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "messageCount": s.message_count,
        "processing": s.processing,
        "queueDepth": s.queue_depth,
    });
    if let Some(name) = &s.name {
        value["name"] = json!(name);
    }
    value
}

fn conversation_id(value: &Value) -> Result<String, GatewayError> {
    let invalid =
        || GatewayError::invalid("conversationId must be 1-200 characters without line breaks");
    let id = value.as_str().ok_or_else(invalid)?;
    validate_key(id).map_err(|_| invalid())?;
    Ok(id.to_string())
}

fn id_param(PathParams(params): &PathParams) -> Result<String, GatewayError> {
    conversation_id(&json!(params.get("id")))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let limit = match query.get("limit") {
        Some(limit) => Some(
            limit
                .parse::<usize>()
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| GatewayError::invalid("limit must be a positive integer"))?,
        ),
        None => None,
    };
    let page = state.sessions.list(&caller, limit, query.get("cursor").map(String::as_str)).await?;
    let mut body =
        json!({ "conversations": page.items.iter().map(conversation).collect::<Vec<_>>() });
    if let Some(cursor) = page.next_cursor {
        body["nextCursor"] = json!(cursor);
    }
    Ok(Json(body).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let text_field = |name: &str| -> Result<Option<String>, GatewayError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(GatewayError::invalid(format!("{name} must be a string"))),
        }
    };
    let session_key = match body.get("conversationId") {
        None | Some(Value::Null) => None,
        Some(id) => Some(conversation_id(id)?),
    };
    let request = CreateRequest {
        session_key,
        name: text_field("name")?,
        model: None,
        memory_namespace: text_field("memoryNamespace")?,
        caller,
    };
    let snapshot = state.sessions.create(request).await?;
    Ok((StatusCode::CREATED, Json(json!({ "conversation": conversation(&snapshot) })))
        .into_response())
}

pub async fn get(State(state): State<AppState>, caller: Caller, params: PathParams) -> Answer {
    let snapshot = state.sessions.get(&caller, &id_param(&params)?).await?;
    Ok(Json(json!({ "conversation": conversation(&snapshot) })).into_response())
}

pub async fn delete(State(state): State<AppState>, caller: Caller, params: PathParams) -> Answer {
    state.sessions.delete(&caller, &id_param(&params)?).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

pub async fn abort(State(state): State<AppState>, caller: Caller, params: PathParams) -> Answer {
    let aborted = state.sessions.abort(&caller, &id_param(&params)?).await?;
    Ok(Json(json!({ "ok": true, "aborted": aborted })).into_response())
}

/// A validated chat request: where it goes, what it sends, and whether the caller named the
/// conversation (only then does a disconnect cancel the message).
struct Chat {
    request: SendRequest,
    named: bool,
    adapter_key: Option<String>,
}

fn chat_request(
    body: &Value,
    conversation: Option<String>,
    caller: Caller,
) -> Result<SendRequest, GatewayError> {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| GatewayError::invalid("message must be a non-empty string"))?;
    let images: Option<Vec<ImageJson>> = match body.get("images") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| serde_json::from_value(item.clone()))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    GatewayError::invalid("Invalid image: expected {type, data, mimeType}")
                })?,
        ),
        Some(_) => return Err(GatewayError::invalid("images must be an array")),
    };
    let behavior = match body.get("streamingBehavior") {
        None | Some(Value::Null) => streaming_behavior(None)?,
        Some(value) => streaming_behavior(Some(value.as_str().unwrap_or("invalid")))?,
    };
    Ok(SendRequest {
        source: crate::domain::Source::V1,
        session_key: conversation.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        text: message.to_string(),
        images: decode_images(images)?,
        behavior,
        idempotency_key: body.get("idempotencyKey").and_then(Value::as_str).map(str::to_string),
        caller,
    })
}

fn parse_chat(body: &Value, caller: Caller) -> Result<Chat, GatewayError> {
    let conversation = match body.get("conversationId") {
        None | Some(Value::Null) => None,
        Some(id) => Some(conversation_id(id)?),
    };
    let named = conversation.is_some();
    Ok(Chat { request: chat_request(body, conversation, caller)?, named, adapter_key: None })
}

/// Adapter ids: `conversationId = source:workspaceId:channelId[:threadId]`, `adapterKey =
/// conversationId[:userId]`. Segments are non-empty strings without `:` or line breaks.
fn parse_adapter_chat(body: &Value, caller: Caller) -> Result<Chat, GatewayError> {
    let segment = |name: &str, required: bool| -> Result<Option<String>, GatewayError> {
        match body.get(name) {
            None | Some(Value::Null) if required => {
                Err(GatewayError::invalid(format!("{name} is required")))
            }
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() && required => {
                Err(GatewayError::invalid(format!("{name} is required")))
            }
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.contains(':') => {
                Err(GatewayError::invalid(format!("{name} must not contain ':'")))
            }
            Some(Value::String(s)) if s.contains(['\n', '\r']) => {
                Err(GatewayError::invalid(format!("{name} must not contain line breaks")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(GatewayError::invalid(format!("{name} must be a string"))),
        }
    };
    let channel = segment("channelId", true)?;
    let mut id = [segment("source", true)?, segment("workspaceId", true)?, channel]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(":");
    if let Some(thread) = segment("threadId", false)? {
        id = format!("{id}:{thread}");
    }
    let adapter_key = match segment("userId", false)? {
        Some(user) => format!("{id}:{user}"),
        None => id.clone(),
    };
    let conversation = conversation_id(&json!(id))?;
    Ok(Chat {
        request: chat_request(body, Some(conversation), caller)?,
        named: true,
        adapter_key: Some(adapter_key),
    })
}

async fn session_id(sessions: &SessionManager, caller: &Caller, key: &str) -> String {
    sessions.get(caller, key).await.map(|s| s.session_id).unwrap_or_default()
}

async fn chat_json(state: AppState, chat: Chat) -> Answer {
    let key = chat.request.session_key.clone();
    let caller = chat.request.caller.clone();
    let (_, outcome) = state.chat.send(chat.request).await?;
    let outcome = outcome.await.map_err(|_| GatewayError::shutting_down())?;
    if !outcome.ok {
        return Err(GatewayError::internal(outcome.error.unwrap_or_else(|| "Run failed".into())));
    }
    let mut body = json!({
        "conversationId": key,
        "sessionId": session_id(&state.sessions, &caller, &key).await,
        "assistantText": outcome.response,
    });
    if let Some(adapter_key) = chat.adapter_key {
        body["adapterKey"] = json!(adapter_key);
    }
    Ok(Json(body).into_response())
}

pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    chat_json(state, parse_chat(&body, caller)?).await
}

pub async fn adapter_chat(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    chat_json(state, parse_adapter_chat(&body, caller)?).await
}

pub async fn chat_stream(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    chat_sse(state, version, parse_chat(&body, caller)?).await
}

pub async fn adapter_chat_stream(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    chat_sse(state, version, parse_adapter_chat(&body, caller)?).await
}

/// Cancels the caller's own message when its stream is dropped before the end (the client
/// went away): out of the queue if waiting, aborted if running; another caller's run is never
/// touched.
struct CancelOnDrop {
    sessions: SessionManager,
    caller: Caller,
    key: String,
    message_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (sessions, caller, key, id) = (
            self.sessions.clone(),
            self.caller.clone(),
            self.key.clone(),
            std::mem::take(&mut self.message_id),
        );
        tokio::spawn(async move {
            if let Ok(true) = sessions.cancel_own(&caller, &key, &id).await {
                tracing::info!(session_key = %key, message_id = %id, "v1 client went away: message cancelled");
            }
        });
    }
}

async fn chat_sse(state: AppState, version: Version, chat: Chat) -> Answer {
    let key = chat.request.session_key.clone();
    let caller = chat.request.caller.clone();
    let (accepted, run) = state.chat.send_stream(chat.request).await?;
    let guard = CancelOnDrop {
        sessions: state.sessions.clone(),
        caller,
        key: key.clone(),
        message_id: accepted.message_id,
        armed: chat.named,
    };
    let frames = v1_frames(state.sessions.clone(), key, run, chat.adapter_key, guard);
    Ok(stream_response(frames, state.config.startup().http.sse_heartbeat, version))
}

/// `GET /v1/conversations/:id/stream?messageId=&after=`: picks a v1 stream up again after a
/// lost connection. Run events carry `id: <seq>`; with `Last-Event-ID` (or `?after=`) only
/// what followed is sent, then `done` or `error` as on the first stream. `messageId` names
/// the run (default: the running one, else the one logged after `after`). 204 when there is
/// nothing to resume. Leaving a resumed stream cancels nothing.
pub async fn resume_stream(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    version: Version,
) -> Answer {
    let key = id_param(&params)?;
    let after = resume_point(&headers, &query)?;
    let run = query.get("messageId").map(String::as_str);
    let Some((message_id, run)) = state.sessions.resume_run(&caller, &key, run, after).await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let guard = CancelOnDrop {
        sessions: state.sessions.clone(),
        caller,
        key: key.clone(),
        message_id,
        armed: false,
    };
    let frames = v1_frames(state.sessions.clone(), key, run, None, guard);
    Ok(stream_response(frames, state.config.startup().http.sse_heartbeat, version))
}

/// `ready`, the run's named events (logged ones with `id: <seq>`), then `done` or `error`.
fn v1_frames(
    sessions: SessionManager,
    key: String,
    mut run: RunStream,
    adapter_key: Option<String>,
    guard: CancelOnDrop,
) -> futures_util::stream::BoxStream<'static, Bytes> {
    Box::pin(async_stream::stream! {
        // Moves the whole guard in (not just the field assigned below): it must live and
        // drop with the stream.
        let mut guard = guard;
        let ready_session_id = session_id(&sessions, &guard.caller, &key).await;
        yield named_frame(None, "ready", &json!({"conversationId": key, "sessionId": ready_session_id}));
        let mut error_code = None;
        while let Some(item) = run.next().await {
            match item {
                RunItem::Event(event) => {
                    match &event.kind {
                        EventKind::Error { code, .. } => error_code = Some(code.clone()),
                        EventKind::Aborted => error_code = Some("aborted".to_string()),
                        _ => {}
                    }
                    if let Some((name, data)) = v1_event(&event.kind) {
                        let id = (!event.kind.is_note()).then_some(event.seq);
                        yield named_frame(id, name, &data);
                    }
                }
                RunItem::Outcome(outcome) => {
                    guard.armed = false;
                    if outcome.ok {
                        let mut done = json!({
                            "conversationId": key,
                            "sessionId": session_id(&sessions, &guard.caller, &key).await,
                            "assistantText": outcome.response,
                        });
                        if let Some(adapter_key) = &adapter_key {
                            done["adapterKey"] = json!(adapter_key);
                        }
                        yield named_frame(None, "done", &done);
                    } else {
                        let code = error_code.take().unwrap_or_else(|| "failed".into());
                        let error = outcome.error.unwrap_or_else(|| "Run failed".into());
                        yield named_frame(None, "error", &json!({"error": error, "code": code}));
                    }
                }
                RunItem::Stopped => {
                    guard.armed = false;
                    let error = GatewayError::shutting_down();
                    yield named_frame(None, "error", &json!({"error": error.message, "code": "unavailable"}));
                }
            }
        }
    })
}

/// The v1 name and payload of a session event, for the events a v1 stream carries.
fn v1_event(kind: &EventKind) -> Option<(&'static str, Value)> {
    Some(match kind {
        EventKind::AgentStart { message_id } => ("agent_start", json!({"messageId": message_id})),
        EventKind::Token { delta, .. } => ("assistant_text_delta", json!({"delta": delta})),
        EventKind::Thinking { delta, .. } => ("assistant_thinking_delta", json!({"delta": delta})),
        EventKind::ToolStart { tool_call_id, tool_name, args } => {
            ("tool_start", json!({"toolCallId": tool_call_id, "toolName": tool_name, "args": args}))
        }
        EventKind::ToolUpdate { tool_call_id, tool_name, partial_result } => (
            "tool_update",
            json!({"toolCallId": tool_call_id, "toolName": tool_name, "partialResult": partial_result}),
        ),
        EventKind::ToolComplete { tool_call_id, tool_name, result, is_error } => (
            "tool_end",
            json!({"toolCallId": tool_call_id, "toolName": tool_name, "result": result, "isError": is_error}),
        ),
        EventKind::RetryStart { attempt, max_attempts, delay_ms, error } => (
            "retry_start",
            json!({"attempt": attempt, "maxAttempts": max_attempts, "delayMs": delay_ms, "error": error}),
        ),
        EventKind::RetryEnd { attempt, success } => {
            ("retry_end", json!({"attempt": attempt, "success": success}))
        }
        EventKind::CompactionStart { reason } => ("compaction_start", json!({"reason": reason})),
        EventKind::CompactionEnd { summary_tokens } => {
            ("compaction_end", json!({"summaryTokens": summary_tokens}))
        }
        EventKind::AgentEnd { usage, .. } => ("agent_end", json!({"usage": usage})),
        EventKind::Lagged { missed } => ("lagged", json!({"missed": missed})),
        _ => return None,
    })
}
