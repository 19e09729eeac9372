//! `POST /sessions/:key/chat`: the Vercel AI SDK UI message stream (GATEWAY.md §5.3), so a
//! `useChat` front end can talk to a session directly. The caller's message is queued like any
//! other; the stream carries only the chunks of *its* run, mapped from session events, and
//! ends with `data: [DONE]`. A disconnect stops the stream, never the run.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use serde_json::{Value, json};

use super::extract::{JsonBody, KeyPath, PathParams, decode_images, streaming_behavior, user_text};
use super::rest::idempotency_key;
use super::sse::{resume_point, stream_response};
use crate::agent::tools::result_text;
use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::EventKind;
use crate::domain::{Image, SendRequest};
use crate::error::GatewayError;
use crate::session::stream::{RunItem, RunStream};

pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    headers: HeaderMap,
    version: Version,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, GatewayError> {
    let text =
        user_text(&body).ok_or_else(|| GatewayError::invalid("Missing user message text"))?;
    let mut images = decode_images(match body.get("images") {
        Some(images) => Some(serde_json::from_value(images.clone()).map_err(|_| {
            GatewayError::invalid("images must be an array of {type, data, mimeType}")
        })?),
        None => None,
    })?;
    images.extend(file_part_images(&body)?);
    let behavior = streaming_behavior(body.get("streamingBehavior").and_then(Value::as_str))?;
    let from_body = body.get("idempotencyKey").and_then(Value::as_str).map(str::to_string);
    let request = SendRequest {
        source: crate::domain::Source::Vercel,
        session_key: key,
        text,
        images,
        behavior,
        idempotency_key: idempotency_key(from_body, &headers),
        caller,
    };
    // Errors (a full queue: 429) are answered before any stream starts.
    let (accepted, run) = state.chat.send_stream(request).await?;
    let body = ui_stream(accepted.message_id, run);
    Ok(ui_response(body, &state, version))
}

/// `GET /sessions/:key/chat/:id/stream`: the AI SDK's resume route (`useChat({resume: true})`
/// asks `${api}/${chatId}/stream` after a reload). `:id` may name a run (a message id);
/// otherwise the session's running run is picked up. With `Last-Event-ID` (our chunks carry
/// `id: <seq>`) only what followed it is sent; without, the run from its start. 204 when
/// there is nothing to resume.
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(params): PathParams,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    version: Version,
) -> Result<Response, GatewayError> {
    let key = params.get("key").cloned().unwrap_or_default();
    let id = params.get("id").cloned().unwrap_or_default();
    let after = resume_point(&headers, &query)?;
    let resumed = match state.sessions.resume_run(&caller, &key, Some(&id), after).await? {
        Some(resumed) => Some(resumed),
        None => state.sessions.resume_run(&caller, &key, None, after).await?,
    };
    let Some((message_id, run)) = resumed else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    Ok(ui_response(ui_stream(message_id, run), &state, version))
}

fn ui_response(
    body: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    state: &AppState,
    version: Version,
) -> Response {
    let mut response = stream_response(body, state.config.startup().http.sse_heartbeat, version);
    response.headers_mut().insert("x-vercel-ai-ui-message-stream", HeaderValue::from_static("v1"));
    response
}

/// `start`, then the run's chunks, then `data: [DONE]`. The last chunk made from a logged
/// event carries `id: <seq>`, so a client can resume after it.
fn ui_stream(message_id: String, run: RunStream) -> impl futures_util::Stream<Item = Bytes> {
    let start = frame(None, &json!({"type": "start", "messageId": message_id}));
    let mut chunks = Chunks::default();
    futures_util::stream::once(async move { start }).chain(run.flat_map(move |item| {
        let seq = match &item {
            RunItem::Event(event) if !event.kind.is_note() => Some(event.seq),
            _ => None,
        };
        let mapped = chunks.map(item);
        let count = mapped.len();
        futures_util::stream::iter(mapped.into_iter().enumerate().map(move |(i, chunk)| {
            let id = seq.filter(|_| i + 1 == count);
            match chunk {
                Chunk::Json(value) => frame(id, &value),
                Chunk::Done => crate::domain::event::sse_frame(None, None, "[DONE]"),
            }
        }))
    }))
}

fn frame(id: Option<u64>, value: &Value) -> Bytes {
    crate::domain::event::sse_frame(id, None, &value.to_string())
}

/// Images of the newest user message's `file` parts (`useChat` attachments), as data URLs.
fn file_part_images(body: &Value) -> Result<Vec<Image>, GatewayError> {
    use base64::Engine;
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let Some(user) = messages.iter().rev().find(|m| m["role"] == "user") else {
        return Ok(Vec::new());
    };
    let parts = user.get("parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    parts
        .iter()
        .filter(|part| part["type"] == "file")
        .map(|part| {
            let url = part["url"].as_str().unwrap_or_default();
            let invalid =
                || GatewayError::invalid("File parts must be base64 data: URLs of images");
            let (meta, data) =
                url.strip_prefix("data:").and_then(|u| u.split_once(',')).ok_or_else(invalid)?;
            let mime_type = meta.strip_suffix(";base64").ok_or_else(invalid)?;
            let data =
                base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| invalid())?;
            Ok(Image { data, mime_type: mime_type.to_string() })
        })
        .collect()
}

