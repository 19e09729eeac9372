//! The event log behind every stream (GATEWAY.md §3): resume after a disconnect mid-run over SSE
//! and gRPC (the union of both connections is exactly the run, no gap, no duplicate), a
//! genuinely stalled TCP subscriber that never slows the session, lifecycle events, grpc-web
//! Subscribe, and streams ending at shutdown.

use agent_gateway::proto as pb;
use pb::event::Kind;
use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::grpc_chat::send;

fn key(k: &str) -> String {
    k.to_string()
}

/// Starts a run of `count` tokens, `delay_ms` apart, on `key` without waiting for it.
async fn start_run(gw: &Gateway, key: &str, count: usize, delay_ms: u64) {
    let mut chat = gw.chat().await;
    let text = format!("{}\n!delay {delay_ms}", words(count));
    let mut stream = chat.stream_chat(send(key, &text)).await.unwrap().into_inner();
    // Keep the caller's stream alive in the background; the run does not depend on it.
    tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
}

/// The logged events (id, JSON) of an SSE stream up to this run's `agent_end`.
async fn sse_until_end(sse: &mut Sse) -> Vec<(u64, Value)> {
    sse.until("agent_end").await.into_iter().filter_map(|(id, e)| id.map(|id| (id, e))).collect()
}

#[tokio::test]
async fn sse_resume_after_a_disconnect_mid_run_misses_and_repeats_nothing() {
    let gw = Gateway::start().await;
    gw.message("r", "create it").await;
    let mut witness = Sse::open(&gw, "/sessions/r/events").await;
    let mut first = Sse::open(&gw, "/sessions/r/events").await;
    witness.event().await.unwrap();
    first.event().await.unwrap();
    start_run(&gw, "r", 60, 10).await;

    // First connection: some of the run, then it drops.
    let mut seen = Vec::new();
    while seen.iter().filter(|(_, e): &&(u64, Value)| e["type"] == "token").count() < 10 {
        let (id, event) = first.event().await.unwrap();
        seen.push((id.expect("logged"), event));
    }
    drop(first);
    let last = seen.last().unwrap().0;
    // Second connection resumes from the last id it saw.
    let request =
        gw.http.get(gw.url("/sessions/r/events")).header("last-event-id", last.to_string());
    let mut second = Sse::open_with(request).await;
    let (id, hello) = second.event().await.unwrap();
    assert_eq!((id, hello["type"].as_str()), (None, Some("hello")));
    seen.extend(sse_until_end(&mut second).await);

    let expected = sse_until_end(&mut witness).await;
    assert_eq!(seen, expected, "both connections together are exactly the run");
    assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 1), "no gap and no duplicate");
}

#[tokio::test]
async fn grpc_resume_after_a_disconnect_mid_run_misses_and_repeats_nothing() {
    let gw = Gateway::start().await;
    gw.message("g", "create it").await;
    let mut client = gw.sessions().await;
    let subscribe = |after_seq| pb::SubscribeRequest { session_key: key("g"), after_seq };
    let mut witness = client.subscribe(subscribe(None)).await.unwrap().into_inner();
    let mut first = client.subscribe(subscribe(None)).await.unwrap().into_inner();
    next(&mut witness).await.unwrap();
    next(&mut first).await.unwrap();
    start_run(&gw, "g", 60, 10).await;

    let mut seen = Vec::new();
    while seen.iter().filter(|e: &&pb::Event| matches!(e.kind, Some(Kind::Token(_)))).count() < 10 {
        seen.push(next(&mut first).await.unwrap());
    }
    drop(first);
    let last = seen.last().unwrap().seq;
    let mut second = client.subscribe(subscribe(Some(last))).await.unwrap().into_inner();
    assert!(matches!(next(&mut second).await.unwrap().kind, Some(Kind::Hello(_))));
    seen.extend(until_event(&mut second, |k| matches!(k, Kind::AgentEnd(_))).await);

    let expected = until_event(&mut witness, |k| matches!(k, Kind::AgentEnd(_))).await;
    assert_eq!(seen, expected, "both connections together are exactly the run");
    assert!(seen.windows(2).all(|w| w[1].seq == w[0].seq + 1), "no gap and no duplicate");
}

/// An SSE subscriber on a raw TCP socket with a tiny receive buffer, that reads only when told.
struct RawSse {
    socket: tokio::net::TcpStream,
    buffer: Vec<u8>,
    headers_done: bool,
    /// The JSON of every complete frame read so far.
    frames: Vec<Value>,
}

impl RawSse {
    async fn open(gw: &Gateway, path: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut socket = socket.connect(gw.addr).await.unwrap();
        // HTTP/1.0: the body is the raw event stream, without chunked framing.
        let request = format!("GET {path} HTTP/1.0\r\nHost: gw\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        Self { socket, buffer: Vec::new(), headers_done: false, frames: Vec::new() }
    }

    /// Reads one chunk and parses the frames it completes.
    async fn read_more(&mut self) {
        let mut chunk = vec![0u8; 64 * 1024];
        let read = within(self.socket.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "the stream stays open");
        self.buffer.extend_from_slice(&chunk[..read]);
        if !self.headers_done {
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else { return };
            self.buffer.drain(..end + 4);
            self.headers_done = true;
        }
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let frame = String::from_utf8(frame).unwrap();
            if let Some(json) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                self.frames.push(serde_json::from_str(json).unwrap());
            }
        }
    }

    /// Reads until a frame after position `from` matches; returns its position.
    async fn until(&mut self, from: usize, matches: impl Fn(&Value) -> bool) -> usize {
        loop {
            if let Some(found) = self.frames.iter().skip(from).position(&matches) {
                return from + found;
            }
            self.read_more().await;
        }
    }
}

