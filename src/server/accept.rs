//! The accept loop: every connection of the one port, served by hyper (`hyper_util`'s auto
//! builder: HTTP/1.1 with upgrades for socket.io's websockets, and h2c or ALPN h2 for native
//! gRPC). `axum::serve` does the same with no limits at all; this loop adds them:
//! - **`http.max_connections`**: an accepted connection past the cap is refused. In plain
//!   text it gets `503 {"error", "code": "unavailable"}` with `Connection: close` and
//!   `Retry-After: 1` before it is closed (a TLS one is closed at once: answering it would
//!   mean a handshake, the work the cap is there to save). Refusals are counted in
//!   `gateway_connections_refused_total` and logged, at most every [`WARN_EVERY`].
//! - **`http.header_timeout`**: hyper's own header-read timer bounds every HTTP/1.1 request
//!   head (and an idle keep-alive connection waiting for the next one); the loop adds that a
//!   new connection must send its first request, or the HTTP/2 preface, within the same time,
//!   which hyper's protocol detection would otherwise wait for forever.
//! - TLS handshakes (`tls.rs`), `TCP_NODELAY`, and graceful shutdown: once `stop` resolves, no
//!   connection is accepted, open ones finish what they serve (the caller ends every stream
//!   through its cancellation token), and the loop returns when the last one has closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::io::{Conn, EdgeIo};
use crate::config::HttpConfig;
use crate::telemetry::Metrics;

/// The least time between two log lines about refused connections.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Refused connections being answered at once; past it a refusal is a plain close.
const REFUSING_AT_ONCE: usize = 64;

/// Serves `app` on `listener` until `stop` resolves and every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    http: &HttpConfig,
    metrics: Metrics,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max = http.max_connections;
    // A connection holds one permit until it is gone; all of them back means none is open.
    let permits = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let closing = CancellationToken::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(http.header_timeout);
    // The CONNECT protocol, for websockets over HTTP/2 (as axum::serve sets it).
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let builder = Arc::new(builder);
    let header_timeout = http.header_timeout;
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, go on.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Tokens are small writes: Nagle would hold them back for the client's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                last_warning = Some(Instant::now());
                let refused = metrics.connections_refused.get();
                warn!(%peer, max_connections = max, refused, "connection refused: too many open");
            }
            match refusing.clone().try_acquire_owned() {
                Ok(refusal) if tls.is_none() => {
                    tokio::spawn(async move {
                        refuse(tcp, max).await;
                        drop(refusal);
                    });
                }
                _ => drop(tcp),
            }
            continue;
        };
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            header_timeout,
            closing: closing.clone(),
            metrics: metrics.clone(),
            peer,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.metrics.connections_open.inc();
            match tls {
                Some(acceptor) => {
                    if let Some(stream) = crate::tls::handshake(&acceptor, tcp, peer).await {
                        connection.serve(stream).await;
                    }
                }
                None => connection.serve(tcp).await,
            }
            connection.metrics.connections_open.dec();
            drop(permit);
        });
    }
    // The port is let go at once; connections are asked to finish and are waited for.
    drop(listener);
    closing.cancel();
    let _all_closed = permits.acquire_many(max as u32).await;
    Ok(())
}

/// The answer of a refused connection, then a lingering close (so the client reads it).
async fn refuse(tcp: TcpStream, max: usize) {
    let body = serde_json::json!({
        "error": format!("Too many open connections (http.max_connections is {max}); try again"),
        "code": crate::error::ErrorCode::Unavailable.as_str(),
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut io = EdgeIo::new(tcp, Arc::new(Conn::default()));
    let refused = async {
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await
    };
    let bound = super::io::LINGER + Duration::from_secs(1);
    if let Ok(Err(e)) = tokio::time::timeout(bound, refused).await {
        debug!(error = %e, "cannot answer a refused connection");
    }
}

/// What serving one connection needs.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    app: Router,
    header_timeout: Duration,
    closing: CancellationToken,
    metrics: Metrics,
    peer: SocketAddr,
}

impl Connection {
    async fn serve<I>(&self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(Conn::default());
        let io = TokioIo::new(EdgeIo::new(io, conn.clone()));
        let app = self.app.clone();
        let started = conn.clone();
        let service = tower::service_fn(move |request: http::Request<Incoming>| {
            started.start();
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let served =
            self.builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        tokio::pin!(served);
        let first_request = tokio::time::sleep(self.header_timeout);
        tokio::pin!(first_request);
        let (mut waiting, mut finishing) = (true, false);
        loop {
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(e) = result {
                        debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = &mut first_request, if waiting => {
                    waiting = false;
                    if !conn.started() {
                        debug!(peer = %self.peer, "no request within http.header_timeout: closed");
                        return;
                    }
                }
                _ = self.closing.cancelled(), if !finishing => {
                    finishing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
