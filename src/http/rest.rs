//! The seed REST routes (GATEWAY.md §5.1) onto the session manager, with the seeds' JSON shapes.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{
    ImageJson, JsonBody, KeyPath, PathParams, decode_images, streaming_behavior, user_text,
};
use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::{HistoryMessage, ModelRef, RunOutcome, SendRequest, Snapshot, ThinkingLevel};
use crate::error::{ErrorCode, GatewayError};

type Answer = Result<Response, GatewayError>;

pub async fn health(State(state): State<AppState>) -> Response {
    let ready = state.ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ok": true, "ready": ready }))).into_response()
}

pub async fn ready(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "ok": true, "ready": state.ready(), "sessions": state.sessions.live_count() }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    sessions: Vec<Snapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let limit = super::extract::positive(&query, "limit", "List limit must be a positive integer")?;
    let page = state.sessions.list(&caller, limit, query.get("cursor").map(String::as_str)).await?;
    Ok(Json(SessionList { sessions: page.items, next_cursor: page.next_cursor }).into_response())
}

pub async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
) -> Answer {
    let session = state.sessions.get(&caller, &key).await?;
    Ok(Json(SessionAnswer { session }).into_response())
}

/// `{"session": {...}}`, serialised straight from the snapshot (no `Value` in between: this
/// is the busiest read).
#[derive(Serialize, ToSchema)]
pub struct SessionAnswer {
    session: Snapshot,
}

#[derive(Deserialize, ToSchema)]
pub struct RenameBody {
    name: Option<String>,
}

pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    JsonBody(body): JsonBody<RenameBody>,
) -> Answer {
    state.sessions.rename(&caller, &key, body.name).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
) -> Answer {
    state.sessions.delete(&caller, &key).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    text: Option<String>,
    images: Option<Vec<ImageJson>>,
    idempotency_key: Option<String>,
    streaming_behavior: Option<String>,
}

/// `{ok, response, error?, sessionKey, messageId}`: 200 when the run succeeded, else 500 (the
/// seed's contract). A full queue is the seed's 500 body without a message id.
pub async fn send_and_wait(state: &AppState, request: SendRequest) -> Answer {
    let session_key = request.session_key.clone();
    let (_, outcome) = match state.chat.send(request).await {
        Ok(sent) => sent,
        Err(e) if e.code == ErrorCode::QueueFull => {
            let body = json!({ "ok": false, "response": "", "error": e.message, "sessionKey": session_key });
            return Ok((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response());
        }
        Err(e) => return Err(e),
    };
    let outcome: RunOutcome = outcome.await.map_err(|_| GatewayError::shutting_down())?;
    let status = if outcome.ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
    Ok((status, Json(outcome)).into_response())
}

pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MessageBody>,
) -> Answer {
    let request = SendRequest {
        source: crate::domain::Source::Rest,
        session_key: key,
        text: body.text.unwrap_or_default(),
        images: decode_images(body.images)?,
        behavior: streaming_behavior(body.streaming_behavior.as_deref())?,
        idempotency_key: idempotency_key(body.idempotency_key, &headers),
        caller,
    };
    send_and_wait(&state, request).await
}

/// The body's `idempotencyKey`, else the `Idempotency-Key` header.
pub fn idempotency_key(from_body: Option<String>, headers: &HeaderMap) -> Option<String> {
    from_body.or_else(|| {
        headers.get("idempotency-key").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    })
}

pub async fn abort(State(state): State<AppState>, caller: Caller, KeyPath(key): KeyPath) -> Answer {
    let aborted = state.sessions.abort(&caller, &key).await?;
    Ok(Json(json!({ "ok": aborted })).into_response())
}

pub async fn steer(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let text =
        user_text(&body).ok_or_else(|| GatewayError::invalid("Missing user message text"))?;
    match state.sessions.steer(&caller, &key, text, crate::domain::Source::Rest).await {
        Ok(accepted) => {
            Ok(Json(json!({ "ok": true, "mode": accepted.mode, "sessionKey": key }))
                .into_response())
        }
        // The seed answers a full queue on steer's fallback with 409.
        Err(e) if e.code == ErrorCode::QueueFull => Ok(e.into_response_with(StatusCode::CONFLICT)),
        Err(e) => Err(e),
    }
}

pub async fn reset(State(state): State<AppState>, caller: Caller, KeyPath(key): KeyPath) -> Answer {
    state.sessions.reset(&caller, &key).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}

pub async fn cancel_queued(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    PathParams(params): PathParams,
) -> Answer {
    let message_id = params.get("message_id").cloned().unwrap_or_default();
    let cancelled = state.sessions.cancel_queued(&caller, &key, &message_id).await?;
    Ok(Json(json!({ "ok": cancelled })).into_response())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    messages: Vec<HistoryMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let limit =
        super::extract::positive(&query, "limit", "History limit must be a positive integer")?;
    let page = state
        .sessions
        .history(&caller, &key, limit, query.get("cursor").map(String::as_str))
        .await?;
    Ok(Json(HistoryPage { messages: page.items, next_cursor: page.next_cursor }).into_response())
}

/// `{queue:[{messageId, position, textPreview, source, enqueuedAt}], processing}`.
pub async fn queue(State(state): State<AppState>, caller: Caller, KeyPath(key): KeyPath) -> Answer {
    Ok(Json(state.sessions.queue(&caller, &key).await?).into_response())
}

pub async fn session_state(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
) -> Answer {
    Ok(Json(state.sessions.state(&caller, &key).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelBody {
    provider: Option<String>,
    model_id: Option<String>,
}

pub async fn set_model(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    JsonBody(body): JsonBody<ModelBody>,
) -> Answer {
    let (Some(provider), Some(model_id)) = (body.provider, body.model_id) else {
        return Err(GatewayError::invalid("Missing provider or modelId"));
    };
    let model = state.sessions.set_model(&caller, &key, ModelRef { provider, model_id }).await?;
    Ok(Json(json!({ "ok": true, "model": model })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct ThinkingBody {
    level: Option<String>,
}

pub async fn set_thinking(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    JsonBody(body): JsonBody<ThinkingBody>,
) -> Answer {
    let text = body.level.unwrap_or_default();
    let level = ThinkingLevel::parse(&text).ok_or_else(|| ThinkingLevel::invalid(&text))?;
    let level = state.sessions.set_thinking(&caller, &key, level).await?;
    Ok(Json(json!({ "ok": true, "level": level })).into_response())
}

/// `POST /sessions/:key/commands {command, args}` → `{ok, output, data?}`.
pub async fn command(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let command = match body.get("command") {
        Some(Value::String(command)) if !command.trim().is_empty() => command.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(GatewayError::invalid("Missing command"));
        }
        Some(_) => return Err(GatewayError::invalid("command must be a string")),
    };
    let args = match body.get("args") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(args)) => args.clone(),
        Some(_) => return Err(GatewayError::invalid("args must be a string")),
    };
    let result = state.chat.execute(&caller, &key, &command, &args).await?;
    Ok(Json(result).into_response())
}

pub async fn models(State(state): State<AppState>) -> Answer {
    let (models, current) = state.sessions.models();
    Ok(Json(json!({ "models": models, "current": current })).into_response())
}

pub async fn reload(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
) -> Answer {
    state.sessions.reload(&caller, &key).await?;
    Ok(Json(json!({ "ok": true })).into_response())
}
