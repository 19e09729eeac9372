//! The store thread: it owns the one connection and serves an ordered queue of writes and
//! calls. Writes that are waiting together are applied in one transaction (group commit: one
//! fsync for many batches), each batch inside its own savepoint so a failing batch takes
//! nothing else with it. Opening the file (pragmas, checks, migrations, the lock) is here too.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::migrations::migrate;
use super::write::apply;
use crate::domain::now_ms;
use crate::store::{Op, StoreError, StoreResult};

/// Batches applied in one transaction at most.
const GROUP: usize = 256;

pub(super) type Reply = oneshot::Sender<StoreResult<()>>;

/// Work run on the thread with the connection, in order with the writes.
pub(super) type Work = Box<dyn FnOnce(&mut Connection) + Send>;

pub(super) enum Request {
    Write(Vec<Op>, Reply),
    Call(Work),
    /// Checkpoints the WAL into the database file and ends the thread.
    Close(Reply),
}

/// Starts the thread that serves `conn`; it ends when every sender is gone or on `Close`.
pub(super) fn spawn(conn: Connection) -> mpsc::UnboundedSender<Request> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || serve(conn, rx))
        .expect("the store thread starts");
    tx
}

/// Opens the file for this process alone: WAL journal, `synchronous=FULL` (a batch reported
/// durable survives power loss too), an integrity check, the migrations, and an exclusive
/// lock held until exit so two gateways never share a data dir.
pub(super) fn open_file(path: &Path) -> Result<Connection, String> {
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
            Request::Call(job) => job(&mut conn),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::suite::record;

    #[test]
    fn a_group_commits_its_good_batches_around_a_failing_one() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let good = |key: &str| vec![Op::PutSession(record(key, 1))];
        let failing = vec![Op::PutSession(record("b", 1)), Op::Start { message_id: "x".into() }];
        let batches = [good("a"), failing, good("c")];
        let slices: Vec<&[Op]> = batches.iter().map(Vec::as_slice).collect();
        let results = apply_group(&mut conn, &slices).unwrap();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(results[1].as_ref().unwrap_err().message.contains("not queued"));
        let stored = |key: &str| super::super::read::load(&conn, key).unwrap().session.is_some();
        assert_eq!((stored("a"), stored("b"), stored("c")), (true, false, true));
    }

    #[tokio::test]
    async fn the_queue_is_served_in_order_and_close_ends_it() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let tx = spawn(conn);
        let (reply, written) = oneshot::channel();
        tx.send(Request::Write(vec![Op::PutSession(record("k", 1))], reply)).unwrap();
        let (seen_tx, seen) = oneshot::channel();
        let job: Work = Box::new(move |conn| {
            let _ = seen_tx.send(super::super::read::count_sessions(conn).unwrap());
        });
        tx.send(Request::Call(job)).unwrap();
        let (reply, closed) = oneshot::channel();
        tx.send(Request::Close(reply)).unwrap();
        assert_eq!(written.await.unwrap(), Ok(()));
        assert_eq!(seen.await.unwrap(), 1, "the call ran after the write before it");
        closed.await.unwrap().unwrap();
        tx.closed().await;
    }
}
