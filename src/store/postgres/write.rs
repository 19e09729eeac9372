//! The writes: each [`Op`] as SQL, the same statements as SQLite's (`sqlite/write.rs`) in
//! PostgreSQL's words (`ON CONFLICT` for `INSERT OR REPLACE`). [`apply`] runs inside the
//! store task's savepoint for its batch, so every statement of a batch lands or none does.

use super::conn::Db;
use super::memory;
use crate::store::{Op, StoreError, StoreResult, images};

/// Applies one op; `now` is the batch's clock (`updated_at` of the rows it touches).
pub(super) async fn apply(db: &mut Db, op: &Op, now: i64) -> StoreResult<()> {
    match op {
        Op::PutSession(r) => {
            db.execute(
                "INSERT INTO sessions (key, session_id, name, created_at, updated_at,
                 last_active_at, model_provider, model_id, thinking, input_tokens, output_tokens,
                 history_base, message_count, preview, compacted_upto, compaction_summary,
                 memory_namespace, owner)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18)
                 ON CONFLICT (key) DO UPDATE SET session_id = EXCLUDED.session_id,
                   name = EXCLUDED.name, created_at = EXCLUDED.created_at,
                   updated_at = EXCLUDED.updated_at, last_active_at = EXCLUDED.last_active_at,
                   model_provider = EXCLUDED.model_provider, model_id = EXCLUDED.model_id,
                   thinking = EXCLUDED.thinking, input_tokens = EXCLUDED.input_tokens,
                   output_tokens = EXCLUDED.output_tokens, history_base = EXCLUDED.history_base,
                   message_count = EXCLUDED.message_count, preview = EXCLUDED.preview,
                   compacted_upto = EXCLUDED.compacted_upto,
                   compaction_summary = EXCLUDED.compaction_summary,
                   memory_namespace = EXCLUDED.memory_namespace, owner = EXCLUDED.owner",
                &[
                    &r.key,
                    &r.meta.session_id,
                    &r.meta.name,
                    &r.meta.created_at,
                    &r.meta.updated_at,
                    &r.meta.last_active_at,
                    &r.meta.model.provider,
                    &r.meta.model.model_id,
                    &r.meta.thinking.as_str(),
                    &(r.meta.usage.input_tokens as i64),
                    &(r.meta.usage.output_tokens as i64),
                    &(r.history_base as i64),
                    &(r.message_count as i64),
                    &r.preview,
                    &(r.meta.compacted_upto as i64),
                    &r.meta.compaction_summary,
                    &r.meta.memory_namespace,
                    &r.meta.owner,
                ],
            )
            .await?;
        }
        Op::Seq { key, seq } => {
            db.execute(
                "INSERT INTO seqs (session_key, seq) VALUES ($1, $2)
                 ON CONFLICT (session_key) DO UPDATE SET seq = EXCLUDED.seq",
                &[key, &(*seq as i64)],
            )
            .await?;
        }
        Op::AppendHistory { key, position, message } => {
            db.execute(
                "INSERT INTO history (session_key, position, id, role, parts, timestamp)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    key,
                    &(*position as i64),
                    &message.id,
                    &message.role.as_str(),
                    &serde_json::to_string(&message.parts)?,
                    &message.timestamp,
                ],
            )
            .await?;
            memory::index_episode(
                db,
                key,
                &message.id,
                message.role,
                &message.text(),
                message.timestamp,
            )
            .await?;
        }
        Op::ClearHistory { key } => {
            db.execute("DELETE FROM history WHERE session_key = $1", &[key]).await?;
        }
        Op::DeleteSession { key } => {
            db.execute("DELETE FROM episodes WHERE session_key = $1", &[key]).await?;
            db.execute("DELETE FROM sessions WHERE key = $1", &[key]).await?;
            db.execute("DELETE FROM history WHERE session_key = $1", &[key]).await?;
            db.execute("DELETE FROM messages WHERE session_key = $1", &[key]).await?;
        }
        Op::Accept(m) => {
            let checkpoint = m.checkpoint.as_ref().map(serde_json::to_string).transpose()?;
            db.execute(
                "INSERT INTO messages (message_id, session_key, joined, text, images, state,
                 checkpoint, created_at, updated_at, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &m.message_id,
                    &m.session_key,
                    &m.joined,
                    &m.text,
                    &images::to_json(&m.images)?,
                    &m.state.as_str(),
                    &checkpoint,
                    &m.created_at,
                    &now,
                    &m.source.as_str(),
                ],
            )
            .await?;
        }
        Op::Start { message_id } => {
            let changed = db
                .execute(
                    "UPDATE messages SET state = 'started', updated_at = $2
                     WHERE message_id = $1 AND state = 'queued'",
                    &[message_id, &now],
                )
                .await?;
            if changed != 1 {
                return Err(StoreError::new(format!("message {message_id} is not queued")));
            }
        }
        Op::Checkpoint { message_id, checkpoint } => {
            db.execute(
                "UPDATE messages SET checkpoint = $2, updated_at = $3
                 WHERE message_id = $1 AND state = 'started'",
                &[message_id, &serde_json::to_string(checkpoint)?, &now],
            )
            .await?;
        }
        Op::Finish { message_id, error } => {
            db.execute(
                "UPDATE messages SET state = 'done', error = $2, checkpoint = NULL, updated_at = $3
                 WHERE message_id = $1",
                &[message_id, error, &now],
            )
            .await?;
        }
        Op::PutIdempotency(r) => {
            db.execute(
                "INSERT INTO idempotency (scope, key, session_key, message_id, outcome, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (scope, key) DO UPDATE SET session_key = EXCLUDED.session_key,
                   message_id = EXCLUDED.message_id, outcome = EXCLUDED.outcome,
                   created_at = EXCLUDED.created_at",
                &[&r.scope, &r.key, &r.session_key, &r.message_id, &r.outcome, &r.created_at],
            )
            .await?;
        }
        Op::PutLiveConfig(patch) => {
            db.execute(
                "INSERT INTO settings (name, value) VALUES ('live_config', $1)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[patch],
            )
            .await?;
        }
        Op::Prune { before } => {
            db.execute("DELETE FROM messages WHERE state = 'done' AND updated_at < $1", &[before])
                .await?;
            db.execute("DELETE FROM idempotency WHERE created_at < $1", &[before]).await?;
        }
    }
    Ok(())
}
