//! The SQLite store (the default): one file under `data_dir`, WAL journal, `synchronous=FULL`
//! so a batch reported durable survives power loss too, and an exclusive lock held for the
//! process's lifetime so two gateways never share a data dir.
//!
//! One thread owns the connection and serves an ordered queue of writes and reads. Writes that
//! are waiting together are applied in one transaction (group commit: one fsync for many
//! batches), each batch inside its own savepoint so a failing batch takes nothing else with it.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use super::migrations::migrate;
use super::*;
use crate::domain::{Part, Role, Source, now_ms};

/// Batches applied in one transaction at most.
const GROUP: usize = 256;

pub struct SqliteStore {
    tx: mpsc::UnboundedSender<Request>,
    describe: String,
}

type ReadFn = Box<dyn FnOnce(&mut Connection) + Send>;

enum Request {
    Write(Vec<Op>, oneshot::Sender<StoreResult<()>>),
    Read(ReadFn),
    Close(oneshot::Sender<StoreResult<()>>),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::new(error.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::new(format!("stored JSON: {error}"))
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file, checks it, and migrates it. The error names the
    /// file: a corrupt, locked or unreadable database stops the start.
    pub fn open(path: &Path) -> Result<Self, String> {
        let conn = open_file(path).map_err(|e| format!("store {}: {e}", path.display()))?;
        Ok(Self::spawn(conn, path.display().to_string()))
    }

    /// A private in-memory database (`persist = false`): the same code, nothing on disk.
    pub fn in_memory() -> Self {
        let mut conn = Connection::open_in_memory().expect("an in-memory database opens");
        migrate(&mut conn).expect("the schema applies to an empty database");
        Self::spawn(conn, "memory".into())
    }

    fn spawn(conn: Connection, describe: String) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || serve(conn, rx))
            .expect("the store thread starts");
        Self { tx, describe }
    }

    pub(super) fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Request::Read(Box::new(move |conn| {
            let _ = tx.send(read(conn));
        })));
        Box::pin(async move {
            if sent.is_err() {
                return Err(StoreError::closed());
            }
            rx.await.unwrap_or_else(|_| Err(StoreError::closed()))
        })
    }

    /// Test hook: caps the database at its current size, so the next growth fails as on a
    /// full disk.
    #[cfg(test)]
    pub(crate) fn fill_up(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.read(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", pages)?;
            Ok(())
        })
    }
}

fn open_file(path: &Path) -> Result<Connection, String> {
    let locked_hint = |e: rusqlite::Error| {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            format!("{e} (is another agent-gateway using this data_dir?)")
        } else {
            e.to_string()
        }
    };
    let mut conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(2)).map_err(|e| e.to_string())?;
    // Exclusive before WAL: no shared-memory index, and the lock is ours until we exit.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE").map_err(|e| e.to_string())?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(locked_hint)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("cannot use the WAL journal (got {mode})"));
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| e.to_string())?;
    let check: String =
        conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(locked_hint)?;
    if check != "ok" {
        return Err(format!("the database is corrupt: {check}"));
    }
    migrate(&mut conn)?;
    // Take the write lock now: a second gateway on this data dir fails here, not mid-run.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;").map_err(locked_hint)?;
    Ok(conn)
}

