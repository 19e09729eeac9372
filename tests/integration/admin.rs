//! Operations (GATEWAY.md §4 Admin, §5.1, §10): the public config without secrets, live
//! patches with a visible effect, channels, the log ring with request ids, TailLogs, and
//! Prometheus metrics that count exactly what a scripted run did.

use std::collections::HashMap;

use agent_gateway::proto as pb;
use agent_gateway::proto::admin_client::AdminClient;
use serde_json::{Value, json};
use tonic::Code;

use crate::common::*;

const SECRETS: [&str; 4] = ["root-token-1", "hook-secret-2", "sk-secret-3", "ops-token-4"];

async fn gateway() -> Gateway {
    Gateway::with(&[
        ("bearer_token", SECRETS[0]),
        ("webhook.secret", SECRETS[1]),
        ("openai_api_key", SECRETS[2]),
        ("tokens", r#"[{name = "ops", token = "ops-token-4", scopes = ["admin"]}, {name = "chat", token = "chat-token-5", scopes = ["chat"]}]"#),
    ])
    .await
}

async fn admin_get(gw: &Gateway, path: &str) -> (u16, Value) {
    read(gw.http.get(gw.url(path)).bearer_auth(SECRETS[0]).send().await.unwrap()).await
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {}", SECRETS[0]).parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn config_hides_secrets_and_a_patch_takes_effect_at_once() {
    let gw = gateway().await;
    let (status, config) = admin_get(&gw, "/config").await;
    assert_eq!(status, 200);
    let text = config.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} in /config");
    }
    assert_eq!(config["session"]["max_queue"], 8);
    assert_eq!(config["tokens"][0]["name"], "ops");

    // One message may wait: the second queued one is refused.
    let patch = gw.http.patch(gw.url("/config")).bearer_auth(SECRETS[0]);
    let (status, answer) =
        read(patch.json(&json!({"session": {"max_queue": 1}})).send().await.unwrap()).await;
    assert_eq!((status, &answer["ok"]), (200, &json!(true)), "{answer}");
    assert_eq!(answer["config"]["session"]["max_queue"], 1);
    let chat = |text: String| {
        let request = gw.http.post(gw.url("/sessions/pq/chat")).bearer_auth(SECRETS[0]);
        request.json(&json!({ "text": text }))
    };
    let mut running = Sse::open_with(chat(format!("{}\n!delay 50", words(200)))).await;
    while running.event().await.unwrap().1["type"] != "text-delta" {}
    let first = chat("one".into());
    let first = first.send().await.unwrap();
    assert_eq!(first.status(), 200, "the first queued message fits");
    let second = gw
        .http
        .post(gw.url("/sessions/pq/chat"))
        .bearer_auth(SECRETS[0])
        .json(&json!({"text": "two"}));
    let (status, error) = read(second.send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (429, Some("queue_full")), "{error}");
    assert!(error["error"].as_str().unwrap().contains("(1 pending)"));

    // Refused patches change nothing.
    for (patch, message) in [
        (json!({"port": 1}), "port cannot be changed while the gateway runs"),
        (json!({"session.nope": 1}), "session.nope cannot be changed"),
        (json!({"session": {"max_queue": 0}}), "session.max_queue must be at least 1"),
        (json!({"session": {"max_queue": "many"}}), "must be an integer"),
        (json!({"session.idle": "soon"}), "session.idle"),
        (json!({}), "the patch is empty"),
    ] {
        let request = gw.http.patch(gw.url("/config")).bearer_auth(SECRETS[0]).json(&patch);
        let (status, error) = read(request.send().await.unwrap()).await;
        assert_eq!((status, &error["code"]), (400, &json!("invalid_argument")), "{patch}: {error}");
        assert!(error["error"].as_str().unwrap().contains(message), "{patch}: {error}");
    }
    let mut admin = AdminClient::new(gw.channel().await);
    let config = admin.get_config(authorized(pb::GetConfigRequest {})).await.unwrap().into_inner();
    let config = format!("{:?}", config.config.unwrap());
    assert!(!SECRETS.iter().any(|s| config.contains(s)));
    let patch = prost_types::Struct {
        fields: [(
            "limits.max_text".to_string(),
            prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(5.0)) },
        )]
        .into(),
    };
    admin.patch_config(authorized(pb::PatchConfigRequest { patch: Some(patch) })).await.unwrap();
    let (status, error) = gw.post("/sessions/x/messages", json!({"text": "too long"})).await;
    assert_eq!(status, 401, "{error}");
    let long = gw
        .http
        .post(gw.url("/sessions/x/messages"))
        .bearer_auth(SECRETS[0])
        .json(&json!({"text": "too long"}));
    let (status, error) = read(long.send().await.unwrap()).await;
    assert_eq!((status, &error["code"]), (413, &json!("payload_too_large")), "{error}");
    let bad = prost_types::Struct {
        fields: [("port".to_string(), prost_types::Value::default())].into(),
    };
    let refused = admin.patch_config(authorized(pb::PatchConfigRequest { patch: Some(bad) })).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    // Only the admin scope reads the config.
    let chat = gw.http.get(gw.url("/config")).bearer_auth("chat-token-5").send().await.unwrap();
    assert_eq!(chat.status(), 403);
}

