//! PostgreSQL memory (GATEWAY.md §7): records per namespace with supersede and soft delete,
//! and episodes, written as history is (see [`super::write`]). Each row's `search` column is
//! its index entry (`to_tsvector('simple', ...)`), cleared when a record is superseded or
//! forgotten, so [`rebuild`] can always re-create it from the records; [`super::search`] ranks
//! over it.

use futures_util::future::BoxFuture;
use tokio_postgres::Row;

use super::PostgresStore;
use super::conn::{Db, get};
use super::search::search;
use crate::domain::{
    MemoryBucket, MemoryCounts, MemoryKind, MemoryRecord, MemorySource, NewMemory, Role, SearchHit,
    now_ms,
};
use crate::store::{MemoryStore, StoreError, StoreResult};

/// A text column holding one of an enum's names; a name this build does not know is an
/// error, never a silent default.
pub(super) fn named<T>(
    row: &Row,
    index: usize,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> StoreResult<T> {
    let text: String = get(row, index)?;
    parse(&text).ok_or_else(|| StoreError::new(format!("stored {what} {text:?}")))
}

fn record_row(row: &Row) -> StoreResult<MemoryRecord> {
    Ok(MemoryRecord {
        id: get(row, 0)?,
        bucket: named(row, 1, MemoryBucket::parse, "MemoryBucket")?,
        kind: named(row, 2, MemoryKind::parse, "MemoryKind")?,
        key: get(row, 3)?,
        content: get(row, 4)?,
        source: named(row, 5, MemorySource::parse, "MemorySource")?,
        created_at: get(row, 6)?,
        updated_at: get(row, 7)?,
        last_accessed_at: get(row, 8)?,
        superseded_by: get(row, 9)?,
    })
}

/// Indexes a user or assistant message as an episode (called while history is written).
pub(super) async fn index_episode(
    db: &mut Db,
    session_key: &str,
    message_id: &str,
    role: Role,
    content: &str,
    timestamp: i64,
) -> StoreResult<()> {
    if content.trim().is_empty() || !matches!(role, Role::User | Role::Assistant) {
        return Ok(());
    }
    db.execute(
        "INSERT INTO episodes (session_key, message_id, role, content, timestamp, search)
         VALUES ($1, $2, $3, $4, $5, to_tsvector('simple', $4::TEXT))",
        &[&session_key, &message_id, &role.as_str(), &content, &timestamp],
    )
    .await?;
    Ok(())
}

async fn remember(
    db: &mut Db,
    namespace: &str,
    memory: NewMemory,
    with_secrets: bool,
) -> StoreResult<MemoryRecord> {
    let now = now_ms();
    let row = db
        .query_one(
            "INSERT INTO memories (namespace, bucket, kind, key, content, source, created_at,
             updated_at, last_accessed_at, search)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7,
                     to_tsvector('simple', $5::TEXT) || to_tsvector('simple', $4::TEXT))
             RETURNING id, bucket, kind, key, content, source, created_at, updated_at,
                       last_accessed_at, superseded_by",
            &[
                &namespace,
                &memory.bucket.as_str(),
                &memory.kind.as_str(),
                &memory.key,
                &memory.content,
                &memory.source.as_str(),
                &now,
            ],
        )
        .await?;
    let record = record_row(&row)?;
    db.execute(
        "UPDATE memories SET active = FALSE, superseded_by = $3, updated_at = $4, search = NULL
         WHERE namespace = $1 AND key = $2 AND active AND id <> $3
           AND ($5 OR kind <> 'secret')",
        &[&namespace, &memory.key, &record.id, &now, &with_secrets],
    )
    .await?;
    Ok(record)
}

async fn forget(
    db: &mut Db,
    namespace: &str,
    id: Option<i64>,
    key: Option<String>,
    with_secrets: bool,
) -> StoreResult<u64> {
    db.execute(
        "UPDATE memories SET active = FALSE, updated_at = $5, search = NULL
         WHERE namespace = $1 AND active
           AND (($2::BIGINT IS NOT NULL AND id = $2) OR ($3::TEXT IS NOT NULL AND key = $3))
           AND ($4 OR kind <> 'secret')",
        &[&namespace, &id, &key, &with_secrets, &now_ms()],
    )
    .await
}

