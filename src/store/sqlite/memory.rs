//! SQLite memory (GATEWAY.md §7): records per namespace with supersede and soft delete, and
//! episodes, written as history is (see [`super::write`]). The FTS5 tables hold a copy of the
//! text with the record's id as rowid, so [`rebuild`] can always re-create them from the
//! records; [`super::search`] ranks over them.

use futures_util::future::BoxFuture;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::SqliteStore;
use super::search::search;
use crate::domain::{
    MemoryBucket, MemoryCounts, MemoryKind, MemoryRecord, MemorySource, NewMemory, Role, SearchHit,
    now_ms,
};
use crate::store::{MemoryStore, StoreResult};

/// Bucket, kind and source are text columns holding their names; a name this build does not
/// know is a conversion error, never a silent default.
macro_rules! text_column {
    ($($name:ident),+) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("stored {} {text:?}", stringify!($name)).into())
                })
            }
        }
    )+};
}

text_column!(MemoryBucket, MemoryKind, MemorySource);

fn record_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MemoryRecord> {
    Ok(MemoryRecord {
        id: row.get(0)?,
        bucket: row.get(1)?,
        kind: row.get(2)?,
        key: row.get(3)?,
        content: row.get(4)?,
        source: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        last_accessed_at: row.get(8)?,
        superseded_by: row.get(9)?,
    })
}

const RECORD_COLUMNS: &str = "id, bucket, kind, key, content, source, created_at, updated_at, \
                              last_accessed_at, superseded_by";

/// Indexes a user or assistant message as an episode (called while history is written).
pub(super) fn index_episode(
    conn: &Connection,
    session_key: &str,
    message_id: &str,
    role: Role,
    content: &str,
    timestamp: i64,
) -> rusqlite::Result<()> {
    if content.trim().is_empty() || !matches!(role, Role::User | Role::Assistant) {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO episodes (session_key, message_id, role, content, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![session_key, message_id, role.as_str(), content, timestamp])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO episode_index (rowid, content) VALUES (?1, ?2)")?
        .execute(params![id, content])?;
    Ok(())
}

/// Removes a session's episodes and their index rows.
pub(super) fn delete_episodes(conn: &Connection, session_key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM episode_index WHERE rowid IN (SELECT id FROM episodes WHERE session_key = ?1)",
    )?
    .execute([session_key])?;
    conn.prepare_cached("DELETE FROM episodes WHERE session_key = ?1")?.execute([session_key])?;
    Ok(())
}

fn remember(
    conn: &mut Connection,
    namespace: &str,
    memory: NewMemory,
    with_secrets: bool,
) -> StoreResult<MemoryRecord> {
    let now = now_ms();
    let tx = conn.transaction()?;
    tx.prepare_cached(
        "INSERT INTO memories (namespace, bucket, kind, key, content, source, created_at,
         updated_at, last_accessed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
    )?
    .execute(params![
        namespace,
        memory.bucket,
        memory.kind,
        memory.key,
        memory.content,
        memory.source,
        now
    ])?;
    let id = tx.last_insert_rowid();
    let superseded: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM memories WHERE namespace = ?1 AND key = ?2 AND active = 1 AND id != ?3
             AND (?4 OR kind != 'secret')",
        )?
        .query_map(params![namespace, memory.key, id, with_secrets], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for old in &superseded {
        tx.prepare_cached(
            "UPDATE memories SET active = 0, superseded_by = ?2, updated_at = ?3 WHERE id = ?1",
        )?
        .execute(params![old, id, now])?;
        tx.prepare_cached("DELETE FROM memory_index WHERE rowid = ?1")?.execute([old])?;
    }
    tx.prepare_cached("INSERT INTO memory_index (rowid, content, key) VALUES (?1, ?2, ?3)")?
        .execute(params![id, memory.content, memory.key])?;
    let record = tx
        .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM memories WHERE id = ?1"))?
        .query_row([id], record_row)?;
    tx.commit()?;
    Ok(record)
}

