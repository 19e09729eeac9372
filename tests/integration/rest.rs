//! The seed REST routes: shapes, status codes and error bodies.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn health_and_ready() {
    let gw = Gateway::start().await;
    assert_eq!(gw.get("/health").await, (200, json!({"ok": true, "ready": true})));
    assert_eq!(gw.get("/ready").await, (200, json!({"ok": true, "ready": true, "sessions": 1})));
}

#[tokio::test]
async fn message_round_trip_creates_the_session() {
    let gw = Gateway::start().await;
    assert_eq!(gw.get("/sessions/fresh").await.0, 404);
    let (status, body) = gw.message("fresh", "hello there").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["response"], "hello there");
    assert_eq!(body["sessionKey"], "fresh");
    assert_eq!(text_of(&body["messageId"]).len(), 36);
    assert!(body.get("error").is_none());

    let (status, body) = gw.get("/sessions/fresh").await;
    assert_eq!(status, 200);
    let session = &body["session"];
    assert_eq!(session["messageCount"], 2);
    assert_eq!(session["queueDepth"], 0);
    assert_eq!(session["processing"], false);
    assert_eq!(session["lastMessagePreview"], "hello there");
    assert_eq!(session["modelProvider"], "echo");

    let (_, history) = gw.get("/sessions/fresh/history").await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["id"], body_id(&gw, "fresh").await);
    assert_eq!(messages[1]["parts"], json!([{"type": "text", "text": "hello there"}]));
    assert!(history.get("nextCursor").is_none());
}

/// The id of the newest user message (equal to the messageId its caller got).
async fn body_id(gw: &Gateway, key: &str) -> Value {
    let (_, history) = gw.get(&format!("/sessions/{key}/history")).await;
    history["messages"].as_array().unwrap().iter().rev().find(|m| m["role"] == "user").unwrap()["id"]
        .clone()
}

