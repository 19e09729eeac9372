//! The v1 chat streams as named SSE events (`ready`, `assistant_text_delta`, ..., `done` or
//! `error`), their resume route, and the cancel of the caller's own message on disconnect.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode, Version};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::{EventKind, RunStatus};
use crate::error::GatewayError;
use crate::http::extract::PathParams;
use crate::http::sse::{named_frame, resume_point, stream_response};
use crate::session::SessionManager;
use crate::session::stream::{RunItem, RunStream};

use super::chat::{ChatCall, session_id};
use super::*;

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

pub(super) async fn chat_sse(state: AppState, version: Version, chat: ChatCall) -> Answer {
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
        while let Some(item) = run.next().await {
            match item {
                RunItem::Event(event) => {
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
                        // A message that never ran, or a repeat read back from the store,
                        // has no typed end.
                        let code =
                            outcome.status.as_ref().and_then(RunStatus::code).unwrap_or("failed");
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