enum Chunk {
    Json(Value),
    Done,
}

/// Maps one run's items to UI message chunks, keeping track of the open text and reasoning
/// blocks (ids `text_<contentIndex>`, `reasoning_<contentIndex>`) and of whether the stream
/// already ended with `finish`, `error` or `abort`.
#[derive(Default)]
struct Chunks {
    open: Vec<(bool, u32)>,
    ended: bool,
    /// Some text went out: a repeat of a finished message (idempotency key) has none, and
    /// gets the stored reply as one text block.
    texted: bool,
}

impl Chunks {
    fn block_id(reasoning: bool, index: u32) -> String {
        format!("{}_{index}", if reasoning { "reasoning" } else { "text" })
    }

    fn delta(&mut self, out: &mut Vec<Chunk>, reasoning: bool, index: u32, delta: &str) {
        self.texted |= !reasoning;
        let id = Self::block_id(reasoning, index);
        let kind = if reasoning { "reasoning" } else { "text" };
        if !self.open.contains(&(reasoning, index)) {
            self.open.push((reasoning, index));
            out.push(Chunk::Json(json!({"type": format!("{kind}-start"), "id": id})));
        }
        out.push(Chunk::Json(json!({"type": format!("{kind}-delta"), "id": id, "delta": delta})));
    }

    fn close_blocks(&mut self, out: &mut Vec<Chunk>) {
        for (reasoning, index) in self.open.drain(..) {
            let kind = if reasoning { "reasoning-end" } else { "text-end" };
            out.push(Chunk::Json(json!({"type": kind, "id": Self::block_id(reasoning, index)})));
        }
    }

    fn end(&mut self, out: &mut Vec<Chunk>, chunk: Value) {
        self.close_blocks(out);
        if !self.ended {
            self.ended = true;
            out.push(Chunk::Json(chunk));
        }
    }

