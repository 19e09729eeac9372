//! `agentgateway.v1.Admin`: `Ready` now; the rest answers UNIMPLEMENTED until the admin and
//! agent work lands.

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::app::AppState;
use crate::error::GatewayError;
use crate::proto as pb;

pub struct AdminApi {
    state: AppState,
}

impl AdminApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn later<T>(rpc: &str, with: &str) -> Answer<T> {
    Err(GatewayError::unimplemented(format!("Admin.{rpc} arrives with {with}")).into())
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminApi {
    async fn ready(&self, _: Request<pb::ReadyRequest>) -> Answer<pb::ReadyResponse> {
        Ok(Response::new(pb::ReadyResponse {
            ok: true,
            ready: self.state.ready(),
            sessions: self.state.sessions.live_count() as u32,
        }))
    }

    async fn list_models(
        &self,
        _: Request<pb::ListModelsRequest>,
    ) -> Answer<pb::ListModelsResponse> {
        let (models, current) = self.state.sessions.models();
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
        later("GetConfig", "the admin service")
    }

    async fn patch_config(
        &self,
        _: Request<pb::PatchConfigRequest>,
    ) -> Answer<pb::PatchConfigResponse> {
        later("PatchConfig", "the admin service")
    }

    async fn list_channels(
        &self,
        _: Request<pb::ListChannelsRequest>,
    ) -> Answer<pb::ListChannelsResponse> {
        later("ListChannels", "the admin service")
    }

    async fn get_logs(&self, _: Request<pb::GetLogsRequest>) -> Answer<pb::GetLogsResponse> {
        later("GetLogs", "the admin service")
    }

    type TailLogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogLine, Status>> + Send>>;

    async fn tail_logs(&self, _: Request<pb::TailLogsRequest>) -> Answer<Self::TailLogsStream> {
        later("TailLogs", "the admin service")
    }
}