async fn core(db: &mut Db, namespace: &str) -> StoreResult<Vec<MemoryRecord>> {
    db.query(
        "SELECT id, bucket, kind, key, content, source, created_at, updated_at,
                last_accessed_at, superseded_by
         FROM memories WHERE namespace = $1 AND active AND bucket = 'core' ORDER BY id",
        &[&namespace],
    )
    .await?
    .iter()
    .map(record_row)
    .collect()
}

async fn counts(db: &mut Db, namespace: &str) -> StoreResult<MemoryCounts> {
    let row = db
        .query_one(
            "SELECT
               (SELECT COUNT(*) FROM memories
                WHERE namespace = $1 AND active AND bucket = 'core'),
               (SELECT COUNT(*) FROM memories
                WHERE namespace = $1 AND active AND bucket = 'archival'),
               (SELECT COUNT(*) FROM episodes e JOIN sessions s ON s.key = e.session_key
                WHERE s.memory_namespace = $1),
               (SELECT MAX(updated_at) FROM memories WHERE namespace = $1),
               (SELECT MAX(e.timestamp) FROM episodes e JOIN sessions s ON s.key = e.session_key
                WHERE s.memory_namespace = $1)",
            &[&namespace],
        )
        .await?;
    Ok(MemoryCounts {
        core: get::<i64>(&row, 0)? as u64,
        archival: get::<i64>(&row, 1)? as u64,
        episodes: get::<i64>(&row, 2)? as u64,
        last_memory_write_at: get(&row, 3)?,
        last_episode_at: get(&row, 4)?,
    })
}

async fn rebuild(db: &mut Db, namespace: &str) -> StoreResult<(u64, u64)> {
    db.execute(
        "UPDATE memories SET search = NULL WHERE namespace = $1 AND NOT active",
        &[&namespace],
    )
    .await?;
    let memories = db
        .execute(
            "UPDATE memories SET search = to_tsvector('simple', content) || to_tsvector('simple', key)
             WHERE namespace = $1 AND active",
            &[&namespace],
        )
        .await?;
    let episodes = db
        .execute(
            "UPDATE episodes e SET search = to_tsvector('simple', e.content)
             FROM sessions s WHERE s.key = e.session_key AND s.memory_namespace = $1",
            &[&namespace],
        )
        .await?;
    Ok((memories, episodes))
}

/// Runs `$call` in its own transaction on the store task, in order with the writes.
macro_rules! transaction {
    ($store:expr, |$db:ident| $call:expr) => {
        $store.call(move |$db| {
            Box::pin(async move {
                $db.batch("BEGIN").await?;
                let result = $call.await;
                $db.finish(result).await
            })
        })
    };
}

impl MemoryStore for PostgresStore {
    fn remember(
        &self,
        namespace: &str,
        memory: NewMemory,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<MemoryRecord>> {
        let namespace = namespace.to_string();
        transaction!(self, |db| remember(db, &namespace, memory, with_secrets))
    }

    fn forget(
        &self,
        namespace: &str,
        id: Option<i64>,
        key: Option<String>,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        let namespace = namespace.to_string();
        transaction!(self, |db| forget(db, &namespace, id, key, with_secrets))
    }

    fn core(&self, namespace: &str) -> BoxFuture<'_, StoreResult<Vec<MemoryRecord>>> {
        let namespace = namespace.to_string();
        self.call(move |db| Box::pin(async move { core(db, &namespace).await }))
    }

    fn search(
        &self,
        namespace: &str,
        words: Vec<String>,
        limit: usize,
        with_secrets: bool,
        owner: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<SearchHit>>> {
        let namespace = namespace.to_string();
        transaction!(self, |db| search(
            db,
            &namespace,
            &words,
            limit,
            with_secrets,
            owner.as_deref()
        ))
    }

    fn counts(&self, namespace: &str) -> BoxFuture<'_, StoreResult<MemoryCounts>> {
        let namespace = namespace.to_string();
        self.call(move |db| Box::pin(async move { counts(db, &namespace).await }))
    }

    fn rebuild(&self, namespace: &str) -> BoxFuture<'_, StoreResult<(u64, u64)>> {
        let namespace = namespace.to_string();
        transaction!(self, |db| rebuild(db, &namespace))
    }
}
