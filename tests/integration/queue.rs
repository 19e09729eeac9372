//! Queue semantics across transports: FIFO, queue full, cancel, abort, steer, reset, delete,
//! idle eviction. Runs are made slow with the echo model's `!delay` and every wait is on an
//! event, never on the clock.

use agent_gateway::proto as pb;
use pb::event::Kind;
use pb::stream_chat_response::Kind as Item;
use serde_json::{Value, json};

use crate::common::*;
use crate::grpc_chat::{collect_rest, send};

/// Text of a long, slow echo reply (about 300 tokens, 40 ms apart).
pub fn slow_text() -> String {
    format!("{}\n!delay 40", words(300))
}

/// Starts a slow run over StreamChat and returns once its first token streamed.
pub async fn start_slow(
    gw: &Gateway,
    key: &str,
) -> (tonic::Streaming<pb::StreamChatResponse>, String) {
    let mut chat = gw.chat().await;
    let mut stream = chat.stream_chat(send(key, &slow_text())).await.unwrap().into_inner();
    let Some(Item::Accepted(accepted)) = next(&mut stream).await.unwrap().kind else {
        panic!("accepted")
    };
    stream_until(&mut stream, |k| matches!(k, Kind::Token(_))).await;
    (stream, accepted.message_id)
}

/// Queues a message over StreamChat (behind a running run) and returns its stream and id.
async fn queue_one(
    gw: &Gateway,
    key: &str,
    text: &str,
) -> (tonic::Streaming<pb::StreamChatResponse>, String) {
    let mut stream = gw.chat().await.stream_chat(send(key, text)).await.unwrap().into_inner();
    let Some(Item::Accepted(accepted)) = next(&mut stream).await.unwrap().kind else {
        panic!("accepted")
    };
    assert_eq!(accepted.mode, pb::SteerMode::Queued as i32);
    (stream, accepted.message_id)
}

/// A REST `/messages` call in the background (it answers when its run ends).
fn rest_message(gw: &Gateway, key: &str, text: &str) -> tokio::task::JoinHandle<(u16, Value)> {
    let request =
        gw.http.post(gw.url(&format!("/sessions/{key}/messages"))).json(&json!({"text": text}));
    tokio::spawn(async move { read(request.send().await.unwrap()).await })
}

/// Waits (on the session's events) until the queue holds `depth` messages.
async fn wait_for_depth(gw: &Gateway, key: &str, depth: u64) {
    let mut sse = Sse::open(gw, &format!("/sessions/{key}/events")).await;
    loop {
        let (_, event) = sse.event().await.expect("events");
        let snapshot = &event["snapshot"];
        if snapshot.is_object() && snapshot["queueDepth"] == depth {
            return;
        }
    }
}

fn history_texts(history: &Value) -> Vec<(String, String)> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (text_of(&m["role"]), text_of(&m["parts"][0]["text"])))
        .collect()
}

#[tokio::test]
async fn messages_run_one_at_a_time_in_order() {
    let gw = Gateway::start().await;
    let (mut first, _) = start_slow(&gw, "fifo").await;
    let mut queued = Vec::new();
    for text in ["second", "third", "fourth"] {
        queued.push(queue_one(&gw, "fifo", text).await);
    }
    gw.post("/sessions/fifo/abort", json!({})).await;
    collect_rest(&mut first).await;
    for ((mut stream, id), text) in queued.into_iter().zip(["second", "third", "fourth"]) {
        let (_, events, result) = collect_rest(&mut stream).await;
        assert_eq!(
            (result.ok, result.response.as_str(), result.message_id),
            (true, text, id.clone())
        );
        let Some(Kind::AgentStart(start)) = &events[0].kind else { panic!("agent_start first") };
        assert_eq!(start.message_id, id, "the stream carries its own run only");
    }
    let (_, history) = gw.get("/sessions/fifo/history").await;
    let texts = history_texts(&history);
    let users: Vec<&str> =
        texts.iter().filter(|t| t.0 == "user").map(|t| t.1.as_str()).skip(1).collect();
    assert_eq!(users, ["second", "third", "fourth"]);
}

