//! `GET /sessions/:key/events`: the session's event stream as Server-Sent Events, with `id:`
//! lines for resuming (`Last-Event-ID` or `?after=`) and `:` heartbeats.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Version, header};

use super::extract::KeyPath;
use crate::app::AppState;
use crate::domain::Caller;
use crate::error::GatewayError;
use crate::session::stream::EventStream;

const HEARTBEAT: &[u8] = b":\n\n";

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(key): KeyPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    version: Version,
) -> Result<Response, GatewayError> {
    let after = resume_point(&headers, &query)?;
    let events = state.sessions.subscribe(&caller, &key, after).await?;
    Ok(sse_response(events, state.config.startup().http.sse_heartbeat, version))
}

/// The seq a resuming client saw last: the `Last-Event-ID` header, else `?after=`.
pub fn resume_point(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Option<u64>, GatewayError> {
    Ok(match (headers.get("last-event-id"), query.get("after")) {
        (Some(value), _) => {
            Some(value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(
                || GatewayError::invalid("Invalid Last-Event-ID: expected a seq number"),
            )?)
        }
        (None, Some(value)) => Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| GatewayError::invalid("Invalid after: expected a seq number"))?,
        ),
        (None, None) => None,
    })
}

/// Frames events (each encoded once, shared by all subscribers) with heartbeats in between.
fn sse_response(events: EventStream, heartbeat: std::time::Duration, version: Version) -> Response {
    stream_response(events.map(|event| event.sse_frame()), heartbeat, version)
}

/// A `text/event-stream` response of ready-made frames, with `:` heartbeats while it is quiet.
/// Dropping the response (the client went away) drops `frames`.
pub fn stream_response(
    frames: impl Stream<Item = Bytes> + Send + 'static,
    heartbeat: std::time::Duration,
    version: Version,
) -> Response {
    let body = async_stream::stream! {
        let mut frames = std::pin::pin!(frames);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            tokio::select! {
                frame = frames.next() => match frame {
                    Some(frame) => yield Ok::<Bytes, std::convert::Infallible>(frame),
                    None => break,
                },
                _ = ticker.tick() => yield Ok(Bytes::from_static(HEARTBEAT)),
            }
        }
    };
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // Connection-specific headers are forbidden in HTTP/2.
    if version <= Version::HTTP_11 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    response
}

/// One named SSE frame: `id:` (for logged events), `event: <name>`, `data: <json>`.
pub fn named_frame(id: Option<u64>, name: &str, data: &serde_json::Value) -> Bytes {
    crate::domain::event::sse_frame(id, Some(name), &data.to_string())
}
