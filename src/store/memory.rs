//! The memory half of a store (GATEWAY.md §7): records per namespace with supersede and soft
//! delete, episodes (user and assistant messages, indexed as history is written), and ranked
//! search over both. Backend-neutral: SQLite implements it in [`super::sqlite`] with FTS5.

use futures_util::future::BoxFuture;

use super::StoreResult;
use crate::domain::{MemoryCounts, MemoryRecord, NewMemory, SearchHit};

/// Memory operations of a store. Each runs in one transaction, in order with the store's
/// other writes.
pub trait MemoryStore: Send + Sync {
    /// Inserts the record; an active record with the same key is superseded by it (a
    /// `secret` one only `with_secrets`: secrets are untouchable for who cannot see them).
    fn remember(
        &self,
        namespace: &str,
        memory: NewMemory,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<MemoryRecord>>;
    /// Deactivates active records by id or key (`secret` ones only `with_secrets`); how many.
    fn forget(
        &self,
        namespace: &str,
        id: Option<i64>,
        key: Option<String>,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<u64>>;
    /// Active core records, oldest first.
    fn core(&self, namespace: &str) -> BoxFuture<'_, StoreResult<Vec<MemoryRecord>>>;
    /// `words` are plain words (never query syntax); results best first. With `owner`, only
    /// episodes of the sessions that token created (an `own_sessions_only` caller).
    fn search(
        &self,
        namespace: &str,
        words: Vec<String>,
        limit: usize,
        with_secrets: bool,
        owner: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<SearchHit>>>;
    fn counts(&self, namespace: &str) -> BoxFuture<'_, StoreResult<MemoryCounts>>;
    /// Re-creates the namespace's index rows from its records: (memory rows, episode rows).
    fn rebuild(&self, namespace: &str) -> BoxFuture<'_, StoreResult<(u64, u64)>>;
}
