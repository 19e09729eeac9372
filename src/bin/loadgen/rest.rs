//! The REST scenario: `GET /sessions/:key` over C keep-alive HTTP/1.1 connections (what
//! `wrk -c<C>` does), against the gateway and against `hello_baseline` (a bare axum route
//! answering the same JSON from memory), and the ratio of the two rates.

use serde_json::{Value, json};

use crate::client::{self, Http1};
use crate::closed_loop::{self, Call};
use crate::stats::{self, round3};
use crate::target::{Launch, Server};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Keep-alive connections, each with one request at a time.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds measured (after a warm-up of a tenth of it, at least 0.2 s).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
}

struct Get {
    conn: Http1,
    path: String,
}

impl Call for Get {
    async fn call(&mut self) -> Result<usize, String> {
        let (status, body) = self.conn.request("GET", &self.path, None).await?;
        if status != 200 {
            return Err(format!("GET {}: {status}", self.path));
        }
        Ok(body.len())
    }
}

pub async fn run(launch: &Launch, args: &Args) -> Result<Vec<Value>, String> {
    let gateway = launch.gateway(&[]).await?;
    let result = match launch.baseline(1).await {
        Ok(baseline) => {
            let result = measure(&gateway, &baseline, args).await;
            baseline.stop().await;
            result
        }
        Err(e) => Err(e),
    };
    gateway.stop().await;
    let line = result?;
    crate::emit(&line);
    Ok(vec![line])
}

async fn callers(addr: &str, path: &str, n: usize) -> Result<Vec<Get>, String> {
    let mut callers = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        callers.push(Get { conn: Http1::connect(addr).await?, path: path.to_string() });
    }
    Ok(callers)
}

async fn measure(gateway: &Server, baseline: &Server, args: &Args) -> Result<Value, String> {
    let key = format!("rest-{}", uuid::Uuid::new_v4().simple());
    let mut conn = Http1::connect(&gateway.addr).await?;
    client::send_message(&mut conn, &key, "hello there").await?;
    let path = format!("/sessions/{key}");
    let (warmup, duration) = crate::unary::timing(args.duration);

    let base_callers = callers(&baseline.http_addr, &path, args.connections).await?;
    let mut base = closed_loop::drive(baseline, base_callers, warmup, duration).await?;
    let before = gateway.metrics().await?;
    let gw_callers = callers(&gateway.addr, &path, args.connections).await?;
    let mut gw = closed_loop::drive(gateway, gw_callers, warmup, duration).await?;
    let after = gateway.metrics().await?;
    let check = stats::check(
        "gateway_requests_total{route=/sessions/{key},status=200}",
        (gw.sent - gw.errors) as f64,
        after.requests("/sessions/{key}", "200") - before.requests("/sessions/{key}", "200"),
    );
    let ratio = round3(gw.rps() / base.rps().max(1.0));
    Ok(json!({
        "scenario": "rest",
        "route": "GET /sessions/:key",
        "connections": args.connections,
        "gateway": gw.json(),
        "baseline": base.json(),
        "ratio_to_baseline": ratio,
        "counts_ok": gw.errors == 0 && base.errors == 0 && gw.measured > 0 && check.0,
        "checks": [check.1],
    }))
}
