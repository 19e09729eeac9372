//! `hello_baseline`: the machine's baseline for loadgen's unary and REST scenarios. A bare
//! tonic server answering `Sessions/GetSession` and `Sessions/ListSessions`, and a bare axum
//! route answering `GET /sessions/{key}`, each with a snapshot of the gateway's own shape made
//! once at start: the cost of the stack alone (HTTP/2 or HTTP/1.1, protobuf or JSON), with no
//! auth, logs, metrics, session lookup or store. Every other RPC is `UNIMPLEMENTED`.
//!
//! Logs `addr=<gRPC address> http_addr=<REST address>` on stderr once it listens.
#![forbid(unsafe_code)]

use std::pin::Pin;

use agent_gateway::domain::{Snapshot, ThinkingLevel, Usage, now_ms};
use agent_gateway::grpc::convert;
use agent_gateway::proto as pb;
use agent_gateway::proto::sessions_server::{Sessions, SessionsServer};
use axum::routing::get;
use bytes::Bytes;
use clap::Parser;
use futures_util::Stream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

#[derive(Parser, Debug)]
#[command(about = "Bare tonic and axum servers answering like the gateway, for loadgen")]
struct Cli {
    /// gRPC port (the REST port is picked free); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Sessions `ListSessions` answers.
    #[arg(long, default_value_t = 11)]
    list: usize,
    /// `TCP_NODELAY` on accepted gRPC connections, as tonic's `Server::serve(addr)` sets it;
    /// `--nodelay false` shows what a server without it costs its callers.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    nodelay: bool,
}

/// A snapshot like the gateway's for a session with one short exchange.
fn snapshot(i: usize) -> Snapshot {
    let now = now_ms();
    Snapshot {
        session_key: format!("unary-{}-{i}", uuid::Uuid::new_v4().simple()),
        session_id: uuid::Uuid::new_v4().to_string(),
        name: None,
        message_count: 2,
        queue_depth: 0,
        processing: false,
        loaded: true,
        created_at: now,
        updated_at: now,
        last_active_at: now,
        last_message_preview: Some("hello there".into()),
        model_provider: Some("echo".into()),
        model_id: Some("echo".into()),
        thinking_level: ThinkingLevel::default(),
        usage: Usage { input_tokens: 2, output_tokens: 2 },
    }
}

struct Baseline {
    get: pb::GetSessionResponse,
    list: pb::ListSessionsResponse,
}

type Answer<T> = Result<Response<T>, Status>;

fn unimplemented<T>() -> Answer<T> {
    Err(Status::unimplemented("not in the baseline"))
}

#[tonic::async_trait]
impl Sessions for Baseline {
    async fn list_sessions(
        &self,
        _: Request<pb::ListSessionsRequest>,
    ) -> Answer<pb::ListSessionsResponse> {
        Ok(Response::new(self.list.clone()))
    }
    async fn get_session(
        &self,
        _: Request<pb::GetSessionRequest>,
    ) -> Answer<pb::GetSessionResponse> {
        Ok(Response::new(self.get.clone()))
    }
    async fn create_session(
        &self,
        _: Request<pb::CreateSessionRequest>,
    ) -> Answer<pb::CreateSessionResponse> {
        unimplemented()
    }
    async fn delete_session(
        &self,
        _: Request<pb::DeleteSessionRequest>,
    ) -> Answer<pb::DeleteSessionResponse> {
        unimplemented()
    }
    async fn rename_session(
        &self,
        _: Request<pb::RenameSessionRequest>,
    ) -> Answer<pb::RenameSessionResponse> {
        unimplemented()
    }
    async fn reset_session(
        &self,
        _: Request<pb::ResetSessionRequest>,
    ) -> Answer<pb::ResetSessionResponse> {
        unimplemented()
    }
    async fn abort_session(
        &self,
        _: Request<pb::AbortSessionRequest>,
    ) -> Answer<pb::AbortSessionResponse> {
        unimplemented()
    }
    async fn clear_queue(
        &self,
        _: Request<pb::ClearQueueRequest>,
    ) -> Answer<pb::ClearQueueResponse> {
        unimplemented()
    }
    async fn get_history(
        &self,
        _: Request<pb::GetHistoryRequest>,
    ) -> Answer<pb::GetHistoryResponse> {
        unimplemented()
    }
    async fn get_state(&self, _: Request<pb::GetStateRequest>) -> Answer<pb::GetStateResponse> {
        unimplemented()
    }
    async fn list_queued(
        &self,
        _: Request<pb::ListQueuedRequest>,
    ) -> Answer<pb::ListQueuedResponse> {
        unimplemented()
    }
    async fn set_model(&self, _: Request<pb::SetModelRequest>) -> Answer<pb::SetModelResponse> {
        unimplemented()
    }
    async fn set_thinking_level(
        &self,
        _: Request<pb::SetThinkingLevelRequest>,
    ) -> Answer<pb::SetThinkingLevelResponse> {
        unimplemented()
    }
    async fn reload_session(
        &self,
        _: Request<pb::ReloadSessionRequest>,
    ) -> Answer<pb::ReloadSessionResponse> {
        unimplemented()
    }

    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn subscribe(&self, _: Request<pb::SubscribeRequest>) -> Answer<Self::SubscribeStream> {
        unimplemented()
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let grpc = tokio::net::TcpListener::bind(("127.0.0.1", cli.port)).await?;
    let http = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let baseline = Baseline {
        get: pb::GetSessionResponse { session: Some(convert::snapshot(snapshot(0))) },
        list: pb::ListSessionsResponse {
            sessions: (0..cli.list).map(|i| convert::snapshot(snapshot(i))).collect(),
            next_page_token: String::new(),
        },
    };
    // The gateway's JSON for `GET /sessions/:key`, serialised once.
    let body = Bytes::from(serde_json::json!({ "session": snapshot(0) }).to_string());
    let app = axum::Router::new().route(
        "/sessions/{key}",
        get(move || {
            let body = body.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    eprintln!(
        "hello_baseline listening addr={} http_addr={}",
        grpc.local_addr()?,
        http.local_addr()?
    );
    // axum is left as `axum::serve` is, like the gateway.
    let incoming = TcpIncoming::from(grpc).with_nodelay(Some(cli.nodelay));
    let grpc = tonic::transport::Server::builder()
        .add_service(SessionsServer::new(baseline))
        .serve_with_incoming(incoming);
    let http = axum::serve(http, app);
    let (grpc, http) = tokio::join!(grpc, http);
    grpc.map_err(std::io::Error::other)?;
    http
}
