//! Malformed gRPC input answers INVALID_ARGUMENT and oversize input RESOURCE_EXHAUSTED
//! (GATEWAY.md §8), where tonic and tonic-web would answer INTERNAL or OUT_OF_RANGE.
//!
//! One tower layer, inside each service's `GrpcWebLayer` (so grpc-web arrives as gRPC):
//! - **The request body** goes through [`Framed`], which checks the framing as bytes pass: the
//!   flag byte, the length against the limit, a body ending inside a frame, and (for services
//!   whose every method takes one message) a body with none. A violation is the body's error,
//!   a [`Status`] with the right code, which tonic passes on unchanged; tonic-web's own body
//!   errors (bad base64, broken grpc-web frames: INTERNAL, DATA_LOSS) become INVALID_ARGUMENT.
//!   So tonic never meets a frame it would refuse with INTERNAL.
//! - **The response.** Left is protobuf that does not decode (garbage, invalid UTF-8), which
//!   tonic answers INTERNAL before any handler runs. For a one-message method tonic reads the
//!   body to its end before it calls the handler, so an INTERNAL answered while the body was
//!   *not* at its end is the decoder's, never the gateway's: it becomes INVALID_ARGUMENT. The
//!   gateway's own INTERNAL errors come after the body ended and stay INTERNAL. OUT_OF_RANGE
//!   is only ever tonic's size limit (the gateway's error table has no such code): it becomes
//!   RESOURCE_EXHAUSTED in trailers-only headers and in a stream's trailers (a reply too big).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower::{Layer, Service};

const GRPC_STATUS: &str = "grpc-status";
/// Flag byte and big-endian length before every gRPC message.
const HEADER: usize = 5;

/// How many request messages the methods of a service take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// Every method is unary or server-streaming: exactly one request message.
    One,
    /// Some method streams requests (reflection): any number of messages, none included.
    Stream,
}

/// The layer, for one service: its request shape and the largest message it accepts.
#[derive(Clone, Copy, Debug)]
pub struct MalformedLayer {
    requests: Requests,
    max_message: usize,
}

impl MalformedLayer {
    pub fn new(requests: Requests, max_message: usize) -> Self {
        Self { requests, max_message }
    }
}

impl<S> Layer<S> for MalformedLayer {
    type Service = Malformed<S>;

    fn layer(&self, inner: S) -> Malformed<S> {
        Malformed { inner, layer: *self }
    }
}

#[derive(Clone)]
pub struct Malformed<S> {
    inner: S,
    layer: MalformedLayer,
}

impl<S: NamedService> NamedService for Malformed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Malformed<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // tonic decompresses a flagged frame only when the request names an encoding.
        let encoded =
            request.headers().get("grpc-encoding").is_some_and(|v| v.as_bytes() != b"identity");
        let ended = Arc::new(AtomicBool::new(false));
        let one = self.layer.requests == Requests::One;
        let request = request.map(|body| {
            Body::new(Framed {
                inner: body,
                max: self.layer.max_message,
                encoded,
                one,
                header: Vec::with_capacity(HEADER),
                left: 0,
                messages: 0,
                ended: ended.clone(),
                done: false,
            })
        });
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            let before_handler = one && !ended.load(Ordering::Acquire);
            remap(response.headers_mut(), before_handler);
            Ok(response.map(|body| Body::new(Trailers(body))))
        })
    }
}

/// The code in `grpc-status`, if any.
fn code(headers: &HeaderMap) -> Option<Code> {
    headers.get(GRPC_STATUS).map(|v| Code::from_bytes(v.as_bytes()))
}

/// Rewrites tonic's codes in a header map (trailers-only headers, or trailers).
/// `before_handler`: the answer came while a one-message request was still being read.
fn remap(headers: &mut HeaderMap, before_handler: bool) {
    let to = match code(headers) {
        Some(Code::OutOfRange) => Code::ResourceExhausted,
        Some(Code::Internal) if before_handler => Code::InvalidArgument,
        _ => return,
    };
    headers.insert(GRPC_STATUS, HeaderValue::from(to as i32));
}

