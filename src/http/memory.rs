//! `/memory/*` (GATEWAY.md §5.1, §7) onto the memory API, with the seed's shapes and messages:
//! `{memory}`, `{memories}`, `{query, results}`, `{ok, memory}`, `{ok, forgotten}`,
//! `{ok, memoryRows, episodeRows}`. `sessionKey` (query or body) picks that session's
//! namespace.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::extract::JsonBody;
use crate::app::AppState;
use crate::domain::{Caller, MemorySource};
use crate::error::GatewayError;
use crate::memory::Remember;

type Answer = Result<Json<Value>, GatewayError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/memory/status", get(status))
        .route("/memory/core", get(core))
        .route("/memory/search", post(search))
        .route("/memory/remember", post(remember))
        .route("/memory/forget", post(forget))
        .route("/memory/rebuild", post(rebuild))
}

/// An optional string field; another JSON type is a 400 naming the field.
fn text<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GatewayError::invalid(format!("{name} must be a string"))),
    }
}

/// An optional integer field (fractions are floored, as the seed does).
fn integer(body: &Value, name: &str) -> Result<Option<i64>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => n
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                .map(|f| Some(f.floor() as i64))
                .ok_or_else(|| GatewayError::invalid(format!("{name} is out of range"))),
        },
        Some(_) => Err(GatewayError::invalid(format!("{name} must be a number"))),
    }
}

async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let memory = state.memory.status(&caller, query.get("sessionKey").map(String::as_str)).await?;
    Ok(Json(json!({ "memory": memory })))
}

async fn core(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let memories = state.memory.core(&caller, query.get("sessionKey").map(String::as_str)).await?;
    Ok(Json(json!({ "memories": memories })))
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let query = text(&body, "query")?.unwrap_or_default();
    let limit = integer(&body, "limit")?.map(|l| l.max(1) as usize);
    let results = state.memory.search(&caller, text(&body, "sessionKey")?, query, limit).await?;
    Ok(Json(json!({ "query": query, "results": results })))
}

async fn remember(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let request = Remember {
        content: text(&body, "content")?.unwrap_or_default().to_string(),
        bucket: text(&body, "bucket")?.map(str::to_string),
        kind: text(&body, "kind")?.map(str::to_string),
        key: text(&body, "key")?.map(str::to_string),
        source: MemorySource::Manual,
    };
    let memory = state.memory.remember(&caller, text(&body, "sessionKey")?, request).await?;
    Ok(Json(json!({ "ok": true, "memory": memory })))
}

async fn forget(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let (id, key) = (integer(&body, "id")?, text(&body, "key")?);
    let forgotten = state.memory.forget(&caller, text(&body, "sessionKey")?, id, key).await?;
    Ok(Json(json!({ "ok": true, "forgotten": forgotten })))
}

async fn rebuild(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    let (memory_rows, episode_rows) =
        state.memory.rebuild(&caller, text(&body, "sessionKey")?).await?;
    Ok(Json(json!({ "ok": true, "memoryRows": memory_rows, "episodeRows": episode_rows })))
}