fn forget(
    conn: &mut Connection,
    namespace: &str,
    id: Option<i64>,
    key: Option<String>,
    with_secrets: bool,
) -> StoreResult<u64> {
    let now = now_ms();
    let tx = conn.transaction()?;
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM memories WHERE namespace = ?1 AND active = 1
             AND ((?2 IS NOT NULL AND id = ?2) OR (?3 IS NOT NULL AND key = ?3))
             AND (?4 OR kind != 'secret')",
        )?
        .query_map(params![namespace, id, key, with_secrets], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &ids {
        tx.prepare_cached("UPDATE memories SET active = 0, updated_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
        tx.prepare_cached("DELETE FROM memory_index WHERE rowid = ?1")?.execute([id])?;
    }
    tx.commit()?;
    Ok(ids.len() as u64)
}

fn counts(conn: &mut Connection, namespace: &str) -> StoreResult<MemoryCounts> {
    let count = |sql: &str| -> StoreResult<u64> {
        Ok(conn.prepare_cached(sql)?.query_row([namespace], |r| r.get::<_, i64>(0))? as u64)
    };
    let core = count(
        "SELECT COUNT(*) FROM memories WHERE namespace = ?1 AND active = 1 AND bucket = 'core'",
    )?;
    let archival = count(
        "SELECT COUNT(*) FROM memories WHERE namespace = ?1 AND active = 1 AND bucket = 'archival'",
    )?;
    let episodes = count(
        "SELECT COUNT(*) FROM episodes e JOIN sessions s ON s.key = e.session_key WHERE s.memory_namespace = ?1",
    )?;
    let last = |sql: &str| -> StoreResult<Option<i64>> {
        Ok(conn.prepare_cached(sql)?.query_row([namespace], |r| r.get(0)).optional()?.flatten())
    };
    Ok(MemoryCounts {
        core,
        archival,
        episodes,
        last_memory_write_at: last("SELECT MAX(updated_at) FROM memories WHERE namespace = ?1")?,
        last_episode_at: last(
            "SELECT MAX(e.timestamp) FROM episodes e JOIN sessions s ON s.key = e.session_key
             WHERE s.memory_namespace = ?1",
        )?,
    })
}

fn rebuild(conn: &mut Connection, namespace: &str) -> StoreResult<(u64, u64)> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM memory_index WHERE rowid IN (SELECT id FROM memories WHERE namespace = ?1)",
        [namespace],
    )?;
    let memories = tx.execute(
        "INSERT INTO memory_index (rowid, content, key)
         SELECT id, content, key FROM memories WHERE namespace = ?1 AND active = 1",
        [namespace],
    )?;
    let episode_ids = "SELECT e.id FROM episodes e JOIN sessions s ON s.key = e.session_key
                       WHERE s.memory_namespace = ?1";
    tx.execute(&format!("DELETE FROM episode_index WHERE rowid IN ({episode_ids})"), [namespace])?;
    let episodes = tx.execute(
        &format!("INSERT INTO episode_index (rowid, content) SELECT id, content FROM episodes WHERE id IN ({episode_ids})"),
        [namespace],
    )?;
    tx.commit()?;
    Ok((memories as u64, episodes as u64))
}

impl MemoryStore for SqliteStore {
    fn remember(
        &self,
        namespace: &str,
        memory: NewMemory,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<MemoryRecord>> {
        let namespace = namespace.to_string();
        self.call(move |conn| remember(conn, &namespace, memory, with_secrets))
    }

    fn forget(
        &self,
        namespace: &str,
        id: Option<i64>,
        key: Option<String>,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        let namespace = namespace.to_string();
        self.call(move |conn| forget(conn, &namespace, id, key, with_secrets))
    }

    fn core(&self, namespace: &str) -> BoxFuture<'_, StoreResult<Vec<MemoryRecord>>> {
        let namespace = namespace.to_string();
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM memories
                     WHERE namespace = ?1 AND active = 1 AND bucket = 'core' ORDER BY id"
                ))?
                .query_map([namespace], record_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
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
        self.call(move |conn| {
            search(conn, &namespace, &words, limit, with_secrets, owner.as_deref())
        })
    }

    fn counts(&self, namespace: &str) -> BoxFuture<'_, StoreResult<MemoryCounts>> {
        let namespace = namespace.to_string();
        self.call(move |conn| counts(conn, &namespace))
    }

    fn rebuild(&self, namespace: &str) -> BoxFuture<'_, StoreResult<(u64, u64)>> {
        let namespace = namespace.to_string();
        self.call(move |conn| rebuild(conn, &namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_columns_are_their_names_and_unknown_text_is_an_error() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let memory = NewMemory {
            bucket: MemoryBucket::Core,
            kind: MemoryKind::Relationship,
            key: "sister".into(),
            content: "Has a sister".into(),
            source: MemorySource::Tool,
        };
        let record = remember(&mut conn, "ns", memory, false).unwrap();
        let stored: (String, String, String) = conn
            .query_row(
                "SELECT bucket, kind, source FROM memories WHERE id = ?1",
                [record.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(stored, ("core".into(), "relationship".into(), "tool".into()));
        conn.execute("UPDATE memories SET kind = 'gossip'", []).unwrap();
        let error = conn
            .query_row(&format!("SELECT {RECORD_COLUMNS} FROM memories"), [], record_row)
            .unwrap_err();
        assert!(error.to_string().contains("stored MemoryKind \"gossip\""), "{error}");
    }
}
