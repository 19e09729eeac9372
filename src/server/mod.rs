//! One port for everything: native gRPC (h2c), grpc-web, reflection, health and the HTTP bridge,
//! all served from a listener the caller bound, by our own accept loop ([`accept`]: hyper with
//! connection and header limits, [`io`]: the byte stream, [`edge`]: the request body limits).
//!
//! hyper serves through axum's router rather than tonic's own server because tonic's does not
//! complete HTTP/1.1 upgrades (socket.io's websockets need them). Each gRPC service is wrapped in
//! `GrpcWebLayer` on its own: around the whole router that layer would answer plain HTTP/1.1
//! requests (REST, SSE) with 400.

mod accept;
mod edge;
mod io;

use std::future::Future;

use axum::Router;
use http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;
use tower::Layer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{info, warn};

use crate::app::AppState;
use crate::grpc;
use crate::grpc::malformed::{MalformedLayer, Requests};
use crate::http as rest;
use crate::proto;

/// How long open connections may linger once every stream has ended.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves until `shutdown` resolves; then drains (GATEWAY.md §10), ends every stream, lets
/// connections close, and closes the store.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Served { app, health, io } = router(&state)?;
    for name in grpc::SERVICE_NAMES {
        health.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
    }
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    state.sessions.spawn_sweeper();
    let scheme = if state.tls.is_some() { "TLS" } else { "plain text" };
    info!(addr = %listener.local_addr()?, scheme, "listening (gRPC, grpc-web, HTTP)");

    let token = state.shutdown.clone();
    let sessions = state.sessions.clone();
    let grace = state.config.startup().shutdown_grace;
    let draining = async move {
        shutdown.await;
        info!("shutting down: draining");
        for name in grpc::SERVICE_NAMES {
            health.set_service_status(*name, tonic_health::ServingStatus::NotServing).await;
        }
        health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        // Still accepting connections: /health answers 503 and sending calls UNAVAILABLE
        // while running runs finish.
        sessions.drain(grace).await;
        // Streams end from this token; without it graceful shutdown would wait on them.
        token.cancel();
        // Open long-polls would otherwise hold the server for their full interval.
        io.close().await;
    };
    let serve = accept::serve(
        listener,
        app,
        state.tls.clone(),
        &state.config.startup().http,
        state.metrics.clone(),
        draining,
    );
    // Callers still holding connections get a short while after the streams end; then the
    // process stops without them.
    let token = state.shutdown.clone();
    let served = tokio::select! {
        served = serve => served,
        _ = async { token.cancelled().await; tokio::time::sleep(CLOSE_WAIT).await } => {
            warn!(?CLOSE_WAIT, "connections still open after shutdown; stopping");
            Ok(())
        }
    };
    state.sessions.close().await;
    info!("stopped");
    served
}

/// What `router` builds: the app, the health reporter (flipped at shutdown) and the socket.io
/// handle (its sockets are closed at shutdown).
pub struct Served {
    pub app: Router,
    pub health: HealthReporter,
    pub io: socketioxide::SocketIo,
}

/// The merged router: gRPC services (each grpc-web enabled), reflection, health, the HTTP
/// routes and socket.io, with CORS and then the request log and metrics outermost.
pub fn router(state: &AppState) -> std::io::Result<Served> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(std::io::Error::other)?;
    // grpcurl before 1.9 speaks only v1alpha.
    let reflection_v1alpha = reflection().build_v1alpha().map_err(std::io::Error::other)?;

    let web = GrpcWebLayer::new();
    // Inside grpc-web, so one place answers malformed native and grpc-web input alike.
    let one = MalformedLayer::new(Requests::One, grpc::MAX_MESSAGE);
    let streams = MalformedLayer::new(Requests::Stream, grpc::MAX_MESSAGE);
    let services = grpc::services(state);
    // `Routes::from(Router::new())` has no gRPC fallback (merged with the HTTP router's, axum
    // would panic): unknown paths reach the HTTP fallback, which answers gRPC calls
    // UNIMPLEMENTED and everything else a JSON 404.
    let grpc_routes = Routes::from(Router::new())
        .add_service(web.layer(one.layer(services.sessions)))
        .add_service(web.layer(one.layer(services.chat)))
        .add_service(web.layer(one.layer(services.memory)))
        .add_service(web.layer(one.layer(services.admin)))
        .add_service(web.layer(one.layer(health)))
        .add_service(web.layer(streams.layer(reflection_v1)))
        .add_service(web.layer(streams.layer(reflection_v1alpha)))
        .into_axum_router();

    // socket.io on the merged router: a layer on a sub-router before the merge would answer
    // 404, and around tonic's server the websocket upgrade would not complete.
    let (socketio, io) = rest::socketio::layer(state);
    let mut app = grpc_routes.merge(rest::router(state.clone())).layer(socketio);
    if let Some(cors) = cors(&state.config.startup().cors_origin) {
        app = app.layer(cors);
    }
    // Body timeout and `Connection: close` on early answers, inside the request log so it
    // logs what the client got.
    app = app.layer(axum::middleware::from_fn_with_state(
        state.config.startup().http.body_timeout,
        edge::requests,
    ));
    // Outermost, so every request (preflights, gRPC, refusals) has an id, a log line and
    // its place in the metrics.
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.metrics.clone(),
        crate::telemetry::requests,
    ));
    Ok(Served { app, health: reporter, io })
}

/// CORS per GATEWAY.md §10, for grpc-web and REST from browsers.
fn cors(origin: &str) -> Option<CorsLayer> {
    if origin.is_empty() {
        return None;
    }
    let allow_origin = if origin == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::exact(HeaderValue::from_str(origin).ok()?)
    };
    let headers = [
        "content-type",
        "authorization",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "last-event-id",
        "idempotency-key",
    ];
    let exposed = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(headers.map(HeaderName::from_static))
            .expose_headers(exposed.map(HeaderName::from_static)),
    )
}
