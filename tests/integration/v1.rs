//! The v1 conversation API (GATEWAY.md §5.2): every route and validation rule, the named SSE
//! events, adapters, and the disconnect rule (a client cancels only its own message).

use serde_json::{Value, json};

use crate::common::*;

async fn stream(gw: &Gateway, path: &str, body: Value) -> Sse {
    Sse::open_with(gw.http.post(gw.url(path)).json(&body)).await
}

/// Named events `(name, data)` to the end of the stream.
async fn named_events(sse: &mut Sse) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    while let Some((_, name, data)) = sse.named().await {
        all.push((name.expect("every v1 event is named"), data));
    }
    all
}

#[tokio::test]
async fn conversations_are_created_listed_read_aborted_and_deleted() {
    let gw = Gateway::start().await;
    let (status, body) =
        gw.post("/v1/conversations", json!({"conversationId": "c1", "name": "First"})).await;
    assert_eq!(status, 201, "{body}");
    let c = &body["conversation"];
    assert_eq!((c["conversationId"].as_str(), c["name"].as_str()), (Some("c1"), Some("First")));
    for field in ["sessionId", "createdAt", "updatedAt"] {
        assert!(!c[field].is_null(), "{field} in {c}");
    }
    assert_eq!((c["messageCount"].as_u64(), c["queueDepth"].as_u64()), (Some(0), Some(0)));
    assert_eq!(c["processing"], false);
    let (status, body) = gw.post("/v1/conversations", json!({"conversationId": "c1"})).await;
    assert_eq!((status, text_of(&body["code"])), (409, "conflict".into()));
    let (status, body) = gw.post("/v1/conversations", json!({})).await;
    assert_eq!(status, 201);
    let generated = text_of(&body["conversation"]["conversationId"]);
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "a UUID when no id: {generated}");

    let (_, list) = gw.get("/v1/conversations").await;
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["conversationId"].as_str())
        .collect();
    assert!(ids.contains(&"c1") && ids.contains(&generated.as_str()), "{ids:?}");
    let (_, page) = gw.get("/v1/conversations?limit=1").await;
    assert_eq!(page["conversations"].as_array().unwrap().len(), 1);
    assert!(page["nextCursor"].is_string());

    let (status, body) = gw.get("/v1/conversations/c1").await;
    assert_eq!((status, text_of(&body["conversation"]["conversationId"])), (200, "c1".into()));
    let (status, body) = gw.post("/v1/conversations/c1/abort", json!({})).await;
    assert_eq!((status, body), (200, json!({"ok": true, "aborted": false})));
    assert_eq!(gw.delete("/v1/conversations/c1").await, (200, json!({"ok": true})));
    let (status, body) = gw.get("/v1/conversations/c1").await;
    assert_eq!((status, text_of(&body["error"])), (404, "Session not found: c1".into()));
    assert_eq!(gw.post("/v1/conversations/nobody/abort", json!({})).await.0, 404);
    assert_eq!(gw.delete("/v1/conversations/main").await.0, 400, "the primary session stays");
}

