//! `agentgateway.v1.Chat` through a tonic client: SendMessage, StreamChat, Steer,
//! CancelQueued, and the calls refused as statuses.

use agent_gateway::proto as pb;
use pb::event::Kind;
use pb::stream_chat_response::Kind as Item;
use tonic::Code;

use crate::common::*;

pub fn send(key: &str, text: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest { session_key: key.into(), text: text.into(), ..Default::default() }
}

/// Reads a StreamChat to its end: (accepted, events, result).
pub async fn collect(
    stream: &mut tonic::Streaming<pb::StreamChatResponse>,
) -> (pb::Accepted, Vec<pb::Event>, pb::RunResult) {
    let Some(Item::Accepted(accepted)) = next(stream).await.unwrap().kind else {
        panic!("accepted first")
    };
    let mut events = Vec::new();
    loop {
        match next(stream).await.expect("a result before the end").kind.unwrap() {
            Item::Event(event) => events.push(event),
            Item::Result(result) => {
                assert!(next(stream).await.is_none(), "the result is last");
                return (accepted, events, result);
            }
            Item::Accepted(_) => panic!("accepted twice"),
        }
    }
}

#[tokio::test]
async fn send_message_waits_for_the_run() {
    let gw = Gateway::start().await;
    let mut chat = gw.chat().await;
    let answer = chat.send_message(send("c", "hello grpc")).await.unwrap().into_inner();
    assert!(answer.ok);
    assert_eq!(answer.response, "hello grpc");
    assert_eq!(answer.session_key, "c");
    assert_eq!(answer.message_id.len(), 36);
    assert_eq!(answer.error, None);

    let failed = chat.send_message(send("c", "!fail the model broke")).await.unwrap().into_inner();
    assert!(!failed.ok, "a failed run is an answer, not a status");
    assert_eq!(failed.error.as_deref(), Some("the model broke"));
    assert_eq!(failed.response, "");
}

#[tokio::test]
async fn stream_chat_streams_one_run_then_its_result() {
    let gw = Gateway::start().await;
    std::fs::write(gw.workspace.join("a.txt"), "alpha content").unwrap();
    let mut chat = gw.chat().await;
    let mut stream = chat
        .stream_chat(send("s", "go\n!think\n!tool read {\"path\":\"a.txt\"}"))
        .await
        .unwrap()
        .into_inner();
    let (accepted, events, result) = collect(&mut stream).await;
    assert_eq!(accepted.mode, pb::SteerMode::Queued as i32);
    assert!(result.ok);
    assert_eq!(result.message_id, accepted.message_id);
    assert!(
        result.response.starts_with("go\n\nTool read returned:\nalpha content"),
        "{}",
        result.response
    );
    let first = events.first().unwrap().kind.clone().unwrap();
    assert_eq!(first, Kind::AgentStart(pb::AgentStart { message_id: accepted.message_id.clone() }));
    let Some(Kind::AgentEnd(end)) = events.last().unwrap().kind.clone() else {
        panic!("agent_end last")
    };
    assert!(end.ok);
    assert!(end.usage.unwrap().output_tokens > 0);
    assert!(events.windows(2).all(|w| w[1].seq > w[0].seq));
    let complete = tool_completes(&events).remove(0);
    assert!(!complete.is_error);
    let json = format!("{:?}", complete.result);
    assert!(json.contains("alpha content"), "{json}");
    assert!(
        !events.iter().any(|e| matches!(e.kind, Some(Kind::SessionState(_)))),
        "queue changes are not part of a run stream"
    );
}

#[tokio::test]
async fn refused_calls_are_statuses() {
    let gw = Gateway::with(&[("session.max_queue", "1")]).await;
    let mut chat = gw.chat().await;
    let empty = chat.send_message(send("x", "  ")).await.unwrap_err();
    assert_eq!((empty.code(), empty.message()), (Code::InvalidArgument, "Missing text"));
    let bad_key = chat.send_message(send("a\nb", "hi")).await.unwrap_err();
    assert_eq!(bad_key.code(), Code::InvalidArgument);
    let mut request = send("x", "hi");
    request.idempotency_key = "\u{7}".into();
    let idempotent = chat.send_message(request).await.unwrap_err();
    assert_eq!(idempotent.code(), Code::InvalidArgument, "a control character in the key");
    let command = chat.execute_command(pb::ExecuteCommandRequest::default()).await.unwrap_err();
    assert_eq!(command.code(), Code::InvalidArgument, "no session key");
    let steer_unknown = chat
        .steer(pb::SteerRequest { session_key: "nobody".into(), text: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(steer_unknown.code(), Code::NotFound);

    // Queue full: one running, one waiting, the next is RESOURCE_EXHAUSTED.
    let (mut running, _) = crate::queue::start_slow(&gw, "x").await;
    let mut waiting = chat.stream_chat(send("x", "later")).await.unwrap().into_inner();
    let Some(Item::Accepted(waiting_id)) = next(&mut waiting).await.unwrap().kind else { panic!() };
    let full = chat.send_message(send("x", "too many")).await.unwrap_err();
    assert_eq!((full.code(), full.message()), (Code::ResourceExhausted, "Queue full (1 pending)."));
    let mut sessions = gw.sessions().await;
    sessions.abort_session(pb::AbortSessionRequest { session_key: "x".into() }).await.unwrap();
    let (_, _, result) = collect_rest(&mut running).await;
    assert_eq!(result.error.as_deref(), Some("aborted"));
    let (_, _, later) = collect_rest(&mut waiting).await;
    assert_eq!((later.ok, later.message_id), (true, waiting_id.message_id));
}

/// Like [`collect`] for a stream whose `accepted` was already read.
pub async fn collect_rest(
    stream: &mut tonic::Streaming<pb::StreamChatResponse>,
) -> ((), Vec<pb::Event>, pb::RunResult) {
    let mut events = Vec::new();
    loop {
        match next(stream).await.expect("a result before the end").kind.unwrap() {
            Item::Event(event) => events.push(event),
            Item::Result(result) => return ((), events, result),
            Item::Accepted(_) => panic!("accepted twice"),
        }
    }
}
