//! Acknowledged means durable (GATEWAY.md §2): whatever a call answered "done" survives a
//! SIGKILL that comes the moment the answer arrives. Each test acknowledges, kills the real
//! process at once, restarts it over the same data dir and compares, several rounds over, since
//! the gap it guards against is a race.

use std::path::Path;

use agent_gateway::proto as pb;
use pb::stream_chat_response::Kind as Item;
use serde_json::{Value, json};

use crate::common::process::{Process, history};
use crate::common::*;
use crate::grpc_chat::send;

async fn call(method: reqwest::Method, gw: &Process, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method, gw.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn post(gw: &Process, path: &str, body: Value) -> Value {
    call(reqwest::Method::POST, gw, path, Some(body)).await
}

async fn status_of(gw: &Process, path: &str) -> u16 {
    reqwest::get(gw.url(path)).await.unwrap().status().as_u16()
}

fn has_error_part(message: &Value) -> bool {
    message["parts"].as_array().unwrap().iter().any(|p| p["type"] == "error")
}

/// A message queued behind a slow run on `key`: `(the slow run's stream, queued message id)`.
/// The slow run keeps the session busy for seconds, so the queued one stays queued.
async fn queue_behind_slow_run(gw: &Process, key: &str, text: &str) -> String {
    let accepted = post(gw, "/webhooks/ack", json!({"text": "!delay 200\nslow one two three four five", "sessionKey": key, "async": true})).await;
    assert_eq!(accepted["accepted"], true);
    let queued =
        post(gw, "/webhooks/ack", json!({"text": text, "sessionKey": key, "async": true})).await;
    queued["messageId"].as_str().unwrap().to_string()
}

/// Waits until every message queued on `key` before now has run: a message sent now waits
/// behind them, and answers once they are done.
async fn settle(gw: &Process, key: &str) {
    post(gw, &format!("/sessions/{key}/messages"), json!({"text": "probe"})).await;
}

fn restart(dir: &Path, gw: Process) -> Process {
    restart_with(dir, gw, &[])
}

fn restart_with(dir: &Path, gw: Process, args: &[&str]) -> Process {
    drop(gw);
    Process::start(dir, args)
}

#[tokio::test]
async fn replies_acknowledged_before_a_kill_are_exactly_the_history_after_it() {
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        let mut replies = Vec::new();
        for i in 0..3 {
            let text = format!("message {i} of round {round}");
            let reply = post(&gw, "/sessions/k/messages", json!({"text": text})).await;
            assert_eq!(reply["ok"], true, "{reply}");
            replies.push((text, reply["response"].as_str().unwrap().to_string()));
        }
        // Half the rounds read the history first (it must not change after the kill either).
        let before = if round % 2 == 1 { Some(history(&gw, "k").await) } else { None };
        gw.kill();
        let gw = restart(dir.path(), gw);
        let after = history(&gw, "k").await;
        if let Some(before) = before {
            assert_eq!(after, before, "round {round}");
        }
        let texts: Vec<(String, String)> =
            after.iter().map(|m| (text_of(&m["role"]), text_of(&m["parts"][0]["text"]))).collect();
        let expected: Vec<(String, String)> = replies
            .iter()
            .flat_map(|(sent, reply)| {
                [("user".to_string(), sent.clone()), ("assistant".to_string(), reply.clone())]
            })
            .collect();
        assert_eq!(texts, expected, "round {round}: one answer per run, none interrupted");
        assert!(!after.iter().any(has_error_part), "round {round}: {after:#?}");
    }
}

#[tokio::test]
async fn the_end_a_stream_reported_before_a_kill_is_the_end_in_history_after_it() {
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        // gRPC StreamChat: its result.
        let mut chat = gw.chat().await;
        let mut stream = chat.stream_chat(send("g", "streamed reply")).await.unwrap().into_inner();
        let result = loop {
            match next(&mut stream).await.expect("a result").kind.unwrap() {
                Item::Result(result) => break result,
                _ => continue,
            }
        };
        assert!(result.ok);
        // SSE: the `agent_end` a subscriber saw (the message itself sent by another caller).
        post(&gw, "/v1/conversations", json!({"conversationId": "s"})).await;
        let mut sse =
            Sse::open_with(reqwest::Client::new().get(gw.url("/sessions/s/events"))).await;
        let accepted = post(
            &gw,
            "/webhooks/ack",
            json!({"text": "seen end", "sessionKey": "s", "async": true}),
        )
        .await;
        loop {
            let (_, event) = sse.event().await.expect("the stream stays open");
            if event["type"] == "agent_end" && event["messageId"] == accepted["messageId"] {
                assert_eq!(event["ok"], true);
                break;
            }
        }
        gw.kill();
        let gw = restart(dir.path(), gw);
        for (key, reply) in [("g", result.response.as_str()), ("s", "seen end")] {
            let after = history(&gw, key).await;
            assert_eq!(after.len(), 2, "round {round}, {key}: {after:#?}");
            assert_eq!(text_of(&after[1]["parts"][0]["text"]), reply);
            assert!(!after.iter().any(has_error_part), "round {round}, {key}: {after:#?}");
        }
    }
}

#[tokio::test]
async fn a_cancelled_queued_message_never_runs_after_a_kill() {
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        let id = queue_behind_slow_run(&gw, "c", "cancel me").await;
        let answer =
            call(reqwest::Method::DELETE, &gw, &format!("/sessions/c/queue/{id}"), None).await;
        assert_eq!(answer["ok"], true);
        gw.kill();
        let gw = restart(dir.path(), gw);
        settle(&gw, "c").await;
        let texts: Vec<String> =
            history(&gw, "c").await.iter().map(|m| text_of(&m["parts"][0]["text"])).collect();
        assert!(!texts.iter().any(|t| t == "cancel me"), "round {round}: it ran: {texts:?}");
    }
}

