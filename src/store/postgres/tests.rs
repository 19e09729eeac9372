//! The store suite over PostgreSQL, then what only PostgreSQL does: reopening a database,
//! group commit around a failing batch, reconnecting after the server ended the connection,
//! and refusing a second gateway, a newer schema, TLS modes and unreachable servers with an
//! error that names the URL without its password.
//!
//! The server is `GATEWAY_TEST_POSTGRES_URL` (a role that may create databases; scripts/test.sh
//! starts a throwaway cluster and sets it). Each test makes its own database, so tests run in
//! parallel. Without the variable these tests fail: they are never skipped.

use tokio_postgres::{Client, NoTls};

use super::PostgresStore;
use super::writer::apply_group;
use crate::store::suite::{accepted, loaded, record, store_suite, write};
use crate::store::{Op, Store};

const URL_VAR: &str = "GATEWAY_TEST_POSTGRES_URL";

/// The test server's URL, or a failure saying how to get one.
pub(crate) fn server_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{URL_VAR} is not set: the PostgreSQL store tests need a server. Run scripts/test.sh \
             (it starts one), or `source scripts/postgres.sh && postgres_start` and run the tests \
             in that shell"
        ),
    }
}

/// A connection to `url` as the test's admin.
async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {}", super::describe_error(&e)));
    tokio::spawn(connection);
    client
}

/// A new, empty database on the test server; its URL and its name.
pub(crate) async fn fresh_database() -> (String, String) {
    let url = server_url();
    let name = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
    connect(&url).await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url.as_str(), String::new()),
    };
    let (server, _db) = base.rsplit_once('/').expect("the URL names a database");
    (format!("{server}/{name}{query}"), name)
}

async fn make() -> (Box<dyn Store>, ()) {
    let (url, _) = fresh_database().await;
    (Box::new(PostgresStore::open(&url).await.unwrap()), ())
}

store_suite!(make().await);

#[tokio::test]
async fn data_survives_close_and_reopen_and_migrations_run_once() {
    let (url, _) = fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    write(&store, vec![Op::PutSession(record("k", 1)), Op::Accept(accepted("k", "q"))]).await;
    store.close().await.unwrap();
    assert!(store.write(vec![Op::PutSession(record("x", 1))]).wait().await.is_err());
    drop(store);
    let store = PostgresStore::open(&url).await.unwrap();
    assert_eq!(loaded(&store, "k").await.messages, vec![accepted("k", "q")]);
    let versions = connect(&url)
        .await
        .query_one("SELECT COUNT(*), MAX(version) FROM schema_migrations", &[])
        .await
        .unwrap();
    let count = super::migrations::MIGRATIONS.len() as i64;
    assert_eq!((versions.get::<_, i64>(0), versions.get::<_, i64>(1)), (count, count));
}

#[tokio::test]
async fn a_group_commits_its_good_batches_around_a_failing_one() {
    let (url, _) = fresh_database().await;
    let config = super::parse(&url).unwrap();
    let mut db = super::conn::Db::connect(&config).await.unwrap();
    super::migrations::migrate(&mut db).await.unwrap();
    let good = |key: &str| vec![Op::PutSession(record(key, 1))];
    let failing = vec![Op::PutSession(record("b", 1)), Op::Start { message_id: "x".into() }];
    let batches = [good("a"), failing, good("c")];
    let slices: Vec<&[Op]> = batches.iter().map(Vec::as_slice).collect();
    let results = apply_group(&mut db, &slices).await.unwrap();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].as_ref().unwrap_err().message.contains("not queued"));
    let mut stored = Vec::new();
    for key in ["a", "b", "c"] {
        stored.push(super::read::load(&mut db, key).await.unwrap().session.is_some());
    }
    assert_eq!(stored, [true, false, true]);
}

#[tokio::test]
async fn the_store_reconnects_after_the_server_ends_its_connection() {
    let (url, name) = fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    write(&store, vec![Op::PutSession(record("k", 1))]).await;
    let admin = connect(&server_url()).await;
    let ended = admin
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid, 10000))
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(ended.get::<_, i64>(0), 1, "the store's one connection was ended");
    // The first request may be the one that finds the connection gone (and fails, with
    // nothing written); the next one runs on a new connection.
    let _ = store.load("k").await;
    assert!(loaded(&store, "k").await.messages.is_empty());
    write(&store, vec![Op::Accept(accepted("k", "after"))]).await;
    assert_eq!(loaded(&store, "k").await.messages, vec![accepted("k", "after")]);
}

#[tokio::test]
async fn a_second_gateway_on_the_same_database_is_refused() {
    let (url, _) = fresh_database().await;
    let _first = PostgresStore::open(&url).await.unwrap();
    let error = PostgresStore::open(&url).await.err().expect("the database is in use");
    assert!(error.contains("another agent-gateway"), "{error}");
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused() {
    let (url, _) = fresh_database().await;
    PostgresStore::open(&url).await.unwrap().close().await.unwrap();
    let admin = connect(&url).await;
    admin.batch_execute("INSERT INTO schema_migrations (version) VALUES (99)").await.unwrap();
    let error = PostgresStore::open(&url).await.err().expect("a newer schema is refused");
    assert!(error.contains("schema version 99 is newer"), "{error}");
}

#[tokio::test]
async fn start_errors_name_the_url_without_its_password() {
    // Nothing listens on port 1.
    let error = PostgresStore::open("postgres://gw:sekrit-pw@127.0.0.1:1/gw").await.err().unwrap();
    assert!(error.starts_with("store postgres://gw:<redacted>@127.0.0.1:1/gw: "), "{error}");
    assert!(error.contains("error connecting to server"), "{error}");
    assert!(!error.contains("sekrit-pw"), "{error}");

    let (url, _) = fresh_database().await;
    let (user_info, host) = url.split_once('@').unwrap();
    let (user, password) = user_info.rsplit_once(':').unwrap();
    let wrong = format!("{user}:not-{password}-either@{host}");
    let error = PostgresStore::open(&wrong).await.err().unwrap();
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!error.contains(password) && error.contains(":<redacted>@"), "{error}");

    let error = PostgresStore::open(&format!("{url}?sslmode=require")).await.err().unwrap();
    assert!(error.contains("sslmode=require needs TLS"), "{error}");
    assert!(!error.contains(password), "{error}");
}

#[tokio::test]
async fn describe_names_the_database_never_the_password() {
    let (url, name) = fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    let (_, password) = url.split_once('@').unwrap().0.rsplit_once(':').unwrap();
    let describe = store.describe();
    assert!(describe.starts_with("postgres://") && describe.ends_with(&format!("/{name}")));
    assert!(!describe.contains(password), "{describe}");
}
