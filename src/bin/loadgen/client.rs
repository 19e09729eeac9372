//! loadgen's clients: HTTP/1.1 keep-alive connections on hyper's own connection API (no pool,
//! no redirects: the least client work per request, so the server is what gets measured),
//! and gRPC channels, each one HTTP/2 connection.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// One HTTP/1.1 connection, used for one request at a time.
pub struct Http1 {
    addr: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Http1 {
    pub async fn connect(addr: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { addr: addr.to_string(), sender })
    }

    /// Sends a request and returns the response head with its body unread (a stream).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<http::Response<Incoming>, String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.as_str());
        let body = match body {
            Some(value) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(value.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| format!("{method} {path}: {e}"))?;
        self.sender.send_request(request).await.map_err(|e| format!("{method} {path}: {e}"))
    }

    /// A whole request: status and body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), String> {
        let response = self.send(method, path, body).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| format!("{path}: {e}"))?;
        Ok((status, body.to_bytes()))
    }

    /// A request whose JSON answer is wanted; any status but `expect` is an error.
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        expect: u16,
    ) -> Result<serde_json::Value, String> {
        let (status, bytes) = self.request(method, path, body).await?;
        if status != expect {
            let text = String::from_utf8_lossy(&bytes);
            return Err(format!("{method} {path}: {status} (expected {expect}): {text}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: {e}"))
    }
}

/// One GET on a connection of its own.
pub async fn get_once(addr: &str, path: &str) -> Result<(u16, Bytes), String> {
    Http1::connect(addr).await?.request("GET", path, None).await
}

/// Waits until `/health` answers 200 (the gateway has opened its store and listens).
pub async fn wait_healthy(addr: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match get_once(addr, "/health").await {
            Ok((200, _)) => return Ok(()),
            _ if started.elapsed() > Duration::from_secs(30) => {
                return Err(format!("{addr}: /health did not answer 200 within 30 s"));
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One HTTP/2 connection for gRPC calls (clones share it).
pub async fn channel(addr: &str) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("gRPC connect {addr}: {e}"))
}

/// `n` gRPC connections.
pub async fn channels(addr: &str, n: usize) -> Result<Vec<Channel>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(channel(addr).await?);
    }
    Ok(out)
}

/// Creates session `key` (`POST /v1/conversations`); an existing key is fine.
pub async fn create_session(conn: &mut Http1, key: &str) -> Result<(), String> {
    let body = serde_json::json!({ "conversationId": key });
    let (status, bytes) = conn.request("POST", "/v1/conversations", Some(&body)).await?;
    match status {
        201 | 409 => Ok(()),
        _ => Err(format!("create {key}: {status}: {}", String::from_utf8_lossy(&bytes))),
    }
}

/// `POST /sessions/:key/messages` (waits for the run); the answer's JSON.
pub async fn send_message(
    conn: &mut Http1,
    key: &str,
    text: &str,
) -> Result<serde_json::Value, String> {
    let body = serde_json::json!({ "text": text });
    conn.json("POST", &format!("/sessions/{}/messages", encode_key(key)), Some(&body), 200).await
}

/// Session keys in paths: loadgen's own keys are letters, digits and `-`, which need no
/// escaping; anything else is refused rather than sent wrong.
pub fn encode_key(key: &str) -> &str {
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "key {key:?}");
    key
}
