//! Tokens and scopes (GATEWAY.md §10) on both transports: each scope is allowed where it
//! applies and refused (403 / PERMISSION_DENIED) elsewhere; no or a wrong token is 401 /
//! UNAUTHENTICATED; health and reflection stay open; tokens never show in error bodies.

use agent_gateway::proto as pb;
use agent_gateway::proto::admin_client::AdminClient;
use agent_gateway::proto::memory_client::MemoryClient;
use serde_json::json;
use tonic::Code;

use crate::common::*;

const TOKENS: &str = r#"[
  {name = "chatter", token = "chat-token-1", scopes = ["chat"]},
  {name = "viewer", token = "sessions-token-1", scopes = ["sessions"]},
  {name = "librarian", token = "memory-token-1", scopes = ["memory"]},
  {name = "operator", token = "admin-token-1", scopes = ["admin"]}
]"#;

async fn gateway() -> Gateway {
    Gateway::with(&[("tokens", TOKENS), ("bearer_token", "root-token-1")]).await
}

async fn http(gw: &Gateway, token: Option<&str>, method: &str, path: &str) -> (u16, String) {
    let mut request = match method {
        "GET" => gw.http.get(gw.url(path)),
        "DELETE" => gw.http.delete(gw.url(path)),
        _ => gw.http.post(gw.url(path)).json(&json!({"text": "hi", "query": "x", "message": "hi"})),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let (status, body) = read(request.send().await.unwrap()).await;
    (status, body.to_string())
}

#[tokio::test]
async fn each_scope_opens_its_routes_and_only_those() {
    let gw = gateway().await;
    // (token, method, path): one route per scope.
    let routes = [
        ("chat-token-1", "POST", "/sessions/s1/messages"),
        ("sessions-token-1", "GET", "/sessions"),
        ("memory-token-1", "POST", "/memory/search"),
        ("admin-token-1", "GET", "/config"),
    ];
    for (owner, method, path) in routes {
        for token in ["chat-token-1", "sessions-token-1", "memory-token-1", "admin-token-1"] {
            let (status, body) = http(&gw, Some(token), method, path).await;
            if token == owner {
                // `/config` is not built yet: 501 means the auth check let it through.
                assert!(status == 200 || status == 501, "{token} {path}: {status} {body}");
            } else {
                assert_eq!(status, 403, "{token} {path}: {body}");
                assert!(body.contains("permission_denied") && body.contains("lacks the"), "{body}");
                assert!(!body.contains(token), "a token never shows in an error body");
            }
        }
        let (status, body) = http(&gw, Some("root-token-1"), method, path).await;
        assert!(status == 200 || status == 501, "bearer_token has every scope: {path} {body}");
        let (status, body) = http(&gw, None, method, path).await;
        assert_eq!((status, body.contains("unauthenticated")), (401, true), "{path}");
        let (status, _) = http(&gw, Some("not-a-token"), method, path).await;
        assert_eq!(status, 401);
    }
    // A chat token can abort and stream, a sessions token can read what chat created.
    assert_eq!(http(&gw, Some("chat-token-1"), "POST", "/sessions/s1/abort").await.0, 200);
    assert_eq!(http(&gw, Some("sessions-token-1"), "GET", "/sessions/s1/history").await.0, 200);
    assert_eq!(http(&gw, Some("chat-token-1"), "GET", "/sessions/s1/history").await.0, 403);
    assert_eq!(http(&gw, Some("memory-token-1"), "GET", "/ready").await.0, 200);
    assert_eq!(http(&gw, None, "GET", "/health").await.0, 200);
}

#[tokio::test]
async fn grpc_methods_need_their_scope() {
    let gw = gateway().await;
    let channel = gw.channel().await;
    let mut chat = pb::chat_client::ChatClient::new(channel.clone());
    let mut sessions = pb::sessions_client::SessionsClient::new(channel.clone());
    let mut memory = MemoryClient::new(channel.clone());
    let mut admin = AdminClient::new(channel);
    let send = || crate::grpc_chat::send("g1", "hello");

    assert!(chat.send_message(with_token(send(), "chat-token-1")).await.unwrap().into_inner().ok);
    let denied = chat.send_message(with_token(send(), "sessions-token-1")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(denied.message(), "This token lacks the chat scope");
    let list = || pb::ListSessionsRequest::default();
    assert!(sessions.list_sessions(with_token(list(), "sessions-token-1")).await.is_ok());
    let denied = sessions.list_sessions(with_token(list(), "chat-token-1")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let abort = || pb::AbortSessionRequest { session_key: "g1".into() };
    assert!(sessions.abort_session(with_token(abort(), "chat-token-1")).await.is_ok());
    let search = || pb::SearchMemoryRequest { query: "x".into(), ..Default::default() };
    assert!(memory.search(with_token(search(), "memory-token-1")).await.is_ok());
    let denied = memory.search(with_token(search(), "admin-token-1")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let ready = || pb::ReadyRequest {};
    assert!(admin.ready(with_token(ready(), "memory-token-1")).await.is_ok(), "any valid token");
    let missing = admin.ready(tonic::Request::new(ready())).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let wrong = chat.send_message(with_token(send(), "chat-token-2")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(!wrong.message().contains("chat-token"), "{}", wrong.message());
}

#[tokio::test]
async fn bad_token_settings_stop_the_start() {
    use agent_gateway::config::{Config, Sources};
    for (tokens, error) in [
        (r#"[{name = "a", token = "short", scopes = ["chat"]}]"#, "at least 8 characters"),
        (r#"[{name = "a", token = "long-enough", scopes = ["root"]}]"#, "unknown scope \"root\""),
        (
            r#"[{name = "a", token = "long-enough", scopes = []}, {name = "a", token = "long-enough-2", scopes = []}]"#,
            "unique",
        ),
        (
            r#"[{name = "a", token = "long-enough", scopes = []}, {name = "b", token = "long-enough", scopes = []}]"#,
            "used twice",
        ),
        (r#"[{name = "a", token = "long-enough", scopes = [], extra = 1}]"#, "unknown field"),
    ] {
        let sources =
            Sources { overrides: vec![("tokens".into(), tokens.into())], ..Default::default() };
        let message = Config::load(&sources).unwrap_err().to_string();
        assert!(message.contains(error), "{tokens}: {message}");
    }
}

#[tokio::test]
async fn own_sessions_only_tokens_see_only_their_sessions() {
    let tokens = r#"[
      {name = "alice", token = "alice-token", scopes = ["chat", "sessions", "memory"], own_sessions_only = true},
      {name = "bob", token = "bob-token-1", scopes = ["chat", "sessions", "memory"], own_sessions_only = true}
    ]"#;
    let gw = Gateway::with(&[("tokens", tokens), ("bearer_token", "root-token-1")]).await;
    let call =
        |token: &'static str, method: &'static str, path: String, body: serde_json::Value| {
            let request = match method {
                "GET" => gw.http.get(gw.url(&path)),
                "DELETE" => gw.http.delete(gw.url(&path)),
                _ => gw.http.post(gw.url(&path)).json(&body),
            };
            let request = request.bearer_auth(token);
            async move { read(request.send().await.unwrap()).await }
        };
    let (status, _) =
        call("alice-token", "POST", "/sessions/a1/messages".into(), json!({"text": "mine"})).await;
    assert_eq!(status, 200);
    assert_eq!(call("alice-token", "GET", "/sessions/a1".into(), json!({})).await.0, 200);

    // To bob, alice's session does not exist, whatever he tries.
    for (method, path, body) in [
        ("GET", "/sessions/a1", json!({})),
        ("GET", "/sessions/a1/history", json!({})),
        ("GET", "/sessions/a1/events", json!({})),
        ("POST", "/sessions/a1/abort", json!({})),
        ("POST", "/sessions/a1/reset", json!({})),
        ("DELETE", "/sessions/a1", json!({})),
        ("POST", "/memory/search", json!({"query": "mine", "sessionKey": "a1"})),
        ("GET", "/v1/conversations/a1", json!({})),
    ] {
        let (status, body) = call("bob-token-1", method, path.into(), body).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"], "Session not found: a1");
    }
    let (_, listed) = call("bob-token-1", "GET", "/sessions".into(), json!({})).await;
    assert_eq!(listed["sessions"], json!([]), "not even main: it belongs to no token");
    let (_, listed) = call("alice-token", "GET", "/sessions".into(), json!({})).await;
    let keys: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a1"]);
    // The same over gRPC: bob cannot stream or abort it.
    let channel = gw.channel().await;
    let mut sessions = pb::sessions_client::SessionsClient::new(channel.clone());
    let subscribe = pb::SubscribeRequest { session_key: "a1".into(), after_seq: None };
    let refused = sessions.subscribe(with_token(subscribe, "bob-token-1")).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let abort = pb::AbortSessionRequest { session_key: "a1".into() };
    assert_eq!(
        sessions.abort_session(with_token(abort.clone(), "bob-token-1")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(sessions.abort_session(with_token(abort, "alice-token")).await.is_ok());
    let mut chat = pb::chat_client::ChatClient::new(channel);
    let send = crate::grpc_chat::send("a1", "hi");
    let sent = chat.send_message(with_token(send, "bob-token-1")).await.unwrap().into_inner();
    assert_eq!(sent.session_key, "a1", "his own a1");
    // Bob's own "a1" is another session (keys are his own), so it tells him nothing.
    let (status, body) =
        call("bob-token-1", "POST", "/sessions/a1/messages".into(), json!({"text": "bob's again"}))
            .await;
    assert_eq!((status, body["sessionKey"].as_str()), (200, Some("a1")), "{body}");
    let (_, history) = call("alice-token", "GET", "/sessions/a1/history".into(), json!({})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2, "alice's is untouched");
    assert_eq!(history["messages"][0]["parts"][0]["text"], "mine");
    let (_, listed) = call("root-token-1", "GET", "/sessions".into(), json!({})).await;
    let mut keys: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionKey"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["main", "~alice/a1", "~bob/a1"], "a full token sees all, by stored key");

    // Ownership survives a restart (it is stored).
    let gw = gw.stop_keeping_data().await.start().await;
    for (token, first) in [("bob-token-1", "hi"), ("alice-token", "mine")] {
        let history = gw.http.get(gw.url("/sessions/a1/history")).bearer_auth(token).send().await;
        let (status, history) = read(history.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(history["messages"][0]["parts"][0]["text"], first, "{token}");
    }
}

#[tokio::test]
async fn rate_limits_per_token_answer_429_with_retry_after() {
    let tokens = r#"[
      {name = "chatty", token = "chatty-token", scopes = ["chat", "sessions"], requests_per_minute = 3},
      {name = "busy", token = "busy-token-1", scopes = ["chat", "sessions"], max_concurrent_runs = 1}
    ]"#;
    let gw = Gateway::with(&[("tokens", tokens)]).await;
    for _ in 0..3 {
        assert_eq!(http(&gw, Some("chatty-token"), "GET", "/sessions").await.0, 200);
    }
    let refused =
        gw.http.get(gw.url("/sessions")).bearer_auth("chatty-token").send().await.unwrap();
    assert_eq!(refused.status(), 429);
    // One request per 20 s at 3 per minute: the next is due in at most 20 s (a little less once
    // some time has passed).
    let due = |value: &str| value.parse::<u64>().is_ok_and(|s| (15..=20).contains(&s));
    let retry_after = refused.headers()["retry-after"].to_str().unwrap().to_string();
    assert!(due(&retry_after), "retry-after {retry_after}");
    let (_, body) = read(refused).await;
    assert_eq!(body["code"], "rate_limited");
    let mut sessions = pb::sessions_client::SessionsClient::new(gw.channel().await);
    let list = with_token(pb::ListSessionsRequest::default(), "chatty-token");
    let status = sessions.list_sessions(list).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(due(status.metadata().get("retry-after").unwrap().to_str().unwrap()));
    // Another token is not held back by it.
    assert_eq!(http(&gw, Some("busy-token-1"), "GET", "/sessions").await.0, 200);

    // One message in flight at a time for "busy", over all its sessions.
    let slow = json!({"text": format!("{}\n!delay 20", words(200))});
    let running = gw.http.post(gw.url("/sessions/b1/chat")).bearer_auth("busy-token-1").json(&slow);
    let mut running = Sse::open_with(running).await;
    while running.event().await.unwrap().1["type"] != "text-delta" {}
    let second = gw.http.post(gw.url("/sessions/b2/messages")).bearer_auth("busy-token-1");
    let refused = second.json(&json!({"text": "me too"})).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let (_, body) = read(refused).await;
    assert!(body["error"].as_str().unwrap().contains("max_concurrent_runs 1"), "{body}");
    let abort = gw.http.post(gw.url("/sessions/b1/abort")).bearer_auth("busy-token-1");
    assert_eq!(abort.send().await.unwrap().status(), 200);
    while running.event().await.is_some() {}
    // Its run is over: the place is free again (the permit goes with the run's end).
    let third = gw.http.post(gw.url("/sessions/b2/messages")).bearer_auth("busy-token-1");
    let answer = within(third.json(&json!({"text": "now"})).send()).await.unwrap();
    assert_eq!(answer.status(), 200);
}
