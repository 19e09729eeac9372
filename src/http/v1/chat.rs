//! `POST /v1/chat` and the adapter routes: validating a chat request (ids, message, images,
//! `streamingBehavior`, the adapter's id parts) and answering it as JSON once the run ends.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::Version;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::SendRequest;
use crate::error::GatewayError;
use crate::http::extract::{ImageJson, JsonBody, decode_images, streaming_behavior};
use crate::session::SessionManager;

use super::stream::chat_sse;
use super::*;

/// A validated chat request: where it goes, what it sends, and whether the caller named the
/// conversation (only then does a disconnect cancel the message).
pub(super) struct ChatCall {
    pub request: SendRequest,
    pub named: bool,
    pub adapter_key: Option<String>,
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

fn parse_chat(body: &Value, caller: Caller) -> Result<ChatCall, GatewayError> {
    let conversation = match body.get("conversationId") {
        None | Some(Value::Null) => None,
        Some(id) => Some(conversation_id(id)?),
    };
    let named = conversation.is_some();
    Ok(ChatCall { request: chat_request(body, conversation, caller)?, named, adapter_key: None })
}

/// Adapter ids: `conversationId = source:workspaceId:channelId[:threadId]`, `adapterKey =
/// conversationId[:userId]`. Segments are non-empty strings without `:` or line breaks.
fn parse_adapter_chat(body: &Value, caller: Caller) -> Result<ChatCall, GatewayError> {
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
    Ok(ChatCall {
        request: chat_request(body, Some(conversation), caller)?,
        named: true,
        adapter_key: Some(adapter_key),
    })
}

pub(super) async fn session_id(sessions: &SessionManager, caller: &Caller, key: &str) -> String {
    sessions.get(caller, key).await.map(|s| s.session_id).unwrap_or_default()
}

async fn chat_json(state: AppState, chat: ChatCall) -> Answer {
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
