//! The PostgreSQL store (`store_url = "postgres://user:pass@host:port/db"`): the same
//! [`Store`] and [`MemoryStore`] as SQLite's, held to the same store suite (`store/suite/`,
//! run from `tests.rs`), so a gateway behaves the same on either.
//!
//! - `conn.rs`: the one connection (driver: `tokio-postgres`, no TLS), its statement cache and
//!   the advisory lock that keeps a second gateway off the same schema.
//! - `writer.rs`: the task that owns the connection and serves one ordered queue with group
//!   commit, reconnecting when the server comes back.
//! - `write.rs`: each [`Op`] as SQL; `read.rs`: loads, listings, single rows.
//! - `memory.rs` and `search.rs`: memory records, episodes, `tsvector` search (GATEWAY.md §7).
//! - `migrations.rs`: the versioned schema (`schema_migrations`).
//!
//! One connection, not a pool: every request goes through one ordered queue, which is what
//! makes "reads see every earlier write" and "batches apply in submission order" hold.
//!
//! [`MemoryStore`]: crate::store::MemoryStore

mod conn;
mod memory;
mod migrations;
mod read;
mod search;
#[cfg(test)]
mod tests;
mod write;
mod writer;

use futures_util::future::BoxFuture;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode};
use tracing::{info, warn};

use self::conn::{Db, describe_error};
use self::writer::{Link, Request};
use super::{IdempotencyRecord, Op, SessionRecord, Store, StoreError, StoreResult, Stored, Ticket};
use crate::config::redact_url;
use crate::domain::HistoryMessage;

pub struct PostgresStore {
    tx: mpsc::UnboundedSender<Request>,
    describe: String,
    timeout: Duration,
}

impl PostgresStore {
    /// Connects, takes the schema's lock and migrates. The error names the URL without its
    /// password: an unreachable server, a wrong password or a schema from a newer build stop
    /// the start.
    pub async fn open(url: &str) -> Result<Self, String> {
        Self::open_with_timeout(url, writer::REQUEST_TIMEOUT).await
    }

    /// Like [`Self::open`], with how long a request may go unanswered before the connection
    /// counts as lost (`store_timeout`).
    pub async fn open_with_timeout(url: &str, timeout: Duration) -> Result<Self, String> {
        let fail = |e: &str| format!("store {}: {e}", redact_url(url));
        let config = parse(url).map_err(|e| fail(&e))?;
        let describe = describe(&config);
        let mut db = Db::connect(&config).await.map_err(|e| fail(&e.message))?;
        migrations::migrate(&mut db).await.map_err(|e| fail(&e.message))?;
        info!(store = %describe, "postgres store ready");
        let link = Link::new(config, describe.clone(), db, timeout);
        Ok(Self { tx: writer::spawn(link), describe, timeout })
    }

    /// Runs `call` on the store task, after every write submitted before it. Reads use it,
    /// and so do the memory calls, which commit their own transaction.
    fn call<T, F>(&self, call: F) -> BoxFuture<'_, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Db) -> BoxFuture<'a, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work = writer::work(move |db| {
            Box::pin(async move {
                let result = match db {
                    Ok(db) => call(db).await,
                    Err(e) => Err(e),
                };
                let _ = tx.send(result);
            })
        });
        let sent = self.tx.send(Request::Call(work));
        Box::pin(async move {
            if sent.is_err() {
                return Err(StoreError::closed());
            }
            // A reply dropped while the task goes on: the call got no answer in time.
            rx.await.unwrap_or_else(|_| {
                Err(match self.tx.is_closed() {
                    true => StoreError::closed(),
                    false => StoreError::new(format!(
                        "PostgreSQL {} did not answer within {:?}",
                        self.describe, self.timeout
                    )),
                })
            })
        })
    }
}

/// The URL as the driver reads it; only TLS-less modes, since this build has no TLS for
/// PostgreSQL.
fn parse(url: &str) -> Result<Config, String> {
    let config: Config = url.parse().map_err(|e| describe_error(&e))?;
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => Ok(config),
        _ => Err("sslmode=require needs TLS, which this build does not have for PostgreSQL: \
                  use sslmode=disable or prefer (or a TLS-terminating proxy)"
            .into()),
    }
}

/// `postgres://user@host:port/db`: where the data lives, for logs and errors; never the
/// password.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config.get_ports().get(i).or(config.get_ports().first()).unwrap_or(&5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

impl Store for PostgresStore {
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
        self.call(move |db| Box::pin(async move { read::load(db, &key).await }))
    }

    fn history(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<HistoryMessage>>> {
        let key = key.to_string();
        self.call(move |db| Box::pin(async move { read::history(db, &key, from, to).await }))
    }

    fn list(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
        owner: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>> {
        self.call(move |db| Box::pin(read::list(db, limit, after, owner)))
    }

    fn count_sessions(&self) -> BoxFuture<'_, StoreResult<u64>> {
        self.call(|db| Box::pin(read::count_sessions(db)))
    }

    fn pending_sessions(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.call(|db| Box::pin(read::pending_sessions(db)))
    }

    fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> BoxFuture<'_, StoreResult<Option<IdempotencyRecord>>> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.call(move |db| Box::pin(read::idempotency(db, scope, key)))
    }

    fn owner(&self, key: &str) -> BoxFuture<'_, StoreResult<Option<Option<String>>>> {
        let key = key.to_string();
        self.call(move |db| Box::pin(async move { read::owner(db, &key).await }))
    }

    fn live_config(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.call(|db| Box::pin(read::live_config(db)))
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
