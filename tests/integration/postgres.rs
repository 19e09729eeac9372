//! The gateway on PostgreSQL (issue 18): a session end to end on `store_url` with no SQLite
//! file made, history and idempotency kept across a restart on the same database, the password
//! never in `/config`, a clear start error when the server is down, and an outage while
//! serving answered 503 `unavailable` with recovery, without a restart, once it is back.
//!
//! Each test makes its own database on `GATEWAY_TEST_POSTGRES_URL` (scripts/test.sh starts the
//! server); without it they fail, never skip. `durability.rs` crashes a gateway on one too.

use agent_gateway::app::AppState;
use agent_gateway::config::{Config, Sources};
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

use crate::common::*;

const URL_VAR: &str = "GATEWAY_TEST_POSTGRES_URL";

fn server_url() -> String {
    std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        panic!("{URL_VAR} is not set: these tests need a PostgreSQL server; run scripts/test.sh")
    })
}

async fn admin(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("test server");
    tokio::spawn(connection);
    client
}

/// A new database on the test server: its URL, its name and the password in the URL.
pub async fn fresh_database() -> (String, String, String) {
    let url = server_url();
    let name = format!("gw_it_{}", uuid::Uuid::new_v4().simple());
    admin(&url).await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (server, _) = url.rsplit_once('/').unwrap();
    let password = server.rsplit_once('@').unwrap().0.rsplit_once(':').unwrap().1.to_string();
    (format!("{server}/{name}"), name, password)
}

async fn send(gw: &Gateway, key: &str, text: &str, idempotency: &str) -> (u16, Value) {
    let request = gw.http.post(gw.url(&format!("/sessions/{key}/messages")));
    let request = request.header("idempotency-key", idempotency).json(&json!({"text": text}));
    read(request.send().await.unwrap()).await
}

async fn history_texts(gw: &Gateway, key: &str) -> Vec<String> {
    let (status, history) = gw.get(&format!("/sessions/{key}/history")).await;
    assert_eq!(status, 200, "{history}");
    page_texts(&history)
}

#[tokio::test]
async fn a_session_runs_on_postgres_and_survives_a_restart() {
    let (url, _, password) = fresh_database().await;
    let gw = Gateway::with(&[("store_url", url.as_str())]).await;
    let (status, first) = send(&gw, "pg", "hello postgres", "key-1").await;
    assert_eq!((status, &first["ok"]), (200, &json!(true)), "{first}");
    assert_eq!(history_texts(&gw, "pg").await, ["hello postgres", "hello postgres"]);
    let (status, found) = gw.post("/memory/search", json!({"query": "postgres"})).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"].as_array().unwrap().len(), 2, "both messages are episodes");

    let (status, config) = gw.get("/config").await;
    assert_eq!(status, 200);
    let shown = config.to_string();
    assert!(!shown.contains(&password), "{shown}");
    assert!(shown.contains(":<redacted>@127.0.0.1"), "{shown}");
    let (_, status_view) = gw.get("/memory/status").await;
    assert!(!status_view.to_string().contains(&password), "{status_view}");

    let stopped = gw.stop_keeping_data().await;
    assert!(!stopped.database().exists(), "no SQLite file with store_url");
    let gw = stopped.start().await;
    assert_eq!(history_texts(&gw, "pg").await, ["hello postgres", "hello postgres"]);
    let (status, again) = send(&gw, "pg", "hello postgres", "key-1").await;
    assert_eq!((status, &again), (200, &first), "the key's outcome came back from the store");
    assert_eq!(history_texts(&gw, "pg").await.len(), 2, "the repeat ran nothing");
    let (status, _) = send(&gw, "pg", "second", "key-2").await;
    assert_eq!(status, 200);
    assert_eq!(history_texts(&gw, "pg").await.len(), 4);
}

#[tokio::test]
async fn a_server_down_at_start_is_a_clear_error_without_the_password() {
    // Nothing listens on port 1.
    let url = "postgres://gw:do-not-show-me@127.0.0.1:1/gw";
    let overrides = vec![("store_url".to_string(), url.to_string())];
    let config = Config::load(&Sources { overrides, ..Default::default() }).unwrap();
    let error = AppState::open(config).await.err().expect("the start fails");
    assert!(error.starts_with("store postgres://gw:<redacted>@127.0.0.1:1/gw: "), "{error}");
    assert!(error.contains("error connecting to server"), "{error}");
    assert!(!error.contains("do-not-show-me"), "{error}");
}

#[tokio::test]
async fn an_outage_answers_503_and_the_gateway_recovers_without_a_restart() {
    let (url, name, _) = fresh_database().await;
    let gw = Gateway::with(&[("store_url", url.as_str())]).await;
    assert_eq!(send(&gw, "out", "before", "k-before").await.0, 200);
    // The outage: the database refuses new connections and the gateway's is ended.
    let root = admin(&server_url()).await;
    root.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await.unwrap();
    let ended = root
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid, 10000))
             FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(ended.get::<_, i64>(0), 1, "the gateway's one connection");
    let (status, answer) = send(&gw, "out", "during", "k-during").await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_string().contains("unavailable"), "{answer}");
    // Back: the next call reconnects.
    root.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await.unwrap();
    let (status, answer) = send(&gw, "out", "after", "k-after").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(history_texts(&gw, "out").await, ["before", "before", "after", "after"]);
    let stopped = gw.stop_keeping_data().await;
    let gw = stopped.start().await;
    assert_eq!(history_texts(&gw, "out").await.len(), 4, "nothing from the outage half-written");
}

/// A TCP proxy in front of the test server that can stop passing bytes either way without
/// closing anything: a server that hangs, or a partition that sends no reset.
struct Freezer {
    addr: std::net::SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Freezer {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, watch.clone()));
                tokio::spawn(pipe(server_read, client_write, watch.clone()));
            }
        });
        Self { addr, frozen }
    }
}

/// Copies `from` to `to`, holding (not dropping) what it read while frozen.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::test]
async fn a_server_that_stops_answering_is_an_outage_too() {
    let (url, _, _) = fresh_database().await;
    // The same database, reached through the proxy.
    let (credentials, rest) = url.rsplit_once('@').unwrap();
    let (upstream, database) = rest.split_once('/').unwrap();
    let freezer = Freezer::start(upstream.to_string()).await;
    let proxied = format!("{credentials}@{}/{database}", freezer.addr);
    let gw = Gateway::with(&[("store_url", proxied.as_str()), ("store_timeout", "1s")]).await;
    assert_eq!(send(&gw, "hang", "before", "k-before").await.0, 200);

    freezer.frozen.send_replace(true);
    let (status, answer) = within(send(&gw, "hang", "during", "k-during")).await;
    assert_eq!(status, 503, "an answer, not a hang: {answer}");
    assert!(answer.to_string().contains("did not answer within 1s"), "{answer}");

    freezer.frozen.send_replace(false);
    // The hung connection was dropped (its lock goes with it once the server sees it close);
    // a new one is made on the next call.
    let answer = within(async {
        loop {
            let (status, answer) = send(&gw, "hang", "after", "k-after").await;
            if status == 200 {
                return answer;
            }
            assert_eq!(status, 503, "{answer}");
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(answer["response"], "after");
    assert_eq!(history_texts(&gw, "hang").await, ["before", "before", "after", "after"]);
}