#[tokio::test]
async fn queue_full_at_cap_plus_one_answers_the_seed_body() {
    let gw = Gateway::with(&[("session.max_queue", "2")]).await;
    let (mut running, _) = start_slow(&gw, "full").await;
    let waiting = [rest_message(&gw, "full", "a"), rest_message(&gw, "full", "b")];
    wait_for_depth(&gw, "full", 2).await;
    let (status, body) = gw.message("full", "one too many").await;
    assert_eq!(
        (status, body),
        (
            500,
            json!({"ok": false, "response": "", "error": "Queue full (2 pending).", "sessionKey": "full"})
        )
    );
    gw.post("/sessions/full/abort", json!({})).await;
    collect_rest(&mut running).await;
    for (task, text) in waiting.into_iter().zip(["a", "b"]) {
        let (status, body) = within(task).await.unwrap();
        assert_eq!((status, text_of(&body["response"])), (200, text.to_string()), "{body}");
    }
}

#[tokio::test]
async fn cancel_one_queued_message() {
    let gw = Gateway::start().await;
    let (mut running, _) = start_slow(&gw, "cq").await;
    let (mut doomed, doomed_id) = queue_one(&gw, "cq", "never runs").await;
    let (mut kept, _) = queue_one(&gw, "cq", "runs").await;
    let (mut by_rest, rest_id) = queue_one(&gw, "cq", "cancelled over REST").await;

    let mut chat = gw.chat().await;
    let request =
        pb::CancelQueuedRequest { session_key: "cq".into(), message_id: doomed_id.clone() };
    assert!(chat.cancel_queued(request.clone()).await.unwrap().into_inner().cancelled);
    assert!(!chat.cancel_queued(request).await.unwrap().into_inner().cancelled, "only once");
    assert_eq!(
        gw.delete(&format!("/sessions/cq/queue/{rest_id}")).await,
        (200, json!({"ok": true}))
    );
    assert_eq!(gw.delete("/sessions/cq/queue/unknown-id").await, (200, json!({"ok": false})));

    let (_, events, result) = collect_rest(&mut doomed).await;
    assert!(events.is_empty(), "a cancelled message never ran: {events:?}");
    assert_eq!(
        (result.ok, result.error.as_deref(), result.message_id),
        (false, Some("Cancelled"), doomed_id)
    );
    assert_eq!(collect_rest(&mut by_rest).await.2.error.as_deref(), Some("Cancelled"));
    gw.post("/sessions/cq/abort", json!({})).await;
    collect_rest(&mut running).await;
    assert!(collect_rest(&mut kept).await.2.ok);
    let (_, history) = gw.get("/sessions/cq/history").await;
    let texts = history_texts(&history);
    assert!(!texts.iter().any(|t| t.1 == "never runs"), "{texts:?}");
    assert!(texts.iter().any(|t| t.1 == "runs"));
}

#[tokio::test]
async fn abort_mid_run_leaves_a_valid_history() {
    let gw = Gateway::start().await;
    let (mut running, message_id) = start_slow(&gw, "ab").await;
    assert_eq!(gw.post("/sessions/ab/abort", json!({})).await, (200, json!({"ok": true})));
    let (_, events, result) = collect_rest(&mut running).await;
    assert_eq!((result.ok, result.error.as_deref()), (false, Some("aborted")));
    let kinds: Vec<&Kind> = events.iter().filter_map(|e| e.kind.as_ref()).collect();
    assert!(matches!(kinds[kinds.len() - 2], Kind::Aborted(_)), "{kinds:?}");
    let Kind::AgentEnd(end) = kinds[kinds.len() - 1] else { panic!("agent_end last") };
    assert_eq!(
        (end.ok, end.error.as_deref(), end.message_id.as_str()),
        (false, Some("aborted"), message_id.as_str())
    );
    assert_eq!(
        gw.post("/sessions/ab/abort", json!({})).await,
        (200, json!({"ok": false})),
        "nothing runs now"
    );

    let (_, history) = gw.get("/sessions/ab/history").await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let parts = messages[1]["parts"].as_array().unwrap();
    let partial = text_of(&parts[0]["text"]);
    assert!(
        !partial.is_empty() && words(300).starts_with(&partial),
        "partial text kept: {partial:?}"
    );
    assert!(partial.len() < words(300).len());
    assert_eq!(
        parts.last().unwrap(),
        &json!({"type": "error", "code": "aborted", "message": "Run aborted"})
    );
    // The session is not wedged.
    assert_eq!(gw.message("ab", "after").await.1["response"], "after");
}