#[tokio::test]
async fn conversation_validation() {
    let gw = Gateway::start().await;
    let long = "x".repeat(201);
    for body in [
        json!({"conversationId": long}),
        json!({"conversationId": "a\nb"}),
        json!({"conversationId": ""}),
        json!({"conversationId": 7}),
    ] {
        let (status, error) = gw.post("/v1/conversations", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["error"], "conversationId must be 1-200 characters without line breaks");
    }
    assert_eq!(gw.post("/v1/conversations", json!({"name": 5})).await.0, 400);
    let (status, created) = gw.post("/v1/conversations", json!({"memoryNamespace": "team"})).await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = gw.post("/v1/conversations", json!({"memoryNamespace": 5})).await;
    assert_eq!(status, 400);
    let (status, _) = gw.get(&format!("/v1/conversations/{}", "y".repeat(201))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn chat_answers_json_and_validates_its_body() {
    let gw = Gateway::start().await;
    let (status, body) =
        gw.post("/v1/chat", json!({"conversationId": "j", "message": "hi v1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversationId"], "j");
    assert_eq!(body["assistantText"], "hi v1");
    let (_, session) = gw.get("/sessions/j").await;
    assert_eq!(body["sessionId"], session["session"]["sessionId"], "a conversation is a session");
    let (status, body) = gw.post("/v1/chat", json!({"message": "new one"})).await;
    assert_eq!(status, 200);
    assert!(uuid::Uuid::parse_str(body["conversationId"].as_str().unwrap()).is_ok());

    let cases = [
        (json!({}), "message must be a non-empty string"),
        (json!({"message": ""}), "message must be a non-empty string"),
        (json!({"message": 3}), "message must be a non-empty string"),
        (json!({"message": "x", "images": "no"}), "images must be an array"),
        (
            json!({"message": "x", "streamingBehavior": "later"}),
            "streamingBehavior must be \"steer\" or \"followUp\"",
        ),
        (
            json!({"message": "x", "conversationId": "a\rb"}),
            "conversationId must be 1-200 characters without line breaks",
        ),
    ];
    for (body, message) in cases {
        for path in ["/v1/chat", "/v1/chat/stream"] {
            let (status, error) = gw.post(path, body.clone()).await;
            assert_eq!(
                (status, text_of(&error["error"])),
                (400, message.to_string()),
                "{path} {body}"
            );
        }
    }
    let image = json!({"type": "image", "data": "aGk=", "mimeType": "image/png"});
    let (status, body) = gw
        .post("/v1/chat", json!({"conversationId": "img", "message": "pic", "images": [image]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, history) = gw.get("/sessions/img/history").await;
    assert_eq!(history["messages"][0]["parts"][1]["type"], "media");
    let (status, body) = gw.post("/v1/chat", json!({"message": "!fail broken"})).await;
    assert_eq!((status, text_of(&body["error"])), (500, "broken".into()));
}

#[tokio::test]
async fn chat_stream_sends_named_events_from_ready_to_done() {
    let gw = Gateway::start().await;
    std::fs::write(gw.workspace.join("n.txt"), "note").unwrap();
    let message = "yo\n!think\n!tool read {\"path\":\"n.txt\"}";
    let mut sse =
        stream(&gw, "/v1/chat/stream", json!({"conversationId": "s", "message": message})).await;
    let events = named_events(&mut sse).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"ready"));
    assert_eq!(events[0].1["conversationId"], "s");
    assert!(events[0].1["sessionId"].as_str().is_some_and(|id| !id.is_empty()));
    for expected in [
        "agent_start",
        "assistant_thinking_delta",
        "tool_start",
        "tool_end",
        "assistant_text_delta",
        "agent_end",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert_eq!(names.last(), Some(&"done"));
    let done = &events.last().unwrap().1;
    assert_eq!(done["conversationId"], "s");
    assert_eq!(done["assistantText"], "yo\n\nTool read returned:\nnote");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "assistant_text_delta")
        .map(|(_, d)| text_of(&d["delta"]))
        .collect();
    assert_eq!(text, done["assistantText"].as_str().unwrap());
    let tool_end = &events.iter().find(|(n, _)| n == "tool_end").unwrap().1;
    assert_eq!(
        (tool_end["toolName"].as_str(), tool_end["isError"].as_bool()),
        (Some("read"), Some(false))
    );
    assert!(
        events.iter().find(|(n, _)| n == "agent_end").unwrap().1["usage"]["outputTokens"].is_u64()
    );

    let mut failed = stream(&gw, "/v1/chat/stream", json!({"message": "!fail nope"})).await;
    let events = named_events(&mut failed).await;
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(
        (error["error"].as_str(), error["code"].as_str()),
        (Some("nope"), Some("model_error"))
    );
}

#[tokio::test]
async fn adapters_build_ids_from_their_segments() {
    let gw = Gateway::start().await;
    let body = json!({
        "source": "slack", "workspaceId": "T1", "channelId": "C1", "threadId": "th", "userId": "U1",
        "message": "from slack"
    });
    let (status, answer) = gw.post("/v1/adapters/chat", body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["conversationId"], "slack:T1:C1:th");
    assert_eq!(answer["adapterKey"], "slack:T1:C1:th:U1");
    assert_eq!(answer["assistantText"], "from slack");
    let mut sse = stream(&gw, "/v1/adapters/chat/stream", body).await;
    let events = named_events(&mut sse).await;
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(
        (done["adapterKey"].as_str(), done["conversationId"].as_str()),
        (Some("slack:T1:C1:th:U1"), Some("slack:T1:C1:th"))
    );
    let (_, history) = gw.get("/sessions/slack:T1:C1:th/history").await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 4, "both calls in one conversation");

    let base = json!({"source": "s", "workspaceId": "w", "channelId": "c", "message": "m"});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("channelId", Value::Null), "channelId is required"),
        (with("channelId", json!("")), "channelId is required"),
        (with("channelId", json!("a:b")), "channelId must not contain ':'"),
        (with("threadId", json!("t:1")), "threadId must not contain ':'"),
        (with("userId", json!(5)), "userId must be a string"),
        (with("source", Value::Null), "source is required"),
        (with("message", json!("")), "message must be a non-empty string"),
    ];
    for (body, message) in cases {
        let (status, error) = gw.post("/v1/adapters/chat", body.clone()).await;
        assert_eq!((status, text_of(&error["error"])), (400, message.to_string()), "{body}");
    }
    let (status, answer) = gw.post("/v1/adapters/chat", base).await;
    assert_eq!((status, text_of(&answer["conversationId"])), (200, "s:w:c".into()));
}

