//! `agentgateway.v1.Chat` onto the session manager.

use std::pin::Pin;

use futures_util::{Stream, StreamExt, stream};
use tonic::{Request, Response, Status};

use super::convert;
use super::guard::caller;
use crate::domain::Caller;
use crate::domain::{Image, SendRequest, StreamingBehavior};
use crate::error::GatewayError;
use crate::proto as pb;
use crate::service::ChatService;
use crate::session::SessionManager;
use crate::session::stream::RunItem;

pub struct ChatApi {
    chat: ChatService,
    /// For the calls that go straight to a session: steer, abort, clear-queue.
    sessions: SessionManager,
}

impl ChatApi {
    pub fn new(chat: ChatService, sessions: SessionManager) -> Self {
        Self { chat, sessions }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn send_request(
    request: pb::SendMessageRequest,
    caller: Caller,
) -> Result<SendRequest, GatewayError> {
    let behavior = match pb::StreamingBehavior::try_from(request.streaming_behavior) {
        Ok(pb::StreamingBehavior::Steer) => StreamingBehavior::Steer,
        Ok(_) => StreamingBehavior::FollowUp,
        Err(_) => return Err(GatewayError::invalid("Invalid streaming_behavior")),
    };
    Ok(SendRequest {
        source: crate::domain::Source::Grpc,
        session_key: request.session_key,
        text: request.text,
        images: request
            .images
            .into_iter()
            .map(|image| Image { data: image.data, mime_type: image.mime_type })
            .collect(),
        behavior,
        idempotency_key: (!request.idempotency_key.is_empty()).then_some(request.idempotency_key),
        caller,
    })
}

#[tonic::async_trait]
impl pb::chat_server::Chat for ChatApi {
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Answer<pb::SendMessageResponse> {
        let caller = caller(&request);
        let request = send_request(request.into_inner(), caller)?;
        let (accepted, outcome) = self.chat.send(request).await?;
        let outcome = outcome.await.map_err(|_| Status::from(GatewayError::shutting_down()))?;
        Ok(Response::new(pb::SendMessageResponse {
            ok: outcome.ok,
            response: outcome.response,
            error: outcome.error,
            session_key: accepted.session_key,
            message_id: accepted.message_id,
        }))
    }

    type StreamChatStream =
        Pin<Box<dyn Stream<Item = Result<pb::StreamChatResponse, Status>> + Send>>;

    async fn stream_chat(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Answer<Self::StreamChatStream> {
        let caller = caller(&request);
        use pb::stream_chat_response::Kind;
        let request = send_request(request.into_inner(), caller)?;
        let (accepted, run) = self.chat.send_stream(request).await?;
        let first = pb::StreamChatResponse {
            kind: Some(Kind::Accepted(pb::Accepted {
                session_key: accepted.session_key,
                message_id: accepted.message_id,
                mode: convert::steer_mode(accepted.mode),
            })),
        };
        let rest = run.map(|item| {
            let kind = match item {
                RunItem::Event(event) => Kind::Event(convert::event(&event)),
                RunItem::Outcome(outcome) => Kind::Result(convert::outcome(outcome)),
                RunItem::Stopped => return Err(Status::from(GatewayError::shutting_down())),
            };
            Ok(pb::StreamChatResponse { kind: Some(kind) })
        });
        Ok(Response::new(Box::pin(stream::once(async { Ok(first) }).chain(rest))))
    }

    async fn steer(&self, request: Request<pb::SteerRequest>) -> Answer<pb::SteerResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let accepted = self
            .sessions
            .steer(&caller, &request.session_key, request.text, crate::domain::Source::Grpc)
            .await?;
        Ok(Response::new(pb::SteerResponse {
            mode: convert::steer_mode(accepted.mode),
            session_key: accepted.session_key,
            message_id: accepted.message_id,
        }))
    }

    async fn cancel_queued(
        &self,
        request: Request<pb::CancelQueuedRequest>,
    ) -> Answer<pb::CancelQueuedResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let cancelled =
            self.sessions.cancel_queued(&caller, &request.session_key, &request.message_id).await?;
        Ok(Response::new(pb::CancelQueuedResponse { cancelled }))
    }

    async fn execute_command(
        &self,
        request: Request<pb::ExecuteCommandRequest>,
    ) -> Answer<pb::ExecuteCommandResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let result = self
            .chat
            .execute(&caller, &request.session_key, &request.command, &request.args)
            .await?;
        Ok(Response::new(pb::ExecuteCommandResponse {
            ok: result.ok,
            output: result.output,
            data: result.data.as_ref().map(convert::json),
        }))
    }
}