#[tokio::test]
async fn abort_mid_tool_call_closes_the_call() {
    let gw = Gateway::start().await;
    let mut chat = gw.chat().await;
    let text = "x\n!delay 400\n!tool read {\"path\":\"big.txt\"}";
    let mut stream = chat.stream_chat(send("tc", text)).await.unwrap().into_inner();
    next(&mut stream).await.unwrap();
    stream_until(&mut stream, |k| matches!(k, Kind::ToolCallStart(_))).await;
    gw.post("/sessions/tc/abort", json!({})).await;
    let (_, events, result) = collect_rest(&mut stream).await;
    assert_eq!(result.error.as_deref(), Some("aborted"));
    let closed = tool_completes(&events).pop().expect("the open call is closed");
    assert!(closed.is_error);
    let (_, history) = gw.get("/sessions/tc/history").await;
    let messages = history["messages"].as_array().unwrap();
    let roles: Vec<String> = messages.iter().map(|m| text_of(&m["role"])).collect();
    assert_eq!(roles, ["user", "assistant", "toolResult"]);
    let call = &messages[1]["parts"][0];
    assert_eq!(
        (call["type"].as_str(), call["state"].as_str()),
        (Some("tool-invocation"), Some("call"))
    );
    let result = &messages[2]["parts"][0];
    assert_eq!(result["toolCallId"], call["toolCallId"]);
    assert_eq!(result["state"], "error");
    assert_eq!(result["result"]["content"][0]["text"], "aborted");
}

