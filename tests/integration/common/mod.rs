//! Test harness: a real gateway on `127.0.0.1:0` with temp data and workspace dirs, real
//! clients (reqwest, tonic), and readers for SSE and gRPC event streams that wait on events,
//! never on the clock.

#![allow(dead_code)]

pub mod golden;
pub mod mock_model;
pub mod process;
pub mod raw;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agent_gateway::app::AppState;
use agent_gateway::config::{Config, Sources};
use agent_gateway::proto as pb;
use agent_gateway::proto::chat_client::ChatClient;
use agent_gateway::proto::sessions_client::SessionsClient;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Upper bound for anything a test waits for; generous because CI machines are noisy.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Gateway {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub state: AppState,
    pub workspace: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// (workspace, data) and the overrides it was started with, for a restart over them.
    dirs: Option<(tempfile::TempDir, tempfile::TempDir)>,
    settings: Vec<(String, String)>,
}

/// A gateway stopped by [`Gateway::stop_keeping_data`]: its dirs stay for the next start.
pub struct Stopped {
    dirs: (tempfile::TempDir, tempfile::TempDir),
    settings: Vec<(String, String)>,
}

impl Stopped {
    /// The database file the gateway used.
    pub fn database(&self) -> PathBuf {
        self.dirs.1.path().join(agent_gateway::app::STORE_FILE)
    }

    /// Starts a gateway over the same workspace and data dir, with the same settings.
    pub async fn start(self) -> Gateway {
        Gateway::start_in(self.dirs.0, self.dirs.1, self.settings).await
    }
}

impl Gateway {
    pub async fn start() -> Self {
        Self::with(&[]).await
    }

    /// Starts a gateway with config overrides (`("session.max_queue", "2")`, ...).
    pub async fn with(settings: &[(&str, &str)]) -> Self {
        let workspace = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        // `{workspace}` in a value stands for the test's workspace directory.
        let ws = workspace.path().display().to_string();
        let settings =
            settings.iter().map(|(k, v)| (k.to_string(), v.replace("{workspace}", &ws))).collect();
        Self::start_in(workspace, data, settings).await
    }

    async fn start_in(
        workspace: tempfile::TempDir,
        data: tempfile::TempDir,
        settings: Vec<(String, String)>,
    ) -> Self {
        let mut overrides = vec![
            ("workspace".to_string(), workspace.path().display().to_string()),
            ("data_dir".to_string(), data.path().display().to_string()),
        ];
        overrides.extend(settings.iter().cloned());
        let config = Config::load(&Sources { file: None, env: HashMap::new(), overrides })
            .expect("test config is valid");
        // The log ring (for /logs and TailLogs) fills from the process's subscriber.
        agent_gateway::telemetry::init(false);
        let state = AppState::open(config).await.expect("state builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agent_gateway::server::run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Self {
            addr,
            http: reqwest::Client::new(),
            state,
            workspace: workspace.path().to_path_buf(),
            shutdown: Some(tx),
            task: Some(task),
            dirs: Some((workspace, data)),
            settings,
        }
    }

    /// Stops the server (the store is closed) and keeps its dirs for [`Stopped::start`].
    pub async fn stop_keeping_data(mut self) -> Stopped {
        let dirs = self.dirs.take().expect("dirs are kept until the gateway is dropped");
        let settings = std::mem::take(&mut self.settings);
        self.stop().await;
        Stopped { dirs, settings }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    pub async fn sessions(&self) -> SessionsClient<Channel> {
        SessionsClient::new(self.channel().await)
    }

    pub async fn chat(&self) -> ChatClient<Channel> {
        ChatClient::new(self.channel().await)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        read(self.http.post(self.url(path)).json(&body).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        read(self.http.delete(self.url(path)).send().await.unwrap()).await
    }

    /// Sends a message over REST and waits for its run.
    pub async fn message(&self, key: &str, text: &str) -> (u16, Value) {
        self.post(&format!("/sessions/{key}/messages"), serde_json::json!({ "text": text })).await
    }

    /// Stops the server and waits until it has returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task).await.expect("server stops").unwrap().unwrap();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Awaits `future` for at most [`WAIT`].
pub async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("timed out waiting")
}

// ---- SSE -----------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `id:` (for logged events), `event:` (named events) and the parsed `data:` JSON.
    Event { id: Option<u64>, name: Option<String>, data: Value },
    /// A `:` comment (heartbeat).
    Comment,
}

pub struct Sse {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    pub response_headers: reqwest::header::HeaderMap,
}

impl Sse {
    pub async fn open(gateway: &Gateway, path: &str) -> Self {
        Self::open_with(gateway.http.get(gateway.url(path))).await
    }

