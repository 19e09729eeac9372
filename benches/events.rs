//! Micro-benchmarks of the path every token takes (GATEWAY.md §3): encoding one event to an
//! SSE frame, to protobuf and to Vercel AI SDK chunks, and fanning one event out to 1,000
//! in-process subscribers of a session's event log. Asserts nothing about speed.
//!
//! `cargo bench --bench events` measures; under `cargo test --all-targets` (no `--bench`)
//! criterion runs each routine once, so the test command checks that they work.
//!
//! What is not public is reached through what is: `grpc::subscribe::encoded` is
//! `Event::proto_frame` over `grpc::convert::event`, written out here; the Vercel `Chunks`
//! mapper is private, so its cost is measured end to end (a whole run through the router, as
//! a chat stream and as a plain message, whose difference is the chunks' share) beside a copy
//! of the `text-delta` framing it does per token.

use std::hint::black_box;
use std::sync::Arc;

use agent_gateway::app::AppState;
use agent_gateway::config::{Config, Sources};
use agent_gateway::domain::{Event, EventKind};
use agent_gateway::domain::{Snapshot, ThinkingLevel, Usage};
use agent_gateway::grpc::convert;
use agent_gateway::session::log::EventLog;
use axum::body::Body;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use prost::Message;
use serde_json::json;
use tower::ServiceExt;

fn key() -> Arc<str> {
    Arc::from("bench-session")
}

fn token() -> EventKind {
    EventKind::Token { delta: "tok ".into(), content_index: 0 }
}

fn session_state() -> EventKind {
    let snapshot = Snapshot {
        session_key: "bench-session".into(),
        session_id: "0195f3a2-7c1e-7d3a-9a41-3f0c2b1d4e5f".into(),
        name: None,
        message_count: 12,
        queue_depth: 0,
        processing: true,
        loaded: true,
        created_at: 1_767_225_600_000,
        updated_at: 1_767_225_600_000,
        last_active_at: 1_767_225_600_000,
        last_message_preview: Some("hello there".into()),
        model_provider: Some("echo".into()),
        model_id: Some("echo".into()),
        thinking_level: ThinkingLevel::default(),
        usage: Usage { input_tokens: 120, output_tokens: 480 },
    };
    EventKind::SessionState { snapshot: Box::new(snapshot) }
}

/// What `grpc::subscribe::encoded` does: the protobuf bytes, made once per event.
fn encoded(event: &Event) -> Bytes {
    event.proto_frame(|event| Bytes::from(convert::event(event).encode_to_vec()))
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, kind) in [("token", token()), ("session_state", session_state())] {
        let fresh = || Event::new(key(), 42, kind.clone());
        group.bench_function(format!("sse/{name}"), |b| {
            b.iter_batched(fresh, |event| event.sse_frame(), BatchSize::SmallInput)
        });
        group.bench_function(format!("protobuf/{name}"), |b| {
            b.iter_batched(fresh, |event| encoded(&event), BatchSize::SmallInput)
        });
    }
    // What the 2nd to Nth subscriber pays: the cached frame.
    let event = Event::new(key(), 42, token());
    event.sse_frame();
    group.bench_function("sse/token_cached", |b| b.iter(|| black_box(&event).sse_frame()));
    // A copy of `http::vercel` per token: `Chunks::delta` builds the chunk, `frame` writes it
    // (the mapper itself is private; see `vercel_run` for the real thing).
    group.bench_function("vercel/text_delta_copy", |b| {
        b.iter(|| {
            let (kind, id, delta) = ("text", format!("text_{}", 0), black_box("tok "));
            let value = json!({"type": format!("{kind}-delta"), "id": id, "delta": delta});
            Bytes::from(format!("id: {}\ndata: {value}\n\n", 42))
        })
    });
    group.finish();
}

/// One event pushed into a session's log with 1,000 subscribers, and every subscriber
/// receiving it and taking its frame (the first encodes it, the others share the bytes).
fn fanout(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 1000;
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    for transport in ["sse", "protobuf"] {
        let mut log = EventLog::new(key(), 0, 1024, 1024);
        let mut receivers: Vec<_> =
            (0..SUBSCRIBERS).map(|_| log.subscribe(None).live.expect("a live feed")).collect();
        group.bench_function(format!("{transport}/1000_subscribers"), |b| {
            b.iter(|| {
                log.push(token());
                for receiver in &mut receivers {
                    let event = receiver.try_recv().expect("the event");
                    let frame = match transport {
                        "sse" => event.sse_frame(),
                        _ => encoded(&event),
                    };
                    black_box(frame);
                }
            })
        });
    }
    group.finish();
}

/// An in-memory gateway's router (echo model, no store on disk).
fn gateway(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> axum::Router {
    let set = |key: &str, value: String| (key.to_string(), value);
    let sources = Sources {
        file: None,
        env: Default::default(),
        overrides: vec![
            set("persist", "false".into()),
            set("data_dir", dir.join("data").display().to_string()),
            set("workspace", dir.display().to_string()),
        ],
    };
    let config = Config::load(&sources).expect("config");
    let state = runtime.block_on(AppState::open(config)).expect("gateway");
    agent_gateway::server::router(&state).expect("router").app
}

/// A whole run of 200 tokens through the router: as a Vercel chat stream, and as a plain
/// message (the same run with no stream); the difference is what the chunks cost.
fn vercel_run(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = gateway(&runtime, dir.path());
    let body = json!({"text": "!repeat 200\ntok"}).to_string();
    let mut group = c.benchmark_group("run_200_tokens");
    group.throughput(Throughput::Elements(200));
    for (name, route) in [("vercel_chat", "chat"), ("messages", "messages")] {
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                // A new session each time, so history does not grow from one run to the next.
                n += 1;
                let path = format!("/sessions/{name}-{n}/{route}");
                runtime.block_on(async {
                    let request = http::Request::post(path)
                        .header("content-type", "application/json")
                        .body(Body::from(body.clone()))
                        .unwrap();
                    let response = router.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap().to_bytes()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, fanout, vercel_run);
criterion_main!(benches);
