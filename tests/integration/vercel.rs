//! `POST /sessions/:key/chat`, the Vercel AI SDK UI message stream (GATEWAY.md §5.3): headers,
//! the chunk mapping of a run that thinks and calls a tool, only the caller's own run, and the
//! ends (finish, error, abort, 429 before the stream). The `ai` package itself reads this
//! stream in `tests/node/vercel.test.mjs`.

use serde_json::{Value, json};

use crate::common::*;

async fn chat(gw: &Gateway, key: &str, body: Value) -> Sse {
    Sse::open_with(gw.http.post(gw.url(&format!("/sessions/{key}/chat"))).json(&body)).await
}

fn types(chunks: &[Value]) -> Vec<String> {
    chunks.iter().map(|c| c["type"].as_str().unwrap_or("[DONE]").to_string()).collect()
}

fn concat(chunks: &[Value], ty: &str, field: &str) -> String {
    chunks.iter().filter(|c| c["type"] == ty).map(|c| text_of(&c[field])).collect()
}

#[tokio::test]
async fn a_run_that_thinks_and_calls_a_tool_becomes_ui_message_chunks() {
    let gw = Gateway::start().await;
    std::fs::write(gw.workspace.join("notes.txt"), "remember the milk").unwrap();
    let text = "look\n!think\n!tool read {\"path\":\"notes.txt\"}";
    let mut sse = chat(&gw, "v", json!({ "text": text })).await;
    let headers = sse.response_headers.clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache, no-transform");
    assert_eq!(headers["x-vercel-ai-ui-message-stream"], "v1");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(headers["connection"], "keep-alive");
    let chunks = sse.all_data().await;
    let kinds = types(&chunks);

    assert_eq!(kinds.first().map(String::as_str), Some("start"));
    assert!(chunks[0]["messageId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(&kinds[kinds.len() - 2..], ["finish", "[DONE]"], "{kinds:?}");
    assert_eq!(chunks[chunks.len() - 2]["finishReason"], "stop");
    assert_eq!(kinds.iter().filter(|k| *k == "start-step").count(), 2, "two model calls");
    assert_eq!(kinds.iter().filter(|k| *k == "finish-step").count(), 2);
    // Every delta belongs to a block that was started and is ended later.
    for (i, chunk) in chunks.iter().enumerate() {
        let ty = text_of(&chunk["type"]);
        if let Some(kind) = ty.strip_suffix("-delta").filter(|k| *k == "text" || *k == "reasoning")
        {
            let id = &chunk["id"];
            let started =
                chunks[..i].iter().any(|c| c["type"] == format!("{kind}-start") && c["id"] == *id);
            let ended =
                chunks[i..].iter().any(|c| c["type"] == format!("{kind}-end") && c["id"] == *id);
            assert!(started && ended, "{chunk} in {kinds:?}");
        }
    }
    assert!(concat(&chunks, "reasoning-delta", "delta").contains("I will echo"));
    let reply = concat(&chunks, "text-delta", "delta");
    assert_eq!(reply, "look\n\nTool read returned:\nremember the milk");

    let start = chunks.iter().find(|c| c["type"] == "tool-input-start").unwrap();
    let call_id = start["toolCallId"].clone();
    assert_eq!(start["toolName"], "read");
    let input: String = chunks
        .iter()
        .filter(|c| c["type"] == "tool-input-delta" && c["toolCallId"] == call_id)
        .map(|c| text_of(&c["inputTextDelta"]))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"path": "notes.txt"}));
    let available = chunks.iter().find(|c| c["type"] == "tool-input-available").unwrap();
    assert_eq!(available["input"], json!({"path": "notes.txt"}));
    let output = chunks.iter().find(|c| c["type"] == "tool-output-available").unwrap();
    assert_eq!(output["toolCallId"], call_id);
    assert_eq!(output["output"]["content"][0]["text"], "remember the milk");
}

