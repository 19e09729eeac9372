//! Logs and metrics (GATEWAY.md §10): tracing to stderr and into a ring of the last 1000 lines
//! (for `/logs`, `GetLogs` and `TailLogs`), the request middleware that gives every request an
//! id (`x-request-id`, accepted or made, echoed back) and logs it, and the Prometheus metrics
//! of one gateway.
//!
//! The ring is process-wide, like the tracing subscriber that fills it. Metrics belong to one
//! gateway ([`Metrics`] lives in the app state), so gateways in one test process never count
//! each other's work.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines the ring keeps.
pub const RING_LINES: usize = 1000;
/// Lines `/logs` and `GetLogs` return by default.
pub const DEFAULT_LOG_LINES: usize = 200;

/// The last [`RING_LINES`] log lines, and a feed of new ones.
pub struct LogRing {
    lines: Mutex<VecDeque<Arc<str>>>,
    feed: broadcast::Sender<Arc<str>>,
}

impl LogRing {
    fn push(&self, line: &str) {
        let line: Arc<str> = line.trim_end().into();
        {
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            if lines.len() == RING_LINES {
                lines.pop_front();
            }
            lines.push_back(line.clone());
        }
        let _ = self.feed.send(line);
    }

    /// The newest `limit` lines, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().skip(lines.len().saturating_sub(limit)).map(|l| l.to_string()).collect()
    }

    /// Lines written from now on (a slow reader misses some rather than holding anyone up).
    pub fn tail(&self) -> broadcast::Receiver<Arc<str>> {
        self.feed.subscribe()
    }
}

/// The process's log ring.
pub fn ring() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| LogRing {
        lines: Mutex::new(VecDeque::with_capacity(RING_LINES)),
        feed: broadcast::channel(256).0,
    })
}

/// A writer per log event: collects the formatted line and hands it to the ring when dropped.
struct RingWriter(Vec<u8>);

impl std::io::Write for RingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            ring().push(&String::from_utf8_lossy(&self.0));
        }
    }
}

struct RingMakeWriter;

impl<'a> MakeWriter<'a> for RingMakeWriter {
    type Writer = RingWriter;
    fn make_writer(&'a self) -> RingWriter {
        RingWriter(Vec::with_capacity(256))
    }
}

/// Structured logs filtered by `RUST_LOG` (default `info`), into the ring and, with `stderr`,
/// to stderr too. Only the first call in a process takes effect.
pub fn init(stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let to_ring = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(RingMakeWriter);
    // Colours only for people: log files and pipes get plain text.
    let to_stderr = stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let _ = tracing_subscriber::registry().with(filter).with(to_ring).with(to_stderr).try_init();
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (`/sessions/{key}/messages`) or the gRPC method path.
    pub route: String,
    /// The HTTP status, or for gRPC the `grpc-status` code.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok`, `failed`, `aborted` or `interrupted`.
    pub outcome: String,
}

/// One gateway's metrics. Counters are counted where things happen; gauges are read when
/// `/metrics` is scraped. A handle: cloning it (every request's middleware does) is one
/// reference count, not one per metric family.
#[derive(Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;
    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

