//! The HTTP bridge (GATEWAY.md §5): the seed REST routes, SSE, the Vercel AI SDK chat stream,
//! the v1 conversation API, socket.io, the webhook, the built-in chat page and the OpenAPI
//! document, with JSON errors for unknown paths (404) and wrong methods (405).

pub mod admin;
pub mod extract;
pub mod memory;
pub mod openapi;
pub mod rest;
pub mod socketio;
pub mod sse;
pub mod v1;
pub mod vercel;
pub mod webhook;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::app::AppState;
use crate::auth::Operation;
use crate::domain::Caller;
use crate::error::{ErrorCode, GatewayError};

/// Who calls (401 without a valid token), for every route but the public ones (see
/// `router`); the [`Caller`] goes into the request's extensions.
async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, GatewayError> {
    let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
    let caller = state.auth.check(header)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// 403 unless the caller (put there by `authenticate`) may do the route group's operation.
async fn require_scope(
    State(operation): State<Operation>,
    request: Request,
    next: Next,
) -> Result<Response, GatewayError> {
    let caller = request.extensions().get::<Caller>().ok_or_else(GatewayError::unauthenticated)?;
    operation.authorize(caller)?;
    Ok(next.run(request).await)
}

/// The built-in chat page, embedded in the binary.
async fn page() -> impl IntoResponse {
    ([(http::header::CONTENT_TYPE, "text/html; charset=utf-8")], include_str!("page.html"))
}

/// An unknown path: 404 in the JSON shape, but a gRPC call (any `application/grpc…` content
/// type, grpc-web included) to a service or method that does not exist is UNIMPLEMENTED, as
/// gRPC clients expect: HTTP 200 with `grpc-status: 12` in the headers (trailers-only).
async fn unknown(request: Request) -> Response {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
    match content_type {
        Some(content_type) if content_type.as_bytes().starts_with(b"application/grpc") => {
            let path = request.uri().path();
            let error = GatewayError::new(
                ErrorCode::Unimplemented,
                format!("Unknown service or method: {path}"),
            );
            let mut response = tonic::Status::from(error).into_http::<axum::body::Body>();
            // grpc-web clients read the answer only under their own content type.
            response.headers_mut().insert(http::header::CONTENT_TYPE, content_type);
            response
        }
        _ => GatewayError::not_found("Not found").into_response(),
    }
}

/// The routes, grouped by operation; [`Operation::scope`] says what each group needs (README:
/// "Tokens and scopes").
pub fn router(state: AppState) -> Router {
    let chat = Router::new()
        .route("/sessions/{key}/messages", post(rest::send_message))
        .route("/sessions/{key}/chat", post(vercel::chat))
        .route("/sessions/{key}/chat/{id}/stream", get(vercel::resume))
        .route("/sessions/{key}/steer", post(rest::steer))
        .route("/sessions/{key}/abort", post(rest::abort))
        .route("/sessions/{key}/queue/{message_id}", delete(rest::cancel_queued))
        .route("/sessions/{key}/commands", post(rest::command))
        .route("/v1/conversations/{id}/abort", post(v1::abort))
        .route("/v1/conversations/{id}/stream", get(v1::resume_stream))
        .route("/v1/chat", post(v1::chat))
        .route("/v1/chat/stream", post(v1::chat_stream))
        .route("/v1/adapters/chat", post(v1::adapter_chat))
        .route("/v1/adapters/chat/stream", post(v1::adapter_chat_stream))
        .route_layer(middleware::from_fn_with_state(Operation::Chat, require_scope));
    let sessions = Router::new()
        .route("/sessions", get(rest::list_sessions))
        .route("/sessions/{key}", get(rest::get_session).patch(rest::rename).delete(rest::delete))
        .route("/sessions/{key}/events", get(sse::events))
        .route("/sessions/{key}/reset", post(rest::reset))
        .route("/sessions/{key}/history", get(rest::history))
        .route("/sessions/{key}/queue", get(rest::queue))
        .route("/sessions/{key}/state", get(rest::session_state))
        .route("/sessions/{key}/model", post(rest::set_model))
        .route("/sessions/{key}/thinking", post(rest::set_thinking))
        .route("/sessions/{key}/reload", post(rest::reload))
        .route("/models", get(rest::models))
        .route("/v1/conversations", get(v1::list).post(v1::create))
        .route("/v1/conversations/{id}", get(v1::get).delete(v1::delete))
        .route_layer(middleware::from_fn_with_state(Operation::Sessions, require_scope));
    let memory = memory::router()
        .route_layer(middleware::from_fn_with_state(Operation::Memory, require_scope));
    let mut admin = Router::new()
        .route("/config", get(admin::get_config).patch(admin::patch_config))
        .route("/channels/status", get(admin::channels))
        .route("/logs", get(admin::logs));
    if !state.config.startup().metrics.public {
        admin = admin.route("/metrics", get(admin::metrics));
    }
    let admin = admin.route_layer(middleware::from_fn_with_state(Operation::Admin, require_scope));
    let ready = Router::new()
        .route("/ready", get(rest::ready))
        .route_layer(middleware::from_fn_with_state(Operation::Ready, require_scope));
    let protected = Router::new()
        .merge(ready)
        .merge(chat)
        .merge(sessions)
        .merge(memory)
        .merge(admin)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));

    // The page is static and asks for the token itself, so it is public (GATEWAY.md §5); so is
    // the OpenAPI document, which holds no secret.
    let document = openapi::json(state.config.startup());
    let mut public = Router::new()
        .route("/health", get(rest::health))
        .route("/openapi.json", get(move || std::future::ready(openapi::response(document))));
    if state.config.startup().metrics.public {
        public = public.route("/metrics", get(admin::metrics));
    }
    if state.config.startup().web_ui {
        public = public.route("/", get(page));
    }
    if state.config.startup().webhook.enabled {
        public = public.merge(webhook::router(&state));
    }

    public
        .merge(protected)
        .fallback(unknown)
        .method_not_allowed_fallback(|| async {
            GatewayError::new(ErrorCode::MethodNotAllowed, "Method not allowed")
        })
        .with_state(state)
}