#[tokio::test]
async fn a_cleared_queue_stays_cleared_after_a_kill() {
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        queue_behind_slow_run(&gw, "q", "clear me").await;
        let answer = post(&gw, "/sessions/q/commands", json!({"command": "clear-queue"})).await;
        assert_eq!(answer["ok"], true, "{answer}");
        gw.kill();
        let gw = restart(dir.path(), gw);
        settle(&gw, "q").await;
        let texts: Vec<String> =
            history(&gw, "q").await.iter().map(|m| text_of(&m["parts"][0]["text"])).collect();
        assert!(!texts.iter().any(|t| t == "clear me"), "round {round}: it ran: {texts:?}");
    }
}

#[tokio::test]
async fn a_rename_a_model_and_a_thinking_level_survive_a_kill() {
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        post(&gw, "/sessions/r/messages", json!({"text": "hello"})).await;
        let name = format!("renamed {round}");
        call(reqwest::Method::PATCH, &gw, "/sessions/r", Some(json!({"name": name}))).await;
        post(&gw, "/sessions/t/messages", json!({"text": "hello"})).await;
        post(&gw, "/sessions/t/thinking", json!({"level": "high"})).await;
        gw.kill();
        let gw = restart(dir.path(), gw);
        let r: Value = reqwest::get(gw.url("/sessions/r")).await.unwrap().json().await.unwrap();
        assert_eq!(r["session"]["name"], name.as_str(), "round {round}");
        let t: Value = reqwest::get(gw.url("/sessions/t")).await.unwrap().json().await.unwrap();
        assert_eq!(t["session"]["thinkingLevel"], "high", "round {round}");
    }
}

#[tokio::test]
async fn a_model_switch_survives_a_kill() {
    // A second model (never called, so nothing needs to listen at its URL).
    let args =
        ["--set", r#"models=[{provider="openai", id="other", base_url="http://127.0.0.1:9/v1"}]"#];
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &args);
        post(&gw, "/sessions/m/messages", json!({"text": "hello"})).await;
        let models: Value = reqwest::get(gw.url("/models")).await.unwrap().json().await.unwrap();
        let other = models["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["modelId"] != models["current"]["modelId"])
            .unwrap_or_else(|| panic!("a second model to switch to: {models}"))
            .clone();
        let body = json!({"provider": other["provider"], "modelId": other["modelId"]});
        post(&gw, "/sessions/m/model", body).await;
        gw.kill();
        let gw = restart_with(dir.path(), gw, &args);
        let m: Value = reqwest::get(gw.url("/sessions/m")).await.unwrap().json().await.unwrap();
        assert_eq!(m["session"]["modelId"], other["modelId"], "round {round}");
    }
}

#[tokio::test]
async fn a_delete_and_a_reset_survive_a_kill() {
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        post(&gw, "/sessions/d/messages", json!({"text": "delete me"})).await;
        post(&gw, "/sessions/x/messages", json!({"text": "reset me"})).await;
        post(&gw, "/sessions/main/messages", json!({"text": "reset me too"})).await;
        call(reqwest::Method::DELETE, &gw, "/sessions/d", None).await;
        post(&gw, "/sessions/x/reset", json!({})).await;
        post(&gw, "/sessions/main/reset", json!({})).await;
        gw.kill();
        let gw = restart(dir.path(), gw);
        assert_eq!(status_of(&gw, "/sessions/d").await, 404, "round {round}: deleted stays gone");
        assert_eq!(status_of(&gw, "/sessions/x").await, 404, "round {round}: reset removes it");
        assert_eq!(history(&gw, "main").await, Vec::<Value>::new(), "round {round}");
    }
}

#[tokio::test]
async fn memory_writes_and_config_patches_survive_a_kill() {
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Process::start(dir.path(), &[]);
        let kept =
            post(&gw, "/memory/remember", json!({"content": "the sky is green", "key": "sky"}))
                .await;
        assert_eq!(kept["ok"], true);
        post(&gw, "/memory/remember", json!({"content": "forget this", "key": "gone"})).await;
        let forgotten = post(&gw, "/memory/forget", json!({"key": "gone"})).await;
        assert_eq!(forgotten["forgotten"], 1);
        let patch = json!({"session": {"max_queue": 3}, "limits.max_text": 5000 + round});
        call(reqwest::Method::PATCH, &gw, "/config", Some(patch)).await;
        gw.kill();
        let gw = restart(dir.path(), gw);
        let core: Value = post(&gw, "/memory/search", json!({"query": "sky green"})).await;
        let contents: Vec<String> =
            core["results"].as_array().unwrap().iter().map(|r| text_of(&r["content"])).collect();
        assert!(contents.contains(&"the sky is green".to_string()), "round {round}: {core}");
        let gone = post(&gw, "/memory/search", json!({"query": "forget"})).await;
        assert!(
            !gone["results"].as_array().unwrap().iter().any(|r| r["sourceType"] == "memory"),
            "round {round}: {gone}"
        );
        let config: Value = reqwest::get(gw.url("/config")).await.unwrap().json().await.unwrap();
        assert_eq!(config["session"]["max_queue"], 3, "round {round}: {config}");
        assert_eq!(config["limits"]["max_text"], 5000 + round, "round {round}");
    }
}
