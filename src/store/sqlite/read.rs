//! The reads: a key as stored (its session row, unfinished messages and their idempotency
//! records, and only the part of history a crash left open), ranges of history, the session
//! listing, the pending work for a restart, and the single
//! rows behind idempotency, ownership and the live config. Each runs on the store thread, after
//! every write submitted before it.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::{
    HistoryMessage, ModelRef, Part, Role, SessionMeta, Source, ThinkingLevel, Usage,
};
use crate::store::{
    IdempotencyRecord, MessageRecord, MessageState, SessionRecord, StoreError, StoreResult, Stored,
    StoredSession, images,
};

const SESSION_COLUMNS: &str = "key, session_id, name, created_at, updated_at, last_active_at,
    model_provider, model_id, thinking, input_tokens, output_tokens, history_base,
    message_count, preview, compacted_upto, compaction_summary, memory_namespace, owner";

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    let thinking: String = row.get(8)?;
    Ok(SessionRecord {
        key: row.get(0)?,
        meta: SessionMeta {
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
            compacted_upto: row.get::<_, i64>(14)? as u64,
            compaction_summary: row.get(15)?,
            memory_namespace: row.get(16)?,
            owner: row.get(17)?,
        },
        history_base: row.get::<_, i64>(11)? as u64,
        message_count: row.get::<_, i64>(12)? as u64,
        preview: row.get(13)?,
    })
}

pub(super) fn load(conn: &Connection, key: &str) -> StoreResult<Stored> {
    let seq = conn
        .prepare_cached("SELECT seq FROM seqs WHERE session_key = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64;
    let record = conn
        .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?1"))?
        .query_row([key], session_row)
        .optional()?;
    let Some(mut record) = record else { return Ok(Stored { seq, session: None }) };
    // The history table is the truth about how long history is (one index lookup, whatever
    // its length); the row's count is what the listing shows.
    let last: Option<i64> = conn
        .prepare_cached("SELECT MAX(position) FROM history WHERE session_key = ?1")?
        .query_row([key], |r| r.get(0))?;
    record.message_count =
        last.map_or(0, |last| (last as u64 + 1).saturating_sub(record.history_base));
    let messages = unfinished_messages(conn, key)?;
    let open_tail = open_tail(conn, key, &messages)?;
    let session = StoredSession {
        record,
        open_tail,
        messages,
        idempotency: unresolved_idempotency(conn, key)?,
    };
    Ok(Stored { seq, session: Some(session) })
}

/// History from the user message of the earliest run a crash left started, to the end: what
/// closing that run needs. Empty when no run was left started (the usual case), so a load
/// reads no history at all.
fn open_tail(
    conn: &Connection,
    key: &str,
    messages: &[MessageRecord],
) -> StoreResult<Vec<HistoryMessage>> {
    let started: Vec<&str> = messages
        .iter()
        .filter(|m| m.state == MessageState::Started && m.joined.is_none())
        .map(|m| m.message_id.as_str())
        .collect();
    let mut from: Option<i64> = None;
    for id in started {
        // Newest first: a run's message is near the end, so the scan stops early.
        let position: Option<i64> = conn
            .prepare_cached(
                "SELECT position FROM history WHERE session_key = ?1 AND id = ?2
                 ORDER BY position DESC LIMIT 1",
            )?
            .query_row(params![key, id], |r| r.get(0))
            .optional()?;
        from = match (from, position) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    match from {
        Some(from) => history(conn, key, from as u64, u64::MAX),
        None => Ok(Vec::new()),
    }
}

/// History messages at positions `from..to`, in order.
pub(super) fn history(
    conn: &Connection,
    key: &str,
    from: u64,
    to: u64,
) -> StoreResult<Vec<HistoryMessage>> {
    let mut history = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT id, role, parts, timestamp FROM history
         WHERE session_key = ?1 AND position >= ?2 AND position < ?3 ORDER BY position",
    )?;
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let mut rows = statement.query(params![key, from as i64, to])?;
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
    Ok(history)
}

/// Queued and started messages, in the order they were accepted.
fn unfinished_messages(conn: &Connection, key: &str) -> StoreResult<Vec<MessageRecord>> {
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
            images: images::from_json(&images)?,
            state: MessageState::parse(&state)
                .ok_or_else(|| StoreError::new(format!("stored state {state:?}")))?,
            created_at: row.get(5)?,
            checkpoint: checkpoint.as_deref().map(serde_json::from_str).transpose()?,
            source: Source::parse(&row.get::<_, String>(7)?),
        });
    }
    Ok(messages)
}

/// The session's idempotency records whose outcome is not known yet.
fn unresolved_idempotency(conn: &Connection, key: &str) -> StoreResult<Vec<IdempotencyRecord>> {
    Ok(conn
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
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn list(
    conn: &Connection,
    limit: usize,
    after: Option<(i64, String)>,
    owner: Option<String>,
) -> StoreResult<Vec<SessionRecord>> {
    // One statement per shape (cursor or not, owner or not), each prepared once: with
    // `?1 IS NULL OR ...` in one statement, SQLite (built with STAT4) re-prepared it on every
    // call, since the bound values decide which index the plan uses (a fifth of
    // ListSessions' CPU).
    let mut terms = Vec::new();
    let cursor = after.is_some();
    let (at, key) = after.unwrap_or_default();
    let mut values: Vec<(&str, &dyn rusqlite::ToSql)> = Vec::new();
    if cursor {
        terms.push("(last_active_at < :at OR (last_active_at = :at AND key > :key))");
        values.extend([(":at", &at as &dyn rusqlite::ToSql), (":key", &key)]);
    }
    if let Some(owner) = &owner {
        terms.push("owner = :owner");
        values.push((":owner", owner));
    }
    let filter =
        if terms.is_empty() { String::new() } else { format!("WHERE {}", terms.join(" AND ")) };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions {filter}
         ORDER BY last_active_at DESC, key ASC"
    ))?;
    // No `LIMIT ?` either (a bound limit re-prepared it just the same): the index yields the
    // rows in order, and reading stops after `limit` of them.
    let rows = statement.query_map(values.as_slice(), session_row)?;
    Ok(rows.take(limit).collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn count_sessions(conn: &Connection) -> StoreResult<u64> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?;
    Ok(count as u64)
}

pub(super) fn pending_sessions(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT session_key FROM messages WHERE state IN ('queued', 'started')
         GROUP BY session_key ORDER BY MIN(id)",
    )?;
    let rows = statement.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn idempotency(
    conn: &Connection,
    scope: String,
    key: String,
) -> StoreResult<Option<IdempotencyRecord>> {
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
}

pub(super) fn owner(conn: &Connection, key: &str) -> StoreResult<Option<Option<String>>> {
    Ok(conn
        .prepare_cached("SELECT owner FROM sessions WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(super) fn live_config(conn: &Connection) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE name = 'live_config'")?
        .query_row([], |r| r.get(0))
        .optional()?)
}
