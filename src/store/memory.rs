//! Memory in the store (GATEWAY.md §7): records per namespace with supersede and soft delete,
//! episodes (user and assistant messages, indexed as history is written), and search over both
//! with SQLite FTS5 ranked by BM25. The FTS tables hold a copy of the text with the record's id
//! as rowid, so a rebuild can always re-create them from the records.

use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};

use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::domain::{MemoryCounts, MemoryRecord, NewMemory, SearchHit, now_ms};

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
    /// `words` are plain words (never FTS syntax); results best first. With `owner`, only
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
    role: &str,
    content: &str,
    timestamp: i64,
) -> rusqlite::Result<()> {
    if content.trim().is_empty() || !matches!(role, "user" | "assistant") {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO episodes (session_key, message_id, role, content, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![session_key, message_id, role, content, timestamp])?;
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

/// Rows a search scores at most, about: see [`plan`].
const SCORE_BUDGET: f64 = 5000.0;

/// An FTS5 query matching any of `words` (each quoted, so nothing is read as syntax), and the
/// rowid the ranked rows must exceed.
///
/// This keeps a search's work bounded on big indexes. BM25 scores every row a word matches,
/// yet a word found in more than 5% of the rows adds next to nothing to the ranking (its IDF
/// is near zero): such words are dropped when a rarer one is there. When even the rarest word
/// matches more than [`SCORE_BUDGET`] rows, only the newest rows, where about that many of its
/// matches are, are ranked: a query of only very common words gets the best recent matches.
fn plan(conn: &Connection, fts: &str, vocab: &str, words: &[String]) -> StoreResult<(String, i64)> {
    let rows: i64 = conn
        .prepare_cached(&format!("SELECT rowid FROM {fts} ORDER BY rowid DESC LIMIT 1"))?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut counted = Vec::with_capacity(words.len());
    for word in words {
        let docs: i64 = conn
            .prepare_cached(&format!("SELECT doc FROM {vocab} WHERE term = ?1"))?
            .query_row([word], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        counted.push((docs, word));
    }
    counted.sort();
    let common = (rows as f64 * 0.05).max(50.0);
    let mut kept: Vec<&String> =
        counted.iter().filter(|(docs, _)| *docs as f64 <= common).map(|(_, w)| *w).collect();
    let rarest = counted.first().map_or(0, |(docs, _)| *docs) as f64;
    if kept.is_empty() {
        kept.extend(counted.first().map(|(_, w)| *w));
    }
    let after =
        if rarest > SCORE_BUDGET { rows - (rows as f64 * SCORE_BUDGET / rarest) as i64 } else { 0 };
    let expression =
        kept.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect::<Vec<_>>();
    Ok((expression.join(" OR "), after))
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

fn search(
    conn: &mut Connection,
    namespace: &str,
    words: &[String],
    limit: usize,
    with_secrets: bool,
    owner: Option<&str>,
) -> StoreResult<Vec<SearchHit>> {
    if words.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let (expression, after) = plan(conn, "memory_index", "memory_vocab", words)?;
    let mut hits: Vec<SearchHit> = conn
        .prepare_cached(
            "SELECT m.id, m.bucket, m.kind, m.key, m.content, m.updated_at, bm25(memory_index),
                    snippet(memory_index, 0, '[', ']', '…', 12)
             FROM memory_index JOIN memories m ON m.id = memory_index.rowid
             WHERE memory_index MATCH ?1 AND memory_index.rowid > ?5
               AND m.namespace = ?2 AND m.active = 1 AND (?3 OR m.kind != 'secret')
             ORDER BY bm25(memory_index) LIMIT ?4",
        )?
        .query_map(params![expression, namespace, with_secrets, limit as i64, after], |r| {
            Ok(SearchHit {
                id: r.get(0)?,
                source_type: "memory",
                bucket: Some(r.get(1)?),
                kind: Some(r.get(2)?),
                key: Some(r.get(3)?),
                content: r.get(4)?,
                timestamp: r.get(5)?,
                score: -r.get::<_, f64>(6)?,
                snippet: r.get(7)?,
                role: None,
                session_key: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (expression, after) = plan(conn, "episode_index", "episode_vocab", words)?;
    let episodes: Vec<SearchHit> = conn
        .prepare_cached(
            "SELECT e.id, e.role, e.session_key, e.content, e.timestamp, bm25(episode_index),
                    snippet(episode_index, 0, '[', ']', '…', 12)
             FROM episode_index JOIN episodes e ON e.id = episode_index.rowid
             JOIN sessions s ON s.key = e.session_key
             WHERE episode_index MATCH ?1 AND episode_index.rowid > ?4
               AND s.memory_namespace = ?2 AND (?5 IS NULL OR s.owner = ?5)
             ORDER BY bm25(episode_index) LIMIT ?3",
        )?
        .query_map(params![expression, namespace, limit as i64, after, owner], |r| {
            Ok(SearchHit {
                id: r.get(0)?,
                source_type: "episode",
                role: Some(r.get(1)?),
                session_key: Some(r.get(2)?),
                content: r.get(3)?,
                timestamp: r.get(4)?,
                score: -r.get::<_, f64>(5)?,
                snippet: r.get(6)?,
                kind: None,
                bucket: None,
                key: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    hits.extend(episodes);
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(limit);
    let now = now_ms();
    for hit in hits.iter().filter(|h| h.source_type == "memory") {
        conn.prepare_cached("UPDATE memories SET last_accessed_at = ?2 WHERE id = ?1")?
            .execute(params![hit.id, now])?;
    }
    Ok(hits)
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
        self.read(move |conn| remember(conn, &namespace, memory, with_secrets))
    }

    fn forget(
        &self,
        namespace: &str,
        id: Option<i64>,
        key: Option<String>,
        with_secrets: bool,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        let namespace = namespace.to_string();
        self.read(move |conn| forget(conn, &namespace, id, key, with_secrets))
    }

    fn core(&self, namespace: &str) -> BoxFuture<'_, StoreResult<Vec<MemoryRecord>>> {
        let namespace = namespace.to_string();
        self.read(move |conn| {
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
        self.read(move |conn| {
            search(conn, &namespace, &words, limit, with_secrets, owner.as_deref())
        })
    }

    fn counts(&self, namespace: &str) -> BoxFuture<'_, StoreResult<MemoryCounts>> {
        let namespace = namespace.to_string();
        self.read(move |conn| counts(conn, &namespace))
    }

    fn rebuild(&self, namespace: &str) -> BoxFuture<'_, StoreResult<(u64, u64)>> {
        let namespace = namespace.to_string();
        self.read(move |conn| rebuild(conn, &namespace))
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(error: rusqlite::types::FromSqlError) -> Self {
        StoreError::new(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_drop_common_words_and_window_very_common_queries() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrations::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        for id in 1..=10_000 {
            let text = if id % 4000 == 0 { "common rare" } else { "common" };
            tx.execute(
                "INSERT INTO memory_index (rowid, content, key) VALUES (?1, ?2, '')",
                params![id, text],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let plan = |w: &[&str]| plan(&conn, "memory_index", "memory_vocab", &words(w)).unwrap();
        assert_eq!(plan(&["common", "rare"]), ("\"rare\"".to_string(), 0), "the rare word ranks");
        assert_eq!(plan(&["rare", "absent"]), ("\"absent\" OR \"rare\"".to_string(), 0));
        // Only a word in every row: the newest rows holding about SCORE_BUDGET matches.
        assert_eq!(plan(&["common"]), ("\"common\"".to_string(), 5000));
    }
}
