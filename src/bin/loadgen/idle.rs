//! The idle-sessions scenario: many sessions with one short run each, then left alone. Memory
//! per session is read while they are all in memory and again once the idle sweep has evicted
//! them (`session.idle` is lowered live with `PATCH /config`), as RSS and, when the gateway
//! was built with the `jemalloc` feature, as the allocator's own counts: RSS alone does not
//! shrink when memory is freed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{self, Http1};
use crate::stats::{self, mib, round3};
use crate::target::{Launch, Metrics, Server};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Sessions to create.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// 100,000 sessions (overrides `--sessions`).
    #[arg(long)]
    pub large: bool,
    /// Connections sending the first messages.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds to wait after eviction before memory is read again.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
}

pub async fn run(launch: &Launch, args: &Args) -> Result<Vec<Value>, String> {
    let sessions = if args.large { 100_000 } else { args.sessions };
    // The sweep runs every second; nothing is idle for long enough until `session.idle` is
    // lowered after the sessions are made.
    let settings = [
        ("session.sweep_interval", "1s".to_string()),
        ("session.idle", "60m".to_string()),
        ("limits.max_live_sessions", (sessions + 1000).to_string()),
    ];
    let server = launch.gateway(&settings).await?;
    let result = measure(&server, args, sessions).await;
    server.stop().await;
    let line = result?;
    crate::emit(&line);
    Ok(vec![line])
}

/// RSS and the allocator's counts at one moment.
struct Reading {
    rss: f64,
    allocator: Option<(f64, f64)>,
    metrics: Metrics,
}

async fn read(server: &Server) -> Result<Reading, String> {
    let metrics = server.metrics().await?;
    Ok(Reading { rss: server.memory().rss as f64, allocator: metrics.allocator(), metrics })
}

async fn measure(server: &Server, args: &Args, sessions: usize) -> Result<Value, String> {
    let prefix = format!("idle-{}", uuid::Uuid::new_v4().simple());
    // One session first, so that what every run needs once (the store's statements, the
    // agent's first allocations) is in the base and not spread over the sessions.
    let mut conn = Http1::connect(&server.addr).await?;
    client::send_message(&mut conn, &format!("{prefix}-warmup"), "hello there").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = read(server).await?;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (next, addr, prefix) = (next.clone(), server.addr.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Http1::connect(&addr).await?;
            let mut failed = 0usize;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= sessions {
                    return Ok::<usize, String>(failed);
                }
                let answer =
                    client::send_message(&mut conn, &format!("{prefix}-{i}"), "hello there")
                        .await?;
                if answer["ok"] != true {
                    failed += 1;
                }
            }
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.map_err(|e| e.to_string())??;
    }
    let create_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = read(server).await?;

    let patch = json!({ "session.idle": "1s" });
    // A fresh connection: the gateway closes keep-alive connections idle for longer than
    // `http.header_timeout`, as the first one was while the sessions were made.
    let mut conn = Http1::connect(&server.addr).await?;
    conn.json("PATCH", "/config", Some(&patch), 200).await?;
    let started = Instant::now();
    let live_base = base.metrics.get("gateway_sessions_live");
    let mut evicted = false;
    while started.elapsed() < Duration::from_secs(600) {
        let live = server.metrics().await?.get("gateway_sessions_live");
        // Everything but the primary session (never evicted) goes.
        if live <= 1.0 {
            evicted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let eviction_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let after = read(server).await?;

    let per_session_kib = |bytes: f64| round3(bytes / sessions as f64 / 1024.0);
    let allocator = match (base.allocator, loaded.allocator, after.allocator) {
        (Some(b), Some(l), Some(a)) => json!({
            "allocated_base_mib": mib(b.0),
            "allocated_loaded_mib": mib(l.0),
            "allocated_evicted_mib": mib(a.0),
            "resident_base_mib": mib(b.1),
            "resident_loaded_mib": mib(l.1),
            "resident_evicted_mib": mib(a.1),
            "allocated_per_session_kib": per_session_kib(l.0 - b.0),
            "allocated_per_session_kib_after_eviction": per_session_kib(a.0 - b.0),
        }),
        _ => Value::Null,
    };
    let delta = |name: &str| loaded.metrics.get(name) - base.metrics.get(name);
    let checks = [
        stats::check(
            "gateway_runs_started_total",
            sessions as f64,
            delta("gateway_runs_started_total"),
        ),
        stats::check(
            "gateway_sessions_live (loaded)",
            live_base + sessions as f64,
            loaded.metrics.get("gateway_sessions_live"),
        ),
        stats::check("gateway_sessions_stored", sessions as f64, delta("gateway_sessions_stored")),
        stats::check(
            "gateway_sessions_live (evicted)",
            1.0,
            after.metrics.get("gateway_sessions_live"),
        ),
        stats::check(
            "gateway_requests_total{route=/sessions/{key}/messages,status=200}",
            sessions as f64,
            loaded.metrics.requests("/sessions/{key}/messages", "200")
                - base.metrics.requests("/sessions/{key}/messages", "200"),
        ),
    ];
    Ok(json!({
        "scenario": "idle",
        "sessions": sessions,
        "create_seconds": round3(create_seconds),
        "runs_per_s": (sessions as f64 / create_seconds).round(),
        "rss_base_mib": mib(base.rss),
        "rss_loaded_mib": mib(loaded.rss),
        "rss_evicted_mib": mib(after.rss),
        "rss_per_session_kib": per_session_kib(loaded.rss - base.rss),
        "rss_per_session_kib_after_eviction": per_session_kib(after.rss - base.rss),
        "allocator": allocator,
        "eviction_seconds": round3(eviction_seconds),
        "failed_runs": failed,
        "counts_ok": evicted && failed == 0 && checks.iter().all(|c| c.0),
        "checks": checks.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
    }))
}