#[tokio::test]
async fn use_chat_bodies_and_missing_text() {
    let gw = Gateway::start().await;
    let body = json!({
        "id": "chat-1",
        "trigger": "submit-message",
        "messages": [
            {"id": "m0", "role": "user", "parts": [{"type": "text", "text": "old"}]},
            {"id": "m1", "role": "assistant", "parts": [{"type": "text", "text": "old"}]},
            {"id": "m2", "role": "user", "parts": [{"type": "text", "text": "from useChat"}]}
        ]
    });
    let chunks = chat(&gw, "u", body).await.all_data().await;
    assert_eq!(concat(&chunks, "text-delta", "delta"), "from useChat");
    for body in [
        json!({}),
        json!({"messages": [{"role": "assistant", "content": "x"}]}),
        json!({"text": " "}),
    ] {
        let (status, error) = gw.post("/sessions/u/chat", body).await;
        assert_eq!((status, text_of(&error["error"])), (400, "Missing user message text".into()));
    }
    let (status, _) =
        gw.post("/sessions/u/chat", json!({"text": "x", "streamingBehavior": "no"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn only_this_messages_chunks_while_another_run_goes_first() {
    let gw = Gateway::start().await;
    let first = gw.http.post(gw.url("/sessions/o/messages")).json(&json!({
        "text": format!("{}\n!delay 20", words(30))
    }));
    let first = tokio::spawn(first.send());
    let mut sse = Sse::open(&gw, "/sessions/o/events").await;
    while sse.event().await.unwrap().1["type"] != "token" {}
    let chunks = chat(&gw, "o", json!({"text": "mine only"})).await.all_data().await;
    assert_eq!(concat(&chunks, "text-delta", "delta"), "mine only");
    assert_eq!(types(&chunks).iter().filter(|k| *k == "start-step").count(), 1);
    assert_eq!(read(first.await.unwrap().unwrap()).await.0, 200);
}

#[tokio::test]
async fn a_full_queue_is_429_before_any_stream() {
    let gw = Gateway::with(&[("session.max_queue", "1")]).await;
    let (mut running, _) = crate::queue::start_slow(&gw, "f").await;
    let waiting = gw.http.post(gw.url("/sessions/f/messages")).json(&json!({"text": "wait"}));
    let waiting = tokio::spawn(waiting.send());
    let mut sse = Sse::open(&gw, "/sessions/f/events").await;
    while sse.event().await.unwrap().1["snapshot"]["queueDepth"] != 1 {}
    let response = gw.http.post(gw.url("/sessions/f/chat")).json(&json!({"text": "x"})).send();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(read(response).await.1["code"], "queue_full");
    gw.post("/sessions/f/abort", json!({})).await;
    drop((running.message().await, waiting));
}

#[tokio::test]
async fn failed_and_aborted_runs_end_with_error_and_abort() {
    let gw = Gateway::start().await;
    let chunks = chat(&gw, "e", json!({"text": "!fail the model broke"})).await.all_data().await;
    let kinds = types(&chunks);
    assert_eq!(&kinds[kinds.len() - 2..], ["error", "[DONE]"], "{kinds:?}");
    assert_eq!(chunks[chunks.len() - 2]["errorText"], "the model broke");

    let mut sse = chat(&gw, "a", json!({"text": format!("{}\n!delay 20", words(200))})).await;
    let mut seen = Vec::new();
    while seen.last().is_none_or(|c: &Value| c["type"] != "text-delta") {
        seen.push(sse.event().await.unwrap().1);
    }
    assert_eq!(gw.post("/sessions/a/abort", json!({})).await.1["ok"], true);
    seen.extend(sse.all_data().await);
    let kinds = types(&seen);
    assert_eq!(&kinds[kinds.len() - 2..], ["abort", "[DONE]"], "{kinds:?}");
    assert!(!kinds.contains(&"finish".to_string()));
}

#[tokio::test]
async fn heartbeats_keep_a_quiet_chat_stream_open() {
    let gw = Gateway::with(&[("http.sse_heartbeat", "50ms")]).await;
    let mut sse = chat(&gw, "h", json!({"text": "slow words\n!delay 400"})).await;
    let mut heartbeats = 0;
    let mut done = false;
    while let Some(frame) = sse.next().await {
        match frame {
            Frame::Comment => heartbeats += 1,
            Frame::Event { data, .. } => done |= data == "[DONE]",
        }
    }
    assert!(done, "the stream still ends with [DONE]");
    assert!(heartbeats > 0, "`:` comments while the model is quiet");
}
