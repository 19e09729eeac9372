//! The agent loop with the echo model: tool calls through `read`, every run event, failures.

use agent_gateway::proto as pb;
use pb::event::Kind;
use serde_json::json;

use crate::common::*;
use crate::grpc_chat::{collect, send};

#[tokio::test]
async fn read_tool_result_reaches_events_and_history() {
    let gw = Gateway::start().await;
    let content = "the launch code is 7-4-1";
    std::fs::write(gw.workspace.join("notes.txt"), content).unwrap();
    let mut sse = Sse::open(&gw, "/sessions/main/events").await;
    let (status, body) = gw.message("main", "check\n!tool read {\"path\":\"notes.txt\"}").await;
    assert_eq!(status, 200, "{body}");
    let events = sse.until("agent_end").await;
    let complete =
        &events.iter().find(|(_, e)| e["type"] == "tool_complete").expect("tool_complete").1;
    assert_eq!(complete["toolName"], "read");
    assert_eq!(complete["isError"], false);
    assert_eq!(complete["result"], json!({"content": [{"type": "text", "text": content}]}));
    let start = &events.iter().find(|(_, e)| e["type"] == "tool_start").unwrap().1;
    assert_eq!(start["args"], json!({"path": "notes.txt"}));
    let deltas: String = events
        .iter()
        .filter(|(_, e)| e["type"] == "tool_call_delta")
        .map(|(_, e)| text_of(&e["delta"]))
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&deltas).unwrap(),
        json!({"path": "notes.txt"})
    );

    let (_, history) = gw.get("/sessions/main/history").await;
    let messages = history["messages"].as_array().unwrap();
    let roles: Vec<String> = messages.iter().map(|m| text_of(&m["role"])).collect();
    assert_eq!(roles, ["user", "assistant", "toolResult", "assistant"]);
    let call = &messages[1]["parts"][0];
    assert_eq!(call["state"], "call");
    assert_eq!(call["args"], json!({"path": "notes.txt"}));
    let result = &messages[2]["parts"][0];
    assert_eq!(
        (result["state"].as_str(), result["toolCallId"].clone()),
        (Some("result"), call["toolCallId"].clone())
    );
    assert_eq!(result["args"], json!({"path": "notes.txt"}));
    assert_eq!(result["result"]["content"][0]["text"], content);
    assert!(text_of(&messages[3]["parts"][0]["text"]).contains(content));
    assert!(text_of(&body["response"]).contains(content));
}

#[tokio::test]
async fn tools_cannot_leave_the_workspace() {
    let gw = Gateway::start().await;
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "outside secret").unwrap();
    for (path, error) in [
        ("../x".to_string(), "escapes the workspace"),
        (outside.path().display().to_string(), "relative to the workspace"),
        ("missing.txt".to_string(), "File not found"),
    ] {
        let text = format!("!tool read {}", json!({"path": path}));
        let (_, events, result) = collect(
            &mut gw.chat().await.stream_chat(send("confined", &text)).await.unwrap().into_inner(),
        )
        .await;
        assert!(result.ok, "a tool error is a result the model sees, not a failed run");
        let complete = tool_completes(&events).remove(0);
        assert!(complete.is_error);
        let shown = format!("{:?}", complete.result);
        assert!(shown.contains(error), "{path}: {shown}");
        assert!(!shown.contains("outside secret"));
    }
}

#[tokio::test]
async fn a_run_produces_every_event_type_in_order() {
    let gw = Gateway::start().await;
    std::fs::write(gw.workspace.join("f.txt"), "data").unwrap();
    let mut stream = gw
        .chat()
        .await
        .stream_chat(send("all", "hi\n!think\n!tool read {\"path\":\"f.txt\"}\n!tool nope {}"))
        .await
        .unwrap()
        .into_inner();
    let (_, events, result) = collect(&mut stream).await;
    assert!(result.ok);
    let names: Vec<&str> = events
        .iter()
        .map(|e| match e.kind.as_ref().unwrap() {
            Kind::AgentStart(_) => "agent_start",
            Kind::TurnStart(_) => "turn_start",
            Kind::TurnEnd(_) => "turn_end",
            Kind::MessageStart(_) => "message_start",
            Kind::Token(_) => "token",
            Kind::Thinking(_) => "thinking",
            Kind::ToolCallStart(_) => "tool_call_start",
            Kind::ToolCallDelta(_) => "tool_call_delta",
            Kind::ToolCallEnd(_) => "tool_call_end",
            Kind::ToolStart(_) => "tool_start",
            Kind::ToolComplete(_) => "tool_complete",
            Kind::MessageComplete(_) => "message_complete",
            Kind::AgentEnd(_) => "agent_end",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut compact = names.clone();
    compact.dedup();
    assert_eq!(
        compact,
        [
            "agent_start",
            "message_start",
            "turn_start",
            "message_start",
            "thinking",
            "tool_call_start",
            "tool_call_delta",
            "tool_call_end",
            "tool_call_start",
            "tool_call_delta",
            "tool_call_end",
            "message_complete",
            "tool_start",
            "tool_complete",
            "tool_start",
            "tool_complete",
            "turn_end",
            "turn_start",
            "message_start",
            "token",
            "message_complete",
            "turn_end",
            "agent_end",
        ]
    );
    let unknown = tool_completes(&events).pop().unwrap();
    assert!(unknown.is_error && format!("{:?}", unknown.result).contains("Tool not found: nope"));
}

#[tokio::test]
async fn a_failing_model_fails_the_run_not_the_call() {
    let gw = Gateway::start().await;
    let mut sse = Sse::open(&gw, "/sessions/main/events").await;
    let (status, body) = gw.message("main", "!fail upstream exploded").await;
    assert_eq!(
        (status, body["ok"].clone(), text_of(&body["error"]), text_of(&body["response"])),
        (500, json!(false), "upstream exploded".into(), String::new())
    );
    let events = sse.until("agent_end").await;
    let error = &events.iter().find(|(_, e)| e["type"] == "error").unwrap().1;
    assert_eq!(
        (error["error"].as_str(), error["code"].as_str()),
        (Some("upstream exploded"), Some("model_error"))
    );
    let (_, history) = gw.get("/sessions/main/history").await;
    assert_eq!(
        history["messages"][1]["parts"],
        json!([{"type": "error", "code": "model_error", "message": "upstream exploded"}])
    );
    assert_eq!(gw.message("main", "fine").await.0, 200, "the next message runs");
}