#[tokio::test]
async fn logs_carry_request_ids_and_never_a_secret() {
    let gw = gateway().await;
    let mut admin = AdminClient::new(gw.channel().await);
    let mut tail = admin.tail_logs(authorized(pb::TailLogsRequest {})).await.unwrap().into_inner();

    let id = format!("req-{}", uuid::Uuid::new_v4());
    let request =
        gw.http.get(gw.url("/sessions")).bearer_auth(SECRETS[0]).header("x-request-id", &id);
    let response = request.send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], id.as_str(), "echoed back");
    let made = gw.http.get(gw.url("/health")).send().await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 36, "made when the client sent none: {made}");
    // A webhook with its secret, and a refused one, leave log lines too.
    let hook = gw.http.post(gw.url("/webhooks/alerts")).header("x-pi-webhook-secret", SECRETS[1]);
    assert_eq!(hook.json(&json!({"text": "disk full"})).send().await.unwrap().status(), 200);
    let wrong = gw.http.post(gw.url("/webhooks/alerts")).header("x-pi-webhook-secret", "nope");
    assert_eq!(wrong.json(&json!({"text": "x"})).send().await.unwrap().status(), 401);

    // TailLogs, opened before, gets the line of that request.
    let mut tailed = Vec::new();
    let line = within(async {
        loop {
            let line = tail.message().await.unwrap().expect("the tail goes on").line;
            tailed.push(line.clone());
            if line.contains(&id) {
                return line;
            }
        }
    })
    .await;
    for secret in SECRETS {
        assert!(!tailed.iter().any(|l| l.contains(secret)), "{secret} in TailLogs");
    }
    assert!(line.contains("route=/sessions") && line.contains("status=200"), "{line}");

    let (status, logs) = admin_get(&gw, "/logs").await;
    assert_eq!(status, 200);
    let lines = logs["logs"].as_array().unwrap();
    assert!(lines.len() <= 200);
    assert!(lines.iter().any(|l| l.as_str().unwrap().contains(&id)));
    let all = admin
        .get_logs(authorized(pb::GetLogsRequest { limit: 1000 }))
        .await
        .unwrap()
        .into_inner()
        .logs;
    assert!(all.iter().any(|l| l.contains(&id)));
    for secret in SECRETS {
        assert!(!all.iter().any(|l| l.contains(secret)), "{secret} logged");
    }
    let (_, few) = admin_get(&gw, "/logs?limit=2").await;
    assert_eq!(few["logs"].as_array().unwrap().len(), 2);
    assert_eq!(admin_get(&gw, "/logs?limit=none").await.0, 400);

    // The webhook route shows on /channels/status, with the last refusal.
    let (_, channels) = admin_get(&gw, "/channels/status").await;
    let alerts =
        channels["channels"].as_array().unwrap().iter().find(|c| c["id"] == "webhook:alerts");
    let alerts = alerts.unwrap_or_else(|| panic!("{channels}"));
    assert_eq!(
        (&alerts["connected"], &alerts["error"]),
        (&json!(true), &json!("Invalid webhook secret"))
    );
    assert!(alerts["lastActiveAt"].as_i64().unwrap() > 0);
    let listed =
        admin.list_channels(authorized(pb::ListChannelsRequest {})).await.unwrap().into_inner();
    assert!(listed.channels.iter().any(|c| c.id == "webhook:alerts" && c.last_active_at.is_some()));
}

/// `name{labels} value` samples of a Prometheus text exposition; panics on a malformed line.
fn samples(text: &str) -> HashMap<String, f64> {
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let metric = name.split('{').next().unwrap();
        assert!(metric.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        if let Some(labels) = name.strip_prefix(metric) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples.insert(name.to_string(), value);
    }
    samples
}

