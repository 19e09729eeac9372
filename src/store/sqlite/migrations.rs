//! Versioned SQLite schema. `PRAGMA user_version` records how many migrations a database has;
//! each one runs once, in its own transaction. Append new migrations; never edit old ones.

use rusqlite::Connection;

/// Migration `i` brings a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: sessions, history, the message queue, seq per key, idempotency records.
    r#"
    CREATE TABLE sessions (
        key             TEXT PRIMARY KEY,
        session_id      TEXT NOT NULL,
        name            TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        last_active_at  INTEGER NOT NULL,
        model_provider  TEXT NOT NULL,
        model_id        TEXT NOT NULL,
        thinking        TEXT NOT NULL,
        input_tokens    INTEGER NOT NULL DEFAULT 0,
        output_tokens   INTEGER NOT NULL DEFAULT 0,
        history_base    INTEGER NOT NULL DEFAULT 0,
        message_count   INTEGER NOT NULL DEFAULT 0,
        preview         TEXT
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_activity ON sessions (last_active_at DESC, key);

    -- parts is the JSON of GATEWAY.md §2 history parts.
    CREATE TABLE history (
        session_key  TEXT NOT NULL,
        position     INTEGER NOT NULL,
        id           TEXT NOT NULL,
        role         TEXT NOT NULL,
        parts        TEXT NOT NULL,
        timestamp    INTEGER NOT NULL,
        PRIMARY KEY (session_key, position)
    ) WITHOUT ROWID;

    -- Accepted messages in acceptance order (id), with their state.
    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id   TEXT NOT NULL UNIQUE,
        session_key  TEXT NOT NULL,
        joined       TEXT,
        text         TEXT NOT NULL,
        images       TEXT NOT NULL DEFAULT '[]',
        state        TEXT NOT NULL CHECK (state IN ('queued', 'started', 'done')),
        error        TEXT,
        checkpoint   TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX messages_by_session ON messages (session_key, state);
    CREATE INDEX messages_done ON messages (state, updated_at);

    -- Outlives its session: seq keeps rising across delete and re-creation.
    CREATE TABLE seqs (
        session_key  TEXT PRIMARY KEY,
        seq          INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE idempotency (
        scope        TEXT NOT NULL,
        key          TEXT NOT NULL,
        session_key  TEXT NOT NULL,
        message_id   TEXT NOT NULL,
        outcome      TEXT,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID;
    "#,
    // 2: context compaction per session.
    r#"
    ALTER TABLE sessions ADD COLUMN compacted_upto INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN compaction_summary TEXT;
    "#,
    // 3: memory: namespaces, records, episodes, and their FTS5 indexes (rowid = record id).
    r#"
    ALTER TABLE sessions ADD COLUMN memory_namespace TEXT NOT NULL DEFAULT 'default';
    CREATE TABLE memories (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace         TEXT NOT NULL,
        bucket            TEXT NOT NULL CHECK (bucket IN ('core', 'archival')),
        kind              TEXT NOT NULL,
        key               TEXT NOT NULL,
        content           TEXT NOT NULL,
        source            TEXT NOT NULL,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        last_accessed_at  INTEGER NOT NULL,
        active            INTEGER NOT NULL DEFAULT 1,
        superseded_by     INTEGER
    );
    CREATE INDEX memories_by_key ON memories (namespace, key, active);
    CREATE INDEX memories_by_bucket ON memories (namespace, bucket, active);
    CREATE VIRTUAL TABLE memory_index USING fts5 (content, key, tokenize = 'unicode61');
    CREATE TABLE episodes (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        session_key  TEXT NOT NULL,
        message_id   TEXT NOT NULL,
        role         TEXT NOT NULL,
        content      TEXT NOT NULL,
        timestamp    INTEGER NOT NULL
    );
    CREATE INDEX episodes_by_session ON episodes (session_key);
    CREATE VIRTUAL TABLE episode_index USING fts5 (content, tokenize = 'unicode61');
    -- Per-term document counts, to plan searches on big indexes.
    CREATE VIRTUAL TABLE memory_vocab USING fts5vocab (memory_index, 'row');
    CREATE VIRTUAL TABLE episode_vocab USING fts5vocab (episode_index, 'row');
    "#,
    // 4: the token (by name) that created a session, for `own_sessions_only`.
    r#"
    ALTER TABLE sessions ADD COLUMN owner TEXT;
    CREATE INDEX sessions_by_owner ON sessions (owner, last_active_at DESC, key);
    CREATE INDEX idempotency_by_session ON idempotency (session_key) WHERE outcome IS NULL;
    "#,
    // 5: gateway-wide settings (the live config patches, kept across restarts), and where each
    // accepted message came from (for the queue listing).
    r#"
    CREATE TABLE settings (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE messages ADD COLUMN source TEXT NOT NULL DEFAULT '';
    "#,
];

/// Brings the database to the newest schema; refuses one written by a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let version: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map_err(|e| e.to_string())? as usize;
    if version > MIGRATIONS.len() {
        return Err(format!(
            "schema version {version} is newer than this build knows ({}); upgrade agent-gateway",
            MIGRATIONS.len()
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql).map_err(|e| format!("migration {}: {e}", index + 1))?;
        tx.pragma_update(None, "user_version", (index + 1) as i64).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(migrate(&mut conn).unwrap_err().contains("newer"));
    }
}
