//! Versioned PostgreSQL schema. The `schema_migrations` table records each version applied;
//! all pending migrations run in one transaction (PostgreSQL's DDL is transactional) under an
//! advisory lock, so two gateways starting together never apply one twice. Append new
//! migrations; never edit old ones.
//!
//! The tables mirror SQLite's (`sqlite/migrations.rs`) so both backends give the same results:
//! times are Unix ms in `BIGINT`, JSON is kept as text, keys compare byte-wise (`COLLATE "C"`,
//! as SQLite's BINARY) so listings page in the same order. Memory and episodes carry their own
//! `tsvector` (the `simple` configuration: no stemming, no stop words, like FTS5's
//! `unicode61`), set as rows are written and cleared when a record leaves the index, so
//! `rebuild` re-creates it from the records.

use super::conn::Db;
use crate::store::{StoreError, StoreResult};

/// Migration `i` brings a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite schema has at its version 5.
    r#"
    CREATE TABLE sessions (
        key                 TEXT COLLATE "C" PRIMARY KEY,
        session_id          TEXT NOT NULL,
        name                TEXT,
        created_at          BIGINT NOT NULL,
        updated_at          BIGINT NOT NULL,
        last_active_at      BIGINT NOT NULL,
        model_provider      TEXT NOT NULL,
        model_id            TEXT NOT NULL,
        thinking            TEXT NOT NULL,
        input_tokens        BIGINT NOT NULL DEFAULT 0,
        output_tokens       BIGINT NOT NULL DEFAULT 0,
        history_base        BIGINT NOT NULL DEFAULT 0,
        message_count       BIGINT NOT NULL DEFAULT 0,
        preview             TEXT,
        compacted_upto      BIGINT NOT NULL DEFAULT 0,
        compaction_summary  TEXT,
        memory_namespace    TEXT NOT NULL DEFAULT 'default',
        owner               TEXT
    );
    CREATE INDEX sessions_by_activity ON sessions (last_active_at DESC, key);
    CREATE INDEX sessions_by_owner ON sessions (owner, last_active_at DESC, key);

    -- parts is the JSON of GATEWAY.md §2 history parts.
    CREATE TABLE history (
        session_key  TEXT NOT NULL,
        position     BIGINT NOT NULL,
        id           TEXT NOT NULL,
        role         TEXT NOT NULL,
        parts        TEXT NOT NULL,
        timestamp    BIGINT NOT NULL,
        PRIMARY KEY (session_key, position)
    );

    -- Accepted messages in acceptance order (id), with their state.
    CREATE TABLE messages (
        id           BIGSERIAL PRIMARY KEY,
        message_id   TEXT NOT NULL UNIQUE,
        session_key  TEXT NOT NULL,
        joined       TEXT,
        text         TEXT NOT NULL,
        images       TEXT NOT NULL DEFAULT '[]',
        state        TEXT NOT NULL CHECK (state IN ('queued', 'started', 'done')),
        error        TEXT,
        checkpoint   TEXT,
        created_at   BIGINT NOT NULL,
        updated_at   BIGINT NOT NULL,
        source       TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_by_session ON messages (session_key, state);
    CREATE INDEX messages_done ON messages (state, updated_at);

    -- Outlives its session: seq keeps rising across delete and re-creation.
    CREATE TABLE seqs (
        session_key  TEXT PRIMARY KEY,
        seq          BIGINT NOT NULL
    );

    CREATE TABLE idempotency (
        scope        TEXT NOT NULL,
        key          TEXT NOT NULL,
        session_key  TEXT NOT NULL,
        message_id   TEXT NOT NULL,
        outcome      TEXT,
        created_at   BIGINT NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_by_session ON idempotency (session_key) WHERE outcome IS NULL;

    CREATE TABLE settings (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );

    -- search: the record's text and key while it is active, NULL once it is not.
    CREATE TABLE memories (
        id                BIGSERIAL PRIMARY KEY,
        namespace         TEXT NOT NULL,
        bucket            TEXT NOT NULL CHECK (bucket IN ('core', 'archival')),
        kind              TEXT NOT NULL,
        key               TEXT NOT NULL,
        content           TEXT NOT NULL,
        source            TEXT NOT NULL,
        created_at        BIGINT NOT NULL,
        updated_at        BIGINT NOT NULL,
        last_accessed_at  BIGINT NOT NULL,
        active            BOOLEAN NOT NULL DEFAULT TRUE,
        superseded_by     BIGINT,
        search            TSVECTOR
    );
    CREATE INDEX memories_by_key ON memories (namespace, key) WHERE active;
    CREATE INDEX memories_by_bucket ON memories (namespace, bucket) WHERE active;
    CREATE INDEX memories_search ON memories USING GIN (search);

    CREATE TABLE episodes (
        id           BIGSERIAL PRIMARY KEY,
        session_key  TEXT NOT NULL,
        message_id   TEXT NOT NULL,
        role         TEXT NOT NULL,
        content      TEXT NOT NULL,
        timestamp    BIGINT NOT NULL,
        search       TSVECTOR
    );
    CREATE INDEX episodes_by_session ON episodes (session_key);
    CREATE INDEX episodes_search ON episodes USING GIN (search);
    "#,
];

/// Brings the database (the first schema of its `search_path`) to the newest schema; refuses
/// one written by a newer build.
pub(super) async fn migrate(db: &mut Db) -> StoreResult<()> {
    db.batch("BEGIN").await?;
    let result = apply_pending(db).await;
    db.finish(result).await
}

async fn apply_pending(db: &mut Db) -> StoreResult<()> {
    // Held until the transaction ends: a second gateway starting now waits, then sees the
    // versions this one applied.
    db.batch("SELECT pg_advisory_xact_lock(hashtext('agent-gateway migrations'))").await?;
    db.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT PRIMARY KEY,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let row = db.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?;
    let version = usize::try_from(super::conn::get::<i64>(&row, 0)?).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::new(format!(
            "schema version {version} is newer than this build knows ({}); upgrade agent-gateway",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let number = index as i64 + 1;
        db.batch(sql).await.map_err(|e| StoreError::new(format!("migration {number}: {e}")))?;
        db.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&number]).await?;
    }
    Ok(())
}
