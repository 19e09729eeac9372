//! The webhook: session keys from route and sender, the secret header, and the bearer rule
//! when no secret is set.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn webhook_routes_messages_to_derived_sessions() {
    let gw = Gateway::start().await;
    let (status, body) = gw.post("/webhooks/slack", json!({"text": "ping", "sender": "bob"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "ping");
    assert_eq!(body["sessionKey"], "webhook:slack:bob");
    assert_eq!(gw.get("/sessions/webhook:slack:bob").await.0, 200);

    let (_, body) = gw.post("/webhooks", json!({"text": "ping"})).await;
    assert_eq!(body["sessionKey"], "webhook:default:default");
    let (_, body) = gw.post("/webhooks/a/b", json!({"text": "ping", "sessionKey": "chosen"})).await;
    assert_eq!(body["sessionKey"], "chosen");
    assert_eq!(
        gw.post("/webhooks/slack", json!({"sender": "bob"})).await,
        (400, json!({"error": "Missing text", "code": "invalid_argument"}))
    );
    let (status, _) = gw.post("/webhooks/slack", json!({"text": "x", "metadata": "nope"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn async_webhooks_answer_202_once_the_message_is_stored() {
    let gw = Gateway::start().await;
    let body = json!({"text": format!("{}\n!delay 20", words(20)), "sender": "ci", "async": true});
    let (status, answer) = gw.post("/webhooks/deploys", body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!((&answer["ok"], &answer["accepted"]), (&json!(true), &json!(true)));
    assert_eq!(answer["sessionKey"], "webhook:deploys:ci");
    let message_id = text_of(&answer["messageId"]);
    assert_eq!(message_id.len(), 36);
    // The run goes on without the caller: its end shows in the session's events.
    let mut events = Sse::open(&gw, "/sessions/webhook:deploys:ci/events?after=0").await;
    let end = loop {
        let (_, event) = events.event().await.unwrap();
        if event["type"] == "agent_end" {
            break event;
        }
    };
    assert_eq!((&end["messageId"], &end["ok"]), (&json!(message_id), &json!(true)));
}

/// `x-gateway-signature` and `x-gateway-timestamp` for `body` signed with `secret`.
fn sign(secret: &str, timestamp: i64, body: &str) -> (String, String) {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    (format!("sha256={hex}"), timestamp.to_string())
}

#[tokio::test]
async fn signed_webhooks_are_checked_for_signature_and_age() {
    let gw = Gateway::with(&[("bearer_token", "tok"), ("webhook.secret", "hook")]).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let body = r#"{"text":"signed","sender":"gh"}"#;
    let post = |signature: String, timestamp: String, body: &'static str| {
        let request = gw.http.post(gw.url("/webhooks/github"));
        let request = request.header("content-type", "application/json");
        let request = request.header("x-gateway-signature", signature);
        request.header("x-gateway-timestamp", timestamp).body(body).send()
    };
    let (signature, timestamp) = sign("hook", now, body);
    let (status, answer) =
        read(post(signature.clone(), timestamp.clone(), body).await.unwrap()).await;
    assert_eq!((status, text_of(&answer["response"])), (200, "signed".into()), "{answer}");
    let refused = |message: &str| (401, json!({"error": message, "code": "unauthenticated"}));
    // The same signature over another body, a wrong secret, an old or a future timestamp.
    let tampered = r#"{"text":"tampered","sender":"gh"}"#;
    assert_eq!(
        read(post(signature, timestamp, tampered).await.unwrap()).await,
        refused("Invalid webhook signature")
    );
    let (wrong, at) = sign("guess", now, body);
    assert_eq!(
        read(post(wrong, at, body).await.unwrap()).await,
        refused("Invalid webhook signature")
    );
    for at in [now - 301, now + 301] {
        let (signature, timestamp) = sign("hook", at, body);
        let stale = refused("Webhook timestamp is more than 5 minutes away");
        assert_eq!(read(post(signature, timestamp, body).await.unwrap()).await, stale);
    }
    let (signature, _) = sign("hook", now, body);
    assert_eq!(
        read(post(signature, "soon".into(), body).await.unwrap()).await,
        refused("Invalid x-gateway-timestamp")
    );
    // The secret never shows in an answer or on /channels/status.
    let (_, channels) =
        read(gw.http.get(gw.url("/channels/status")).bearer_auth("tok").send().await.unwrap())
            .await;
    assert!(!channels.to_string().contains("hook\""), "{channels}");
    assert!(channels.to_string().contains("webhook:github"));

    // Without a secret a signature cannot be checked: refused, not ignored.
    let open = Gateway::with(&[("bearer_token", "tok")]).await;
    let (signature, timestamp) = sign("hook", now, body);
    let request = open.http.post(open.url("/webhooks/github")).bearer_auth("tok");
    let request =
        request.header("x-gateway-signature", signature).header("x-gateway-timestamp", timestamp);
    let (status, answer) = read(request.json(&json!({"text": "x"})).send().await.unwrap()).await;
    assert_eq!((status, &answer["code"]), (400, &json!("invalid_argument")), "{answer}");
}

#[tokio::test]
async fn the_secret_replaces_the_token() {
    let gw = Gateway::with(&[("bearer_token", "tok"), ("webhook.secret", "hook")]).await;
    let post = |secret: Option<&str>| {
        let mut request = gw.http.post(gw.url("/webhooks/ci")).json(&json!({"text": "built"}));
        if let Some(secret) = secret {
            request = request.header("x-pi-webhook-secret", secret);
        }
        request.send()
    };
    let invalid = json!({"error": "Invalid webhook secret", "code": "unauthenticated"});
    assert_eq!(read(post(None).await.unwrap()).await, (401, invalid.clone()));
    assert_eq!(read(post(Some("nope")).await.unwrap()).await, (401, invalid));
    let (status, body) = read(post(Some("hook")).await.unwrap()).await;
    assert_eq!((status, text_of(&body["response"])), (200, "built".into()));
}

#[tokio::test]
async fn without_a_secret_the_webhook_needs_the_token() {
    let gw = Gateway::with(&[("bearer_token", "tok")]).await;
    assert_eq!(gw.post("/webhooks/ci", json!({"text": "x"})).await.0, 401);
    let response =
        gw.http.post(gw.url("/webhooks/ci")).bearer_auth("tok").json(&json!({"text": "x"})).send();
    assert_eq!(read(response.await.unwrap()).await.0, 200);
}

#[tokio::test]
async fn a_disabled_webhook_is_not_routed() {
    let gw = Gateway::with(&[("webhook.enabled", "false")]).await;
    assert_eq!(gw.post("/webhooks/ci", json!({"text": "x"})).await.0, 404);
}