    pub async fn open_with(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "SSE stream opens");
        let response_headers = response.headers().clone();
        Self { body: Box::pin(response.bytes_stream()), buffer: String::new(), response_headers }
    }

    /// The next frame, or None when the stream ended.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                return Some(parse_frame(&raw));
            }
            match within(self.body.next()).await {
                Some(Ok(chunk)) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event (skipping heartbeats).
    pub async fn event(&mut self) -> Option<(Option<u64>, Value)> {
        self.named().await.map(|(id, _, data)| (id, data))
    }

    /// The next event with its `event:` name (skipping heartbeats).
    pub async fn named(&mut self) -> Option<(Option<u64>, Option<String>, Value)> {
        loop {
            match self.next().await? {
                Frame::Event { id, name, data } => return Some((id, name, data)),
                Frame::Comment => continue,
            }
        }
    }

    /// Every `data:` payload to the end of the stream (Vercel chunks; `[DONE]` as a string).
    pub async fn all_data(&mut self) -> Vec<Value> {
        let mut all = Vec::new();
        while let Some(frame) = self.next().await {
            if let Frame::Event { data, .. } = frame {
                all.push(data);
            }
        }
        all
    }

    /// Events up to and including the first whose type is `ty`.
    pub async fn until(&mut self, ty: &str) -> Vec<(Option<u64>, Value)> {
        let mut seen = Vec::new();
        loop {
            let event =
                self.event().await.unwrap_or_else(|| panic!("stream ended before {ty}: {seen:?}"));
            let done = event.1["type"] == ty;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn parse_frame(raw: &str) -> Frame {
    let mut id = None;
    let mut name = None;
    let mut data = None;
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("id: ") {
            id = Some(rest.parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("event: ") {
            name = Some(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("data: ") {
            data = Some(
                serde_json::from_str(rest).unwrap_or_else(|_| Value::String(rest.to_string())),
            );
        }
    }
    match data {
        Some(data) => Frame::Event { id, name, data },
        None => Frame::Comment,
    }
}

// ---- gRPC streams --------------------------------------------------------------------------

/// The next item of a gRPC stream, waiting at most [`WAIT`].
pub async fn next<T>(stream: &mut tonic::Streaming<T>) -> Option<T> {
    within(stream.message()).await.expect("stream ok")
}

/// Reads a Subscribe stream until an event of the given kind; returns everything read.
pub async fn until_event(
    stream: &mut tonic::Streaming<pb::Event>,
    done: impl Fn(&pb::event::Kind) -> bool,
) -> Vec<pb::Event> {
    let mut seen = Vec::new();
    loop {
        let event = next(stream).await.expect("stream ended early");
        let end = event.kind.as_ref().is_some_and(&done);
        seen.push(event);
        if end {
            return seen;
        }
    }
}

/// The tool_complete events of a run, in order.
pub fn tool_completes(events: &[pb::Event]) -> Vec<pb::ToolComplete> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::event::Kind::ToolComplete(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// Reads a StreamChat until an event matching `done` (the `accepted` item included).
pub async fn stream_until(
    stream: &mut tonic::Streaming<pb::StreamChatResponse>,
    done: impl Fn(&pb::event::Kind) -> bool,
) {
    loop {
        let item = next(stream).await.expect("the run streams");
        if let Some(pb::stream_chat_response::Kind::Event(pb::Event { kind: Some(kind), .. })) =
            item.kind
            && done(&kind)
        {
            return;
        }
    }
}

pub fn text_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// The text of each message's first part in a history page (`{messages: [...]}`).
pub fn page_texts(page: &Value) -> Vec<String> {
    let messages = page["messages"].as_array().unwrap_or_else(|| panic!("a page: {page}"));
    messages.iter().map(|m| text_of(&m["parts"][0]["text"])).collect()
}

/// Whether a process of this machine runs with exactly this command line (arguments joined by
/// spaces); a zombie has none, so it no longer counts.
pub fn running(cmdline: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.filter_map(Result::ok).any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|line| String::from_utf8_lossy(&line).replace('\0', " ").trim() == cmdline)
    })
}

/// Waits until no process runs with this command line.
pub async fn until_gone(cmdline: &str) {
    within(async {
        while running(cmdline) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// `count` words, for replies long enough to abort or steer in the middle of.
pub fn words(count: usize) -> String {
    (0..count).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

/// A gRPC request carrying `authorization: Bearer <token>`.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