#[tokio::test]
async fn a_stalled_subscriber_never_slows_the_session_and_resumes_with_lagged() {
    let gw = Gateway::with(&[("session.subscriber_buffer", "4096")]).await;
    gw.message("s", "create it").await;
    // It reads its first bytes (so it is surely subscribed), then nothing while the run goes.
    let mut stalled = RawSse::open(&gw, "/sessions/s/events").await;
    stalled.until(0, |f| f["type"] == "hello").await;
    let mut healthy = Sse::open(&gw, "/sessions/s/events").await;
    healthy.event().await.unwrap();

    // 60,000 tokens: some 6 MB of SSE frames, far more than every socket buffer on the way.
    let text = format!("{}\n!repeat 300", words(200));
    let run = tokio::spawn({
        let (http, url) = (gw.http.clone(), gw.url("/sessions/s/messages"));
        async move { http.post(url).json(&serde_json::json!({"text": text})).send().await }
    });
    // Another subscriber gets the whole run to its end while the stalled one reads nothing:
    // the session never waits for a subscriber (it would deadlock here if it did).
    let events = healthy.until("agent_end").await;
    assert_eq!(events.last().unwrap().1["ok"], true);
    assert_eq!(within(run).await.unwrap().unwrap().status(), 200);

    // Now it reads: what the buffers held, then `lagged {missed}`, then live events.
    let lagged = stalled.until(0, |f| f["type"] == "lagged").await;
    assert!(stalled.frames[lagged]["missed"].as_u64().unwrap() > 0);
    let (status, _) = gw.message("s", "live again").await;
    assert_eq!(status, 200);
    let token = stalled.until(lagged, |f| f["type"] == "token" && f["delta"] == "again").await;
    stalled.until(token, |f| f["type"] == "agent_end" && f["ok"] == true).await;
}

#[tokio::test]
async fn grpc_subscribers_see_reset_and_deletion_and_deleted_streams_end() {
    let gw = Gateway::start().await;
    gw.message("d", "create it").await;
    let mut client = gw.sessions().await;
    let subscribe = |k: &str| pb::SubscribeRequest { session_key: key(k), after_seq: None };
    let mut deleted = client.subscribe(subscribe("d")).await.unwrap().into_inner();
    let mut primary = client.subscribe(subscribe("main")).await.unwrap().into_inner();
    next(&mut deleted).await.unwrap();
    next(&mut primary).await.unwrap();

    client.delete_session(pb::DeleteSessionRequest { session_key: key("d") }).await.unwrap();
    until_event(&mut deleted, |k| matches!(k, Kind::SessionDeleted(_))).await;
    assert_eq!(within(deleted.message()).await.unwrap(), None, "the stream ends cleanly");

    client.reset_session(pb::ResetSessionRequest { session_key: key("main") }).await.unwrap();
    let reset = until_event(&mut primary, |k| matches!(k, Kind::SessionReset(_))).await;
    let Some(Kind::SessionReset(r)) = &reset.last().unwrap().kind else { unreachable!() };
    assert!(!r.session_id.is_empty());
    // The primary session lives on: its subscriber keeps receiving.
    gw.message("main", "still here").await;
    until_event(&mut primary, |k| matches!(k, Kind::AgentEnd(_))).await;
}

#[tokio::test]
async fn subscribe_over_grpc_web_gets_the_shared_encoding() {
    let gw = Gateway::start().await;
    let request = pb::SubscribeRequest { session_key: key("main"), after_seq: None };
    let payload = request.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let response = gw
        .http
        .post(gw.url("/agentgateway.v1.Sessions/Subscribe"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"].to_str().unwrap().starts_with("application/grpc-web")
    );
    let mut stream = response.bytes_stream();
    let mut raw = Vec::new();
    use futures_util::StreamExt;
    while raw.len() < 5
        || raw.len() < 5 + u32::from_be_bytes(raw[1..5].try_into().unwrap()) as usize
    {
        raw.extend_from_slice(&within(stream.next()).await.unwrap().unwrap());
    }
    assert_eq!(raw[0], 0, "a data frame");
    let length = u32::from_be_bytes(raw[1..5].try_into().unwrap()) as usize;
    let hello = pb::Event::decode(&raw[5..5 + length]).unwrap();
    assert!(matches!(hello.kind, Some(Kind::Hello(_))), "{hello:?}");
    assert_eq!(hello.session_key, "main");
}

#[tokio::test]
async fn shutdown_ends_every_stream_cleanly() {
    let gw = Gateway::start().await;
    let mut sse = Sse::open(&gw, "/sessions/main/events").await;
    sse.event().await.unwrap();
    let mut grpc = gw
        .sessions()
        .await
        .subscribe(pb::SubscribeRequest { session_key: key("main"), after_seq: None })
        .await
        .unwrap()
        .into_inner();
    next(&mut grpc).await.unwrap();
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(sse.next().await, None, "the SSE stream ends");
    assert_eq!(within(grpc.message()).await.unwrap(), None, "the gRPC stream ends with OK");
    within(stopping).await.unwrap();
}
