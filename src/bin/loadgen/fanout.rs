//! The fan-out scenario: one session, the echo model at zero delay, N subscribers over SSE or
//! gRPC. Runs of `!repeat <tokens>` are sent one after another, each once every subscriber has
//! the previous run's end; the result is events delivered per second and the gateway's CPU
//! seconds per million events delivered, with every subscriber's count checked against the
//! gateway's own count of logged events.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Http1};
use crate::stats::{self, Window, round3};
use crate::subscriber::{self, Subscriber, Transport};
use crate::target::{Launch, Server};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Transports to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "sse,grpc", value_parser = Transport::parse)]
    pub transports: Vec<Transport>,
    /// Subscriber counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub subscribers: Vec<usize>,
    /// Tokens per run (`!repeat <n>`).
    #[arg(long, default_value_t = 2000)]
    pub tokens: usize,
    /// Runs per measurement; by default enough for about `--events` delivered events (2 to
    /// 200 runs).
    #[arg(long)]
    pub runs: Option<usize>,
    #[arg(long, default_value_t = 2_000_000)]
    pub events: usize,
    /// gRPC subscriptions per HTTP/2 connection (hyper serves at most 200 streams on one).
    #[arg(long, default_value_t = 100)]
    pub streams_per_conn: usize,
}

