//! `agentgateway.v1.Memory` onto the memory API (the same one `/memory/*` calls).

use tonic::{Request, Response, Status};

use super::guard::caller;
use crate::app::AppState;
use crate::domain::{MemoryRecord, SearchHit};
use crate::error::GatewayError;
use crate::memory::{MemoryStatus, Remember};
use crate::proto as pb;

pub struct MemoryApi {
    state: AppState,
}

impl MemoryApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn bucket(name: &str) -> i32 {
    match name {
        "core" => pb::MemoryBucket::Core as i32,
        "archival" => pb::MemoryBucket::Archival as i32,
        _ => pb::MemoryBucket::Unspecified as i32,
    }
}

fn kind(name: &str) -> i32 {
    use pb::MemoryKind as K;
    (match name {
        "profile" => K::Profile,
        "preference" => K::Preference,
        "relationship" => K::Relationship,
        "fact" => K::Fact,
        "secret" => K::Secret,
        _ => K::Unspecified,
    }) as i32
}

fn source(name: &str) -> i32 {
    use pb::MemorySource as S;
    (match name {
        "manual" => S::Manual,
        "auto" => S::Auto,
        "tool" => S::Tool,
        _ => S::Unspecified,
    }) as i32
}

fn record(r: MemoryRecord) -> pb::MemoryRecord {
    pb::MemoryRecord {
        id: r.id,
        bucket: bucket(&r.bucket),
        kind: kind(&r.kind),
        key: r.key,
        content: r.content,
        source: source(&r.source),
        created_at: r.created_at,
        updated_at: r.updated_at,
        last_accessed_at: r.last_accessed_at,
        superseded_by: r.superseded_by,
    }
}

fn hit(h: SearchHit) -> pb::SearchResult {
    pb::SearchResult {
        id: h.id,
        source_type: match h.source_type {
            "memory" => pb::SearchSourceType::Memory as i32,
            _ => pb::SearchSourceType::Episode as i32,
        },
        score: h.score,
        content: h.content,
        snippet: h.snippet,
        kind: h.kind.as_deref().map_or(0, kind),
        bucket: h.bucket.as_deref().map_or(0, bucket),
        key: h.key,
        role: h.role,
        session_key: h.session_key,
        timestamp: h.timestamp,
    }
}

fn status(s: MemoryStatus) -> pb::MemoryStatus {
    pb::MemoryStatus {
        enabled: s.enabled,
        ready: s.ready,
        namespace: s.namespace,
        storage_path: s.storage_path,
        core_count: s.core_count,
        archival_count: s.archival_count,
        episode_count: s.episode_count,
        last_memory_write_at: s.last_memory_write_at,
        last_episode_at: s.last_episode_at,
    }
}

/// The enum's name as the domain spells it; UNSPECIFIED is "not given", an unknown number a
/// 400.
fn enum_name<E: TryFrom<i32>>(
    value: i32,
    field: &str,
    name: impl Fn(E) -> &'static str,
) -> Result<Option<String>, GatewayError> {
    if value == 0 {
        return Ok(None);
    }
    let known = E::try_from(value)
        .map_err(|_| GatewayError::invalid(format!("Unknown {field} value {value}")))?;
    Ok(Some(name(known).to_string()))
}

#[tonic::async_trait]
impl pb::memory_server::Memory for MemoryApi {
    async fn get_status(
        &self,
        request: Request<pb::GetMemoryStatusRequest>,
    ) -> Answer<pb::GetMemoryStatusResponse> {
        let caller = caller(&request);
        let key = request.into_inner().session_key;
        let memory = self.state.memory.status(&caller, key.as_deref()).await?;
        Ok(Response::new(pb::GetMemoryStatusResponse { memory: Some(status(memory)) }))
    }

    async fn list_core(
        &self,
        request: Request<pb::ListCoreMemoriesRequest>,
    ) -> Answer<pb::ListCoreMemoriesResponse> {
        let caller = caller(&request);
        let key = request.into_inner().session_key;
        let memories = self.state.memory.core(&caller, key.as_deref()).await?;
        Ok(Response::new(pb::ListCoreMemoriesResponse {
            memories: memories.into_iter().map(record).collect(),
        }))
    }

    async fn search(
        &self,
        request: Request<pb::SearchMemoryRequest>,
    ) -> Answer<pb::SearchMemoryResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let limit = (request.limit > 0).then_some(request.limit as usize);
        let results = self
            .state
            .memory
            .search(&caller, request.session_key.as_deref(), &request.query, limit)
            .await?;
        Ok(Response::new(pb::SearchMemoryResponse {
            query: request.query,
            results: results.into_iter().map(hit).collect(),
        }))
    }

    async fn remember(
        &self,
        request: Request<pb::RememberRequest>,
    ) -> Answer<pb::RememberResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let remember = Remember {
            content: request.content,
            bucket: enum_name(request.bucket, "bucket", |b: pb::MemoryBucket| match b {
                pb::MemoryBucket::Core => "core",
                _ => "archival",
            })?,
            kind: enum_name(request.kind, "kind", |k: pb::MemoryKind| match k {
                pb::MemoryKind::Profile => "profile",
                pb::MemoryKind::Preference => "preference",
                pb::MemoryKind::Relationship => "relationship",
                pb::MemoryKind::Secret => "secret",
                _ => "fact",
            })?,
            key: request.key,
            source: "manual",
        };
        let memory =
            self.state.memory.remember(&caller, request.session_key.as_deref(), remember).await?;
        Ok(Response::new(pb::RememberResponse { memory: Some(record(memory)) }))
    }

    async fn forget(&self, request: Request<pb::ForgetRequest>) -> Answer<pb::ForgetResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let forgotten = self
            .state
            .memory
            .forget(&caller, request.session_key.as_deref(), request.id, request.key.as_deref())
            .await?;
        Ok(Response::new(pb::ForgetResponse { forgotten }))
    }

    async fn rebuild(
        &self,
        request: Request<pb::RebuildMemoryRequest>,
    ) -> Answer<pb::RebuildMemoryResponse> {
        let caller = caller(&request);
        let key = request.into_inner().session_key;
        let (memory_rows, episode_rows) =
            self.state.memory.rebuild(&caller, key.as_deref()).await?;
        Ok(Response::new(pb::RebuildMemoryResponse { memory_rows, episode_rows }))
    }
}
