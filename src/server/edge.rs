//! The request side of the HTTP edge, as one middleware just inside the request log:
//! - **Body timeout** (`http.body_timeout`): while a handler waits for request body bytes and
//!   has not answered yet, the next bytes must come within the timeout (a `Content-Length`
//!   larger than what is sent would otherwise be waited on forever). HTTP then answers 408 in
//!   the JSON shape; gRPC gets INVALID_ARGUMENT (the body error reaches tonic, and the
//!   malformed-input layer names it). Once a response has started the body is never timed:
//!   a bidirectional stream may wait as long as it likes, and SSE, gRPC server streams and
//!   websockets have no request body to wait for.
//! - **`Connection: close` on early answers.** A response to an HTTP/1.x request whose body
//!   was not read to its end (401 before the body, 413 at the limit) is the last one on its
//!   connection: hyper stops reading and closes after it, but it does not say so in the
//!   response, so a pooled client would send its next request into a closed connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, Version};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::GatewayError;

/// What a request's body and its middleware know of each other.
#[derive(Default)]
struct Watch {
    /// The body was read to its end.
    ended: AtomicBool,
    /// The handler answered: the body is no longer timed.
    responded: AtomicBool,
    timed_out: AtomicBool,
}

/// The middleware (state: `http.body_timeout`).
pub async fn requests(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    // GETs and the like: nothing to wait for, nothing left unread.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let http1 = request.version() <= Version::HTTP_11;
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let watch = Arc::new(Watch::default());
    let request =
        request.map(|inner| Body::new(Timed { inner, timeout, sleep: None, watch: watch.clone() }));
    let mut response = next.run(request).await;
    watch.responded.store(true, Ordering::Release);
    if watch.timed_out.load(Ordering::Acquire) && !grpc {
        let waited = humantime::format_duration(timeout);
        response = GatewayError::invalid(format!(
            "Timed out waiting for the request body (http.body_timeout is {waited})"
        ))
        .into_response_with(StatusCode::REQUEST_TIMEOUT);
    }
    if http1 && !watch.ended.load(Ordering::Acquire) {
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The error a timed-out body ends with.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waited = humantime::format_duration(self.0);
        write!(f, "timed out waiting for the request body (http.body_timeout is {waited})")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body whose every wait for bytes is bounded until the handler answers.
struct Timed {
    inner: Body,
    timeout: Duration,
    /// Armed while the reader waits; reset by every frame.
    sleep: Option<Pin<Box<Sleep>>>,
    watch: Arc<Watch>,
}

impl HttpBody for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.sleep = None;
                let end = match &frame {
                    None => true,
                    Some(Ok(frame)) => frame.is_trailers() || self.inner.is_end_stream(),
                    Some(Err(_)) => false,
                };
                if end {
                    self.watch.ended.store(true, Ordering::Release);
                }
                Poll::Ready(frame)
            }
            Poll::Pending if self.watch.responded.load(Ordering::Acquire) => {
                self.sleep = None;
                Poll::Pending
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
                self.watch.timed_out.store(true, Ordering::Release);
                Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
