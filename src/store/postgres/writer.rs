//! The store task: it owns the connection and serves one ordered queue of writes and calls,
//! as SQLite's store thread does. Writes waiting together are applied in one transaction
//! (group commit: one round of commit for many batches), each batch inside its own savepoint
//! so a failing batch takes nothing else with it.
//!
//! A lost connection is not the end: the next request connects again (and takes the schema's
//! lock again). While the server is away each request fails at once with the reason, so
//! callers answer 503 `unavailable` and nothing is reported durable that is not.

use futures_util::future::BoxFuture;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Config;
use tracing::{error, info, warn};

use super::conn::Db;
use super::write::apply;
use crate::domain::now_ms;
use crate::store::{Op, StoreError, StoreResult};

/// Batches applied in one transaction at most.
const GROUP: usize = 256;
/// How long a request may go unanswered by default (`store_timeout`).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) type Reply = oneshot::Sender<StoreResult<()>>;

/// Work run on the task with the connection (or the reason there is none), in order with the
/// writes.
pub(super) type Work = Box<dyn for<'a> FnOnce(StoreResult<&'a mut Db>) -> BoxFuture<'a, ()> + Send>;

/// Boxes `work` as [`Work`] (the bound gives the closure its signature).
pub(super) fn work<F>(work: F) -> Work
where
    F: for<'a> FnOnce(StoreResult<&'a mut Db>) -> BoxFuture<'a, ()> + Send + 'static,
{
    Box::new(work)
}

pub(super) enum Request {
    Write(Vec<Op>, Reply),
    Call(Work),
    /// Ends the task (and with it the connection) once everything before it is done.
    Close(Reply),
}

/// The connection as the task holds it: made again when lost.
pub(super) struct Link {
    config: Config,
    /// `host:port/db` for logs.
    describe: String,
    db: Option<Db>,
    /// A request unanswered this long: the server hangs (it did not close the connection).
    timeout: Duration,
}

impl Link {
    pub(super) fn new(config: Config, describe: String, db: Db, timeout: Duration) -> Self {
        Self { config, describe, db: Some(db), timeout }
    }

    /// Drops a connection whose server stopped answering; the next request connects again.
    /// Whatever the unanswered transaction did is rolled back by the server (or, had its
    /// commit got through, is kept: its callers were told it failed, never the reverse).
    fn hung(&mut self) -> StoreError {
        warn!(store = %self.describe, timeout = ?self.timeout, "postgres did not answer; reconnecting");
        self.db = None;
        StoreError::new(format!(
            "PostgreSQL {} did not answer within {:?}",
            self.describe, self.timeout
        ))
    }

    /// The live connection, connecting again when it was lost.
    async fn db(&mut self) -> StoreResult<&mut Db> {
        let db = match self.db.take() {
            Some(db) if !db.is_lost() => db,
            lost => {
                if lost.is_some() {
                    warn!(store = %self.describe, "postgres connection lost; reconnecting");
                }
                let db = Db::connect(&self.config).await.map_err(|e| {
                    StoreError::new(format!("PostgreSQL {} unavailable: {e}", self.describe))
                })?;
                info!(store = %self.describe, "postgres connected");
                db
            }
        };
        Ok(self.db.insert(db))
    }
}

/// Starts the task that serves `link`; it ends when every sender is gone or on `Close`.
pub(super) fn spawn(link: Link) -> mpsc::UnboundedSender<Request> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(serve(link, rx));
    tx
}

async fn serve(mut link: Link, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut next = None;
    loop {
        let request = match next.take() {
            Some(request) => request,
            None => match rx.recv().await {
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
                let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                let timeout = link.timeout;
                let results = match link.db().await {
                    Ok(db) => tokio::time::timeout(timeout, write_group(db, &batches)).await,
                    Err(e) => Ok(vec![Err(e); batches.len()]),
                };
                let results = results.unwrap_or_else(|_| vec![Err(link.hung()); batches.len()]);
                for (reply, result) in replies.into_iter().zip(results) {
                    if let Err(e) = &result {
                        error!(error = %e, "store write failed");
                    }
                    let _ = reply.send(result);
                }
            }
            Request::Call(job) => {
                let timeout = link.timeout;
                // An unanswered call is dropped with its reply: its caller hears the store
                // is unavailable.
                if tokio::time::timeout(timeout, job(link.db().await)).await.is_err() {
                    link.hung();
                }
            }
            Request::Close(reply) => {
                let _ = reply.send(Ok(()));
                break;
            }
        }
    }
}

/// The result of each batch.
async fn write_group(db: &mut Db, batches: &[Vec<Op>]) -> Vec<StoreResult<()>> {
    let batches: Vec<&[Op]> = batches.iter().map(Vec::as_slice).collect();
    match apply_group(db, &batches).await {
        Ok(results) => results,
        // The transaction itself failed (its commit, or the connection): retry each batch
        // alone, so one bad batch does not fail its neighbours.
        Err(_) if batches.len() > 1 => {
            let mut results = Vec::with_capacity(batches.len());
            for batch in &batches {
                let result = apply_group(db, &[*batch]).await;
                results.push(result.and_then(|mut r| r.pop().unwrap_or(Ok(()))));
            }
            results
        }
        Err(e) => vec![Err(e)],
    }
}

/// Applies batches in one transaction, each in a savepoint; the result of each.
pub(super) async fn apply_group(
    db: &mut Db,
    batches: &[&[Op]],
) -> StoreResult<Vec<StoreResult<()>>> {
    db.batch("BEGIN").await?;
    let applied = apply_each(db, batches).await;
    db.finish(applied).await
}

async fn apply_each(db: &mut Db, batches: &[&[Op]]) -> StoreResult<Vec<StoreResult<()>>> {
    let now = now_ms();
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        db.batch("SAVEPOINT batch").await?;
        let mut result = Ok(());
        for op in *batch {
            result = apply(db, op, now).await;
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => db.batch("RELEASE SAVEPOINT batch").await?,
            // Rolls this batch back; a dead connection fails the whole group here.
            Err(_) => db.batch("ROLLBACK TO SAVEPOINT batch").await?,
        }
        results.push(result);
    }
    Ok(results)
}
