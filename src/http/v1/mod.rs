//! The v1 conversation API of seed 003 (GATEWAY.md §5.2): conversations are sessions under
//! another name (`conversationId` = session key). This file has the conversation routes;
//! `chat` the chat routes (JSON, and the adapter routes that build the id from
//! `source:workspaceId:channelId:threadId`), `stream` their named-event SSE form.

mod chat;
mod stream;

pub use chat::{adapter_chat, adapter_chat_stream, chat, chat_stream};
pub use stream::resume_stream;

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::{CreateRequest, Snapshot};
use crate::error::GatewayError;
use crate::http::extract::{JsonBody, PathParams};
use crate::session::validate_key;

pub(super) type Answer = Result<Response, GatewayError>;

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
    let limit = super::extract::positive(&query, "limit", "limit must be a positive integer")?;
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
