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
    for refused in
        [json!({"text": "x", "async": true}), json!({"text": "x", "idempotencyKey": "k"})]
    {
        let (status, body) = gw.post("/webhooks/slack", refused).await;
        assert_eq!((status, text_of(&body["code"])), (501, "unimplemented".into()));
    }
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