pub async fn run(launch: &Launch, args: &Args) -> Result<Vec<Value>, String> {
    let mut lines = Vec::new();
    for &transport in &args.transports {
        for &n in &args.subscribers {
            let line = one(launch, args, transport, n).await?;
            crate::emit(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}

async fn one(
    launch: &Launch,
    args: &Args,
    transport: Transport,
    n: usize,
) -> Result<Value, String> {
    let runs = args.runs.unwrap_or_else(|| (args.events / (n * args.tokens).max(1)).clamp(2, 200));
    // A subscriber may fall one run behind the session (the next run starts only when every
    // subscriber has this one's end), so its buffer holds a run.
    let settings = [
        ("limits.max_subscribers", (n + 16).to_string()),
        ("session.subscriber_buffer", (args.tokens + 64).max(1024).to_string()),
    ];
    let server = launch.gateway(&settings).await?;
    let result = measure(&server, args, transport, n, runs).await;
    server.stop().await;
    result
}

async fn measure(
    server: &Server,
    args: &Args,
    transport: Transport,
    n: usize,
    runs: usize,
) -> Result<Value, String> {
    let key = format!("fanout-{}", uuid::Uuid::new_v4().simple());
    let mut conn = Http1::connect(&server.addr).await?;
    client::create_session(&mut conn, &key).await?;
    let unsubscribed = server.memory();
    let stop = CancellationToken::new();
    let mut subscribers: Vec<Subscriber> = Vec::with_capacity(n);
    let connections = match transport {
        Transport::Sse => n,
        Transport::Grpc => n.div_ceil(args.streams_per_conn.max(1)),
    };
    let channels = match transport {
        Transport::Grpc => client::channels(&server.addr, connections).await?,
        Transport::Sse => Vec::new(),
    };
    for i in 0..n {
        subscribers.push(match transport {
            Transport::Sse => subscriber::sse(&server.addr, &key, false, stop.clone()).await?,
            Transport::Grpc => {
                let channel = channels[i % channels.len()].clone();
                subscriber::grpc(channel, &key, false, stop.clone()).await?
            }
        });
    }
    if !subscriber::wait_all(&subscribers, Duration::from_secs(60), |p| p.hello.load(Relaxed) == 1)
        .await
    {
        return Err(format!("fanout: not every one of {n} subscribers got hello"));
    }

    let before = server.metrics().await?;
    let text = format!("!repeat {}\ntok", args.tokens);
    let window = Window::start(server);
    for run in 0..runs {
        let answer = client::send_message(&mut conn, &key, &text).await?;
        if answer["ok"] != true {
            return Err(format!("fanout: run {run} failed: {answer}"));
        }
        let ended = run as u64 + 1;
        let timeout = Duration::from_secs(300);
        if !subscriber::wait_all(&subscribers, timeout, |p| p.agent_ends.load(Relaxed) >= ended)
            .await
        {
            return Err(format!("fanout: subscribers did not all see the end of run {run}"));
        }
    }
    let measured = window.end(server);

    // The run's last event (the idle `session_state`) may still be on its way.
    let after = settled_metrics(server).await?;
    let logged =
        after.get("gateway_events_logged_total") - before.get("gateway_events_logged_total");
    let got_all = subscriber::wait_all(&subscribers, Duration::from_secs(30), |p| {
        p.logged.load(Relaxed) as f64 >= logged
    })
    .await;
    stop.cancel();
    let counts: Vec<u64> = subscribers.iter().map(|s| s.progress.logged.load(Relaxed)).collect();
    let tokens_ok = subscriber::all_equal(&subscribers, |p| &p.tokens, (runs * args.tokens) as u64);
    let lagged: u64 = subscribers.iter().map(|s| s.progress.lagged.load(Relaxed)).sum();
    let gaps: u64 = subscribers.iter().map(|s| s.progress.gaps.load(Relaxed)).sum();
    for subscriber in subscribers {
        subscriber.finish().await?;
    }

    let delivered: u64 = counts.iter().sum();
    let per_subscriber = delivered as f64 / n as f64;
    let events_ok = got_all && counts.iter().all(|&c| c as f64 == logged);
    let checks = [
        stats::check(
            "gateway_events_logged_total (each subscriber's count)",
            logged,
            per_subscriber,
        ),
        stats::check(
            "gateway_runs_started_total",
            runs as f64,
            after.get("gateway_runs_started_total") - before.get("gateway_runs_started_total"),
        ),
        stats::check(
            "gateway_requests_total{route=/sessions/{key}/messages,status=200}",
            runs as f64,
            after.requests("/sessions/{key}/messages", "200")
                - before.requests("/sessions/{key}/messages", "200"),
        ),
        stats::check(
            "gateway_lagged_total",
            0.0,
            after.get("gateway_lagged_total") - before.get("gateway_lagged_total"),
        ),
    ];
    let counts_ok =
        events_ok && tokens_ok && lagged == 0 && gaps == 0 && checks.iter().all(|c| c.0);
    Ok(json!({
        "scenario": "fanout",
        "transport": transport,
        "subscribers": n,
        "connections": connections,
        "tokens_per_run": args.tokens,
        "runs": runs,
        "events_per_subscriber": per_subscriber,
        "events_delivered": delivered,
        "seconds": round3(measured.seconds),
        "events_per_s_total": (delivered as f64 / measured.seconds).round(),
        "events_per_s_per_subscriber": (per_subscriber / measured.seconds).round(),
        "gateway_cpu_s_per_million_events": round3(measured.server_cpu / (delivered as f64 / 1e6)),
        "cpu": measured.cpu_json(),
        "rss_before_subscribing_mib": stats::mib(unsubscribed.rss as f64),
        "memory": measured.memory_json(),
        "allocated_mib": allocated(&before, &after),
        "lagged": lagged,
        "gaps": gaps,
        "every_subscriber_got_every_token": tokens_ok,
        "counts_ok": counts_ok,
        "checks": checks.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
    }))
}

/// The allocator's allocated bytes before and after, with the `jemalloc` feature.
fn allocated(before: &crate::target::Metrics, after: &crate::target::Metrics) -> Value {
    match (before.allocator(), after.allocator()) {
        (Some(b), Some(a)) => json!({"before": stats::mib(b.0), "after": stats::mib(a.0)}),
        _ => Value::Null,
    }
}

/// `/metrics` once `gateway_events_logged_total` has stopped moving (two scrapes 50 ms apart
/// agree).
pub async fn settled_metrics(server: &Server) -> Result<crate::target::Metrics, String> {
    let mut last = server.metrics().await?;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = server.metrics().await?;
        if now.get("gateway_events_logged_total") == last.get("gateway_events_logged_total") {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}
