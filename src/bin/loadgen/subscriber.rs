//! Event subscribers over SSE (`GET /sessions/:key/events`) and gRPC (`Sessions/Subscribe`):
//! each counts what it receives (logged events, tokens, run ends, lags, gaps in `seq`) where
//! the driver can watch it, and, for stamped tokens (`!stamp`), keeps each token's added
//! latency: its arrival time minus the emit time in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_gateway::proto as pb;
use agent_gateway::proto::event::Kind;
use agent_gateway::proto::sessions_client::SessionsClient;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::client::{Http1, encode_key};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Sse,
    Grpc,
}

impl Transport {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "sse" => Ok(Self::Sse),
            "grpc" => Ok(Self::Grpc),
            _ => Err(format!("unknown transport {text:?} (sse, grpc)")),
        }
    }
}

/// What one subscriber has received so far (updated as it goes).
#[derive(Debug, Default)]
pub struct Progress {
    pub hello: AtomicU64,
    /// Logged events (everything but the `hello` and `lagged` notes).
    pub logged: AtomicU64,
    pub tokens: AtomicU64,
    pub agent_ends: AtomicU64,
    pub lagged: AtomicU64,
    /// Logged events whose `seq` was not the one after the previous event's.
    pub gaps: AtomicU64,
}

/// One token's added latency, and its place in its run (0 for the first token).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub index: u32,
    pub micros: i64,
}

pub struct Subscriber {
    pub progress: Arc<Progress>,
    task: JoinHandle<Result<Vec<Sample>, String>>,
}

impl Subscriber {
    /// Ends the subscription (the caller cancelled `stop`) and returns its latency samples.
    pub async fn finish(self) -> Result<Vec<Sample>, String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}

/// Follows one event stream: the bookkeeping both transports share.
struct Tally {
    progress: Arc<Progress>,
    next_seq: Option<u64>,
    index: u32,
    samples: Vec<Sample>,
    stamps: bool,
}

impl Tally {
    fn hello(&mut self, seq: u64) {
        self.next_seq = Some(seq + 1);
        self.progress.hello.store(1, Relaxed);
    }

    fn lagged(&mut self, seq: u64) {
        self.progress.lagged.fetch_add(1, Relaxed);
        self.next_seq = Some(seq + 1);
    }

    /// A logged event; `delta` is the token's text, `now` the arrival time (Unix µs).
    fn logged(&mut self, seq: u64, kind: EventType, delta: Option<&str>, now: i64) {
        if self.next_seq.is_some_and(|next| next != seq) {
            self.progress.gaps.fetch_add(1, Relaxed);
        }
        self.next_seq = Some(seq + 1);
        match kind {
            EventType::AgentStart => self.index = 0,
            EventType::Token => {
                self.progress.tokens.fetch_add(1, Relaxed);
                if self.stamps
                    && let Some(emitted) = delta.and_then(stamp)
                {
                    self.samples.push(Sample { index: self.index, micros: now - emitted });
                }
                self.index += 1;
            }
            EventType::AgentEnd => {
                self.progress.agent_ends.fetch_add(1, Relaxed);
            }
            EventType::Other => {}
        }
        self.progress.logged.fetch_add(1, Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    AgentStart,
    Token,
    AgentEnd,
    Other,
}

/// The emit time a `!stamp` token starts with (`<unix µs>@<token>`).
fn stamp(delta: &str) -> Option<i64> {
    delta.split_once('@').and_then(|(micros, _)| micros.parse().ok())
}

pub fn unix_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Subscribes over SSE; returns once the response head is in (the `hello` follows).
pub async fn sse(
    addr: &str,
    key: &str,
    stamps: bool,
    stop: CancellationToken,
) -> Result<Subscriber, String> {
    let mut conn = Http1::connect(addr).await?;
    let response = conn.send("GET", &format!("/sessions/{}/events", encode_key(key)), None).await?;
    if response.status() != 200 {
        return Err(format!("subscribe {key}: {}", response.status()));
    }
    let progress = Arc::new(Progress::default());
    let mut tally =
        Tally { progress: progress.clone(), next_seq: None, index: 0, samples: Vec::new(), stamps };
    let task = tokio::spawn(async move {
        let _conn = conn;
        let mut body = response.into_body();
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        loop {
            let frame = tokio::select! {
                _ = stop.cancelled() => break,
                frame = body.frame() => frame,
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| e.to_string())?;
            let Ok(data) = frame.into_data() else { continue };
            let now = unix_micros();
            buf.extend_from_slice(&data);
            let mut start = 0;
            while let Some(end) = find_frame_end(&buf[start..]) {
                sse_frame(&mut tally, &buf[start..start + end], now)?;
                start += end + 2;
            }
            buf.drain(..start);
        }
        Ok(tally.samples)
    });
    Ok(Subscriber { progress, task })
}

fn find_frame_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        if buf.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// One SSE frame: `id: <seq>\ndata: <json>`, a note (`data:` only), or a `:` heartbeat.
fn sse_frame(tally: &mut Tally, frame: &[u8], now: i64) -> Result<(), String> {
    let text = std::str::from_utf8(frame).map_err(|e| e.to_string())?;
    if text.starts_with(':') {
        return Ok(());
    }
    let mut id = None;
    let mut data = "";
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.parse::<u64>().ok();
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = value;
        }
    }
    let kind = data
        .strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split_once('"'))
        .map_or("", |(kind, _)| kind);
    match (id, kind) {
        (None, "hello" | "lagged") => {
            let value: serde_json::Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
            let seq = value["seq"].as_u64().ok_or("a note without seq")?;
            match kind {
                "hello" => tally.hello(seq),
                _ => tally.lagged(seq),
            }
        }
        (Some(seq), kind) => {
            let (kind, delta) = match kind {
                "token" => (EventType::Token, json_string_after(data, "\"delta\":\"")),
                "agent_start" => (EventType::AgentStart, None),
                "agent_end" => (EventType::AgentEnd, None),
                _ => (EventType::Other, None),
            };
            tally.logged(seq, kind, delta, now);
        }
        (None, other) => return Err(format!("an SSE frame without id: {other:?}")),
    }
    Ok(())
}

