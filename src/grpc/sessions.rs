//! `agentgateway.v1.Sessions` onto the session manager.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert;
use super::guard::caller;
use crate::domain::{CreateRequest, ModelRef};
use crate::proto as pb;
use crate::session::SessionManager;

pub struct SessionsApi {
    sessions: SessionManager,
}

impl SessionsApi {
    pub fn new(sessions: SessionManager) -> Self {
        Self { sessions }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl pb::sessions_server::Sessions for SessionsApi {
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Answer<pb::ListSessionsResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let limit = (request.page_size > 0).then_some(request.page_size as usize);
        let cursor = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        let page = self.sessions.list(&caller, limit, cursor).await?;
        ok(pb::ListSessionsResponse {
            sessions: page.items.into_iter().map(convert::snapshot).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        })
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Answer<pb::GetSessionResponse> {
        let caller = caller(&request);
        let snapshot = self.sessions.get(&caller, &request.into_inner().session_key).await?;
        ok(pb::GetSessionResponse { session: Some(convert::snapshot(snapshot)) })
    }

    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Answer<pb::CreateSessionResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let snapshot = self
            .sessions
            .create(CreateRequest {
                session_key: (!request.session_key.is_empty()).then_some(request.session_key),
                name: request.name,
                model: request
                    .model
                    .map(|m| ModelRef { provider: m.provider, model_id: m.model_id }),
                memory_namespace: request.memory_namespace,
                caller,
            })
            .await?;
        ok(pb::CreateSessionResponse { session: Some(convert::snapshot(snapshot)) })
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Answer<pb::DeleteSessionResponse> {
        let caller = caller(&request);
        self.sessions.delete(&caller, &request.into_inner().session_key).await?;
        ok(pb::DeleteSessionResponse {})
    }

    async fn rename_session(
        &self,
        request: Request<pb::RenameSessionRequest>,
    ) -> Answer<pb::RenameSessionResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        self.sessions.rename(&caller, &request.session_key, Some(request.name)).await?;
        ok(pb::RenameSessionResponse {})
    }

    async fn reset_session(
        &self,
        request: Request<pb::ResetSessionRequest>,
    ) -> Answer<pb::ResetSessionResponse> {
        let caller = caller(&request);
        self.sessions.reset(&caller, &request.into_inner().session_key).await?;
        ok(pb::ResetSessionResponse {})
    }

    async fn abort_session(
        &self,
        request: Request<pb::AbortSessionRequest>,
    ) -> Answer<pb::AbortSessionResponse> {
        let caller = caller(&request);
        let aborted = self.sessions.abort(&caller, &request.into_inner().session_key).await?;
        ok(pb::AbortSessionResponse { aborted })
    }

    async fn clear_queue(
        &self,
        request: Request<pb::ClearQueueRequest>,
    ) -> Answer<pb::ClearQueueResponse> {
        let caller = caller(&request);
        let cleared = self.sessions.clear_queue(&caller, &request.into_inner().session_key).await?;
        ok(pb::ClearQueueResponse { cleared: cleared as u32 })
    }

    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> Answer<pb::GetHistoryResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let limit = (request.limit > 0).then_some(request.limit as usize);
        let cursor = (!request.cursor.is_empty()).then_some(request.cursor.as_str());
        let page = self.sessions.history(&caller, &request.session_key, limit, cursor).await?;
        ok(pb::GetHistoryResponse {
            messages: page.items.into_iter().map(convert::message).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        })
    }

    async fn list_queued(
        &self,
        request: Request<pb::ListQueuedRequest>,
    ) -> Answer<pb::ListQueuedResponse> {
        let caller = caller(&request);
        let view = self.sessions.queue(&caller, &request.into_inner().session_key).await?;
        ok(pb::ListQueuedResponse {
            queue: view
                .queue
                .into_iter()
                .map(|q| pb::QueuedMessage {
                    message_id: q.message_id,
                    position: q.position as u32,
                    text_preview: q.text_preview,
                    source: q.source.as_str().into(),
                    enqueued_at: q.enqueued_at,
                })
                .collect(),
            processing: view.processing,
        })
    }

    async fn get_state(
        &self,
        request: Request<pb::GetStateRequest>,
    ) -> Answer<pb::GetStateResponse> {
        let caller = caller(&request);
        let view = self.sessions.state(&caller, &request.into_inner().session_key).await?;
        ok(pb::GetStateResponse {
            session: Some(convert::snapshot(view.session)),
            messages: view.messages.into_iter().map(convert::message).collect(),
        })
    }

    async fn set_model(
        &self,
        request: Request<pb::SetModelRequest>,
    ) -> Answer<pb::SetModelResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let model = ModelRef { provider: request.provider, model_id: request.model_id };
        let model = self.sessions.set_model(&caller, &request.session_key, model).await?;
        ok(pb::SetModelResponse {
            model: Some(pb::ModelRef { provider: model.provider, model_id: model.model_id }),
        })
    }

    async fn set_thinking_level(
        &self,
        request: Request<pb::SetThinkingLevelRequest>,
    ) -> Answer<pb::SetThinkingLevelResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let level = convert::thinking_from(request.level)?;
        let level = self.sessions.set_thinking(&caller, &request.session_key, level).await?;
        ok(pb::SetThinkingLevelResponse { level: convert::thinking(level) })
    }

    async fn reload_session(
        &self,
        request: Request<pb::ReloadSessionRequest>,
    ) -> Answer<pb::ReloadSessionResponse> {
        let caller = caller(&request);
        self.sessions.reload(&caller, &request.into_inner().session_key).await?;
        ok(pb::ReloadSessionResponse {})
    }

    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    /// Reached only when `SessionsServer` is served on its own: the gateway routes Subscribe
    /// to `subscribe::SessionsService`, which shares each event's encoding among subscribers.
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Answer<Self::SubscribeStream> {
        let caller = caller(&request);
        let request = request.into_inner();
        let events =
            self.sessions.subscribe(&caller, &request.session_key, request.after_seq).await?;
        ok(Box::pin(events.map(|event| Ok(convert::event(&event)))))
    }
}