    fn map(&mut self, item: RunItem) -> Vec<Chunk> {
        let mut out = Vec::new();
        let event = match item {
            RunItem::Event(event) => event,
            RunItem::Outcome(outcome) => {
                if outcome.ok && !self.texted && !self.ended && !outcome.response.is_empty() {
                    out.push(Chunk::Json(json!({"type": "start-step"})));
                    self.delta(&mut out, false, 0, &outcome.response);
                    self.close_blocks(&mut out);
                    out.push(Chunk::Json(json!({"type": "finish-step"})));
                }
                let last = match outcome.ok {
                    true => json!({"type": "finish", "finishReason": "stop"}),
                    false => {
                        json!({"type": "error", "errorText": outcome.error.unwrap_or_default()})
                    }
                };
                self.end(&mut out, last);
                out.push(Chunk::Done);
                return out;
            }
            RunItem::Stopped => {
                let message = GatewayError::shutting_down().message;
                self.end(&mut out, json!({"type": "error", "errorText": message}));
                out.push(Chunk::Done);
                return out;
            }
        };
        match &event.kind {
            EventKind::TurnStart => out.push(Chunk::Json(json!({"type": "start-step"}))),
            EventKind::TurnEnd => {
                self.close_blocks(&mut out);
                out.push(Chunk::Json(json!({"type": "finish-step"})));
            }
            EventKind::Token { delta, content_index } => {
                self.delta(&mut out, false, *content_index, delta)
            }
            EventKind::Thinking { delta, content_index } => {
                self.delta(&mut out, true, *content_index, delta)
            }
            EventKind::MessageComplete { .. } => self.close_blocks(&mut out),
            EventKind::ToolCallStart { tool_call_id, tool_name } => out.push(Chunk::Json(
                json!({"type": "tool-input-start", "toolCallId": tool_call_id, "toolName": tool_name}),
            )),
            EventKind::ToolCallDelta { tool_call_id, delta } => out.push(Chunk::Json(
                json!({"type": "tool-input-delta", "toolCallId": tool_call_id, "inputTextDelta": delta}),
            )),
            EventKind::ToolCallEnd { tool_call_id, tool_name, args } => {
                out.push(Chunk::Json(json!({
                    "type": "tool-input-available",
                    "toolCallId": tool_call_id,
                    "toolName": tool_name,
                    "input": args,
                })))
            }
            EventKind::ToolUpdate { tool_call_id, partial_result, .. } => {
                out.push(Chunk::Json(json!({
                    "type": "tool-output-available",
                    "toolCallId": tool_call_id,
                    "output": partial_result,
                    "preliminary": true,
                })))
            }
            EventKind::ToolComplete { tool_call_id, result, is_error: false, .. } => {
                out.push(Chunk::Json(json!({
                    "type": "tool-output-available",
                    "toolCallId": tool_call_id,
                    "output": result,
                })))
            }
            EventKind::ToolComplete { tool_call_id, result, is_error: true, .. } => {
                out.push(Chunk::Json(json!({
                    "type": "tool-output-error",
                    "toolCallId": tool_call_id,
                    "errorText": result_text(result),
                })))
            }
            EventKind::Error { error, .. } => {
                self.end(&mut out, json!({"type": "error", "errorText": error}))
            }
            EventKind::Aborted => self.end(&mut out, json!({"type": "abort"})),
            EventKind::AgentEnd { ok: true, .. } => {
                self.end(&mut out, json!({"type": "finish", "finishReason": "stop"}))
            }
            EventKind::AgentEnd { ok: false, error, .. } => {
                let text = error.clone().unwrap_or_else(|| "Run failed".into());
                self.end(&mut out, json!({"type": "error", "errorText": text}))
            }
            // The client missed chunks; a transient data part says how many (not kept in the
            // message).
            EventKind::Lagged { missed } => out.push(Chunk::Json(
                json!({"type": "data-lagged", "data": {"missed": missed}, "transient": true}),
            )),
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Event, RunOutcome, Usage};

    fn event(kind: EventKind) -> RunItem {
        RunItem::Event(Arc::new(Event::new("k".into(), 1, kind)))
    }

    /// The chunks' JSON `type`s (and `[DONE]`) for a sequence of run items.
    fn types(items: Vec<RunItem>) -> Vec<String> {
        let mut chunks = Chunks::default();
        items
            .into_iter()
            .flat_map(|item| chunks.map(item))
            .map(|chunk| match chunk {
                Chunk::Json(value) => value["type"].as_str().unwrap().to_string(),
                Chunk::Done => "[DONE]".into(),
            })
            .collect()
    }

    fn outcome(ok: bool, response: &str) -> RunItem {
        RunItem::Outcome(RunOutcome {
            ok,
            response: response.into(),
            error: (!ok).then(|| "it failed".into()),
            session_key: "k".into(),
            message_id: "m".into(),
            status: None,
        })
    }

    fn token(delta: &str, content_index: u32) -> RunItem {
        event(EventKind::Token { delta: delta.into(), content_index })
    }

    #[test]
    fn text_reasoning_and_tools_open_and_close_their_blocks() {
        let end = EventKind::AgentEnd {
            status: crate::domain::RunStatus::Completed,
            message_id: "m".into(),
            ok: true,
            error: None,
            usage: Usage::default(),
        };
        let got = types(vec![
            event(EventKind::TurnStart),
            event(EventKind::Thinking { delta: "hm".into(), content_index: 0 }),
            token("Hel", 1),
            token("lo", 1),
            event(EventKind::ToolCallStart { tool_call_id: "c".into(), tool_name: "read".into() }),
            event(EventKind::ToolCallEnd {
                tool_call_id: "c".into(),
                tool_name: "read".into(),
                args: json!({}),
            }),
            event(EventKind::MessageComplete { text: "Hello".into() }),
            event(EventKind::ToolComplete {
                tool_call_id: "c".into(),
                tool_name: "read".into(),
                result: json!({"content": [{"type": "text", "text": "no such file"}]}),
                is_error: true,
            }),
            event(EventKind::TurnEnd),
            event(end),
            outcome(true, "Hello"),
        ]);
        assert_eq!(
            got,
            [
                "start-step",
                "reasoning-start",
                "reasoning-delta",
                "text-start",
                "text-delta",
                "text-delta",
                "tool-input-start",
                "tool-input-available",
                "reasoning-end",
                "text-end",
                "tool-output-error",
                "finish-step",
                "finish",
                "[DONE]",
            ]
        );
    }

    #[test]
    fn a_run_ends_once_whatever_follows() {
        let abort = types(vec![token("a", 0), event(EventKind::Aborted), outcome(false, "")]);
        assert_eq!(abort, ["text-start", "text-delta", "text-end", "abort", "[DONE]"]);
        let failed = types(vec![
            event(EventKind::Error { error: "boom".into(), code: "model_error".into() }),
            outcome(false, ""),
        ]);
        assert_eq!(failed, ["error", "[DONE]"], "the outcome adds no second end");
        // A repeat of a finished message (idempotency key): the stored reply as one block.
        let repeat = types(vec![outcome(true, "stored reply")]);
        assert_eq!(
            repeat,
            [
                "start-step",
                "text-start",
                "text-delta",
                "text-end",
                "finish-step",
                "finish",
                "[DONE]"
            ]
        );
        let stopped = types(vec![token("a", 0), RunItem::Stopped]);
        assert_eq!(stopped, ["text-start", "text-delta", "text-end", "error", "[DONE]"]);
    }
}
