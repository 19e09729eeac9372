//! `agentgateway.v1.Memory` onto the memory API (the same one `/memory/*` calls).

use tonic::{Request, Response, Status};

use super::convert;
use super::guard::caller;
use crate::domain::{MemoryBucket, MemoryKind, MemoryRecord, MemorySource, SearchHit};
use crate::memory::{MemoryStatus, Remember};
use crate::proto as pb;
use crate::service::MemoryService;

pub struct MemoryApi {
    memory: MemoryService,
}

impl MemoryApi {
    pub fn new(memory: MemoryService) -> Self {
        Self { memory }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn record(r: MemoryRecord) -> pb::MemoryRecord {
    pb::MemoryRecord {
        id: r.id,
        bucket: convert::memory_bucket(r.bucket) as i32,
        kind: convert::memory_kind(r.kind) as i32,
        key: r.key,
        content: r.content,
        source: convert::memory_source(r.source) as i32,
        created_at: r.created_at,
        updated_at: r.updated_at,
        last_accessed_at: r.last_accessed_at,
        superseded_by: r.superseded_by,
    }
}

fn hit(h: SearchHit) -> pb::SearchResult {
    pb::SearchResult {
        id: h.id,
        source_type: convert::hit_source(h.source_type) as i32,
        score: h.score,
        content: h.content,
        snippet: h.snippet,
        kind: h.kind.map_or(0, |k| convert::memory_kind(k) as i32),
        bucket: h.bucket.map_or(0, |b| convert::memory_bucket(b) as i32),
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

#[tonic::async_trait]
impl pb::memory_server::Memory for MemoryApi {
    async fn get_status(
        &self,
        request: Request<pb::GetMemoryStatusRequest>,
    ) -> Answer<pb::GetMemoryStatusResponse> {
        let caller = caller(&request);
        let key = request.into_inner().session_key;
        let memory = self.memory.status(&caller, key.as_deref()).await?;
        Ok(Response::new(pb::GetMemoryStatusResponse { memory: Some(status(memory)) }))
    }

    async fn list_core(
        &self,
        request: Request<pb::ListCoreMemoriesRequest>,
    ) -> Answer<pb::ListCoreMemoriesResponse> {
        let caller = caller(&request);
        let key = request.into_inner().session_key;
        let memories = self.memory.core(&caller, key.as_deref()).await?;
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
        // `Remember` holds names as callers write them (the memory rules validate them once
        // for every transport); a known enum value is named here.
        let name = |known: Option<&'static str>| known.map(str::to_string);
        let remember = Remember {
            content: request.content,
            bucket: name(convert::memory_bucket_from(request.bucket)?.map(MemoryBucket::as_str)),
            kind: name(convert::memory_kind_from(request.kind)?.map(MemoryKind::as_str)),
            key: request.key,
            source: MemorySource::Manual,
        };
        let memory =
            self.memory.remember(&caller, request.session_key.as_deref(), remember).await?;
        Ok(Response::new(pb::RememberResponse { memory: Some(record(memory)) }))
    }

    async fn forget(&self, request: Request<pb::ForgetRequest>) -> Answer<pb::ForgetResponse> {
        let caller = caller(&request);
        let request = request.into_inner();
        let forgotten = self
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
        let (memory_rows, episode_rows) = self.memory.rebuild(&caller, key.as_deref()).await?;
        Ok(Response::new(pb::RebuildMemoryResponse { memory_rows, episode_rows }))
    }
}
