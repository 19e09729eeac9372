//! The SQLite store (the default): one file under `data_dir`, or a private in-memory database
//! when nothing persists. One implementation of [`Store`] and [`MemoryStore`] among others
//! (Postgres next), held to the same store suite (`store/suite/`, run from `tests.rs`).
//!
//! - `writer.rs`: the thread that owns the connection and serves one ordered queue, with group
//!   commit; opening the file (pragmas, checks, the lock).
//! - `write.rs`: each [`Op`] as SQL; `read.rs`: loads, listings, single rows.
//! - `memory.rs` and `search.rs`: memory records, episodes and FTS5 search (GATEWAY.md §7).
//! - `migrations.rs`: the versioned schema.
//!
//! [`MemoryStore`]: crate::store::MemoryStore

mod memory;
mod migrations;
mod read;
mod search;
#[cfg(test)]
mod tests;
mod write;
mod writer;

use std::path::Path;

use futures_util::future::BoxFuture;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use self::migrations::migrate;
use self::writer::Request;
use super::{IdempotencyRecord, Op, SessionRecord, Store, StoreError, StoreResult, Stored, Ticket};

pub struct SqliteStore {
    tx: mpsc::UnboundedSender<Request>,
    describe: String,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::new(error.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(error: rusqlite::types::FromSqlError) -> Self {
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
        let conn = writer::open_file(path).map_err(|e| format!("store {}: {e}", path.display()))?;
        Ok(Self { tx: writer::spawn(conn), describe: path.display().to_string() })
    }

    /// A private in-memory database (`persist = false`): the same code, nothing on disk.
    pub fn in_memory() -> Self {
        let mut conn = Connection::open_in_memory().expect("an in-memory database opens");
        migrate(&mut conn).expect("the schema applies to an empty database");
        Self { tx: writer::spawn(conn), describe: "memory".into() }
    }

    /// Runs `call` on the store thread, after every write submitted before it. Reads use it,
    /// and so do the memory calls, which commit their own transaction.
    fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Request::Call(Box::new(move |conn| {
            let _ = tx.send(call(conn));
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
        self.call(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", pages)?;
            Ok(())
        })
    }
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
        self.call(move |conn| read::load(conn, &key))
    }

    fn history(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<crate::domain::HistoryMessage>>> {
        let key = key.to_string();
        self.call(move |conn| read::history(conn, &key, from, to))
    }

    fn list(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
        owner: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>> {
        self.call(move |conn| read::list(conn, limit, after, owner))
    }

    fn count_sessions(&self) -> BoxFuture<'_, StoreResult<u64>> {
        self.call(|conn| read::count_sessions(conn))
    }

    fn pending_sessions(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.call(|conn| read::pending_sessions(conn))
    }

    fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> BoxFuture<'_, StoreResult<Option<IdempotencyRecord>>> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.call(move |conn| read::idempotency(conn, scope, key))
    }

    fn owner(&self, key: &str) -> BoxFuture<'_, StoreResult<Option<Option<String>>>> {
        let key = key.to_string();
        self.call(move |conn| read::owner(conn, &key))
    }

    fn live_config(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.call(|conn| read::live_config(conn))
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
