//! Idempotency keys on every sending call (GATEWAY.md §10): a repeat returns the first call's
//! outcome and runs nothing: while the first is still running, once it is done, and after a
//! restart; a key reused for another session is 409.

use agent_gateway::proto as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::common::*;

/// How many messages the session ran: the user messages in its history.
async fn runs(gw: &Gateway, key: &str) -> usize {
    let (_, history) = gw.get(&format!("/sessions/{key}/history")).await;
    history["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "user").count()
}

/// Sends a message in the background; the handle has its answer.
fn spawn_send(gw: &Gateway, key: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = gw.http.post(gw.url(&format!("/sessions/{key}/messages"))).json(&body);
    tokio::spawn(async move { read(request.send().await.unwrap()).await })
}

async fn send_with_key(gw: &Gateway, key: &str, text: &str, idempotency: &str) -> (u16, Value) {
    let request = gw.http.post(gw.url(&format!("/sessions/{key}/messages")));
    let request = request.header("idempotency-key", idempotency).json(&json!({"text": text}));
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_repeat_returns_the_first_outcome_and_runs_nothing() {
    let gw = Gateway::start().await;
    let (status, first) = send_with_key(&gw, "i1", "only once", "k-1").await;
    assert_eq!(status, 200);
    let (status, again) = send_with_key(&gw, "i1", "only once", "k-1").await;
    assert_eq!((status, &again), (200, &first), "the same answer, message id included");
    // The body field works like the header, and a different text does not matter: the key does.
    let body = json!({"text": "something else", "idempotencyKey": "k-1"});
    let (_, body_form) = gw.post("/sessions/i1/messages", body).await;
    assert_eq!(body_form, first);
    assert_eq!(runs(&gw, "i1").await, 1, "one run for three calls");

    // Over gRPC, SendMessage and StreamChat.
    let mut chat = gw.chat().await;
    let request = || pb::SendMessageRequest {
        session_key: "i2".into(),
        text: "grpc once".into(),
        idempotency_key: "k-2".into(),
        ..Default::default()
    };
    let first = chat.send_message(request()).await.unwrap().into_inner();
    let again = chat.send_message(request()).await.unwrap().into_inner();
    assert_eq!((again.message_id, again.response), (first.message_id.clone(), first.response));
    let mut stream = chat.stream_chat(request()).await.unwrap().into_inner();
    let (accepted, events, result) = crate::grpc_chat::collect(&mut stream).await;
    assert_eq!(accepted.message_id, first.message_id);
    assert!(events.is_empty(), "nothing runs: {events:?}");
    assert_eq!((result.ok, result.response.as_str()), (true, "grpc once"));
    assert_eq!(runs(&gw, "i2").await, 1);

    // The Vercel stream of a repeat carries the stored reply as one text block.
    let chat = |text: &str| {
        let body = json!({"text": text, "idempotencyKey": "k-3"});
        Sse::open_with(gw.http.post(gw.url("/sessions/i3/chat")).json(&body))
    };
    let first: String = chat("hello vercel")
        .await
        .all_data()
        .await
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .map(|c| text_of(&c["delta"]))
        .collect();
    let chunks = chat("hello vercel").await.all_data().await;
    let repeat: String =
        chunks.iter().filter(|c| c["type"] == "text-delta").map(|c| text_of(&c["delta"])).collect();
    assert_eq!(repeat, first);
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    assert_eq!(runs(&gw, "i3").await, 1);

    // A key belongs to one session.
    let (status, error) = send_with_key(&gw, "other", "x", "k-1").await;
    assert_eq!((status, &error["code"]), (409, &json!("conflict")), "{error}");
    let (status, _) = send_with_key(&gw, "i1", "x", &"k".repeat(201)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_repeat_while_the_first_runs_waits_for_the_same_outcome() {
    let gw = Gateway::start().await;
    let slow = format!("{}\n!delay 15", words(40));
    let body = json!({"text": slow, "idempotencyKey": "k-slow"});
    let mut first = Sse::open_with(gw.http.post(gw.url("/sessions/w1/chat")).json(&body)).await;
    while first.event().await.unwrap().1["type"] != "text-delta" {}
    // Mid-run: the repeat attaches to the same message.
    let (status, repeat) = send_with_key(&gw, "w1", &slow, "k-slow").await;
    assert_eq!(status, 200);
    assert_eq!(repeat["response"], words(40).as_str());
    while first.event().await.is_some() {}
    assert_eq!(runs(&gw, "w1").await, 1);
    let (_, history) = gw.get("/sessions/w1/history").await;
    assert_eq!(history["messages"][0]["id"], repeat["messageId"]);

    // Queued behind another run, two callers with one key: one message, one run.
    let (_slow, _) = crate::queue::start_slow(&gw, "w2").await;
    let a = spawn_send(&gw, "w2", json!({"text": "queued", "idempotencyKey": "k-q"}));
    let mut events = Sse::open(&gw, "/sessions/w2/events").await;
    loop {
        let (_, event) = events.event().await.unwrap();
        if event["type"] == "session_state" && event["snapshot"]["queueDepth"] == 1 {
            break;
        }
    }
    let b = spawn_send(&gw, "w2", json!({"text": "queued", "idempotencyKey": "k-q"}));
    gw.post("/sessions/w2/abort", json!({})).await;
    let (a, b) = (within(a).await.unwrap(), within(b).await.unwrap());
    assert_eq!(a.1, b.1, "the same outcome for both");
    assert_eq!(a.1["response"], "queued");
    let (_, history) = gw.get("/sessions/w2/history").await;
    let queued = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user" && m["parts"][0]["text"] == "queued")
        .count();
    assert_eq!(queued, 1, "the message ran once");
}

#[tokio::test]
async fn keys_and_outcomes_survive_a_restart() {
    let gw = Gateway::with(&[("shutdown_grace", "50ms")]).await;
    let (_, first) = send_with_key(&gw, "r1", "before the restart", "k-r").await;
    // One still running at shutdown: interrupted, and that is its outcome.
    let slow = json!({"text": format!("{}\n!delay 50", words(500)), "idempotencyKey": "k-cut"});
    let mut cut = Sse::open_with(gw.http.post(gw.url("/sessions/r2/chat")).json(&slow)).await;
    while cut.event().await.unwrap().1["type"] != "text-delta" {}
    let gw = gw.stop_keeping_data().await.start().await;

    let (status, again) = send_with_key(&gw, "r1", "before the restart", "k-r").await;
    assert_eq!((status, again), (200, first));
    assert_eq!(runs(&gw, "r1").await, 1);
    let (status, interrupted) = send_with_key(&gw, "r2", "x", "k-cut").await;
    assert_eq!(status, 500, "{interrupted}");
    assert_eq!(interrupted["error"], "interrupted by shutdown");
    assert_eq!(runs(&gw, "r2").await, 1, "never run again");
    let mut chat = gw.chat().await;
    let request = pb::SendMessageRequest {
        session_key: "r3".into(),
        text: "x".into(),
        idempotency_key: "k-r".into(),
        ..Default::default()
    };
    assert_eq!(chat.send_message(request).await.unwrap_err().code(), Code::AlreadyExists);
}