/// A request body whose gRPC framing is checked on the way through.
struct Framed {
    inner: Body,
    max: usize,
    /// The request names a `grpc-encoding`, so a compressed flag is allowed.
    encoded: bool,
    /// The method takes exactly one message.
    one: bool,
    /// Bytes of the current frame header read so far.
    header: Vec<u8>,
    /// Bytes of the current message still to come.
    left: usize,
    messages: usize,
    /// Set once the body reached its end with whole frames.
    ended: Arc<AtomicBool>,
    /// The end or a violation was reported: nothing more is read.
    done: bool,
}

impl Framed {
    /// Walks the frames in `data`; an error names the first violation.
    fn check(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.left > 0 {
                let take = self.left.min(data.len());
                self.left -= take;
                data = &data[take..];
                continue;
            }
            let take = (HEADER - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < HEADER {
                continue;
            }
            match self.header[0] {
                0 => {}
                1 if self.encoded => {}
                1 => {
                    return Err(Status::invalid_argument(
                        "malformed gRPC message: compressed flag set without a grpc-encoding",
                    ));
                }
                flag => {
                    return Err(Status::invalid_argument(format!(
                        "malformed gRPC message: flag byte {flag}"
                    )));
                }
            }
            let length = u32::from_be_bytes(self.header[1..].try_into().expect("4 bytes")) as usize;
            if length > self.max {
                return Err(Status::resource_exhausted(format!(
                    "gRPC message too large: {length} bytes (the limit is {} bytes)",
                    self.max
                )));
            }
            self.header.clear();
            self.left = length;
            self.messages += 1;
        }
        Ok(())
    }

    /// At the end of the body: no frame cut short, and a message where one is required.
    fn finish(&self) -> Result<(), Status> {
        if !self.header.is_empty() || self.left > 0 {
            return Err(Status::invalid_argument(
                "malformed gRPC request: the body ends inside a message",
            ));
        }
        if self.one && self.messages == 0 {
            return Err(Status::invalid_argument("malformed gRPC request: no request message"));
        }
        Ok(())
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl HttpBody for Framed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(status) = self.check(data) {
                        return self.fail(status);
                    }
                } else if frame.is_trailers() {
                    // Trailers end a request body as surely as its end does.
                    if let Err(status) = self.finish() {
                        return self.fail(status);
                    }
                    self.ended.store(true, Ordering::Release);
                    self.done = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // tonic-web's decoding errors (INTERNAL, DATA_LOSS) and anything unreadable are the
            // client's malformed input; a cancelled body stays cancelled (tonic reads that as
            // the client going away).
            Some(Err(status)) => match status.code() {
                Code::Internal | Code::DataLoss | Code::Unknown => {
                    let message = format!("malformed gRPC request: {}", status.message());
                    self.fail(Status::invalid_argument(message))
                }
                _ => self.fail(status),
            },
            None => {
                if let Err(status) = self.finish() {
                    return self.fail(status);
                }
                self.ended.store(true, Ordering::Release);
                self.done = true;
                Poll::Ready(None)
            }
        }
    }

    // Never the inner body's answer: an empty body must still be polled to be checked (tonic
    // would skip a body that says it has ended).
    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// A response body whose trailers get the same rewrite as trailers-only headers.
struct Trailers(Body);

