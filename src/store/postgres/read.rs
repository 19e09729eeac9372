//! The reads, as SQLite's (`sqlite/read.rs`): a key as stored (its row, unfinished messages
//! and their idempotency records, and only the part of history a crash left open), ranges of
//! history, the listing, the pending work for a restart, and the single rows behind
//! idempotency, ownership and the live config. Each runs on the store task, after every write
//! submitted before it.

use tokio_postgres::Row;

use super::conn::{Db, get};
use crate::domain::{
    HistoryMessage, ModelRef, Part, Role, SessionMeta, Source, ThinkingLevel, Usage,
};
use crate::store::{
    IdempotencyRecord, MessageRecord, MessageState, SessionRecord, StoreError, StoreResult, Stored,
    StoredSession, images,
};

/// The session columns, in the order [`session_row`] reads them.
macro_rules! session_columns {
    () => {
        "key, session_id, name, created_at, updated_at, last_active_at, model_provider,
         model_id, thinking, input_tokens, output_tokens, history_base, message_count, preview,
         compacted_upto, compaction_summary, memory_namespace, owner"
    };
}

fn session_row(row: &Row) -> StoreResult<SessionRecord> {
    let thinking: String = get(row, 8)?;
    Ok(SessionRecord {
        key: get(row, 0)?,
        meta: SessionMeta {
            session_id: get(row, 1)?,
            name: get(row, 2)?,
            created_at: get(row, 3)?,
            updated_at: get(row, 4)?,
            last_active_at: get(row, 5)?,
            model: ModelRef { provider: get(row, 6)?, model_id: get(row, 7)? },
            thinking: ThinkingLevel::parse(&thinking).unwrap_or_default(),
            usage: Usage {
                input_tokens: get::<i64>(row, 9)? as u64,
                output_tokens: get::<i64>(row, 10)? as u64,
            },
            compacted_upto: get::<i64>(row, 14)? as u64,
            compaction_summary: get(row, 15)?,
            memory_namespace: get(row, 16)?,
            owner: get(row, 17)?,
        },
        history_base: get::<i64>(row, 11)? as u64,
        message_count: get::<i64>(row, 12)? as u64,
        preview: get(row, 13)?,
    })
}

pub(super) async fn load(db: &mut Db, key: &str) -> StoreResult<Stored> {
    let seq = db.query_opt("SELECT seq FROM seqs WHERE session_key = $1", &[&key]).await?;
    let seq = match seq {
        Some(row) => get::<i64>(&row, 0)? as u64,
        None => 0,
    };
    let row = db
        .query_opt(concat!("SELECT ", session_columns!(), " FROM sessions WHERE key = $1"), &[&key])
        .await?;
    let Some(row) = row else { return Ok(Stored { seq, session: None }) };
    let mut record = session_row(&row)?;
    // The history table is the truth about how long history is (one index lookup, whatever
    // its length); the row's count is what the listing shows.
    let last =
        db.query_one("SELECT MAX(position) FROM history WHERE session_key = $1", &[&key]).await?;
    let last: Option<i64> = get(&last, 0)?;
    record.message_count =
        last.map_or(0, |last| (last as u64 + 1).saturating_sub(record.history_base));
    let messages = unfinished_messages(db, key).await?;
    let open_tail = open_tail(db, key, &messages).await?;
    let idempotency = unresolved_idempotency(db, key).await?;
    let session = StoredSession { record, open_tail, messages, idempotency };
    Ok(Stored { seq, session: Some(session) })
}

/// History from the user message of the earliest run a crash left started, to the end: what
/// closing that run needs. Empty when no run was left started (the usual case).
async fn open_tail(
    db: &mut Db,
    key: &str,
    messages: &[MessageRecord],
) -> StoreResult<Vec<HistoryMessage>> {
    let mut from: Option<i64> = None;
    let started =
        messages.iter().filter(|m| m.state == MessageState::Started && m.joined.is_none());
    for message in started {
        // Newest first: a run's message is near the end, so the scan stops early.
        let row = db
            .query_opt(
                "SELECT position FROM history WHERE session_key = $1 AND id = $2
                 ORDER BY position DESC LIMIT 1",
                &[&key, &message.message_id],
            )
            .await?;
        let position = row.map(|row| get::<i64>(&row, 0)).transpose()?;
        from = match (from, position) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    match from {
        Some(from) => history(db, key, from as u64, u64::MAX).await,
        None => Ok(Vec::new()),
    }
}

/// History messages at positions `from..to`, in order.
pub(super) async fn history(
    db: &mut Db,
    key: &str,
    from: u64,
    to: u64,
) -> StoreResult<Vec<HistoryMessage>> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let rows = db
        .query(
            "SELECT id, role, parts, timestamp FROM history
             WHERE session_key = $1 AND position >= $2 AND position < $3 ORDER BY position",
            &[&key, &from, &to],
        )
        .await?;
    let mut history = Vec::with_capacity(rows.len());
    for row in &rows {
        let role: String = get(row, 1)?;
        let parts: String = get(row, 2)?;
        history.push(HistoryMessage {
            id: get(row, 0)?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::new(format!("stored role {role:?}")))?,
            parts: serde_json::from_str::<Vec<Part>>(&parts)?,
            timestamp: get(row, 3)?,
        });
    }
    Ok(history)
}

