//! The workspace tools through real runs (the echo model's `!tool` directive): `bash` streams
//! partial output, times out, is killed with its whole process group on abort, and sees none
//! of the gateway's secrets; the data dir stays unreadable even inside the workspace.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::process::Process;
use crate::common::*;

fn tool_line(name: &str, args: Value) -> String {
    format!("!tool {name} {args}")
}

/// Runs one message and returns the session's events of that run.
async fn run_events(gw: &Gateway, key: &str, text: &str) -> Vec<Value> {
    let (status, body) = gw.message(key, text).await;
    assert!(status == 200 || status == 500, "{body}");
    let mut sse = Sse::open(gw, &format!("/sessions/{key}/events?after=0")).await;
    sse.until("agent_end")
        .await
        .into_iter()
        .filter(|(id, _)| id.is_some())
        .map(|(_, e)| e)
        .collect()
}

fn completes(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == "tool_complete").collect()
}

fn result_text(event: &Value) -> String {
    text_of(&event["result"]["content"][0]["text"])
}

#[tokio::test]
async fn bash_streams_partial_output_then_its_result() {
    let gw = Gateway::with(&[("tools", "all")]).await;
    let command = "for i in 1 2 3 4 5; do echo line$i; sleep 0.25; done";
    let events = run_events(&gw, "b", &tool_line("bash", json!({"command": command}))).await;
    let updates: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "tool_update")
        .map(|e| text_of(&e["partialResult"]["content"][0]["text"]))
        .collect();
    assert!(!updates.is_empty(), "partial output while it runs");
    assert!(updates[0].starts_with("line1") && !updates[0].contains("line5"), "{updates:?}");
    let done = completes(&events)[0];
    assert_eq!(done["isError"], false);
    assert_eq!(result_text(done), "line1\nline2\nline3\nline4\nline5\n");

    let events =
        run_events(&gw, "b2", &tool_line("bash", json!({"command": "echo oops >&2; exit 3"})))
            .await;
    let failed = completes(&events)[0];
    assert_eq!(failed["isError"], true);
    assert!(result_text(failed).contains("oops") && result_text(failed).contains("Exit code 3"));

    let events =
        run_events(&gw, "b3", &tool_line("bash", json!({"command": "sleep 5", "timeout": 1})))
            .await;
    let timed_out = completes(&events)[0];
    assert_eq!(timed_out["isError"], true);
    assert!(result_text(timed_out).contains("timed out after 1 s"), "{timed_out}");
}

#[tokio::test]
async fn abort_during_bash_kills_its_whole_process_group() {
    let gw = Gateway::with(&[("tools", "all")]).await;
    // Found by command line, as the host sees them: inside a PID namespace (bwrap) `$$` would
    // not be a host pid.
    let sleep = format!("sleep 601.{}", gw.addr.port());
    let command = format!("{sleep} & wait");
    let send = gw.http.post(gw.url("/sessions/k/messages"));
    let waiting = tokio::spawn(
        send.json(&json!({"text": tool_line("bash", json!({"command": command}))})).send(),
    );
    let bash = format!("bash -c {command}");
    within(async {
        while !(running(&bash) && running(&sleep)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(gw.post("/sessions/k/abort", json!({})).await.1["ok"], true);
    let (status, body) = read(waiting.await.unwrap().unwrap()).await;
    assert_eq!((status, text_of(&body["error"])), (500, "aborted".into()));
    until_gone(&bash).await;
    until_gone(&sleep).await;
    let (_, history) = gw.get("/sessions/k/history").await;
    let result = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "toolResult")
        .unwrap()
        .clone();
    assert_eq!(result["parts"][0]["state"], "error");
}

#[tokio::test]
async fn the_data_dir_inside_the_workspace_stays_unreadable() {
    let gw =
        Gateway::with(&[("tools", "readonly"), ("data_dir", "{workspace}/.gateway-data")]).await;
    let read = tool_line("read", json!({"path": ".gateway-data/gateway.db"}));
    let events = run_events(&gw, "d", &read).await;
    let denied = completes(&events)[0];
    assert_eq!(denied["isError"], true);
    assert!(result_text(denied).contains("Access denied"), "{denied}");
    let events = run_events(&gw, "d2", &tool_line("ls", json!({}))).await;
    assert!(!result_text(completes(&events)[0]).contains(".gateway-data"));
    let events = run_events(&gw, "d3", &tool_line("grep", json!({"pattern": "SQLite"}))).await;
    assert!(
        result_text(completes(&events)[0]).starts_with("No matches"),
        "the database is not searched"
    );
}

#[tokio::test]
async fn bash_sees_none_of_the_gateways_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Process::start_with_env(
        dir.path(),
        &["--set", "tools=all"],
        &[("OPENAI_API_KEY", "sk-very-secret"), ("GATEWAY_AUTH_TOKEN", "tok-secret")],
    );
    let text = tool_line("bash", json!({"command": "env; echo done"}));
    let response = reqwest::Client::new()
        .post(gw.url("/sessions/env/messages"))
        .bearer_auth("tok-secret")
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let reply = text_of(&body["response"]);
    assert!(reply.contains("done"), "{body}");
    assert!(reply.contains("PATH="), "bash ran with a minimal environment: {reply}");
    for secret in ["sk-very-secret", "OPENAI_API_KEY", "tok-secret", "GATEWAY_"] {
        assert!(!reply.contains(secret), "{secret} leaked into bash: {reply}");
    }
}
