//! `/config`, `/channels/status`, `/logs` and `/metrics` onto the admin API (GATEWAY.md §5.1,
//! §10).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::extract::JsonBody;
use crate::app::AppState;
use crate::error::GatewayError;

pub async fn get_config(State(state): State<AppState>) -> Json<Value> {
    Json(state.admin.config())
}

/// `{ok: true, config}`: the seed answers `{ok: true}`; the config after the patch is added.
pub async fn patch_config(
    State(state): State<AppState>,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Json<Value>, GatewayError> {
    let config = state.admin.patch_config(&patch).await?;
    Ok(Json(json!({ "ok": true, "config": config })))
}

pub async fn channels(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "channels": state.admin.channels() }))
}

pub async fn logs(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, GatewayError> {
    let limit = super::extract::positive(&query, "limit", "limit must be a positive integer")?;
    Ok(Json(json!({ "logs": state.admin.logs(limit) })))
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, GatewayError> {
    let text = state.admin.metrics().await?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(http::header::CONTENT_TYPE, content_type)], text).into_response())
}
