//! The concurrent-sessions scenario: S sessions, one subscriber each, all sent a message at the
//! same instant; the echo model streams at a fixed token rate and stamps each token with its
//! emit time (`!stamp`), so each subscriber measures the latency every token gains between the
//! model and the client. Reported with and without each run's first tokens, which carry the
//! cost of every run starting at once.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Http1};
use crate::fanout::settled_metrics;
use crate::stats::{self, Window, round3};
use crate::subscriber::{self, Subscriber, Transport};
use crate::target::{Launch, Server};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_delimiter = ',', default_value = "sse,grpc", value_parser = Transport::parse)]
    pub transports: Vec<Transport>,
    /// Session counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub sessions: Vec<usize>,
    /// Tokens per run.
    #[arg(long, default_value_t = 250)]
    pub tokens: usize,
    /// The echo model's tokens per second (`!delay 1000/rate`).
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// The first tokens of each run, reported apart.
    #[arg(long, default_value_t = 5)]
    pub skip_first: u32,
    /// gRPC subscriptions per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    pub streams_per_conn: usize,
}

pub async fn run(launch: &Launch, args: &Args) -> Result<Vec<Value>, String> {
    let mut lines = Vec::new();
    for &transport in &args.transports {
        for &s in &args.sessions {
            let settings = [("limits.max_live_sessions", (s + 1000).to_string())];
            let server = launch.gateway(&settings).await?;
            let result = measure(&server, args, transport, s).await;
            server.stop().await;
            let line = result?;
            crate::emit(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}

async fn measure(
    server: &Server,
    args: &Args,
    transport: Transport,
    s: usize,
) -> Result<Value, String> {
    let prefix = format!("sessions-{}", uuid::Uuid::new_v4().simple());
    let keys: Vec<String> = (0..s).map(|i| format!("{prefix}-{i}")).collect();
    // Connections for sending, opened before the start so that the start is one instant.
    let mut senders = Vec::with_capacity(s);
    for key in &keys {
        let mut conn = Http1::connect(&server.addr).await?;
        client::create_session(&mut conn, key).await?;
        senders.push(conn);
    }
    let stop = CancellationToken::new();
    let channels = match transport {
        Transport::Grpc => {
            client::channels(&server.addr, s.div_ceil(args.streams_per_conn.max(1))).await?
        }
        Transport::Sse => Vec::new(),
    };
    let mut subscribers: Vec<Subscriber> = Vec::with_capacity(s);
    for (i, key) in keys.iter().enumerate() {
        subscribers.push(match transport {
            Transport::Sse => subscriber::sse(&server.addr, key, true, stop.clone()).await?,
            Transport::Grpc => {
                subscriber::grpc(channels[i % channels.len()].clone(), key, true, stop.clone())
                    .await?
            }
        });
    }
    if !subscriber::wait_all(&subscribers, Duration::from_secs(60), |p| p.hello.load(Relaxed) == 1)
        .await
    {
        return Err("sessions: not every subscriber got hello".into());
    }

    let delay_ms = 1000 / args.rate.max(1);
    let text = format!("!stamp\n!delay {delay_ms}\n!repeat {}\nx", args.tokens);
    let (go, ready) = watch::channel(false);
    let mut runs = Vec::with_capacity(s);
    for (mut conn, key) in senders.into_iter().zip(keys.iter().cloned()) {
        let mut ready = ready.clone();
        let text = text.clone();
        runs.push(tokio::spawn(async move {
            let _ = ready.wait_for(|go| *go).await;
            client::send_message(&mut conn, &key, &text).await
        }));
    }
    let before = server.metrics().await?;
    let window = Window::start(server);
    let _ = go.send(true);
    let mut failed = 0;
    for run in runs {
        let answer = run.await.map_err(|e| e.to_string())??;
        let tokens = answer["response"].as_str().unwrap_or_default().matches('@').count();
        if answer["ok"] != true || tokens != args.tokens {
            failed += 1;
        }
    }
    let timeout = Duration::from_secs(60);
    let ended =
        subscriber::wait_all(&subscribers, timeout, |p| p.agent_ends.load(Relaxed) >= 1).await;
    let measured = window.end(server);
    let after = settled_metrics(server).await?;
    let logged =
        after.get("gateway_events_logged_total") - before.get("gateway_events_logged_total");
    let total =
        |subs: &[Subscriber]| subs.iter().map(|x| x.progress.logged.load(Relaxed)).sum::<u64>();
    let started = std::time::Instant::now();
    while (total(&subscribers) as f64) < logged && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    let received = total(&subscribers);
    let tokens_ok = subscriber::all_equal(&subscribers, |p| &p.tokens, args.tokens as u64);
    let lagged: u64 = subscribers.iter().map(|x| x.progress.lagged.load(Relaxed)).sum();
    let gaps: u64 = subscribers.iter().map(|x| x.progress.gaps.load(Relaxed)).sum();
    let mut all = Vec::new();
    let mut later = Vec::new();
    let mut first = Vec::new();
    for subscriber in subscribers {
        for sample in subscriber.finish().await? {
            all.push(sample.micros);
            if sample.index < args.skip_first {
                first.push(sample.micros);
            } else {
                later.push(sample.micros);
            }
        }
    }
    let samples_ok = all.len() == s * args.tokens;
    let checks = [
        stats::check(
            "gateway_events_logged_total (all subscribers' counts)",
            logged,
            received as f64,
        ),
        stats::check(
            "gateway_runs_started_total",
            s as f64,
            after.get("gateway_runs_started_total") - before.get("gateway_runs_started_total"),
        ),
        stats::check(
            "gateway_requests_total{route=/sessions/{key}/messages,status=200}",
            s as f64,
            after.requests("/sessions/{key}/messages", "200")
                - before.requests("/sessions/{key}/messages", "200"),
        ),
    ];
    let counts_ok = ended
        && failed == 0
        && tokens_ok
        && samples_ok
        && lagged == 0
        && gaps == 0
        && checks.iter().all(|c| c.0);
    Ok(json!({
        "scenario": "sessions",
        "transport": transport,
        "sessions": s,
        "tokens_per_run": args.tokens,
        "tokens_per_s_per_session": args.rate,
        // How long the runs would take if the gateway kept up: the stamps are taken when
        // tokens leave the model, so a model held back by a saturated gateway shows only here.
        "nominal_seconds": round3(args.tokens as f64 / args.rate.max(1) as f64),
        "seconds": round3(measured.seconds),
        "added_latency": stats::latency_ms(&mut all),
        "added_latency_without_first_tokens": stats::latency_ms(&mut later),
        "added_latency_first_tokens": stats::latency_ms(&mut first),
        "first_tokens": args.skip_first,
        "cpu": measured.cpu_json(),
        "memory": measured.memory_json(),
        "failed_runs": failed,
        "lagged": lagged,
        "gaps": gaps,
        "counts_ok": counts_ok,
        "checks": checks.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
    }))
}
