//! Raw clients for what well-behaved ones never send: gRPC calls with hand-made bodies (native
//! over h2c, grpc-web binary and text over HTTP/1.1) read down to their `grpc-status`, and
//! plain TCP connections that write bytes and read what the server answers.

use std::net::SocketAddr;

use base64::Engine as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Gateway, WAIT, within};

/// How a raw gRPC call travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `application/grpc` over HTTP/2 (prior knowledge), status in headers or trailers.
    Native,
    /// `application/grpc-web+proto` over HTTP/1.1, trailers as a frame in the body.
    Web,
    /// `application/grpc-web-text` over HTTP/1.1: the body is base64.
    WebText,
}

pub const WIRES: [Wire; 3] = [Wire::Native, Wire::Web, Wire::WebText];

/// What a raw gRPC call got back.
#[derive(Debug)]
pub struct GrpcAnswer {
    pub http: u16,
    /// `grpc-status`, from the headers (trailers-only), the trailers or grpc-web's trailer frame.
    pub code: Option<i32>,
    pub message: String,
    /// Where the status was: `headers`, `trailers` or `body`.
    pub place: &'static str,
}

/// One length-prefixed gRPC message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Sends `body` as is (for [`Wire::WebText`], base64-encoded unless `raw_text` says it already
/// is) to `path`, and reads the answer to its end.
pub async fn grpc_call(gw: &Gateway, wire: Wire, path: &str, body: Vec<u8>) -> GrpcAnswer {
    grpc_call_with(gw, wire, path, body, false).await
}

pub async fn grpc_call_with(
    gw: &Gateway,
    wire: Wire,
    path: &str,
    body: Vec<u8>,
    raw_text: bool,
) -> GrpcAnswer {
    let client = match wire {
        Wire::Native => reqwest::Client::builder().http2_prior_knowledge().build().unwrap(),
        Wire::Web | Wire::WebText => reqwest::Client::builder().http1_only().build().unwrap(),
    };
    let request = client.post(gw.url(path));
    let request = match wire {
        Wire::Native => request.header("content-type", "application/grpc").header("te", "trailers"),
        Wire::Web => request.header("content-type", "application/grpc-web+proto"),
        Wire::WebText => request
            .header("content-type", "application/grpc-web-text")
            .header("accept", "application/grpc-web-text"),
    };
    let body = match wire {
        Wire::WebText if !raw_text => base64::engine::general_purpose::STANDARD.encode(body).into(),
        _ => body,
    };
    let response = within(request.body(body).send()).await.expect("the call is answered");
    let response = http::Response::from(response);
    let http = response.status().as_u16();
    let headers = response.headers().clone();
    let collected = within(response.into_body().collect()).await.expect("the body is read");
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let status = |map: &http::HeaderMap| {
        map.get("grpc-status").map(|code| {
            let message = map.get("grpc-message").map(|m| percent_decode(m.as_bytes()));
            (code.to_str().unwrap().parse().unwrap(), message.unwrap_or_default())
        })
    };
    let answer = |(code, message), place| GrpcAnswer { http, code: Some(code), message, place };
    if let Some(found) = status(&headers) {
        return answer(found, "headers");
    }
    if let Some(found) = trailers.as_ref().and_then(status) {
        return answer(found, "trailers");
    }
    let bytes = match wire {
        Wire::WebText => decode_text(&bytes),
        _ => bytes.to_vec(),
    };
    match web_trailers(&bytes).as_ref().and_then(status) {
        Some(found) => answer(found, "body"),
        None => GrpcAnswer { http, code: None, message: String::new(), place: "none" },
    }
}

/// `grpc-message` is percent-encoded.
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// grpc-web-text answers are base64 per frame, each padded: decode four characters at a time.
fn decode_text(text: &[u8]) -> Vec<u8> {
    let engine = base64::engine::general_purpose::STANDARD;
    text.chunks(4).flat_map(|quad| engine.decode(quad).expect("base64 from the server")).collect()
}

