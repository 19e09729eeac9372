//! Request extraction with the gateway's own errors: JSON bodies with a size cap, path keys,
//! and the message shapes several routes share (images, user text).

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::app::AppState;
use crate::domain::Caller;
use crate::domain::{Image, StreamingBehavior};
use crate::error::GatewayError;

/// A JSON object body, at most `http.max_body` bytes. An empty body is `{}` (as the seeds
/// read it); malformed JSON is 400 `Invalid JSON body`; a wrong field type is 400 naming it.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = GatewayError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state.config.startup().http.max_body).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A JSON body (as [`JsonBody`]) and its raw bytes, for checking a signature over them.
pub struct SignedJson<T> {
    pub raw: bytes::Bytes,
    pub value: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for SignedJson<T> {
    type Rejection = GatewayError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let raw = read_body(request, state.config.startup().http.max_body).await?;
        let value = parse_json(&raw)?;
        Ok(SignedJson { raw, value })
    }
}

/// The body, at most `limit` bytes (413 above, whether declared or streamed).
async fn read_body(request: Request, limit: usize) -> Result<bytes::Bytes, GatewayError> {
    let too_large =
        || GatewayError::too_large(format!("Request body too large (max {limit} bytes)"));
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(request.into_body(), limit).await.map_err(|e| {
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if is_limit { too_large() } else { GatewayError::invalid("Could not read request body") }
    })
}

/// A JSON object (an empty body is `{}`) as `T`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GatewayError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| GatewayError::invalid("Invalid JSON body"))?;
    if !value.is_object() {
        return Err(GatewayError::invalid("Invalid JSON body: expected an object"));
    }
    T::deserialize(value).map_err(|e| GatewayError::invalid(format!("Invalid request body: {e}")))
}

/// The path parameters of the route, percent-decoded; a segment that is not UTF-8 is a 400
/// in the gateway's JSON shape (axum's own rejection is plain text).
pub struct PathParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| GatewayError::invalid("Invalid path: segments must be UTF-8"))?;
        Ok(PathParams(params))
    }
}

/// The caller `authenticate` found; a route outside it gets the default caller, which may do
/// nothing.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or_default())
    }
}

/// The `:key` segment of `/sessions/:key/...`.
pub struct KeyPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PathParams(mut params) = PathParams::from_request_parts(parts, state).await?;
        params
            .remove("key")
            .map(KeyPath)
            .ok_or_else(|| GatewayError::invalid("Missing session key"))
    }
}

/// An image as JSON: `{type: "image", data: <base64>, mimeType}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: String,
    mime_type: String,
}

pub fn decode_images(images: Option<Vec<ImageJson>>) -> Result<Vec<Image>, GatewayError> {
    use base64::Engine;
    images
        .unwrap_or_default()
        .into_iter()
        .map(|image| {
            if image.kind.as_deref().is_some_and(|kind| kind != "image") {
                return Err(GatewayError::invalid("Invalid image: type must be \"image\""));
            }
            let data = base64::engine::general_purpose::STANDARD
                .decode(image.data.trim())
                .map_err(|_| GatewayError::invalid("Invalid image: data must be base64"))?;
            Ok(Image { data, mime_type: image.mime_type })
        })
        .collect()
}

pub fn streaming_behavior(value: Option<&str>) -> Result<StreamingBehavior, GatewayError> {
    match value {
        None | Some("followUp") => Ok(StreamingBehavior::FollowUp),
        Some("steer") => Ok(StreamingBehavior::Steer),
        Some(_) => {
            Err(GatewayError::invalid("streamingBehavior must be \"steer\" or \"followUp\""))
        }
    }
}

/// The user text of a `{text}`, `{prompt}` or `useChat` `{messages}` body: `text`, else
/// `prompt`, else the newest `role:"user"` message (its first text part, else a string
/// `content`).
pub fn user_text(body: &Value) -> Option<String> {
    let non_empty = |v: &Value| v.as_str().filter(|s| !s.trim().is_empty()).map(str::to_string);
    if let Some(text) = body.get("text").and_then(non_empty) {
        return Some(text);
    }
    if let Some(text) = body.get("prompt").and_then(non_empty) {
        return Some(text);
    }
    let messages = body.get("messages")?.as_array()?;
    let user =
        messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    if let Some(parts) = user.get("parts").and_then(Value::as_array) {
        let text = parts
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .and_then(|p| p.get("text"))
            .and_then(non_empty);
        if text.is_some() {
            return text;
        }
    }
    user.get("content").and_then(non_empty)
}

/// A positive integer query parameter, or 400 with `message`.
pub fn positive(
    query: &HashMap<String, String>,
    name: &str,
    message: &str,
) -> Result<Option<usize>, GatewayError> {
    query
        .get(name)
        .map(|raw| {
            raw.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| GatewayError::invalid(message))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_text_sources() {
        assert_eq!(user_text(&json!({"text": "a", "prompt": "b"})).as_deref(), Some("a"));
        assert_eq!(user_text(&json!({"prompt": "b"})).as_deref(), Some("b"));
        let chat = json!({"messages": [
            {"role": "user", "parts": [{"type": "text", "text": "old"}]},
            {"role": "assistant", "parts": [{"type": "text", "text": "x"}]},
            {"role": "user", "parts": [{"type": "file"}, {"type": "text", "text": "new"}]}
        ]});
        assert_eq!(user_text(&chat).as_deref(), Some("new"));
        assert_eq!(
            user_text(&json!({"messages": [{"role": "user", "content": "c"}]})).as_deref(),
            Some("c")
        );
        assert_eq!(user_text(&json!({"text": "  "})), None);
        assert_eq!(user_text(&json!({"messages": "nope"})), None);
    }
}
