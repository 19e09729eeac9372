//! Slash commands (GATEWAY.md §5.4): defined once, the same over REST and gRPC
//! (`Chat.ExecuteCommand`); a sending call whose text starts with a command runs it at once,
//! outside the queue, so `/abort` stops the run in progress. socket.io's side is in
//! tests/node/socketio.test.mjs.

use agent_gateway::proto as pb;
use pb::stream_chat_response::Kind as Item;
use serde_json::{Value, json};

use crate::common::*;
use crate::grpc_chat::send;

async fn rest(gw: &Gateway, key: &str, command: &str, args: &str) -> Value {
    let (status, body) = gw
        .post(&format!("/sessions/{key}/commands"), json!({"command": command, "args": args}))
        .await;
    assert_eq!(status, 200, "/{command}: {body}");
    body
}

async fn grpc(gw: &Gateway, key: &str, command: &str, args: &str) -> Value {
    let request = pb::ExecuteCommandRequest {
        session_key: key.into(),
        command: command.into(),
        args: args.into(),
    };
    let answer = gw.chat().await.execute_command(request).await.unwrap().into_inner();
    let mut value = json!({"ok": answer.ok, "output": answer.output});
    if let Some(data) = answer.data {
        value["data"] = proto_json(&data);
    }
    value
}

fn proto_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 => json!(*n as i64),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(proto_json).collect()),
        Some(Kind::StructValue(s)) => {
            Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), proto_json(v))).collect())
        }
        Some(Kind::NullValue(_)) | None => Value::Null,
    }
}

#[tokio::test]
async fn commands_answer_the_same_over_rest_and_grpc() {
    let gw = Gateway::start().await;
    gw.message("c1", "hello there").await;
    for (command, args) in [
        ("help", ""),
        ("model", ""),
        ("thinking", ""),
        ("queue", ""),
        ("memory", "hello"),
        ("/thinking", "nope"),
        ("model", "ghost/model"),
        ("model", "no-slash"),
        ("dance", ""),
    ] {
        assert_eq!(
            rest(&gw, "c1", command, args).await,
            grpc(&gw, "c1", command, args).await,
            "/{command} {args}"
        );
    }
    let help = rest(&gw, "c1", "help", "").await;
    assert!(help["output"].as_str().unwrap().contains("/model [provider/model]"));
    assert_eq!(help["data"]["commands"].as_array().unwrap().len(), 9);
    let model = rest(&gw, "c1", "model", "").await;
    assert_eq!(model["output"], "Model: echo/echo (available: echo/echo)");
    assert_eq!(
        rest(&gw, "c1", "thinking", "nope").await["output"],
        "Invalid thinking level: nope (use off, minimal, low, medium, high)"
    );
    assert_eq!(
        rest(&gw, "c1", "model", "ghost/model").await,
        json!({"ok": false, "output": "Model not found: ghost/model"})
    );
    assert_eq!(
        rest(&gw, "c1", "dance", "").await,
        json!({"ok": false, "output": "Unknown command: /dance (try /help)"})
    );
    // Effects are real: the level is the session's now.
    assert_eq!(
        grpc(&gw, "c1", "thinking", "medium").await["output"],
        "Thinking level set to medium"
    );
    assert_eq!(gw.get("/sessions/c1").await.1["session"]["thinkingLevel"], "medium");
    let remembered = grpc(&gw, "c1", "remember", "the cat is called Miso").await;
    assert!(remembered["output"].as_str().unwrap().starts_with("Remembered (id "));
    assert_eq!(rest(&gw, "c1", "memory", "Miso").await["output"], "- the cat is called Miso");
    // Refused calls are errors, not results.
    let (status, error) = gw.post("/sessions/c1/commands", json!({"args": "x"})).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("Missing command")));
    let (status, _) = gw.post("/sessions/c1/commands", json!({"command": 5})).await;
    assert_eq!(status, 400);
    let (status, error) = gw.post("/sessions/ghost/commands", json!({"command": "queue"})).await;
    assert_eq!((status, error["error"].as_str()), (404, Some("Session not found: ghost")));
    assert_eq!(rest(&gw, "ghost", "help", "").await["ok"], true, "/help needs no session");
}

#[tokio::test]
async fn a_command_sent_as_a_message_runs_at_once_and_abort_stops_the_run() {
    let gw = Gateway::start().await;
    let (mut running, _) = crate::queue::start_slow(&gw, "c2").await;
    // Queued messages wait; a command does not: it answers while the run streams.
    let (status, answer) = gw.message("c2", "/queue").await;
    assert_eq!(
        (status, answer["response"].as_str()),
        (200, Some("0 waiting; a reply is in progress"))
    );
    let (status, answer) = gw.message("c2", "/abort").await;
    assert_eq!((status, answer["response"].as_str()), (200, Some("Aborted the reply in progress")));
    let result = loop {
        match next(&mut running).await.expect("the run ends").kind.unwrap() {
            Item::Result(result) => break result,
            _ => continue,
        }
    };
    assert_eq!((result.ok, result.error.as_deref()), (false, Some("aborted")));
    // Not a message: nothing of it is in history.
    let (_, history) = gw.get("/sessions/c2/history").await;
    assert!(!history.to_string().contains("/abort"));

    // Over StreamChat: accepted, then the command's result as the run result.
    let mut stream =
        gw.chat().await.stream_chat(send("c2", "/thinking high")).await.unwrap().into_inner();
    let (_, events, result) = crate::grpc_chat::collect(&mut stream).await;
    assert!(events.is_empty());
    assert_eq!((result.ok, result.response.as_str()), (true, "Thinking level set to high"));
    // Over the Vercel stream: the output as the reply's text.
    let chunks =
        Sse::open_with(gw.http.post(gw.url("/sessions/c2/chat")).json(&json!({"text": "/model"})))
            .await
            .all_data()
            .await;
    let text: String =
        chunks.iter().filter(|c| c["type"] == "text-delta").map(|c| text_of(&c["delta"])).collect();
    assert_eq!(text, "Model: echo/echo (available: echo/echo)");
    // A failing command is a failed outcome; an unknown "command" is just a message.
    let (status, answer) = gw.message("c2", "/thinking loud").await;
    assert_eq!((status, answer["ok"].as_bool()), (500, Some(false)));
    let (status, answer) = gw.message("c2", "/etc/hosts is missing").await;
    assert_eq!((status, answer["response"].as_str()), (200, Some("/etc/hosts is missing")));
    // A command creates its session on use, as a message would.
    assert_eq!(gw.message("c-new", "/queue").await.0, 200);
    assert_eq!(gw.get("/sessions/c-new").await.0, 200);
}

#[tokio::test]
async fn a_repeated_command_with_an_idempotency_key_runs_once() {
    let gw = Gateway::start().await;
    let remember = |key: &'static str| {
        let request = gw.http.post(gw.url("/sessions/c3/messages")).header("idempotency-key", key);
        let request = request.json(&json!({"text": "/remember the door code is 1234"}));
        async move { read(request.send().await.unwrap()).await }
    };
    let (status, first) = remember("k-cmd").await;
    assert_eq!(status, 200, "{first}");
    let (_, again) = remember("k-cmd").await;
    assert_eq!(again, first, "the same outcome, message id included");
    let (_, status) = gw.get("/memory/status?sessionKey=c3").await;
    assert_eq!(status["memory"]["archivalCount"], 1, "remembered once");
    let (_, other) = remember("k-cmd-2").await;
    assert_ne!(other["messageId"], first["messageId"]);
}