fn serve(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut next = None;
    loop {
        let request = match next.take() {
            Some(request) => request,
            None => match rx.blocking_recv() {
                Some(request) => request,
                None => break,
            },
        };
        match request {
            Request::Write(batch, reply) => {
                let mut group = vec![(batch, reply)];
                while group.len() < GROUP {
                    match rx.try_recv() {
                        Ok(Request::Write(batch, reply)) => group.push((batch, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write_group(&mut conn, group);
            }
            Request::Read(read) => read(&mut conn),
            Request::Close(reply) => {
                let result = conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(StoreError::from);
                let _ = reply.send(result);
                break;
            }
        }
    }
}

type Reply = oneshot::Sender<StoreResult<()>>;

fn write_group(conn: &mut Connection, group: Vec<(Vec<Op>, Reply)>) {
    let batches: Vec<&[Op]> = group.iter().map(|(batch, _)| batch.as_slice()).collect();
    let results = match apply_group(conn, &batches) {
        Ok(results) => results,
        // The transaction itself failed (SQLite may roll back all of it on a full disk or an
        // I/O error): retry each batch alone, so one bad batch does not fail its neighbours.
        Err(_) if batches.len() > 1 => batches
            .iter()
            .map(|batch| apply_group(conn, &[batch]).and_then(|mut r| r.pop().unwrap_or(Ok(()))))
            .collect(),
        Err(e) => vec![Err(e)],
    };
    for ((_, reply), result) in group.into_iter().zip(results) {
        if let Err(e) = &result {
            error!(error = %e, "store write failed");
        }
        let _ = reply.send(result);
    }
}

/// Applies batches in one transaction, each in a savepoint; the result of each.
fn apply_group(conn: &mut Connection, batches: &[&[Op]]) -> StoreResult<Vec<StoreResult<()>>> {
    let now = now_ms();
    let mut tx = conn.transaction()?;
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        let savepoint = tx.savepoint()?;
        let result = batch.iter().try_for_each(|op| apply(&savepoint, op, now));
        match result {
            Ok(()) => savepoint.commit()?,
            // SQLite rolled back the whole transaction (full disk, I/O error): report why.
            Err(e) if savepoint.is_autocommit() => return Err(e),
            Err(_) => drop(savepoint), // rolls this batch back
        }
        results.push(result);
    }
    tx.commit()?;
    Ok(results)
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredImage {
    mime_type: String,
    data: String,
}

fn images_json(images: &[Image]) -> StoreResult<String> {
    let stored: Vec<_> = images
        .iter()
        .map(|i| StoredImage {
            mime_type: i.mime_type.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(&i.data),
        })
        .collect();
    Ok(serde_json::to_string(&stored)?)
}

fn images_from(json: &str) -> StoreResult<Vec<Image>> {
    let stored: Vec<StoredImage> = serde_json::from_str(json)?;
    stored
        .into_iter()
        .map(|i| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(i.data)
                .map_err(|e| StoreError::new(format!("stored image: {e}")))?;
            Ok(Image { data, mime_type: i.mime_type })
        })
        .collect()
}

fn apply(conn: &Connection, op: &Op, now: i64) -> StoreResult<()> {
    match op {
        Op::PutSession(r) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO sessions (key, session_id, name, created_at, updated_at,
                 last_active_at, model_provider, model_id, thinking, input_tokens, output_tokens,
                 history_base, message_count, preview, compacted_upto, compaction_summary,
                 memory_namespace, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                         ?18)",
            )?
            .execute(params![
                r.key,
                r.session_id,
                r.name,
                r.created_at,
                r.updated_at,
                r.last_active_at,
                r.model.provider,
                r.model.model_id,
                r.thinking.as_str(),
                r.usage.input_tokens as i64,
                r.usage.output_tokens as i64,
                r.history_base as i64,
                r.message_count as i64,
                r.preview,
                r.compacted_upto as i64,
                r.compaction_summary,
                r.memory_namespace,
                r.owner,
            ])?;
        }
        Op::Seq { key, seq } => {
            conn.prepare_cached("INSERT OR REPLACE INTO seqs (session_key, seq) VALUES (?1, ?2)")?
                .execute(params![key, *seq as i64])?;
        }
        Op::AppendHistory { key, position, message } => {
            conn.prepare_cached(
                "INSERT INTO history (session_key, position, id, role, parts, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                key,
                *position as i64,
                message.id,
                message.role.as_str(),
                serde_json::to_string(&message.parts)?,
                message.timestamp,
            ])?;
            super::memory::index_episode(
                conn,
                key,
                &message.id,
                message.role.as_str(),
                &message.text(),
                message.timestamp,
            )?;
        }
        Op::ClearHistory { key } => {
            conn.prepare_cached("DELETE FROM history WHERE session_key = ?1")?.execute([key])?;
        }
        Op::DeleteSession { key } => {
            super::memory::delete_episodes(conn, key)?;
            for table in [
                "DELETE FROM sessions WHERE key = ?1",
                "DELETE FROM history WHERE session_key = ?1",
                "DELETE FROM messages WHERE session_key = ?1",
            ] {
                conn.prepare_cached(table)?.execute([key])?;
            }
        }
        Op::Accept(m) => {
            conn.prepare_cached(
                "INSERT INTO messages (message_id, session_key, joined, text, images, state,
                 checkpoint, created_at, updated_at, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                m.message_id,
                m.session_key,
                m.joined,
                m.text,
                images_json(&m.images)?,
                m.state.as_str(),
                m.checkpoint.as_ref().map(serde_json::to_string).transpose()?,
                m.created_at,
                now,
                m.source.as_str(),
            ])?;
        }
        Op::Start { message_id } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE messages SET state = 'started', updated_at = ?2
                     WHERE message_id = ?1 AND state = 'queued'",
                )?
                .execute(params![message_id, now])?;
            if changed != 1 {
                return Err(StoreError::new(format!("message {message_id} is not queued")));
            }
        }
        Op::Checkpoint { message_id, checkpoint } => {
            conn.prepare_cached(
                "UPDATE messages SET checkpoint = ?2, updated_at = ?3
                 WHERE message_id = ?1 AND state = 'started'",
            )?
            .execute(params![message_id, serde_json::to_string(checkpoint)?, now])?;
        }
        Op::Finish { message_id, error } => {
            conn.prepare_cached(
                "UPDATE messages SET state = 'done', error = ?2, checkpoint = NULL, updated_at = ?3
                 WHERE message_id = ?1",
            )?
            .execute(params![message_id, error, now])?;
        }
        Op::PutIdempotency(r) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO idempotency
                 (scope, key, session_key, message_id, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                r.scope,
                r.key,
                r.session_key,
                r.message_id,
                r.outcome,
                r.created_at
            ])?;
        }
        Op::PutLiveConfig(patch) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO settings (name, value) VALUES ('live_config', ?1)",
            )?
            .execute([patch])?;
        }
        Op::Prune { before } => {
            conn.prepare_cached("DELETE FROM messages WHERE state = 'done' AND updated_at < ?1")?
                .execute([before])?;
            conn.prepare_cached("DELETE FROM idempotency WHERE created_at < ?1")?
                .execute([before])?;
        }
    }
    Ok(())
}

