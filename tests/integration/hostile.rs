//! Hostile input (GATEWAY.md §8), as properties: arbitrary bytes, invalid UTF-8, deep
//! nesting, huge numbers and wrong types sent to every HTTP route that reads a JSON body, and
//! arbitrary path segments as session keys, always get a 4xx or a success with a JSON error
//! shape, never a 5xx or a panic. The router is called in process (no sockets), so many
//! cases run in little time; `PROPTEST_CASES` raises the count.

use agent_gateway::app::AppState;
use agent_gateway::config::{Config, Sources};
use axum::body::Body;
use http::{Method, Request};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Every route with a JSON body: (method, path with `{key}` for a fresh session key).
const JSON_ROUTES: &[(&str, &str)] = &[
    ("POST", "/sessions/{key}/messages"),
    ("POST", "/sessions/{key}/chat"),
    ("POST", "/sessions/{key}/steer"),
    ("POST", "/sessions/{key}/model"),
    ("POST", "/sessions/{key}/thinking"),
    ("POST", "/sessions/{key}/commands"),
    ("PATCH", "/sessions/{key}"),
    ("POST", "/v1/conversations"),
    ("POST", "/v1/chat"),
    ("POST", "/v1/chat/stream"),
    ("POST", "/v1/adapters/chat"),
    ("POST", "/v1/adapters/chat/stream"),
    ("POST", "/memory/search"),
    ("POST", "/memory/remember"),
    ("POST", "/memory/forget"),
    ("POST", "/memory/rebuild"),
    ("PATCH", "/config"),
    ("POST", "/webhooks/{key}"),
];

/// Field names the routes read, so generated objects hit the real parsing paths.
const FIELDS: &[&str] = &[
    "text",
    "prompt",
    "messages",
    "images",
    "idempotencyKey",
    "streamingBehavior",
    "name",
    "conversationId",
    "message",
    "memoryNamespace",
    "source",
    "workspaceId",
    "channelId",
    "threadId",
    "userId",
    "query",
    "limit",
    "sessionKey",
    "content",
    "bucket",
    "kind",
    "key",
    "id",
    "provider",
    "modelId",
    "level",
    "command",
    "args",
    "sender",
    "metadata",
    "async",
    "session",
    "max_queue",
    "limits",
    "role",
    "parts",
    "type",
    "data",
    "mimeType",
    "url",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "steer",
            "followUp",
            "user",
            "core",
            "secret",
            "high",
            "help",
            "!fail boom",
            "",
            " "
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|fields| {
                Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (workspace, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let overrides = vec![
            ("workspace".to_string(), workspace.path().display().to_string()),
            ("data_dir".to_string(), data.path().display().to_string()),
            ("http.max_body".to_string(), "65536".to_string()),
        ];
        let config = Config::load(&Sources { overrides, ..Default::default() }).unwrap();
        let app = runtime.block_on(async {
            let state = AppState::open(config).await.unwrap();
            agent_gateway::server::router(&state).unwrap().app
        });
        Self { runtime, app, _dirs: (workspace, data) }
    }

    /// Sends one request; returns the status and the body as far as it is ready (streams are
    /// not waited for: their head is what is checked).
    fn call(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Option<Value>) {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let body = if streaming {
                None
            } else {
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                serde_json::from_slice(&bytes).ok()
            };
            (status, body)
        })
    }
}

/// The property: never a 5xx (save the seed's 500 for a run that failed), and a refusal is
/// `{error, code}` with a message.
fn check(route: &str, status: u16, body: &Option<Value>) -> Result<(), TestCaseError> {
    let failed_run =
        body.as_ref().is_some_and(|b| b["ok"] == json!(false) && b["messageId"].is_string());
    prop_assert!(status < 500 || failed_run, "{route}: {status} {body:?}");
    if status >= 400 && !failed_run {
        let body = body.as_ref().expect("a JSON error body");
        prop_assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{route}: {body}");
        prop_assert!(body["code"].is_string(), "{route}: {body}");
    }
    Ok(())
}

fn fill(path: &str) -> String {
    path.replace("{key}", &format!("p-{}", uuid::Uuid::new_v4()))
}

/// 96 cases per property in the test command; `PROPTEST_CASES` for a longer hunt.
fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

#[test]
fn json_bodies_of_any_shape_get_a_4xx_or_an_answer() {
    let harness = Harness::new();
    proptest!(cases(), |(route in prop::sample::select(JSON_ROUTES), value in json_value())| {
        let (method, path) = route;
        let (status, body) = harness.call(method, &fill(path), value.to_string().into_bytes());
        check(path, status, &body)?;
    });
}

#[test]
fn arbitrary_bytes_get_a_4xx() {
    let harness = Harness::new();
    proptest!(cases(), |(route in prop::sample::select(JSON_ROUTES), bytes in prop::collection::vec(any::<u8>(), 0..512))| {
        let (method, path) = route;
        let (status, body) = harness.call(method, &fill(path), bytes.clone());
        check(path, status, &body)?;
        // Whatever is not JSON at all is refused as such.
        if serde_json::from_slice::<Value>(&bytes).is_err() && !bytes.iter().all(u8::is_ascii_whitespace) {
            prop_assert_eq!(status, 400, "{}", path);
        }
    });
}

#[test]
fn any_path_segment_as_a_session_key_is_handled() {
    let harness = Harness::new();
    proptest!(cases(), |(segment in prop::collection::vec(any::<u8>(), 1..260), tail in prop::sample::select(vec!["", "/history", "/state", "/events", "/abort", "/messages"]))| {
        let encoded: String = segment.iter().map(|b| format!("%{b:02X}")).collect();
        let method = if matches!(tail, "/abort" | "/messages") { "POST" } else { "GET" };
        let path = format!("/sessions/{encoded}{tail}");
        let (status, body) = harness.call(method, &path, br#"{"text":"hi"}"#.to_vec());
        check(&path, status, &body)?;
    });
}

#[test]
fn deep_nesting_huge_numbers_and_big_bodies_are_refused_cleanly() {
    let harness = Harness::new();
    let deep = format!("{{\"text\":{}{}}}", "[".repeat(30_000), "]".repeat(30_000));
    let huge = r#"{"text":"x","limit":1e400,"id":123456789012345678901234567890}"#;
    let big = format!("{{\"text\":\"{}\"}}", "x".repeat(70_000));
    for (route, body, expected) in [
        ("/sessions/deep/messages", deep.into_bytes(), 400),
        ("/memory/search", huge.as_bytes().to_vec(), 400),
        ("/memory/forget", br#"{"id":1e300}"#.to_vec(), 400),
        ("/sessions/big/messages", big.into_bytes(), 413),
        ("/sessions/utf8/messages", b"{\"text\":\"\xff\xfe\"}".to_vec(), 400),
    ] {
        let (status, body) = harness.call("POST", route, body);
        assert_eq!(status, expected, "{route}: {body:?}");
        assert!(body.unwrap()["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}
