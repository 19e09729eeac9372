//! `GET /openapi.json`: the OpenAPI 3.1 document of every HTTP route the router serves, made by
//! `utoipa` from the operations declared beside this file (`sessions`, `chat`, `ops`) and the
//! serde types of the bodies, then fitted to the configuration the way `router` is (the page
//! only with `web_ui`, the webhook at `webhook.base_path` only when enabled, `/metrics`
//! public or admin) with the security of each route. It is public, like `/health`: it holds
//! no secret. `tests/integration/openapi.rs` compares it with the router's own routes, and the
//! test command validates it (`scripts/openapi_check.py`).

mod chat;
mod ops;
pub mod schemas;
mod sessions;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::config::Config;

#[derive(OpenApi)]
#[openapi(
    paths(
        ops::health, ops::ready, ops::page, ops::openapi, ops::metrics,
        sessions::list_sessions, sessions::get_session, sessions::rename_session,
        sessions::delete_session, sessions::session_events, sessions::reset_session,
        sessions::session_history, sessions::session_queue, sessions::session_state,
        sessions::set_model, sessions::set_thinking, sessions::reload_session,
        sessions::list_models,
        chat::send_message, chat::vercel_chat, chat::vercel_resume, chat::steer, chat::abort,
        chat::cancel_queued, chat::command,
        chat::list_conversations, chat::create_conversation, chat::get_conversation,
        chat::delete_conversation, chat::abort_conversation, chat::resume_conversation_stream,
        chat::v1_chat, chat::v1_chat_stream, chat::v1_adapter_chat, chat::v1_adapter_chat_stream,
        ops::memory_status, ops::memory_core, ops::memory_search, ops::memory_remember,
        ops::memory_forget, ops::memory_rebuild,
        ops::get_config, ops::patch_config, ops::channels, ops::logs,
        ops::webhook, ops::webhook_route,
    ),
    components(schemas(schemas::ErrorBody)),
    tags(
        (name = "sessions", description = "Reading and managing sessions (scope `sessions`)"),
        (name = "chat", description = "Sending calls and run control (scope `chat`)"),
        (name = "v1", description = "Conversations are sessions (scopes `sessions` and `chat`)"),
        (name = "memory", description = "Long-term memory (scope `memory`)"),
        (name = "admin", description = "Configuration, channels, logs and metrics (scope `admin`)"),
        (name = "webhook", description = "Chat adapters posting messages"),
        (name = "operation", description = "Health, readiness, the page and this document"),
    )
)]
struct ApiDoc;

/// Routes that answer without credentials (the router's public group).
const PUBLIC: &[&str] = &["/health", "/", "/openapi.json"];

const DESCRIPTION: &str = "Hosts long-lived AI agent sessions. This document covers the HTTP \
    routes (REST, Server-Sent Events, the Vercel AI SDK stream, the v1 conversation API, \
    memory, admin, the webhook); gRPC (`agentgateway.v1`, with reflection) and socket.io \
    (namespace `/chat`) share the same port. Routes with `bearer` security take \
    `Authorization: Bearer <token>`; with no token configured (the default on loopback) the \
    gateway accepts calls without one. Errors are `{error, code}` with the status of the code.";

/// The document for a gateway started with `config`.
pub fn document(config: &Config) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
    doc["info"]["description"] = json!(DESCRIPTION);
    let paths = doc["paths"].as_object_mut().expect("the document has paths");
    if !config.web_ui {
        paths.remove("/");
    }
    let base = paths.remove("/webhooks");
    let route = paths.remove("/webhooks/{route}");
    // At the configured base, as `webhook::router` mounts it.
    let hook = &config.webhook.base_path;
    let hook_route = format!("{hook}/{{route}}");
    if config.webhook.enabled {
        paths.insert(hook.clone(), base.expect("the webhook is documented"));
        paths.insert(hook_route.clone(), route.expect("the webhook route is documented"));
    }
    let secret = !config.webhook.secret.is_empty();
    for (path, item) in paths.iter_mut() {
        let public =
            PUBLIC.contains(&path.as_str()) || (path == "/metrics" && config.metrics.public);
        let webhook = config.webhook.enabled && (path == hook || *path == hook_route);
        let security = match (public, webhook && secret) {
            (true, _) => json!([]),
            (false, true) => json!([{"webhookSecret": []}, {"webhookSignature": []}]),
            (false, false) => json!([{"bearer": []}]),
        };
        for operation in item.as_object_mut().into_iter().flat_map(|i| i.values_mut()) {
            secure(operation, &security);
        }
    }
    let components = doc["components"].as_object_mut().expect("the document has components");
    components.insert("securitySchemes".into(), security_schemes());
    components.insert("responses".into(), error_responses());
    doc
}

/// The document as served: built once when the router is.
pub fn json(config: &Config) -> Bytes {
    Bytes::from(serde_json::to_vec(&document(config)).expect("the document is JSON"))
}

pub fn response(document: Bytes) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// An operation's security, and the refusals every operation shares.
fn secure(operation: &mut Value, security: &Value) {
    let Some(operation) = operation.as_object_mut() else { return };
    let has_body = operation.contains_key("requestBody");
    operation.insert("security".into(), security.clone());
    let responses = operation.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    let mut add = |status: &str, name: &str| {
        responses
            .entry(status)
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    };
    if security.as_array().is_some_and(|s| !s.is_empty()) {
        add("401", "Unauthorized");
    }
    if security.get(0).is_some_and(|s| s.get("bearer").is_some()) {
        add("403", "Forbidden");
    }
    if has_body {
        add("413", "PayloadTooLarge");
    }
    add("default", "Error");
}

fn security_schemes() -> Value {
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "`bearer_token` (every scope) or a `[[tokens]]` token with the scope",
        },
        "webhookSecret": {
            "type": "apiKey",
            "in": "header",
            "name": "x-pi-webhook-secret",
            "description": "`webhook.secret`, replacing the bearer token on the webhook",
        },
        "webhookSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "x-gateway-signature",
            "description": "`sha256=<hex HMAC-SHA256(webhook.secret, timestamp + \".\" + body)>`, \
                with `x-gateway-timestamp: <unix seconds>` at most 5 minutes away",
        },
    })
}

fn error_responses() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
    };
    let mut responses = Map::new();
    responses.insert("Unauthorized".into(), error("No valid credentials (`unauthenticated`)"));
    responses.insert(
        "Forbidden".into(),
        error("The token lacks the route's scope (`permission_denied`)"),
    );
    responses.insert(
        "PayloadTooLarge".into(),
        error("The body is larger than `http.max_body` (`payload_too_large`)"),
    );
    responses.insert(
        "Error".into(),
        error("Any other refusal: invalid JSON or fields (400), rate limits (429), draining (503)"),
    );
    Value::Object(responses)
}
