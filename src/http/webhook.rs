//! `POST <webhook.base_path>/<route>`: chat adapters posting messages. With `webhook.secret`
//! set, the `x-pi-webhook-secret` header or an HMAC signature of the body (with a timestamp)
//! replaces the bearer token; without one, the webhook needs the token like every other route
//! (the seed left it open). `async: true` answers 202 once the message is stored.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::extract::{ImageJson, PathParams, SignedJson, decode_images};
use super::rest::{idempotency_key, send_and_wait};
use crate::app::AppState;
use crate::auth::{Operation, secrets_match, webhook_caller};
use crate::domain::Caller;
use crate::domain::{SendRequest, StreamingBehavior, now_ms};
use crate::error::{ErrorCode, GatewayError};

pub fn router(state: &AppState) -> Router<AppState> {
    let base = &state.config.startup().webhook.base_path;
    Router::new().route(base, post(receive)).route(&format!("{base}/{{*route}}"), post(receive))
}

#[derive(Deserialize, utoipa::ToSchema)]
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
    SignedJson { raw, value: body }: SignedJson<WebhookBody>,
) -> Result<Response, GatewayError> {
    let route = route_of(&params).to_string();
    let answer = handle(&state, &route, headers, &raw, body).await;
    let error = answer.as_ref().err().map(|e| e.message.clone());
    state.admin.channels.webhook(&state.config.startup().webhook.base_path, &route, error);
    answer
}

fn route_of(params: &std::collections::HashMap<String, String>) -> &str {
    params.get("route").map(String::as_str).filter(|r| !r.is_empty()).unwrap_or("default")
}

fn unauthenticated(message: &str) -> GatewayError {
    GatewayError::new(ErrorCode::Unauthenticated, message)
}

/// Who posts: with a webhook secret, the adapter that knows it (the seed's header, or a
/// signature of the body, GATEWAY.md §10); without one, a token with the chat scope.
fn authenticate(state: &AppState, headers: &HeaderMap, raw: &[u8]) -> Result<Caller, GatewayError> {
    let secret = &state.config.startup().webhook.secret;
    let signed = headers.get(SIGNATURE).is_some() || headers.get(TIMESTAMP).is_some();
    if secret.is_empty() {
        if signed {
            return Err(GatewayError::invalid(
                "x-gateway-signature cannot be checked: webhook.secret is not set",
            ));
        }
        let authorization = headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        let caller = state.auth.check(authorization)?;
        Operation::Chat.authorize(&caller)?;
        return Ok(caller);
    }
    if signed {
        verify_signature(secret.as_bytes(), headers, raw, now_ms() / 1000)?;
    } else {
        let presented = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !secrets_match(presented, secret.as_bytes()) {
            return Err(unauthenticated("Invalid webhook secret"));
        }
    }
    // The secret authenticates the adapter.
    Ok(webhook_caller())
}

const SECRET_HEADER: &str = "x-pi-webhook-secret";
const SIGNATURE: &str = "x-gateway-signature";
const TIMESTAMP: &str = "x-gateway-timestamp";
/// How far a signed request's timestamp may be from now, either way.
const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// `x-gateway-signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with
/// `x-gateway-timestamp: <unix seconds>` no more than 5 minutes away.
fn verify_signature(
    secret: &[u8],
    headers: &HeaderMap,
    raw: &[u8],
    now: i64,
) -> Result<(), GatewayError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let timestamp = header(TIMESTAMP)
        .ok_or_else(|| unauthenticated("Missing x-gateway-timestamp"))?
        .to_string();
    let at: i64 = timestamp.parse().map_err(|_| unauthenticated("Invalid x-gateway-timestamp"))?;
    if (now - at).abs() > MAX_SKEW_SECONDS {
        return Err(unauthenticated("Webhook timestamp is more than 5 minutes away"));
    }
    let signature = header(SIGNATURE)
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(decode_hex)
        .ok_or_else(|| unauthenticated("Invalid webhook signature"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(raw);
    mac.verify_slice(&signature).map_err(|_| unauthenticated("Invalid webhook signature"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

async fn handle(
    state: &AppState,
    route: &str,
    headers: HeaderMap,
    raw: &[u8],
    body: WebhookBody,
) -> Result<Response, GatewayError> {
    let caller = authenticate(state, &headers, raw)?;
    if body.metadata.as_ref().is_some_and(|m| !m.is_object() && !m.is_null()) {
        return Err(GatewayError::invalid("Invalid request body: metadata must be an object"));
    }
    let session_key = body.session_key.unwrap_or_else(|| {
        format!("webhook:{route}:{}", body.sender.as_deref().unwrap_or("default"))
    });
    let request = SendRequest {
        source: crate::domain::Source::Webhook,
        session_key,
        text: body.text.unwrap_or_default(),
        images: decode_images(body.images)?,
        behavior: StreamingBehavior::FollowUp,
        idempotency_key: idempotency_key(body.idempotency_key, &headers),
        caller,
    };
    if body.run_async == Some(true) {
        // Answered once the message is stored; the run goes on without the caller.
        let (accepted, _) = state.chat.send(request).await?;
        let answer = json!({
            "ok": true,
            "accepted": true,
            "sessionKey": accepted.session_key,
            "messageId": accepted.message_id,
        });
        return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
    }
    send_and_wait(state, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &[u8], timestamp: &str, body: &[u8]) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, format!("sha256={hex}").parse().unwrap());
        headers.insert(TIMESTAMP, timestamp.parse().unwrap());
        headers
    }

    #[test]
    fn signatures() {
        let body = br#"{"text":"hi"}"#;
        let headers = signed(b"s3cret", "1000", body);
        assert!(verify_signature(b"s3cret", &headers, body, 1000).is_ok());
        assert!(verify_signature(b"s3cret", &headers, body, 1299).is_ok());
        let stale = verify_signature(b"s3cret", &headers, body, 1301).unwrap_err();
        assert_eq!(stale.message, "Webhook timestamp is more than 5 minutes away");
        let wrong = verify_signature(b"other", &headers, body, 1000).unwrap_err();
        assert_eq!(wrong.message, "Invalid webhook signature");
        assert!(verify_signature(b"s3cret", &headers, br#"{"text":"ho"}"#, 1000).is_err());
        assert_eq!(decode_hex("0aff"), Some(vec![10, 255]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
    }
}
