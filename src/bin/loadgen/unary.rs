//! The unary gRPC scenario: `GetSession` and `ListSessions` at C concurrent streams over 1 and
//! 4 HTTP/2 connections, against the gateway and against `hello_baseline` (a bare tonic server
//! answering the same messages from memory), and the ratio of the two rates.

use std::time::Duration;

use agent_gateway::proto as pb;
use agent_gateway::proto::sessions_client::SessionsClient;
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::client::{self, Http1};
use crate::closed_loop::{self, Call};
use crate::stats::{self, round3};
use crate::target::{Launch, Server};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Concurrent streams (callers).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connection counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub connections: Vec<usize>,
    /// Seconds measured per point (after a warm-up of a tenth of it, at least 0.2 s).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Sessions stored, all of which `ListSessions` returns (the baseline answers as many).
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    List,
}

impl Method {
    fn path(self) -> &'static str {
        match self {
            Method::Get => "/agentgateway.v1.Sessions/GetSession",
            Method::List => "/agentgateway.v1.Sessions/ListSessions",
        }
    }
}

struct Grpc {
    client: SessionsClient<Channel>,
    method: Method,
    key: String,
}

impl Call for Grpc {
    async fn call(&mut self) -> Result<usize, String> {
        match self.method {
            Method::Get => {
                let request = pb::GetSessionRequest { session_key: self.key.clone() };
                let answer = self.client.get_session(request).await.map_err(|e| e.to_string())?;
                Ok(answer.get_ref().encoded_len())
            }
            Method::List => {
                let request = pb::ListSessionsRequest { page_size: 0, page_token: String::new() };
                let answer = self.client.list_sessions(request).await.map_err(|e| e.to_string())?;
                Ok(answer.get_ref().encoded_len())
            }
        }
    }
}

pub fn timing(duration: f64) -> (Duration, Duration) {
    let duration = Duration::from_secs_f64(duration.max(0.1));
    ((duration / 10).max(Duration::from_millis(200)), duration)
}

pub async fn run(launch: &Launch, args: &Args) -> Result<Vec<Value>, String> {
    let gateway = launch.gateway(&[]).await?;
    // The gateway lists the primary session too.
    let baseline = launch.baseline(args.sessions.max(1) + 1).await;
    let result = match baseline {
        Ok(baseline) => {
            let result = measure(&gateway, &baseline, args).await;
            baseline.stop().await;
            result
        }
        Err(e) => Err(e),
    };
    gateway.stop().await;
    let lines = result?;
    lines.iter().for_each(crate::emit);
    Ok(lines)
}

async fn measure(gateway: &Server, baseline: &Server, args: &Args) -> Result<Vec<Value>, String> {
    let prefix = format!("unary-{}", uuid::Uuid::new_v4().simple());
    let mut conn = Http1::connect(&gateway.addr).await?;
    for i in 0..args.sessions.max(1) {
        client::send_message(&mut conn, &format!("{prefix}-{i}"), "hello there").await?;
    }
    let key = format!("{prefix}-0");
    let (warmup, duration) = timing(args.duration);
    let mut lines = Vec::new();
    for method in [Method::Get, Method::List] {
        for &connections in &args.connections {
            let callers = |channels: Vec<Channel>| -> Vec<Grpc> {
                (0..args.concurrency.max(1))
                    .map(|i| Grpc {
                        client: SessionsClient::new(channels[i % channels.len()].clone()),
                        method,
                        key: key.clone(),
                    })
                    .collect()
            };
            let channels = client::channels(&baseline.addr, connections).await?;
            let mut base =
                closed_loop::drive(baseline, callers(channels), warmup, duration).await?;
            let before = gateway.metrics().await?;
            let channels = client::channels(&gateway.addr, connections).await?;
            let mut gw = closed_loop::drive(gateway, callers(channels), warmup, duration).await?;
            let after = gateway.metrics().await?;
            let check = stats::check(
                &format!("gateway_requests_total{{route={},status=0}}", method.path()),
                (gw.sent - gw.errors) as f64,
                after.requests(method.path(), "0") - before.requests(method.path(), "0"),
            );
            let ratio = round3(gw.rps() / base.rps().max(1.0));
            lines.push(json!({
                "scenario": "unary",
                "method": method.path().rsplit('/').next(),
                "connections": connections,
                "concurrency": args.concurrency,
                "gateway": gw.json(),
                "baseline": base.json(),
                "ratio_to_baseline": ratio,
                "counts_ok": gw.errors == 0 && base.errors == 0 && gw.measured > 0 && check.0,
                "checks": [check.1],
            }));
        }
    }
    Ok(lines)
}