impl HttpBody for Trailers {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.0).poll_frame(cx));
        Poll::Ready(frame.map(|frame| {
            frame.map(|frame| match frame.into_trailers() {
                Ok(mut trailers) => {
                    // A stream's handler has run: only the size limit is rewritten here.
                    remap(&mut trailers, false);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// Through the layer to a service that reads the body to its end, as tonic's unary path
    /// does, then answers `code` trailers-only.
    async fn answer(code: Code, body: Vec<u8>) -> (Code, String) {
        let handler = tower::service_fn(move |request: http::Request<Body>| -> BoxFuture<_> {
            Box::pin(async move {
                let status = match request.into_body().collect().await {
                    Ok(_) => Status::new(code, "handlers-own"),
                    Err(status) => status,
                };
                Ok::<_, Infallible>(status.into_http())
            })
        });
        let service = MalformedLayer::new(Requests::One, 16).layer(handler);
        let request = http::Request::new(Body::new(http_body_util::Full::new(Bytes::from(body))));
        let response = service.oneshot(request).await.unwrap();
        let headers = response.headers();
        let message = headers.get("grpc-message").map(|v| v.to_str().unwrap().to_string());
        (super::code(headers).unwrap(), message.unwrap_or_default())
    }

    #[tokio::test]
    async fn framing_violations_get_their_own_codes() {
        let good = vec![0, 0, 0, 0, 2, 8, 1];
        assert_eq!(answer(Code::Ok, good.clone()).await.0, Code::Ok);
        for (body, expected) in [
            (vec![1, 0, 0, 0, 1, 0], Code::InvalidArgument),
            (vec![7, 0, 0, 0, 1, 0], Code::InvalidArgument),
            (vec![0, 0, 0, 0, 9, 1, 2], Code::InvalidArgument),
            (vec![0, 0], Code::InvalidArgument),
            (vec![], Code::InvalidArgument),
            (vec![0, 0, 0, 0, 17], Code::ResourceExhausted),
            (vec![0, 0xff, 0xff, 0xff, 0xff], Code::ResourceExhausted),
        ] {
            assert_eq!(answer(Code::Ok, body.clone()).await.0, expected, "{body:?}");
        }
    }

    #[tokio::test]
    async fn the_gateways_own_internal_errors_stay_internal() {
        // Answered after the body was read to its end: the handler's, kept as it is.
        let (code, message) = answer(Code::Internal, vec![0, 0, 0, 0, 0]).await;
        assert_eq!((code, message.as_str()), (Code::Internal, "handlers-own"));
        assert_eq!(answer(Code::OutOfRange, vec![0, 0, 0, 0, 0]).await.0, Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn internal_before_the_body_ended_is_a_decode_failure() {
        // Like tonic when prost refuses the first message: it answers without reading on.
        let decoder = tower::service_fn(|request: http::Request<Body>| -> BoxFuture<'static, _> {
            Box::pin(async move {
                let mut body = request.into_body();
                let _first = body.frame().await;
                Ok::<_, Infallible>(Status::internal("failed to decode").into_http())
            })
        });
        let service = MalformedLayer::new(Requests::One, 16).layer(decoder);
        let body = Body::new(http_body_util::Full::new(Bytes::from_static(&[0, 0, 0, 0, 1, 0xff])));
        let response = service.oneshot(http::Request::new(body)).await.unwrap();
        assert_eq!(code(response.headers()), Some(Code::InvalidArgument));
    }

    #[tokio::test]
    async fn out_of_range_in_trailers_becomes_resource_exhausted() {
        let streams = tower::service_fn(|_: http::Request<Body>| -> BoxFuture<'static, _> {
            Box::pin(async move {
                let mut trailers = HeaderMap::new();
                trailers.insert(GRPC_STATUS, HeaderValue::from(Code::OutOfRange as i32));
                let frames = vec![
                    Ok::<_, Status>(Frame::data(Bytes::from_static(b"x"))),
                    Ok(Frame::trailers(trailers)),
                ];
                let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                Ok::<_, Infallible>(http::Response::new(Body::new(body)))
            })
        });
        let service = MalformedLayer::new(Requests::Stream, 16).layer(streams);
        let response = service.oneshot(http::Request::new(Body::empty())).await.unwrap();
        let trailers = response.into_body().collect().await.unwrap().trailers().cloned();
        assert_eq!(code(&trailers.unwrap()), Some(Code::ResourceExhausted));
    }
}
