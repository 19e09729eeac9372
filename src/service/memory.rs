//! The memory API both transports call (`/memory/*` and the `Memory` gRPC service): resolves
//! the namespace from an optional `sessionKey` (unknown session: 404) and decides, from the
//! caller's scopes, whether `secret` records may be shown.

use crate::domain::{Caller, Scope};
use crate::domain::{MemoryKind, MemoryRecord, SearchHit};
use crate::error::Result;
use crate::session::SessionManager;

use crate::memory::{self, Access, Memory, MemoryStatus, Remember};

/// `secret` records for admin callers only; an `own_sessions_only` caller finds episodes of
/// its own sessions only (GATEWAY.md §10: other sessions do not exist for it).
fn access(caller: &Caller) -> Access {
    let episodes_of =
        caller.own_sessions_only.then(|| caller.owner().unwrap_or_default().to_string());
    Access { secrets: caller.allows(Scope::Admin), episodes_of }
}

#[derive(Clone)]
pub struct MemoryService {
    memory: Memory,
    sessions: SessionManager,
}

impl MemoryService {
    pub fn new(memory: Memory, sessions: SessionManager) -> Self {
        Self { memory, sessions }
    }

    async fn namespace(&self, caller: &Caller, session_key: Option<&str>) -> Result<String> {
        self.sessions.memory_namespace(caller, session_key).await
    }

    pub async fn status(&self, caller: &Caller, session_key: Option<&str>) -> Result<MemoryStatus> {
        self.memory.status(&self.namespace(caller, session_key).await?).await
    }

    pub async fn core(
        &self,
        caller: &Caller,
        session_key: Option<&str>,
    ) -> Result<Vec<MemoryRecord>> {
        let records = self.memory.core(&self.namespace(caller, session_key).await?).await?;
        Ok(records
            .into_iter()
            .filter(|r| r.kind != MemoryKind::Secret || caller.allows(Scope::Admin))
            .collect())
    }

    /// Best first; `secret` records only for admin-scope callers, episodes only of the
    /// sessions the caller may see.
    pub async fn search(
        &self,
        caller: &Caller,
        session_key: Option<&str>,
        query: &str,
        limit: Option<usize>,
    ) -> Result<Vec<SearchHit>> {
        let namespace = self.namespace(caller, session_key).await?;
        let mut hits = self.memory.search(&namespace, query, limit, &access(caller)).await?;
        if caller.own_sessions_only {
            for hit in &mut hits {
                if let Some(key) = hit.session_key.as_mut() {
                    *key = crate::session::keys::shown(key).to_string();
                }
            }
        }
        Ok(hits)
    }

    pub async fn remember(
        &self,
        caller: &Caller,
        session_key: Option<&str>,
        request: Remember,
    ) -> Result<MemoryRecord> {
        // Validated before the session lookup, so a bad body is a 400 whatever the key.
        memory::prepare(request.clone())?;
        let namespace = self.namespace(caller, session_key).await?;
        self.memory.remember(&namespace, request, &access(caller)).await
    }

    /// Soft-deletes by id or key; how many records.
    pub async fn forget(
        &self,
        caller: &Caller,
        session_key: Option<&str>,
        id: Option<i64>,
        key: Option<&str>,
    ) -> Result<u64> {
        memory::forget_key(id, key)?;
        let namespace = self.namespace(caller, session_key).await?;
        self.memory.forget(&namespace, id, key, &access(caller)).await
    }

    /// Re-creates the namespace's index: (memory rows, episode rows).
    pub async fn rebuild(&self, caller: &Caller, session_key: Option<&str>) -> Result<(u64, u64)> {
        self.memory.rebuild(&self.namespace(caller, session_key).await?).await
    }
}