pub struct MetricSet {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub runs_started: Counter,
    pub runs_finished: Family<OutcomeLabels, Counter>,
    pub events_logged: Counter,
    pub lagged: Counter,
    pub sessions_live: Gauge,
    pub sessions_stored: Gauge,
    pub queue_depth: Gauge,
    pub subscribers: Gauge,
    /// Open connections (TLS handshakes included), and connections refused at
    /// `http.max_connections`.
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    /// Allocator statistics (bytes allocated, bytes resident), registered only when the
    /// build has them (the `jemalloc` feature) and read at each scrape.
    pub allocator_allocated: Gauge,
    pub allocator_resident: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests by route or RPC and status", requests.clone());
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0])
        });
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by route or RPC",
            request_seconds.clone(),
        );
        let runs_started = Counter::default();
        registry.register("runs_started", "Runs started", runs_started.clone());
        let runs_finished = Family::<OutcomeLabels, Counter>::default();
        registry.register("runs_finished", "Runs ended, by outcome", runs_finished.clone());
        let events_logged = Counter::default();
        registry.register("events_logged", "Events written to session logs", events_logged.clone());
        let lagged = Counter::default();
        registry.register(
            "lagged",
            "Times a subscriber fell behind and got lagged",
            lagged.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let sessions_live = gauge(&mut registry, "sessions_live", "Sessions held in memory");
        let sessions_stored = gauge(&mut registry, "sessions_stored", "Sessions in the store");
        let queue_depth = gauge(&mut registry, "queue_depth", "Messages waiting, all sessions");
        let subscribers = gauge(&mut registry, "subscribers", "Open event and run streams");
        let connections_open = gauge(&mut registry, "connections_open", "Open connections");
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections refused at http.max_connections",
            connections_refused.clone(),
        );
        let (allocator_allocated, allocator_resident) = match crate::allocator::stats() {
            Some(_) => (
                gauge(&mut registry, "allocator_allocated_bytes", "Bytes allocated and not freed"),
                gauge(
                    &mut registry,
                    "allocator_resident_bytes",
                    "Bytes the allocator keeps resident",
                ),
            ),
            None => (Gauge::default(), Gauge::default()),
        };
        Self(Arc::new(MetricSet {
            registry: Mutex::new(registry),
            requests,
            request_seconds,
            runs_started,
            runs_finished,
            events_logged,
            lagged,
            sessions_live,
            sessions_stored,
            queue_depth,
            subscribers,
            connections_open,
            connections_refused,
            allocator_allocated,
            allocator_resident,
        }))
    }

    pub fn run_finished(&self, outcome: &str) {
        self.runs_finished.get_or_create(&OutcomeLabels { outcome: outcome.to_string() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        if let Some(stats) = crate::allocator::stats() {
            self.allocator_allocated.set(i64::try_from(stats.allocated).unwrap_or(i64::MAX));
            self.allocator_resident.set(i64::try_from(stats.resident).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Outermost HTTP middleware, for every request on the port (gRPC included): a request id
/// (the client's `x-request-id` when it is a sane one, else a new UUID) on the request's log
/// span and echoed in the response, one log line per request with its status and time to the
/// response head, and the request metrics by route pattern (never the raw path: keys would
/// make unbounded label sets). Headers and query strings are never logged: they can carry
/// tokens.
pub async fn requests(
    State(metrics): State<Metrics>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let route = if grpc {
        request.uri().path().to_string()
    } else if request.uri().path().starts_with("/socket.io/") {
        "/socket.io".to_string()
    } else {
        match request.extensions().get::<MatchedPath>() {
            Some(path) => path.as_str().to_string(),
            None => "unmatched".to_string(),
        }
    };
    let method = request.method().clone();
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = match response.headers().get("grpc-status") {
        Some(code) => String::from_utf8_lossy(code.as_bytes()).into_owned(),
        None if grpc && response.status().is_success() => "0".to_string(),
        None => response.status().as_u16().to_string(),
    };
    span.in_scope(|| {
        tracing::info!(%method, %route, %status, ms = elapsed.as_secs_f64() * 1e3, "request");
    });
    metrics.requests.get_or_create(&RequestLabels { route: route.clone(), status }).inc();
    metrics.request_seconds.get_or_create(&RouteLabels { route }).observe(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines() {
        let ring = LogRing { lines: Mutex::new(VecDeque::new()), feed: broadcast::channel(4).0 };
        let mut tail = ring.tail();
        for i in 0..RING_LINES + 5 {
            ring.push(&format!("line {i}\n"));
        }
        let recent = ring.recent(3);
        assert_eq!(recent, [1002, 1003, 1004].map(|i| format!("line {i}")));
        assert_eq!(ring.recent(usize::MAX).len(), RING_LINES);
        assert!(matches!(tail.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));
    }
}
