//! JSON shapes pinned by golden fixtures (`tests/golden/*.json`): snapshot, history, state
//! with an in-flight draft, and error bodies.

use serde_json::{Map, Value, json};

use crate::common::golden::assert_golden;
use crate::common::*;

#[tokio::test]
async fn snapshot_and_history_shapes() {
    let gw = Gateway::start().await;
    std::fs::write(gw.workspace.join("g.txt"), "golden").unwrap();
    gw.message("shape", "show me\n!think\n!tool read {\"path\":\"g.txt\"}").await;
    gw.http.patch(gw.url("/sessions/shape")).json(&json!({"name": "Shapes"})).send().await.unwrap();
    assert_golden("snapshot", &gw.get("/sessions/shape").await.1);
    assert_golden("history", &gw.get("/sessions/shape/history").await.1);
    assert_golden("history_page", &gw.get("/sessions/shape/history?limit=2").await.1);
}

#[tokio::test]
async fn state_with_an_in_flight_draft() {
    let gw = Gateway::start().await;
    gw.message("st", "earlier").await;
    let mut sse = Sse::open(&gw, "/sessions/st/events").await;
    // Three seconds between tokens: the state read lands between the first and the second.
    let mut chat = gw.chat().await;
    let pending = tokio::spawn(async move {
        chat.send_message(crate::grpc_chat::send("st", "draft reply\n!delay 3000")).await
    });
    sse.until("token").await;
    let (status, state) = gw.get("/sessions/st/state").await;
    assert_eq!(status, 200);
    assert_golden("state", &state);
    gw.post("/sessions/st/abort", json!({})).await;
    within(pending).await.unwrap().unwrap();
}

#[tokio::test]
async fn error_bodies() {
    let gw = Gateway::with(&[("session.max_queue", "1"), ("http.max_body", "2048")]).await;
    let mut errors = Map::new();
    let mut record = |name: &str, (status, body): (u16, Value)| {
        errors.insert(name.into(), json!({"status": status, "body": body}));
    };
    record("session_not_found", gw.get("/sessions/nobody").await);
    record("route_not_found", gw.get("/nowhere").await);
    record(
        "method_not_allowed",
        read(gw.http.put(gw.url("/sessions/main")).send().await.unwrap()).await,
    );
    let invalid = gw.http.post(gw.url("/sessions/a/messages")).body("{oops").send();
    record("invalid_json", read(invalid.await.unwrap()).await);
    record("missing_text", gw.post("/sessions/a/messages", json!({"text": ""})).await);
    record("missing_user_text", gw.post("/sessions/main/steer", json!({})).await);
    record("history_limit", gw.get("/sessions/main/history?limit=0").await);
    record("delete_primary", gw.delete("/sessions/main").await);
    record("too_large", gw.post("/sessions/a/messages", json!({"text": "x".repeat(4000)})).await);
    record("missing_command", gw.post("/sessions/main/commands", json!({"args": "x"})).await);
    let (mut running, _) = crate::queue::start_slow(&gw, "q").await;
    let waiting =
        gw.http.post(gw.url("/sessions/q/messages")).json(&json!({"text": "wait"})).send();
    let waiting = tokio::spawn(waiting);
    let mut sse = Sse::open(&gw, "/sessions/q/events").await;
    while sse.event().await.unwrap().1["snapshot"]["queueDepth"] != 1 {}
    record("queue_full", gw.message("q", "overflow").await);
    gw.post("/sessions/q/abort", json!({})).await;
    crate::grpc_chat::collect_rest(&mut running).await;
    within(waiting).await.unwrap().unwrap();
    let tokens = r#"[{name = "reader", token = "reader-token", scopes = ["sessions"]}]"#;
    let auth = Gateway::with(&[("bearer_token", "t"), ("tokens", tokens)]).await;
    record("unauthorized", auth.get("/sessions").await);
    let denied = auth.http.get(auth.url("/config")).bearer_auth("reader-token").send();
    record("permission_denied", read(denied.await.unwrap()).await);
    assert_golden("errors", &Value::Object(errors));
}