/// The raw text of the JSON string after `prefix` (loadgen's own tokens need no unescaping).
fn json_string_after<'a>(data: &'a str, prefix: &str) -> Option<&'a str> {
    let start = data.find(prefix)? + prefix.len();
    let end = data[start..].find('"')?;
    Some(&data[start..start + end])
}

/// Subscribes over gRPC on `channel` (one HTTP/2 connection, shared by its clones).
pub async fn grpc(
    channel: Channel,
    key: &str,
    stamps: bool,
    stop: CancellationToken,
) -> Result<Subscriber, String> {
    let mut client = SessionsClient::new(channel);
    let request = pb::SubscribeRequest { session_key: key.to_string(), after_seq: None };
    let mut stream =
        client.subscribe(request).await.map_err(|e| format!("subscribe {key}: {e}"))?.into_inner();
    let progress = Arc::new(Progress::default());
    let mut tally =
        Tally { progress: progress.clone(), next_seq: None, index: 0, samples: Vec::new(), stamps };
    let task = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => break,
                message = stream.message() => message,
            };
            let Some(event) = message.map_err(|e| e.to_string())? else { break };
            let now = unix_micros();
            match event.kind {
                Some(Kind::Hello(_)) => tally.hello(event.seq),
                Some(Kind::Lagged(_)) => tally.lagged(event.seq),
                Some(Kind::Token(token)) => {
                    tally.logged(event.seq, EventType::Token, Some(&token.delta), now)
                }
                Some(Kind::AgentStart(_)) => {
                    tally.logged(event.seq, EventType::AgentStart, None, now)
                }
                Some(Kind::AgentEnd(_)) => tally.logged(event.seq, EventType::AgentEnd, None, now),
                _ => tally.logged(event.seq, EventType::Other, None, now),
            }
        }
        Ok(tally.samples)
    });
    Ok(Subscriber { progress, task })
}

/// Waits until `done` holds for every subscriber, polling every 2 ms; false on timeout.
pub async fn wait_all(
    subscribers: &[Subscriber],
    timeout: Duration,
    done: impl Fn(&Progress) -> bool,
) -> bool {
    let started = Instant::now();
    loop {
        if subscribers.iter().all(|s| done(&s.progress)) {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether every subscriber's counter `field` is at `expected`.
pub fn all_equal(
    subscribers: &[Subscriber],
    field: fn(&Progress) -> &AtomicU64,
    expected: u64,
) -> bool {
    subscribers.iter().all(|s| field(&s.progress).load(Relaxed) == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_are_tallied() {
        let progress = Arc::new(Progress::default());
        let mut tally = Tally {
            progress: progress.clone(),
            next_seq: None,
            index: 0,
            samples: vec![],
            stamps: true,
        };
        let stream = b"data: {\"type\":\"hello\",\"snapshot\":{},\"sessionKey\":\"k\",\"seq\":4}\n\n\
            id: 5\ndata: {\"type\":\"agent_start\",\"messageId\":\"m\",\"sessionKey\":\"k\",\"seq\":5}\n\n\
            :\n\n\
            id: 6\ndata: {\"type\":\"token\",\"delta\":\"100@hi \",\"contentIndex\":0,\"sessionKey\":\"k\",\"seq\":6}\n\n\
            id: 8\ndata: {\"type\":\"agent_end\",\"sessionKey\":\"k\",\"seq\":8}\n\n";
        let mut start = 0;
        while let Some(end) = find_frame_end(&stream[start..]) {
            sse_frame(&mut tally, &stream[start..start + end], 250).unwrap();
            start += end + 2;
        }
        assert_eq!(start, stream.len());
        assert_eq!(progress.logged.load(Relaxed), 3);
        assert_eq!(progress.tokens.load(Relaxed), 1);
        assert_eq!(progress.agent_ends.load(Relaxed), 1);
        assert_eq!(progress.gaps.load(Relaxed), 1, "seq 7 is missing");
        assert_eq!(tally.samples.len(), 1);
        assert_eq!((tally.samples[0].index, tally.samples[0].micros), (0, 150));
    }
}
