//! The HTTP edge (issue 16 item 8): slow or silent clients are cut off by `http.header_timeout`
//! and `http.body_timeout` while long-lived streams live on; `http.max_connections` refuses
//! with a 503 in the JSON shape; early answers close their connection openly, so pooled
//! clients go on; hyper's own 400/414/431 come in the JSON shape of GATEWAY.md §8.

use std::time::Duration;

use agent_gateway::proto as pb;
use futures_util::StreamExt;
use pb::event::Kind;
use serde_json::json;

use crate::common::raw::*;
use crate::common::*;

fn is_json_error(response: &RawResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"), "{response:?}");
    let body = response.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_long_streams_are_not() {
    let gw = Gateway::with(&[("http.header_timeout", "1s"), ("http.body_timeout", "1s")]).await;
    // Opened first, so they outlive both timeouts: SSE, a gRPC stream and a websocket.
    let mut sse = Sse::open(&gw, "/sessions/main/events").await;
    assert_eq!(sse.event().await.unwrap().1["type"], "hello");
    let subscribe = pb::SubscribeRequest { session_key: "main".into(), after_seq: None };
    let mut grpc = gw.sessions().await.subscribe(subscribe).await.unwrap().into_inner();
    next(&mut grpc).await.unwrap();
    let mut ws = Ws::open(gw.addr).await;

    // Slowloris: a head never finished, a connection that never speaks, a preface cut short.
    let mut slow = Raw::connect(gw.addr).await;
    slow.send(b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Slow: still typ").await;
    let mut silent = Raw::connect(gw.addr).await;
    let mut preface = Raw::connect(gw.addr).await;
    preface.send(b"PRI * HTTP/2.0\r\n").await;
    slow.closed().await;
    silent.closed().await;
    preface.closed().await;

    // A Content-Length larger than the body sent: 408, and the connection is done.
    let mut short = Raw::connect(gw.addr).await;
    short
        .send(
            b"POST /sessions/short/messages HTTP/1.1\r\nHost: gw\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\":",
        )
        .await;
    let response = short.response().await;
    is_json_error(&response, 408, "invalid_argument");
    assert_eq!(response.header("connection"), Some("close"));
    short.closed().await;

    // The same over native gRPC: a message that never finishes arriving.
    let stalled =
        futures_util::stream::once(async { Ok::<_, std::io::Error>(vec![0u8, 0, 0, 0, 9]) })
            .chain(futures_util::stream::pending());
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let response = within(
        h2.post(gw.url("/agentgateway.v1.Sessions/GetSession"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(reqwest::Body::wrap_stream(stalled))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["grpc-status"], "3", "INVALID_ARGUMENT: {response:?}");

    // Every stream still carries what happens.
    gw.message("main", "still here").await;
    sse.until("agent_end").await;
    until_event(&mut grpc, |k| matches!(k, Kind::AgentEnd(_))).await;
    ws.send("40/chat,").await;
    loop {
        match ws.text().await.as_str() {
            // Engine.IO's ping: the socket lives, and answers.
            "2" => ws.send("3").await,
            connected => {
                assert!(connected.starts_with("40/chat,{"), "{connected}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn connections_past_the_cap_get_a_503_until_one_closes() {
    let gw = Gateway::with(&[("http.max_connections", "2"), ("http.header_timeout", "60s")]).await;
    let first = Raw::connect(gw.addr).await;
    let _second = Raw::connect(gw.addr).await;
    // Accepted in order: the third is one too many.
    let mut third = Raw::connect(gw.addr).await;
    third.send(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    let refused = third.response().await;
    is_json_error(&refused, 503, "unavailable");
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    third.closed().await;
    let metrics = gw.state.metrics.encode();
    assert!(metrics.contains("gateway_connections_refused_total 1"), "{metrics}");
    assert!(metrics.contains("gateway_connections_open 2"), "{metrics}");

    // One goes: there is room again once the server has seen it close.
    drop(first);
    let answered = within(async {
        loop {
            let mut next = Raw::connect(gw.addr).await;
            next.send(b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").await;
            let response = next.response().await;
            if response.status == 200 {
                return response;
            }
            assert_eq!(response.status, 503);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(answered.json(), json!({"ok": true, "ready": true}));
}

#[tokio::test]
async fn early_answers_close_their_connection_and_pooled_clients_go_on() {
    let token = "edge-test-token";
    let gw = Gateway::with(&[("bearer_token", token), ("http.max_body", "1024")]).await;
    // 401 before the body is read, 413 from the declared length: each says it closes.
    for (headers, expected) in [
        ("Content-Length: 100000\r\n", 401),
        ("Content-Length: 5000\r\nAuthorization: Bearer edge-test-token\r\n", 413),
    ] {
        let mut raw = Raw::connect(gw.addr).await;
        let head = format!(
            "POST /sessions/early/messages HTTP/1.1\r\nHost: gw\r\n\
             Content-Type: application/json\r\n{headers}\r\n{{\"text\": \"the start of a body"
        );
        raw.send(head.as_bytes()).await;
        let response = raw.response().await;
        let code = if expected == 401 { "unauthenticated" } else { "payload_too_large" };
        is_json_error(&response, expected, code);
        assert_eq!(response.header("connection"), Some("close"), "{response:?}");
        raw.closed().await;
    }

    // A pooled client: every early answer, then a request on what it kept, succeeds.
    let client = reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).build().unwrap();
    let big = json!({ "text": "x".repeat(256 * 1024) });
    for round in 0..10 {
        let url = gw.url("/sessions/early/messages");
        let unauthorized = client.post(&url).json(&big).send().await.unwrap();
        assert_eq!(unauthorized.status(), 401, "round {round}");
        let too_large = client.post(&url).bearer_auth(token).json(&big).send().await;
        assert_eq!(too_large.unwrap().status(), 413, "round {round}");
        let health = client.get(gw.url("/health")).send().await;
        assert_eq!(health.expect("the pooled client goes on").status(), 200, "round {round}");
    }
}

#[tokio::test]
async fn hypers_own_refusals_come_in_the_json_shape() {
    let gw = Gateway::start().await;
    let many: String = (0..150).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let huge = format!("X-Huge: {}\r\n", "h".repeat(600 * 1024));
    let long_uri = format!("/{}", "u".repeat(70_000));
    for (head, status, code) in [
        (format!("GET /health HTTP/1.1\r\nHost: gw\r\n{many}\r\n"), 431, "payload_too_large"),
        (format!("GET /health HTTP/1.1\r\nHost: gw\r\n{huge}\r\n"), 431, "payload_too_large"),
        (format!("GET {long_uri} HTTP/1.1\r\nHost: gw\r\n\r\n"), 414, "payload_too_large"),
        (
            "GET /health HTTP/1.1\r\nHost: gw\r\nX-Bad: a\x01b\r\n\r\n".into(),
            400,
            "invalid_argument",
        ),
        ("HELLO THERE\r\n\r\n".into(), 400, "invalid_argument"),
    ] {
        let mut raw = Raw::connect(gw.addr).await;
        // A good request first: the refusal comes on a connection that already served one.
        raw.send(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n").await;
        assert_eq!(raw.response().await.status, 200);
        raw.send(head.as_bytes()).await;
        let response = raw.response().await;
        is_json_error(&response, status, code);
        assert_eq!(response.header("connection"), Some("close"));
        raw.closed().await;
    }
}
