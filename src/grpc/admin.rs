//! `agentgateway.v1.Admin` onto the admin API (the same one `/config`, `/channels/status` and
//! `/logs` call), plus `Ready` and `ListModels`.

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use tokio::sync::broadcast::error::RecvError;

use super::convert;
use tokio_util::sync::CancellationToken;

use crate::proto as pb;
use crate::service::AdminService;
use crate::session::SessionManager;
use crate::telemetry;

pub struct AdminApi {
    admin: AdminService,
    /// Readiness, the live count and the model list.
    sessions: SessionManager,
    /// Ends `TailLogs` streams when the gateway stops.
    shutdown: CancellationToken,
}

impl AdminApi {
    pub fn new(admin: AdminService, sessions: SessionManager, shutdown: CancellationToken) -> Self {
        Self { admin, sessions, shutdown }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminApi {
    async fn ready(&self, _: Request<pb::ReadyRequest>) -> Answer<pb::ReadyResponse> {
        Ok(Response::new(pb::ReadyResponse {
            ok: true,
            ready: !self.sessions.draining(),
            sessions: self.sessions.live_count() as u32,
        }))
    }

    async fn list_models(
        &self,
        _: Request<pb::ListModelsRequest>,
    ) -> Answer<pb::ListModelsResponse> {
        let (models, current) = self.sessions.models();
        Ok(Response::new(pb::ListModelsResponse {
            models: models
                .into_iter()
                .map(|m| pb::ModelInfo {
                    provider: m.provider,
                    model_id: m.model_id,
                    display_name: m.display_name,
                    capabilities: m.capabilities,
                })
                .collect(),
            current: Some(pb::ModelRef { provider: current.provider, model_id: current.model_id }),
        }))
    }

    async fn get_config(&self, _: Request<pb::GetConfigRequest>) -> Answer<pb::GetConfigResponse> {
        let config = self.admin.config();
        Ok(Response::new(pb::GetConfigResponse { config: Some(convert::to_struct(&config)) }))
    }

    async fn patch_config(
        &self,
        request: Request<pb::PatchConfigRequest>,
    ) -> Answer<pb::PatchConfigResponse> {
        let patch = request.into_inner().patch.unwrap_or_default();
        let config = self.admin.patch_config(&convert::from_struct(&patch)).await?;
        Ok(Response::new(pb::PatchConfigResponse { config: Some(convert::to_struct(&config)) }))
    }

    async fn list_channels(
        &self,
        _: Request<pb::ListChannelsRequest>,
    ) -> Answer<pb::ListChannelsResponse> {
        let channels = self
            .admin
            .channels()
            .into_iter()
            .map(|c| pb::ChannelStatus {
                id: c.id,
                name: c.name,
                connected: c.connected,
                last_active_at: c.last_active_at,
                error: c.error,
            })
            .collect();
        Ok(Response::new(pb::ListChannelsResponse { channels }))
    }

    async fn get_logs(&self, request: Request<pb::GetLogsRequest>) -> Answer<pb::GetLogsResponse> {
        let limit = request.into_inner().limit;
        let logs = self.admin.logs((limit > 0).then_some(limit as usize));
        Ok(Response::new(pb::GetLogsResponse { logs }))
    }

    type TailLogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogLine, Status>> + Send>>;

    /// Lines as they are written, until the client leaves or the gateway stops. A reader too
    /// slow for the log is told how many lines it missed, in a line of its own.
    async fn tail_logs(&self, _: Request<pb::TailLogsRequest>) -> Answer<Self::TailLogsStream> {
        let mut tail = telemetry::ring().tail();
        let shutdown = self.shutdown.clone();
        let lines = async_stream::stream! {
            loop {
                let line = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    line = tail.recv() => line,
                };
                match line {
                    Ok(line) => yield Ok(pb::LogLine { line: line.to_string() }),
                    Err(RecvError::Lagged(missed)) => {
                        yield Ok(pb::LogLine { line: format!("... {missed} lines skipped") });
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(lines)))
    }
}