#[tokio::test]
async fn steer_joins_the_running_run() {
    let gw = Gateway::start().await;
    let mut chat = gw.chat().await;
    let mut running = chat
        .stream_chat(send("st", &format!("{}\n!delay 30", words(40))))
        .await
        .unwrap()
        .into_inner();
    next(&mut running).await.unwrap();
    stream_until(&mut running, |k| matches!(k, Kind::Token(_))).await;
    let mut request = send("st", "steered words");
    request.streaming_behavior = pb::StreamingBehavior::Steer as i32;
    let mut steering = chat.stream_chat(request).await.unwrap().into_inner();
    let Some(Item::Accepted(accepted)) = next(&mut steering).await.unwrap().kind else { panic!() };
    assert_eq!(accepted.mode, pb::SteerMode::Steer as i32);
    let steer_rest = gw.post("/sessions/st/steer", json!({"text": "also this"})).await;
    assert_eq!(steer_rest, (200, json!({"ok": true, "mode": "steer", "sessionKey": "st"})));

    let (_, events, result) = collect_rest(&mut running).await;
    let (_, joined_events, joined) = collect_rest(&mut steering).await;
    assert!(result.ok);
    assert_eq!(result.response, "also this", "the next model call answered the newest steer");
    assert_eq!(joined.response, result.response, "the steering caller gets the run it joined");
    assert_eq!(joined.message_id, accepted.message_id);
    assert_eq!(joined_events.last(), events.last(), "and the same run's events, to its agent_end");
    // After the first token: the rest of turn one, the steered user messages, one more turn.
    let names: Vec<String> = events
        .iter()
        .filter_map(|e| match e.kind.as_ref()? {
            Kind::TurnStart(_) => Some("turn_start".to_string()),
            Kind::MessageStart(m) => Some(format!("message_start:{}", m.role)),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        ["message_start:user", "message_start:user", "turn_start", "message_start:assistant"],
        "the steer joined at the next model call"
    );
    let (_, history) = gw.get("/sessions/st/history").await;
    let texts = history_texts(&history);
    let users: Vec<&str> = texts.iter().filter(|t| t.0 == "user").map(|t| t.1.as_str()).collect();
    assert_eq!(users[1..], ["steered words", "also this"]);

    // Idle: a steer is queued like a message.
    let idle = gw
        .post(
            "/sessions/st/steer",
            json!({"messages": [{"role": "user", "content": "queued now"}]}),
        )
        .await;
    assert_eq!(idle, (200, json!({"ok": true, "mode": "queued", "sessionKey": "st"})));
}

#[tokio::test]
async fn reset_and_delete_reject_waiting_callers() {
    let gw = Gateway::start().await;
    for (action, expected) in [("reset", "Session reset"), ("delete", "Session deleted: rd")] {
        let (mut running, _) = start_slow(&gw, "rd").await;
        let waiting = [rest_message(&gw, "rd", "a"), rest_message(&gw, "rd", "b")];
        wait_for_depth(&gw, "rd", 2).await;
        let mut sse = Sse::open(&gw, "/sessions/rd/events").await;
        let (status, _) = match action {
            "reset" => gw.post("/sessions/rd/reset", json!({})).await,
            _ => gw.delete("/sessions/rd").await,
        };
        assert_eq!(status, 200);
        for task in waiting {
            let (status, body) = within(task).await.unwrap();
            assert_eq!(
                (status, body["ok"].clone(), text_of(&body["error"])),
                (500, json!(false), expected.into())
            );
        }
        assert_eq!(collect_rest(&mut running).await.2.error.as_deref(), Some("aborted"));
        let events =
            sse.until(if action == "reset" { "session_reset" } else { "session_deleted" }).await;
        assert!(events.iter().any(|(_, e)| e["type"] == "aborted"));
        assert_eq!(sse.next().await, None, "streams of a removed session end");
        assert_eq!(gw.get("/sessions/rd").await.0, 404);
    }
}

#[tokio::test]
async fn resetting_the_primary_keeps_it_and_its_seq() {
    let gw = Gateway::start().await;
    gw.message("main", "before").await;
    let mut sse = Sse::open(&gw, "/sessions/main/events").await;
    let (_, hello) = sse.event().await.unwrap();
    let before = hello["snapshot"]["sessionId"].clone();
    assert_eq!(gw.post("/sessions/main/reset", json!({})).await, (200, json!({"ok": true})));
    let (id, reset) = sse.event().await.unwrap();
    assert_eq!(reset["type"], "session_reset");
    assert_eq!(reset["sessionId"], before);
    assert!(id.unwrap() > hello["seq"].as_u64().unwrap());
    let (_, state) = sse.event().await.unwrap();
    assert_eq!(state["snapshot"]["messageCount"], 0);
    assert_ne!(state["snapshot"]["sessionId"], before);
    assert_eq!(gw.get("/sessions/main/history").await.1, json!({"messages": []}));
    // The stream goes on for the primary session.
    gw.message("main", "after").await;
    assert!(sse.event().await.unwrap().0.unwrap() > id.unwrap());
}

#[tokio::test]
async fn idle_sessions_are_evicted_unless_watched() {
    let gw = Gateway::with(&[("session.idle", "300ms"), ("session.sweep_interval", "50ms")]).await;
    gw.message("idle", "hi").await;
    gw.message("watched", "hi").await;
    let mut sse = Sse::open(&gw, "/sessions/watched/events").await;
    sse.event().await.unwrap();
    let loaded = |list: &Value, key: &str| {
        let sessions = list["sessions"].as_array().unwrap();
        sessions.iter().find(|s| s["sessionKey"] == key).map(|s| s["loaded"].clone())
    };
    let list = within(async {
        // Polls the listing (reading the session itself would load it again); the sweep
        // runs every 50 ms.
        loop {
            let (_, list) = gw.get("/sessions").await;
            if loaded(&list, "idle") == Some(json!(false)) {
                return list;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(loaded(&list, "watched"), Some(json!(true)), "a subscriber keeps it loaded");
    assert_eq!(loaded(&list, "main"), Some(json!(true)), "the primary session is never evicted");
    // Eviction drops it from memory only: reading it loads it back, history and all.
    let (status, history) = gw.get("/sessions/idle/history").await;
    assert_eq!(status, 200);
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);
    let (_, session) = gw.get("/sessions/idle").await;
    assert_eq!(session["session"]["loaded"], true);
    // ...and its seq keeps rising past what it had before.
    let (_, body) = gw.message("idle", "back").await;
    assert_eq!(body["ok"], true);
    let mut again = Sse::open(&gw, "/sessions/idle/events").await;
    assert!(again.event().await.unwrap().1["seq"].as_u64().unwrap() > 10);
}

#[tokio::test]
async fn a_dropped_stream_does_not_stop_its_run() {
    let gw = Gateway::start().await;
    gw.message("drop", "first").await;
    let mut sse = Sse::open(&gw, "/sessions/drop/events").await;
    let mut chat = gw.chat().await;
    let text = format!("{}\n!delay 5", words(20));
    let mut stream = chat.stream_chat(send("drop", &text)).await.unwrap().into_inner();
    stream_until(&mut stream, |k| matches!(k, Kind::Token(_))).await;
    drop(stream);
    drop(chat);
    let events = sse.until("agent_end").await;
    assert_eq!(events.last().unwrap().1["ok"], true, "the run finished without its caller");
    let (_, history) = gw.get("/sessions/drop/history").await;
    assert_eq!(history["messages"][3]["parts"][0]["text"], words(20));
}

#[tokio::test]
async fn clear_queue_rejects_every_waiting_caller() {
    let gw = Gateway::start().await;
    let (mut running, _) = start_slow(&gw, "cl").await;
    let (mut a, _) = queue_one(&gw, "cl", "a").await;
    let (mut b, _) = queue_one(&gw, "cl", "b").await;
    let mut sessions = gw.sessions().await;
    let cleared = sessions.clear_queue(pb::ClearQueueRequest { session_key: "cl".into() }).await;
    assert_eq!(cleared.unwrap().into_inner().cleared, 2);
    for stream in [&mut a, &mut b] {
        let (_, events, result) = collect_rest(stream).await;
        assert!(events.is_empty());
        assert_eq!((result.ok, result.error.as_deref()), (false, Some("Queue cleared")));
    }
    let (_, body) = gw.get("/sessions/cl").await;
    assert_eq!(
        (body["session"]["processing"].clone(), body["session"]["queueDepth"].clone()),
        (json!(true), json!(0))
    );
    gw.post("/sessions/cl/abort", json!({})).await;
    collect_rest(&mut running).await;
}

#[tokio::test]
async fn grpc_steer_joins_a_run_or_queues_when_idle() {
    let gw = Gateway::start().await;
    gw.message("gs", "hello").await;
    let mut chat = gw.chat().await;
    let steer = |text: &str| pb::SteerRequest { session_key: "gs".into(), text: text.into() };
    let idle = chat.steer(steer("queued when idle")).await.unwrap().into_inner();
    assert_eq!(idle.mode, pb::SteerMode::Queued as i32);
    assert_eq!(idle.message_id.len(), 36);
    let (mut running, _) = start_slow(&gw, "gs").await;
    let joined = chat.steer(steer("join")).await.unwrap().into_inner();
    assert_eq!((joined.mode, joined.session_key.as_str()), (pb::SteerMode::Steer as i32, "gs"));
    gw.post("/sessions/gs/abort", json!({})).await;
    collect_rest(&mut running).await;
    let (_, history) = gw.get("/sessions/gs/history").await;
    let texts = history_texts(&history);
    assert!(texts.contains(&("user".into(), "queued when idle".into())), "{texts:?}");
    assert!(
        texts.contains(&("user".into(), "join".into())),
        "an aborted run keeps steered text: {texts:?}"
    );
}

#[tokio::test]
async fn the_queue_lists_its_waiting_messages_on_both_transports() {
    let gw = Gateway::start().await;
    let (_run, _) = start_slow(&gw, "ql").await;
    let (status, idle) = gw.get("/sessions/ql/queue").await;
    assert_eq!(status, 200);
    assert_eq!(idle, json!({"queue": [], "processing": true}));
    let long = format!("first {}", "x".repeat(300));
    let webhook = json!({"text": long, "sessionKey": "ql", "async": true});
    let (status, accepted) = gw.post("/webhooks/q", webhook).await;
    assert_eq!(status, 202, "{accepted}");
    let (_second, second) = queue_one(&gw, "ql", "second").await;

    let (status, listed) = gw.get("/sessions/ql/queue").await;
    assert_eq!(status, 200);
    assert_eq!(listed["processing"], true);
    let queue = listed["queue"].as_array().unwrap();
    assert_eq!(queue.len(), 2, "{listed}");
    assert_eq!(queue[0]["messageId"], accepted["messageId"]);
    assert_eq!(queue[0]["position"], 1);
    assert_eq!(queue[0]["source"], "webhook");
    assert_eq!(queue[0]["textPreview"].as_str().unwrap().chars().count(), 120);
    assert!(queue[0]["enqueuedAt"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(queue[1]["messageId"], second.as_str());
    assert_eq!(
        (queue[1]["position"].as_u64(), queue[1]["source"].as_str()),
        (Some(2), Some("grpc"))
    );
    assert_eq!(queue[1]["textPreview"], "second");

    let mut sessions = gw.sessions().await;
    let request = pb::ListQueuedRequest { session_key: "ql".into() };
    let grpc = sessions.list_queued(request).await.unwrap().into_inner();
    assert!(grpc.processing);
    let ids: Vec<&str> = grpc.queue.iter().map(|q| q.message_id.as_str()).collect();
    assert_eq!(ids, [accepted["messageId"].as_str().unwrap(), second.as_str()]);
    assert_eq!(grpc.queue[1].source, "grpc");
    assert_eq!(grpc.queue[0].enqueued_at, queue[0]["enqueuedAt"].as_i64().unwrap());

    let (status, missing) = gw.get("/sessions/nope/queue").await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("Session not found: nope")));
    let request = pb::ListQueuedRequest { session_key: "nope".into() };
    assert_eq!(sessions.list_queued(request).await.unwrap_err().code(), tonic::Code::NotFound);
}