#[tokio::test]
async fn unknown_sessions_are_404_on_every_non_sending_route() {
    let gw = Gateway::start().await;
    let expected = json!({"error": "Session not found: ghost", "code": "not_found"});
    let http = &gw.http;
    let requests = [
        http.get(gw.url("/sessions/ghost")),
        http.patch(gw.url("/sessions/ghost")).json(&json!({"name": "x"})),
        http.delete(gw.url("/sessions/ghost")),
        http.get(gw.url("/sessions/ghost/events")),
        http.post(gw.url("/sessions/ghost/abort")),
        http.post(gw.url("/sessions/ghost/steer")).json(&json!({"text": "x"})),
        http.post(gw.url("/sessions/ghost/reset")),
        http.delete(gw.url("/sessions/ghost/queue/some-id")),
        http.get(gw.url("/sessions/ghost/history")),
        http.get(gw.url("/sessions/ghost/state")),
    ];
    for request in requests {
        let (status, body) = read(request.send().await.unwrap()).await;
        assert_eq!((status, &body), (404, &expected));
    }
    // Nothing was created by those calls.
    assert_eq!(gw.get("/sessions").await.1["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let gw = Gateway::start().await;
    assert_eq!(gw.get("/nope").await, (404, json!({"error": "Not found", "code": "not_found"})));
    assert_eq!(gw.get("/sessions/a/b/c").await.0, 404);
    let method = json!({"error": "Method not allowed", "code": "method_not_allowed"});
    let (status, body) = read(gw.http.put(gw.url("/sessions/main")).send().await.unwrap()).await;
    assert_eq!((status, body), (405, method.clone()));
    assert_eq!(gw.get("/sessions/main/messages").await, (405, method.clone()));
    assert_eq!(gw.post("/health", json!({})).await, (405, method));
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let gw = Gateway::start().await;
    let raw = |path: &str, body: &'static str| {
        gw.http.post(gw.url(path)).header("content-type", "application/json").body(body).send()
    };
    let (status, body) = read(raw("/sessions/a/messages", "{\"text\":").await.unwrap()).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "Invalid JSON body", "code": "invalid_argument"}))
    );
    let (status, body) = read(raw("/sessions/a/messages", "[1,2]").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(text_of(&body["error"]).starts_with("Invalid JSON body"), "{body}");
    let (status, body) = read(raw("/sessions/a/messages", "{\"text\": 5}").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(text_of(&body["error"]).contains("invalid type"), "{body}");
    assert_eq!(
        gw.post("/sessions/a/messages", json!({"text": "   "})).await,
        (400, json!({"error": "Missing text", "code": "invalid_argument"}))
    );
    assert_eq!(gw.post("/sessions/a/messages", json!({})).await.1["error"], "Missing text");
    let (status, body) = gw
        .post("/sessions/a/messages", json!({"text": "x", "streamingBehavior": "sideways"}))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = gw
        .post("/sessions/a/messages", json!({"text": "x", "images": [{"type": "image", "data": "%%%", "mimeType": "image/png"}]}))
        .await;
    assert_eq!(
        (status, text_of(&body["error"])),
        (400, "Invalid image: data must be base64".into())
    );
    let long_key = "k".repeat(201);
    let (status, body) = gw.message(&long_key, "x").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_argument");
    assert_eq!(
        gw.post("/sessions/main/steer", json!({"nothing": true})).await,
        (400, json!({"error": "Missing user message text", "code": "invalid_argument"}))
    );
    for limit in ["0", "abc", "-1"] {
        let (status, body) = gw.get(&format!("/sessions/main/history?limit={limit}")).await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"error": "History limit must be a positive integer", "code": "invalid_argument"})
            )
        );
    }
    assert_eq!(gw.get("/sessions?limit=0").await.0, 400);
    assert_eq!(gw.get("/sessions?cursor=zz").await.0, 400);
    assert_eq!(gw.get("/sessions/main/history?cursor=nope").await.0, 400);
    let (status, body) = gw.get("/sessions/%FF%FE").await;
    assert_eq!((status, text_of(&body["code"])), (400, "invalid_argument".into()), "{body}");
    // None of that created a session or broke the server.
    assert_eq!(gw.get("/sessions/a").await.0, 404);
    assert_eq!(gw.get("/health").await.0, 200);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let gw = Gateway::with(&[("http.max_body", "4096")]).await;
    let big = json!({"text": "x".repeat(8000)});
    let (status, body) = gw.post("/sessions/a/messages", big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    // Without a Content-Length (chunked), the limit still holds.
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1000]))),
    );
    let response = gw
        .http
        .post(gw.url("/sessions/a/messages"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(gw.get("/sessions/a").await.0, 404);
}

#[tokio::test]
async fn bearer_auth_guards_everything_but_health() {
    let gw = Gateway::with(&[("bearer_token", "s3cret")]).await;
    let unauthorized = json!({"error": "Unauthorized", "code": "unauthenticated"});
    assert_eq!(gw.get("/sessions").await, (401, unauthorized.clone()));
    assert_eq!(gw.get("/ready").await.0, 401);
    assert_eq!(gw.message("a", "hi").await.0, 401);
    assert_eq!(gw.get("/sessions/main/events").await.0, 401);
    let wrong = gw.http.get(gw.url("/sessions")).bearer_auth("s3cre").send().await.unwrap();
    assert_eq!(read(wrong).await, (401, unauthorized));
    let right = gw.http.get(gw.url("/sessions")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(gw.get("/health").await.0, 200);

    // gRPC: the same token as metadata; health and reflection stay open.
    let mut sessions = gw.sessions().await;
    let status = sessions
        .get_session(agent_gateway::proto::GetSessionRequest { session_key: "main".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut request =
        tonic::Request::new(agent_gateway::proto::GetSessionRequest { session_key: "main".into() });
    request.metadata_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(
        sessions.get_session(request).await.unwrap().into_inner().session.unwrap().session_key,
        "main"
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(gw.channel().await);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest { service: "agentgateway.v1.Chat".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn rename_and_paginated_listing() {
    let gw = Gateway::start().await;
    for i in 0..5 {
        assert_eq!(gw.message(&format!("s{i}"), "hi").await.0, 200);
    }
    let renamed = gw.http.patch(gw.url("/sessions/s2")).json(&json!({"name": "Two"})).send();
    assert_eq!(read(renamed.await.unwrap()).await, (200, json!({"ok": true})));
    assert_eq!(gw.get("/sessions/s2").await.1["session"]["name"], "Two");
    let (status, _) =
        read(gw.http.patch(gw.url("/sessions/s2")).json(&json!({"name": 7})).send().await.unwrap())
            .await;
    assert_eq!(status, 400);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sessions?limit=2&cursor={c}"),
            None => "/sessions?limit=2".to_string(),
        };
        let (status, page) = gw.get(&path).await;
        assert_eq!(status, 200);
        let sessions = page["sessions"].as_array().unwrap();
        assert!(sessions.len() <= 2);
        seen.extend(
            sessions
                .iter()
                .map(|s| (s["lastActiveAt"].as_i64().unwrap(), text_of(&s["sessionKey"]))),
        );
        match page.get("nextCursor") {
            Some(next) => cursor = Some(text_of(next)),
            None => break,
        }
    }
    let keys: std::collections::BTreeSet<_> = seen.iter().map(|s| s.1.clone()).collect();
    assert_eq!(keys.len(), 6, "every session exactly once: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest activity first: {seen:?}");
}

#[tokio::test]
async fn history_pages_back_with_a_cursor() {
    let gw = Gateway::start().await;
    for text in ["one", "two", "three"] {
        gw.message("h", text).await;
    }
    let (_, page) = gw.get("/sessions/h/history?limit=4").await;
    let texts = page_texts(&page);
    assert_eq!(texts, ["two", "two", "three", "three"]);
    let cursor = text_of(&page["nextCursor"]);
    let (_, older) = gw.get(&format!("/sessions/h/history?limit=4&cursor={cursor}")).await;
    let texts: Vec<String> = older["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| text_of(&m["parts"][0]["text"]))
        .collect();
    assert_eq!(texts, ["one", "one"]);
    assert!(older.get("nextCursor").is_none());
}

#[tokio::test]
async fn the_primary_session_cannot_be_deleted() {
    let gw = Gateway::start().await;
    assert_eq!(
        gw.delete("/sessions/main").await,
        (400, json!({"error": "Cannot delete primary session", "code": "failed_precondition"}))
    );
    gw.message("doomed", "hi").await;
    assert_eq!(gw.delete("/sessions/doomed").await, (200, json!({"ok": true})));
    assert_eq!(gw.get("/sessions/doomed").await.0, 404);
}

#[tokio::test]
async fn images_are_kept_in_history() {
    let gw = Gateway::start().await;
    let png = "iVBORw0KGgo=";
    let (status, _) = gw
        .post("/sessions/img/messages", json!({"text": "look", "images": [{"type": "image", "data": png, "mimeType": "image/png"}]}))
        .await;
    assert_eq!(status, 200);
    let (_, history) = gw.get("/sessions/img/history").await;
    assert_eq!(
        history["messages"][0]["parts"][1],
        json!({"type": "media", "url": format!("data:image/png;base64,{png}"), "mimeType": "image/png"})
    );
    let (status, _) = gw
        .post("/sessions/img/messages", json!({"text": "x", "images": [{"type": "image", "data": png, "mimeType": "text/html"}]}))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cors_preflight_and_exposed_grpc_headers() {
    let gw = Gateway::with(&[("cors_origin", "https://app.example")]).await;
    let response = gw
        .http
        .request(reqwest::Method::OPTIONS, gw.url("/agentgateway.v1.Sessions/GetSession"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,authorization")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("x-grpc-web") && allowed.contains("last-event-id"), "{allowed}");
    let response = gw
        .http
        .get(gw.url("/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed =
        response.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"), "{exposed}");
}

#[tokio::test]
async fn grpc_web_over_http1_on_the_same_port() {
    use prost::Message;
    let gw = Gateway::start().await;
    let request =
        agent_gateway::proto::GetSessionRequest { session_key: "main".into() }.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((request.len() as u32).to_be_bytes());
    frame.extend(request);
    let response = gw
        .http
        .post(gw.url("/agentgateway.v1.Sessions/GetSession"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"].to_str().unwrap().starts_with("application/grpc-web")
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(body[0], 0, "a data frame first");
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let message = agent_gateway::proto::GetSessionResponse::decode(&body[5..5 + length]).unwrap();
    assert_eq!(message.session.unwrap().session_key, "main");
    let trailers = String::from_utf8_lossy(&body[5 + length + 5..]).to_lowercase();
    assert_eq!(body[5 + length], 0x80, "then the trailer frame");
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test]
async fn models_model_and_thinking_routes() {
    let gw = Gateway::start().await;
    let (status, body) = gw.get("/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["current"], json!({"provider": "echo", "modelId": "echo"}));
    assert_eq!(body["models"][0]["modelId"], "echo");
    assert!(body["models"][0]["displayName"].is_string());
    let (status, body) =
        gw.post("/sessions/main/model", json!({"provider": "echo", "modelId": "echo"})).await;
    assert_eq!(
        (status, body),
        (200, json!({"ok": true, "model": {"provider": "echo", "modelId": "echo"}}))
    );
    let (status, body) =
        gw.post("/sessions/main/model", json!({"provider": "openai", "modelId": "x"})).await;
    assert_eq!((status, text_of(&body["error"])), (404, "Model not found: openai/x".into()));
    assert_eq!(gw.post("/sessions/main/model", json!({"provider": "echo"})).await.0, 400);
    let (status, body) = gw.post("/sessions/main/thinking", json!({"level": "medium"})).await;
    assert_eq!((status, body), (200, json!({"ok": true, "level": "medium"})));
    assert_eq!(gw.get("/sessions/main").await.1["session"]["thinkingLevel"], "medium");
    let (status, body) = gw.post("/sessions/main/thinking", json!({"level": "max"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Invalid thinking level: max (use off, minimal, low, medium, high)");
    assert_eq!(gw.post("/sessions/nobody/thinking", json!({"level": "low"})).await.0, 404);
}
