//! `POST <webhook.base_path>/<route>`: chat adapters posting messages. With `webhook.secret`
//! set, the `x-pi-webhook-secret` header replaces the bearer token; without one, the webhook
//! needs the token like every other route (the seed left it open).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{ImageJson, JsonBody, PathParams, decode_images};
use super::rest::{idempotency_key, send_and_wait};
use crate::app::AppState;
use crate::auth::secrets_match;
use crate::auth::{Caller, Scope};
use crate::error::GatewayError;
use crate::session::model::{SendRequest, StreamingBehavior};

pub fn router(state: &AppState) -> Router<AppState> {
    let base = &state.config.webhook.base_path;
    Router::new().route(base, post(receive)).route(&format!("{base}/{{*route}}"), post(receive))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody {
    text: Option<String>,
    session_key: Option<String>,
    sender: Option<String>,
    metadata: Option<Value>,
    images: Option<Vec<ImageJson>>,
    idempotency_key: Option<String>,
    #[serde(rename = "async")]
    run_async: Option<bool>,
}

/// Records the call on `/channels/status`, with the error it was refused with.
async fn receive(
    State(state): State<AppState>,
    PathParams(params): PathParams,
    headers: HeaderMap,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<Response, GatewayError> {
    let route = route_of(&params).to_string();
    let answer = handle(&state, &route, headers, body).await;
    let error = answer.as_ref().err().map(|e| e.message.clone());
    state.admin.channels.webhook(&state.config.webhook.base_path, &route, error);
    answer
}

fn route_of(params: &std::collections::HashMap<String, String>) -> &str {
    params.get("route").map(String::as_str).filter(|r| !r.is_empty()).unwrap_or("default")
}

async fn handle(
    state: &AppState,
    route: &str,
    headers: HeaderMap,
    body: WebhookBody,
) -> Result<Response, GatewayError> {
    let secret = &state.config.webhook.secret;
    // The secret authenticates the adapter: it may post to any session, as chat.
    let mut caller = Caller::new("webhook", &[Scope::Chat], false);
    if secret.is_empty() {
        let authorization = headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        caller = state.auth.check(authorization)?;
        caller.require(Scope::Chat)?;
    } else {
        let presented =
            headers.get("x-pi-webhook-secret").map(|v| v.as_bytes()).unwrap_or_default();
        if !secrets_match(presented, secret.as_bytes()) {
            return Err(GatewayError::new(
                crate::error::ErrorCode::Unauthenticated,
                "Invalid webhook secret",
            ));
        }
    }
    if headers.contains_key("x-gateway-signature") {
        return Err(GatewayError::unimplemented("webhook signatures (x-gateway-signature)"));
    }
    if body.run_async == Some(true) {
        return Err(GatewayError::unimplemented("asynchronous webhooks (async: true)"));
    }
    if body.metadata.as_ref().is_some_and(|m| !m.is_object() && !m.is_null()) {
        return Err(GatewayError::invalid("Invalid request body: metadata must be an object"));
    }
    let session_key = body.session_key.unwrap_or_else(|| {
        format!("webhook:{route}:{}", body.sender.as_deref().unwrap_or("default"))
    });
    let request = SendRequest {
        session_key,
        text: body.text.unwrap_or_default(),
        images: decode_images(body.images)?,
        behavior: StreamingBehavior::FollowUp,
        idempotency_key: idempotency_key(body.idempotency_key, &headers),
        caller,
    };
    send_and_wait(state, request).await
}
