//! `agentgateway.v1.Memory`: declared now so the API is whole; every call answers
//! UNIMPLEMENTED until the memory store lands.

use tonic::{Request, Response, Status};

use crate::error::GatewayError;
use crate::proto as pb;

pub struct MemoryApi;

type Answer<T> = Result<Response<T>, Status>;

fn later<T>(rpc: &str) -> Answer<T> {
    Err(GatewayError::unimplemented(format!("Memory.{rpc} arrives with the memory service")).into())
}

#[tonic::async_trait]
impl pb::memory_server::Memory for MemoryApi {
    async fn get_status(
        &self,
        _: Request<pb::GetMemoryStatusRequest>,
    ) -> Answer<pb::GetMemoryStatusResponse> {
        later("GetStatus")
    }

    async fn list_core(
        &self,
        _: Request<pb::ListCoreMemoriesRequest>,
    ) -> Answer<pb::ListCoreMemoriesResponse> {
        later("ListCore")
    }

    async fn search(
        &self,
        _: Request<pb::SearchMemoryRequest>,
    ) -> Answer<pb::SearchMemoryResponse> {
        later("Search")
    }

    async fn remember(&self, _: Request<pb::RememberRequest>) -> Answer<pb::RememberResponse> {
        later("Remember")
    }

    async fn forget(&self, _: Request<pb::ForgetRequest>) -> Answer<pb::ForgetResponse> {
        later("Forget")
    }

    async fn rebuild(
        &self,
        _: Request<pb::RebuildMemoryRequest>,
    ) -> Answer<pb::RebuildMemoryResponse> {
        later("Rebuild")
    }
}