#[tokio::test]
async fn metrics_count_what_a_scripted_run_did() {
    let gw = Gateway::start().await;
    for i in 0..3 {
        assert_eq!(gw.message(&format!("m{i}"), "hello").await.0, 200);
    }
    assert_eq!(gw.message("m0", "!fail broken").await.0, 500);
    let mut events = Sse::open(&gw, "/sessions/m1/events").await;
    let (_, hello) = events.event().await.unwrap();
    assert_eq!(hello["type"], "hello");

    let response = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let metrics = samples(&response.text().await.unwrap());
    let get =
        |name: &str| metrics.get(name).copied().unwrap_or_else(|| panic!("{name} in {metrics:?}"));
    assert_eq!(get("gateway_runs_started_total"), 4.0);
    assert_eq!(get(r#"gateway_runs_finished_total{outcome="ok"}"#), 3.0);
    assert_eq!(get(r#"gateway_runs_finished_total{outcome="failed"}"#), 1.0);
    assert_eq!(
        get(r#"gateway_requests_total{route="/sessions/{key}/messages",status="200"}"#),
        3.0
    );
    assert_eq!(
        get(r#"gateway_requests_total{route="/sessions/{key}/messages",status="500"}"#),
        1.0
    );
    assert_eq!(get("gateway_sessions_live"), 4.0, "main and m0..m2");
    assert_eq!(get("gateway_sessions_stored"), 4.0);
    assert_eq!(get("gateway_subscribers"), 1.0);
    assert_eq!(get("gateway_queue_depth"), 0.0);
    // Every logged event was counted: the sessions' seqs add up to it.
    let mut logged = 0.0;
    for key in ["main", "m0", "m1", "m2"] {
        let (_, session) = gw.get(&format!("/sessions/{key}")).await;
        let mut sse = Sse::open(&gw, &format!("/sessions/{key}/events")).await;
        let (_, hello) = sse.event().await.unwrap();
        assert_eq!(hello["snapshot"]["sessionKey"], session["session"]["sessionKey"]);
        logged += hello["seq"].as_f64().unwrap();
    }
    assert_eq!(get("gateway_events_logged_total"), logged);
    assert!(
        get(r#"gateway_request_duration_seconds_count{route="/sessions/{key}/messages"}"#) >= 4.0
    );

    // gRPC calls are counted by method and grpc-status.
    let mut sessions = gw.sessions().await;
    let missing = sessions.get_session(pb::GetSessionRequest { session_key: "nobody".into() });
    assert_eq!(missing.await.unwrap_err().code(), Code::NotFound);
    let text = gw.http.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let metrics = samples(&text);
    let not_found =
        r#"gateway_requests_total{route="/agentgateway.v1.Sessions/GetSession",status="5"}"#;
    assert_eq!(metrics.get(not_found), Some(&1.0), "{text}");
}

#[tokio::test]
async fn metrics_need_the_admin_scope_unless_public() {
    let gw = gateway().await;
    assert_eq!(gw.http.get(gw.url("/metrics")).send().await.unwrap().status(), 401);
    let chat = gw.http.get(gw.url("/metrics")).bearer_auth("chat-token-5").send().await.unwrap();
    assert_eq!(chat.status(), 403);
    let ops = gw.http.get(gw.url("/metrics")).bearer_auth(SECRETS[3]).send().await.unwrap();
    assert_eq!(ops.status(), 200);
    let open = Gateway::with(&[("bearer_token", SECRETS[0]), ("metrics.public", "true")]).await;
    assert_eq!(open.http.get(open.url("/metrics")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn each_limit_answers_its_code() {
    let gw = Gateway::with(&[
        ("limits.max_subscribers", "2"),
        ("limits.max_live_sessions", "3"),
        ("limits.max_text", "10"),
    ])
    .await;
    // Text length: 413 payload_too_large.
    let (status, error) = gw.post("/sessions/l1/messages", json!({"text": "x".repeat(11)})).await;
    assert_eq!((status, &error["code"]), (413, &json!("payload_too_large")));
    // Streams per session: the third is 429 rate_limited with Retry-After, on SSE and gRPC.
    gw.message("l1", "hi").await;
    let _a = Sse::open(&gw, "/sessions/l1/events").await;
    let _b = Sse::open(&gw, "/sessions/l1/events").await;
    let third = gw.http.get(gw.url("/sessions/l1/events")).send().await.unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let (_, error) = read(third).await;
    assert_eq!(error["code"], "rate_limited");
    assert!(error["error"].as_str().unwrap().contains("max 2"), "{error}");
    let mut sessions = gw.sessions().await;
    let subscribe = pb::SubscribeRequest { session_key: "l1".into(), after_seq: None };
    assert_eq!(sessions.subscribe(subscribe).await.unwrap_err().code(), Code::ResourceExhausted);
    let chat = gw.post("/sessions/l1/chat", json!({"text": "hi"})).await;
    assert_eq!(chat.0, 429, "a streaming send counts too: {chat:?}");
    // Live sessions: main and l1 are live, l2 fits, l3 evicts the idle l2; with every live
    // session busy or watched, the next one is 429.
    assert_eq!(gw.message("l2", "hi").await.0, 200);
    assert_eq!(gw.message("l3", "hi").await.0, 200);
    let (_, l2) = gw.get("/sessions/l2").await;
    assert_eq!(l2["session"]["loaded"], true, "loaded again (l3 was evicted for it)");
    let _c = Sse::open(&gw, "/sessions/l2/events").await;
    let (status, error) = gw.message("l4", "hi").await;
    assert_eq!((status, &error["code"]), (429, &json!("rate_limited")), "{error}");
    assert!(error["error"].as_str().unwrap().contains("Too many live sessions (max 3)"));
    let (_, listed) = gw.get("/sessions").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 4, "evicted sessions stay stored");
}
