//! `Sessions/Subscribe` with every event encoded once (GATEWAY.md §3): a session's event is
//! turned into protobuf bytes by its first subscriber and the same bytes go to all the others,
//! as the SSE frame does for SSE. The generated `SessionsServer` would encode each event per
//! subscriber, so [`SessionsService`] answers this one method itself, with a codec whose
//! messages are already-encoded bytes, and hands every other method to the generated server.
//! It sits inside the auth guard and the grpc-web layer like any service.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes};
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::Status;
use tonic::body::Body;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic_prost::ProstDecoder;
use tower::Service;

use super::convert;
use super::sessions::SessionsApi;
use crate::domain::Event;
use crate::proto as pb;
use crate::proto::sessions_server::SessionsServer;
use crate::session::SessionManager;

const SUBSCRIBE: &str = "/agentgateway.v1.Sessions/Subscribe";

/// The protobuf bytes of an event, encoded on first use and shared from then on.
pub fn encoded(event: &Event) -> Bytes {
    event.proto_frame(|event| Bytes::from(convert::event(event).encode_to_vec()))
}

/// The `Sessions` service: `Subscribe` served with shared bytes, the rest by the generated
/// server.
#[derive(Clone)]
pub struct SessionsService {
    generated: SessionsServer<SessionsApi>,
    sessions: SessionManager,
    max_message: usize,
}

impl SessionsService {
    pub fn new(
        generated: SessionsServer<SessionsApi>,
        sessions: SessionManager,
        max_message: usize,
    ) -> Self {
        Self { generated, sessions, max_message }
    }
}

impl NamedService for SessionsService {
    const NAME: &'static str = <SessionsServer<SessionsApi> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for SessionsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != SUBSCRIBE {
            return Box::pin(self.generated.call(request));
        }
        let subscribe = Subscribe(self.sessions.clone());
        let max = Some(self.max_message);
        Box::pin(async move {
            let mut grpc = Grpc::new(SharedBytesCodec).apply_max_message_size_config(max, max);
            Ok(grpc.server_streaming(subscribe, request).await)
        })
    }
}

type EncodedStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

struct Subscribe(SessionManager);

impl ServerStreamingService<pb::SubscribeRequest> for Subscribe {
    type Response = Bytes;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<'static, Result<tonic::Response<EncodedStream>, Status>>;

    fn call(&mut self, request: tonic::Request<pb::SubscribeRequest>) -> Self::Future {
        let sessions = self.0.clone();
        let caller = super::guard::caller(&request);
        Box::pin(async move {
            let request = request.into_inner();
            let events =
                sessions.subscribe(&caller, &request.session_key, request.after_seq).await?;
            let stream: EncodedStream = Box::pin(events.map(|event| Ok(encoded(&event))));
            Ok(tonic::Response::new(stream))
        })
    }
}

/// Decodes requests with prost; "encodes" responses by copying bytes that are already
/// protobuf.
#[derive(Clone, Copy, Default)]
struct SharedBytesCodec;

impl Codec for SharedBytesCodec {
    type Encode = Bytes;
    type Decode = pb::SubscribeRequest;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<pb::SubscribeRequest>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;

    #[test]
    fn an_event_is_encoded_once_and_the_bytes_are_shared() {
        let event =
            Event::new("k".into(), 9, EventKind::Token { delta: "hi".into(), content_index: 0 });
        let first = encoded(&event);
        let second = encoded(&event);
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same buffer, not a new encoding");
        assert_eq!(pb::Event::decode(first).unwrap(), convert::event(&event));
    }
}
