//! The OpenAPI operations of the routes around the sessions: health and readiness, the page,
//! this document, memory (the `memory` scope), admin (`admin`: config, channels, logs,
//! metrics) and the webhook. Each function only carries its `#[utoipa::path]`; the handlers
//! are in `rest.rs`, `memory.rs`, `admin.rs`, `webhook.rs` and `mod.rs`.
#![allow(dead_code)]

use super::schemas::{
    Channels, ConfigPatched, CoreMemories, ErrorBody, Forget, Forgotten, Health, Logs,
    MemorySearch, MemoryStatusAnswer, NamespaceQuery, Ready, Rebuild, Rebuilt, Remember,
    Remembered, SearchResults, SendFailure, WebhookAccepted,
};
use crate::domain::RunOutcome;
use crate::http::webhook::WebhookBody;

/// Liveness
#[utoipa::path(get, path = "/health", tag = "operation",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "Draining for shutdown (`ready: false`)", body = Health),
    ))]
fn health() {}

/// Readiness
#[utoipa::path(get, path = "/ready", tag = "operation",
    responses((status = 200, description = "Whether the gateway takes new work", body = Ready)))]
fn ready() {}

/// The built-in chat page
///
/// Served when `web_ui` is on; it asks for the token itself.
#[utoipa::path(get, path = "/", tag = "operation",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
fn page() {}

/// This document
///
/// The OpenAPI 3.1 description of the HTTP routes this gateway serves, as configured.
#[utoipa::path(get, path = "/openapi.json", tag = "operation",
    responses((status = 200, description = "The OpenAPI document", body = Value)))]
fn openapi() {}

/// Prometheus metrics
///
/// Sessions, queues, runs, events, subscribers and requests by route and status. Needs the
/// `admin` scope unless `metrics.public` is on.
#[utoipa::path(get, path = "/metrics", tag = "admin",
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
fn metrics() {}

/// Read the configuration
#[utoipa::path(get, path = "/config", tag = "admin",
    responses((status = 200, description = "The configuration, secrets removed", body = Value)))]
fn get_config() {}

/// Patch the configuration
///
/// Validated overrides of the live-tunable keys, as the nested keys of `GET /config`.
#[utoipa::path(patch, path = "/config", tag = "admin", request_body = Value,
    responses(
        (status = 200, description = "Applied", body = ConfigPatched),
        (status = 400, description = "An unknown key, one not live-tunable, or a bad value",
            body = ErrorBody),
    ))]
fn patch_config() {}

/// Channel status
///
/// The webhook routes seen since start and socket.io.
#[utoipa::path(get, path = "/channels/status", tag = "admin",
    responses((status = 200, description = "The channels", body = Channels)))]
fn channels() {}

/// Recent log lines
#[utoipa::path(get, path = "/logs", tag = "admin",
    params(("limit" = Option<u32>, Query, description = "At most this many (default 200)")),
    responses(
        (status = 200, description = "The newest lines, oldest first", body = Logs),
        (status = 400, description = "`limit` is not a positive integer", body = ErrorBody),
    ))]
fn logs() {}

/// Memory status
#[utoipa::path(get, path = "/memory/status", tag = "memory", params(NamespaceQuery),
    responses(
        (status = 200, description = "Counts and times of the namespace",
            body = MemoryStatusAnswer),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn memory_status() {}

/// Core memories
#[utoipa::path(get, path = "/memory/core", tag = "memory", params(NamespaceQuery),
    responses(
        (status = 200, description = "The active core records", body = CoreMemories),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn memory_core() {}

/// Search memory
///
/// Ranked full-text search over active records and episodes (higher `score` is better);
/// `secret` records only for admin callers.
#[utoipa::path(post, path = "/memory/search", tag = "memory", request_body = MemorySearch,
    responses(
        (status = 200, description = "The hits, best first", body = SearchResults),
        (status = 400, description = "A field of the wrong type", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn memory_search() {}

/// Remember
#[utoipa::path(post, path = "/memory/remember", tag = "memory", request_body = Remember,
    responses(
        (status = 200, description = "The record", body = Remembered),
        (status = 400, description = "`Missing memory content`, or a bad bucket or kind",
            body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn memory_remember() {}

/// Forget
///
/// A soft delete by id or key.
#[utoipa::path(post, path = "/memory/forget", tag = "memory", request_body = Forget,
    responses(
        (status = 200, description = "How many records were forgotten", body = Forgotten),
        (status = 400, description = "`Memory forget requires an id or key`", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn memory_forget() {}

/// Rebuild the search index
#[utoipa::path(post, path = "/memory/rebuild", tag = "memory", request_body = Rebuild,
    responses(
        (status = 200, description = "Rows indexed", body = Rebuilt),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
fn memory_rebuild() {}

/// Post a message from a chat adapter
///
/// As `POST /sessions/{key}/messages`; the session key defaults to
/// `webhook:default:<sender or "default">`. With `webhook.secret` set, the
/// `x-pi-webhook-secret` header or a signature (`x-gateway-timestamp` +
/// `x-gateway-signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`) replaces
/// the bearer token.
#[utoipa::path(post, path = "/webhooks", tag = "webhook", request_body = WebhookBody,
    params(
        ("x-gateway-timestamp" = Option<i64>, Header, description = "Unix seconds, when signed"),
        ("x-gateway-signature" = Option<String>, Header, description = "`sha256=<hex>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Instead of `idempotencyKey`")),
    responses(
        (status = 200, description = "The run completed", body = RunOutcome),
        (status = 202, description = "`async: true`: stored, not waited for",
            body = WebhookAccepted),
        (status = 400, description = "`Missing text`, or a bad body", body = ErrorBody),
        (status = 500, description = "The run failed, or the queue is full", body = SendFailure),
    ))]
fn webhook() {}

/// Post a message from a chat adapter, on a named route
///
/// As the base route; the route (it may hold `/`) names the channel, and the session key
/// defaults to `webhook:<route>:<sender or "default">`.
#[utoipa::path(post, path = "/webhooks/{route}", tag = "webhook", request_body = WebhookBody,
    params(
        ("route" = String, Path, description = "The adapter's route"),
        ("x-gateway-timestamp" = Option<i64>, Header, description = "Unix seconds, when signed"),
        ("x-gateway-signature" = Option<String>, Header, description = "`sha256=<hex>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Instead of `idempotencyKey`")),
    responses(
        (status = 200, description = "The run completed", body = RunOutcome),
        (status = 202, description = "`async: true`: stored, not waited for",
            body = WebhookAccepted),
        (status = 400, description = "`Missing text`, or a bad body", body = ErrorBody),
        (status = 500, description = "The run failed, or the queue is full", body = SendFailure),
    ))]
fn webhook_route() {}