const SESSION_COLUMNS: &str = "key, session_id, name, created_at, updated_at, last_active_at,
    model_provider, model_id, thinking, input_tokens, output_tokens, history_base,
    message_count, preview, compacted_upto, compaction_summary, memory_namespace, owner";

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    let thinking: String = row.get(8)?;
    Ok(SessionRecord {
        key: row.get(0)?,
        session_id: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        last_active_at: row.get(5)?,
        model: ModelRef { provider: row.get(6)?, model_id: row.get(7)? },
        thinking: ThinkingLevel::parse(&thinking).unwrap_or_default(),
        usage: Usage {
            input_tokens: row.get::<_, i64>(9)? as u64,
            output_tokens: row.get::<_, i64>(10)? as u64,
        },
        history_base: row.get::<_, i64>(11)? as u64,
        message_count: row.get::<_, i64>(12)? as u64,
        preview: row.get(13)?,
        compacted_upto: row.get::<_, i64>(14)? as u64,
        compaction_summary: row.get(15)?,
        memory_namespace: row.get(16)?,
        owner: row.get(17)?,
    })
}

fn load(conn: &mut Connection, key: &str) -> StoreResult<Stored> {
    let seq = conn
        .prepare_cached("SELECT seq FROM seqs WHERE session_key = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64;
    let record = conn
        .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?1"))?
        .query_row([key], session_row)
        .optional()?;
    let Some(record) = record else { return Ok(Stored { seq, session: None }) };
    let mut history = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT id, role, parts, timestamp FROM history WHERE session_key = ?1 ORDER BY position",
    )?;
    let mut rows = statement.query([key])?;
    while let Some(row) = rows.next()? {
        let role: String = row.get(1)?;
        let parts: String = row.get(2)?;
        history.push(HistoryMessage {
            id: row.get(0)?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::new(format!("stored role {role:?}")))?,
            parts: serde_json::from_str::<Vec<Part>>(&parts)?,
            timestamp: row.get(3)?,
        });
    }
    drop(rows);
    drop(statement);
    let mut messages = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT message_id, joined, text, images, state, created_at, checkpoint, source
         FROM messages WHERE session_key = ?1 AND state IN ('queued', 'started') ORDER BY id",
    )?;
    let mut rows = statement.query([key])?;
    while let Some(row) = rows.next()? {
        let state: String = row.get(4)?;
        let images: String = row.get(3)?;
        let checkpoint: Option<String> = row.get(6)?;
        messages.push(MessageRecord {
            message_id: row.get(0)?,
            session_key: key.to_string(),
            joined: row.get(1)?,
            text: row.get(2)?,
            images: images_from(&images)?,
            state: MessageState::parse(&state)
                .ok_or_else(|| StoreError::new(format!("stored state {state:?}")))?,
            created_at: row.get(5)?,
            checkpoint: checkpoint.as_deref().map(serde_json::from_str).transpose()?,
            source: Source::parse(&row.get::<_, String>(7)?),
        });
    }
    drop(rows);
    drop(statement);
    let idempotency = conn
        .prepare_cached(
            "SELECT scope, key, message_id, created_at FROM idempotency
             WHERE session_key = ?1 AND outcome IS NULL",
        )?
        .query_map([key], |row| {
            Ok(IdempotencyRecord {
                scope: row.get(0)?,
                key: row.get(1)?,
                session_key: key.to_string(),
                message_id: row.get(2)?,
                outcome: None,
                created_at: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Stored { seq, session: Some(StoredSession { record, history, messages, idempotency }) })
}

impl Store for SqliteStore {
    fn write(&self, batch: Vec<Op>) -> Ticket {
        let (reply, ticket) = Ticket::new();
        if batch.is_empty() {
            return Ticket::done();
        }
        if let Err(mpsc::error::SendError(Request::Write(batch, reply))) =
            self.tx.send(Request::Write(batch, reply))
        {
            warn!(ops = batch.len(), "write after the store closed");
            let _ = reply.send(Err(StoreError::closed()));
        }
        ticket
    }

    fn load(&self, key: &str) -> BoxFuture<'_, StoreResult<Stored>> {
        let key = key.to_string();
        self.read(move |conn| load(conn, &key))
    }

    fn list(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
        owner: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>> {
        self.read(move |conn| {
            let (at, key) = match after {
                Some((at, key)) => (Some(at), key),
                None => (None, String::new()),
            };
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions
                 WHERE (?1 IS NULL OR last_active_at < ?1 OR (last_active_at = ?1 AND key > ?2))
                   AND (?4 IS NULL OR owner = ?4)
                 ORDER BY last_active_at DESC, key ASC LIMIT ?3"
            ))?;
            let rows = statement.query_map(params![at, key, limit as i64, owner], session_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn count_sessions(&self) -> BoxFuture<'_, StoreResult<u64>> {
        self.read(|conn| {
            let count: i64 = conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?;
            Ok(count as u64)
        })
    }

    fn pending_sessions(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT session_key FROM messages WHERE state IN ('queued', 'started')
                 GROUP BY session_key ORDER BY MIN(id)",
            )?;
            let rows = statement.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> BoxFuture<'_, StoreResult<Option<IdempotencyRecord>>> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT session_key, message_id, outcome, created_at FROM idempotency
                     WHERE scope = ?1 AND key = ?2",
                )?
                .query_row(params![scope, key], |row| {
                    Ok(IdempotencyRecord {
                        scope: scope.clone(),
                        key: key.clone(),
                        session_key: row.get(0)?,
                        message_id: row.get(1)?,
                        outcome: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    fn owner(&self, key: &str) -> BoxFuture<'_, StoreResult<Option<Option<String>>>> {
        let key = key.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT owner FROM sessions WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
    }

    fn live_config(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM settings WHERE name = 'live_config'")?
                .query_row([], |r| r.get(0))
                .optional()?)
        })
    }

    fn close(&self) -> BoxFuture<'_, StoreResult<()>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Request::Close(reply)).is_ok();
        Box::pin(async move {
            if !sent {
                return Ok(()); // already closed
            }
            rx.await.unwrap_or(Ok(()))
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