/// Queued and started messages, in the order they were accepted.
async fn unfinished_messages(db: &mut Db, key: &str) -> StoreResult<Vec<MessageRecord>> {
    let rows = db
        .query(
            "SELECT message_id, joined, text, images, state, created_at, checkpoint, source
             FROM messages WHERE session_key = $1 AND state IN ('queued', 'started') ORDER BY id",
            &[&key],
        )
        .await?;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = get(row, 4)?;
        let images: String = get(row, 3)?;
        let checkpoint: Option<String> = get(row, 6)?;
        messages.push(MessageRecord {
            message_id: get(row, 0)?,
            session_key: key.to_string(),
            joined: get(row, 1)?,
            text: get(row, 2)?,
            images: images::from_json(&images)?,
            state: MessageState::parse(&state)
                .ok_or_else(|| StoreError::new(format!("stored state {state:?}")))?,
            created_at: get(row, 5)?,
            checkpoint: checkpoint.as_deref().map(serde_json::from_str).transpose()?,
            source: Source::parse(&get::<String>(row, 7)?),
        });
    }
    Ok(messages)
}

/// The session's idempotency records whose outcome is not known yet.
async fn unresolved_idempotency(db: &mut Db, key: &str) -> StoreResult<Vec<IdempotencyRecord>> {
    let rows = db
        .query(
            "SELECT scope, key, message_id, created_at FROM idempotency
             WHERE session_key = $1 AND outcome IS NULL",
            &[&key],
        )
        .await?;
    rows.iter()
        .map(|row| -> StoreResult<IdempotencyRecord> {
            Ok(IdempotencyRecord {
                scope: get(row, 0)?,
                key: get(row, 1)?,
                session_key: key.to_string(),
                message_id: get(row, 2)?,
                outcome: None,
                created_at: get(row, 3)?,
            })
        })
        .collect()
}

pub(super) async fn list(
    db: &mut Db,
    limit: usize,
    after: Option<(i64, String)>,
    owner: Option<String>,
) -> StoreResult<Vec<SessionRecord>> {
    let (at, key) = match after {
        Some((at, key)) => (Some(at), key),
        None => (None, String::new()),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db
        .query(
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions
                 WHERE ($1::BIGINT IS NULL OR last_active_at < $1
                        OR (last_active_at = $1 AND key > $2))
                   AND ($4::TEXT IS NULL OR owner = $4)
                 ORDER BY last_active_at DESC, key ASC LIMIT $3"
            ),
            &[&at, &key, &limit, &owner],
        )
        .await?;
    rows.iter().map(session_row).collect()
}

pub(super) async fn count_sessions(db: &mut Db) -> StoreResult<u64> {
    let row = db.query_one("SELECT COUNT(*) FROM sessions", &[]).await?;
    Ok(get::<i64>(&row, 0)? as u64)
}

pub(super) async fn pending_sessions(db: &mut Db) -> StoreResult<Vec<String>> {
    let rows = db
        .query(
            "SELECT session_key FROM messages WHERE state IN ('queued', 'started')
             GROUP BY session_key ORDER BY MIN(id)",
            &[],
        )
        .await?;
    rows.iter().map(|row| get(row, 0)).collect()
}

pub(super) async fn idempotency(
    db: &mut Db,
    scope: String,
    key: String,
) -> StoreResult<Option<IdempotencyRecord>> {
    let row = db
        .query_opt(
            "SELECT session_key, message_id, outcome, created_at FROM idempotency
             WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(IdempotencyRecord {
        session_key: get(&row, 0)?,
        message_id: get(&row, 1)?,
        outcome: get(&row, 2)?,
        created_at: get(&row, 3)?,
        scope,
        key,
    }))
}

pub(super) async fn owner(db: &mut Db, key: &str) -> StoreResult<Option<Option<String>>> {
    let row = db.query_opt("SELECT owner FROM sessions WHERE key = $1", &[&key]).await?;
    row.map(|row| get(&row, 0)).transpose()
}

pub(super) async fn live_config(db: &mut Db) -> StoreResult<Option<String>> {
    let row = db.query_opt("SELECT value FROM settings WHERE name = 'live_config'", &[]).await?;
    row.map(|row| get(&row, 0)).transpose()
}
