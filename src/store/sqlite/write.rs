//! The writes: each [`Op`] as SQL. [`apply`] runs inside the writer thread's savepoint for
//! its batch, so every statement of a batch lands or none does.

use rusqlite::{Connection, params};

use super::memory;
use crate::store::{Op, StoreError, StoreResult, images};

/// Applies one op; `now` is the batch's clock (`updated_at` of the rows it touches).
pub(super) fn apply(conn: &Connection, op: &Op, now: i64) -> StoreResult<()> {
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
                r.meta.session_id,
                r.meta.name,
                r.meta.created_at,
                r.meta.updated_at,
                r.meta.last_active_at,
                r.meta.model.provider,
                r.meta.model.model_id,
                r.meta.thinking.as_str(),
                r.meta.usage.input_tokens as i64,
                r.meta.usage.output_tokens as i64,
                r.history_base as i64,
                r.message_count as i64,
                r.preview,
                r.meta.compacted_upto as i64,
                r.meta.compaction_summary,
                r.meta.memory_namespace,
                r.meta.owner,
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
            memory::index_episode(
                conn,
                key,
                &message.id,
                message.role,
                &message.text(),
                message.timestamp,
            )?;
        }
        Op::ClearHistory { key } => {
            conn.prepare_cached("DELETE FROM history WHERE session_key = ?1")?.execute([key])?;
        }
        Op::DeleteSession { key } => {
            memory::delete_episodes(conn, key)?;
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
                images::to_json(&m.images)?,
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