/// Waits on the session's events until `done` matches one.
async fn wait_for(sse: &mut Sse, done: impl Fn(&Value) -> bool) -> Value {
    loop {
        let (_, event) = sse.event().await.expect("the session stream stays open");
        if done(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn a_disconnect_cancels_only_the_callers_own_message() {
    let gw = Gateway::start().await;
    // Another caller's slow run holds the session; ours waits in the queue.
    let (mut other, other_id) = crate::queue::start_slow(&gw, "dq").await;
    let mut events = Sse::open(&gw, "/sessions/dq/events").await;
    let mut mine =
        stream(&gw, "/v1/chat/stream", json!({"conversationId": "dq", "message": "mine"})).await;
    assert_eq!(mine.named().await.unwrap().1.as_deref(), Some("ready"));
    wait_for(&mut events, |e| e["type"] == "session_state" && e["snapshot"]["queueDepth"] == 1)
        .await;
    drop(mine);
    let state =
        wait_for(&mut events, |e| e["type"] == "session_state" && e["snapshot"]["queueDepth"] == 0)
            .await;
    assert_eq!(state["snapshot"]["processing"], true, "the other caller's run goes on");
    // Joining the other caller's run (steer) and leaving does not abort that run either.
    let mut joined = stream(
        &gw,
        "/v1/chat/stream",
        json!({
            "conversationId": "dq", "message": "steering in", "streamingBehavior": "steer"
        }),
    )
    .await;
    assert_eq!(joined.named().await.unwrap().1.as_deref(), Some("ready"));
    drop(joined);
    gw.post("/sessions/dq/abort", json!({})).await; // end the long run for the test's sake
    let end = wait_for(&mut events, |e| e["type"] == "agent_end").await;
    assert_eq!(end["messageId"], other_id.as_str());
    let _ = other.message().await;
    let (_, history) = gw.get("/sessions/dq/history").await;
    assert!(!history.to_string().contains("\"mine\""), "the cancelled message never ran");

    // Our own running message is aborted when we leave.
    gw.post("/v1/conversations", json!({"conversationId": "dr"})).await;
    let mut events = Sse::open(&gw, "/sessions/dr/events").await;
    let body = json!({"conversationId": "dr", "message": format!("{}\n!delay 20", words(300))});
    let mut running = stream(&gw, "/v1/chat/stream", body).await;
    while running.named().await.unwrap().1.as_deref() != Some("assistant_text_delta") {}
    drop(running);
    wait_for(&mut events, |e| e["type"] == "aborted").await;
    let end = wait_for(&mut events, |e| e["type"] == "agent_end").await;
    assert_eq!(end["ok"], false);
}

#[tokio::test]
async fn the_chat_page_is_served_unless_disabled() {
    let gw = Gateway::with(&[("bearer_token", "secret")]).await;
    let response = gw.http.get(gw.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the page is public: it asks for the token itself");
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>agent-gateway</title>") && html.contains("/chat`"));
    let gw = Gateway::with(&[("web_ui", "false")]).await;
    assert_eq!(gw.get("/").await.0, 404);
}
