//! The store suite over SQLite on disk and in memory, then what only SQLite does: reopening a
//! file, a full disk, and refusing a locked, corrupt or truncated file.

use super::SqliteStore;
use crate::domain::Role;
use crate::store::suite::{accepted, loaded, message, record, store_suite, write};
use crate::store::{MessageRecord, Op, Store};

mod file {
    use super::*;

    fn make() -> (Box<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("gateway.db")).unwrap();
        (Box::new(store), dir)
    }
    store_suite!(make());
}

mod in_memory {
    use super::*;

    fn make() -> (Box<dyn Store>, ()) {
        (Box::new(SqliteStore::in_memory()), ())
    }
    store_suite!(make());
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let store = SqliteStore::open(&path).unwrap();
    write(&store, vec![Op::PutSession(record("k", 1)), Op::Accept(accepted("k", "q"))]).await;
    store.close().await.unwrap();
    assert!(store.write(vec![Op::PutSession(record("x", 1))]).wait().await.is_err());
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(loaded(&store, "k").await.messages, vec![accepted("k", "q")]);
}

#[tokio::test]
async fn a_full_disk_fails_the_batch_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gateway.db")).unwrap();
    write(&store, vec![Op::PutSession(record("k", 1))]).await;
    store.fill_up().await.unwrap();
    let big = MessageRecord { text: "x".repeat(200_000), ..accepted("k", "big") };
    let error = store
        .write(vec![Op::PutSession(record("k2", 1)), Op::Accept(big)])
        .wait()
        .await
        .unwrap_err();
    assert!(error.message.contains("full"), "{error}");
    assert!(store.load("k2").await.unwrap().session.is_none(), "nothing half-written");
    assert!(loaded(&store, "k").await.messages.is_empty());
}

#[test]
fn a_second_gateway_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let _first = SqliteStore::open(&path).unwrap();
    let error = SqliteStore::open(&path).err().expect("the file is locked");
    assert!(error.contains("locked") && error.contains("gateway.db"), "{error}");
}

#[test]
fn corrupt_and_truncated_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let error = SqliteStore::open(&garbage).err().expect("garbage is refused");
    assert!(error.contains("garbage.db") && error.contains("not a database"), "{error}");

    let path = dir.path().join("truncated.db");
    let store = SqliteStore::open(&path).unwrap();
    let batch = (0..200)
        .map(|i| Op::AppendHistory {
            key: "k".into(),
            position: i,
            message: message(&i.to_string(), Role::User, &"x".repeat(1000)),
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        write(&store, batch).await;
        store.close().await.unwrap();
    });
    drop(store);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len / 2).unwrap();
    let error = SqliteStore::open(&path).err().expect("a truncated file is refused");
    assert!(error.contains("truncated.db"), "{error}");
}