/// The trailer frame (flag 0x80) of a grpc-web body, as headers.
fn web_trailers(mut body: &[u8]) -> Option<http::HeaderMap> {
    while body.len() >= 5 {
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..(5 + length).min(body.len())];
        if body[0] & 0x80 != 0 {
            let mut map = http::HeaderMap::new();
            for line in String::from_utf8_lossy(payload).split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    let name = http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap();
                    map.insert(name, value.trim().parse().unwrap());
                }
            }
            return Some(map);
        }
        body = &body[(5 + length).min(body.len())..];
    }
    None
}

// ---- raw TCP -------------------------------------------------------------------------------

/// A plain TCP connection to the gateway.
pub struct Raw {
    pub socket: TcpStream,
    /// Everything read so far.
    pub read: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let socket = TcpStream::connect(addr).await.unwrap();
        Self { socket, read: Vec::new() }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.unwrap();
    }

    /// Reads until `done` holds for what was read, or the server closes; true if it closed.
    async fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        while !done(&self.read) {
            match within(self.socket.read(&mut chunk)).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => self.read.extend_from_slice(&chunk[..n]),
            }
        }
        false
    }

    /// Waits (at most [`WAIT`]) until the server closes the connection; what it wrote before
    /// stays in `read`.
    pub async fn closed(&mut self) {
        assert!(self.read_until(|_| false).await, "the server closes the connection");
    }

    /// Reads one whole response (head, and a body of `content-length` bytes) and returns it;
    /// what follows stays in `read`.
    pub async fn response(&mut self) -> RawResponse {
        let head_end = |read: &[u8]| read.windows(4).position(|w| w == b"\r\n\r\n");
        self.read_until(|read| head_end(read).is_some()).await;
        let end = head_end(&self.read).unwrap_or_else(|| {
            panic!("no response head in {:?}", String::from_utf8_lossy(&self.read))
        });
        let head = String::from_utf8(self.read[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let start = end + 4;
        self.read_until(|read| read.len() >= start + length).await;
        let body = self.read[start..start + length].to_vec();
        self.read.drain(..start + length);
        RawResponse { status, headers, body }
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("a JSON body: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads from `socket` until the server closes it (bounded by [`WAIT`]).
pub async fn until_closed(socket: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server never closed the connection"),
        }
    }
}

// ---- websocket -----------------------------------------------------------------------------

/// A socket.io client over a raw websocket (Engine.IO 4), enough to see the upgrade complete
/// and messages flow both ways.
pub struct Ws(Raw);

impl Ws {
    /// Upgrades, and reads the Engine.IO `open` packet.
    pub async fn open(addr: SocketAddr) -> Self {
        let mut raw = Raw::connect(addr).await;
        raw.send(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: gw\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await;
        let response = raw.response().await;
        assert_eq!(response.status, 101, "{response:?}");
        let mut ws = Self(raw);
        let open = ws.text().await;
        assert!(open.starts_with("0{"), "engine.io open: {open}");
        ws
    }

    /// Sends one text frame (masked, as a client must).
    pub async fn send(&mut self, text: &str) {
        assert!(text.len() < 126);
        let mask = [7u8, 1, 2, 3];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.send(&frame).await;
    }

    /// The next text frame from the server.
    pub async fn text(&mut self) -> String {
        let raw = &mut self.0;
        raw.read_until(|r| r.len() >= 2).await;
        let (length, start) = match raw.read[1] & 0x7f {
            126 => {
                raw.read_until(|r| r.len() >= 4).await;
                (u16::from_be_bytes([raw.read[2], raw.read[3]]) as usize, 4)
            }
            127 => panic!("no frame this big in these tests"),
            short => (short as usize, 2),
        };
        assert!(!raw.read_until(|r| r.len() >= start + length).await, "the websocket closed");
        let payload: Vec<u8> = raw.read.drain(..start + length).skip(start).collect();
        String::from_utf8(payload).unwrap()
    }
}
