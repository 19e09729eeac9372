//! A scripted model API on `127.0.0.1:0` that speaks the real wire formats: OpenAI
//! `chat.completion.chunk` SSE ending `data: [DONE]`, Anthropic named events, or an error
//! status with headers. Each request takes the next scripted reply and is recorded (path,
//! headers, JSON body) so tests can assert what the gateway sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub enum Reply {
    /// Chunks as `data:` lines, `delay` before each, then `data: [DONE]`.
    OpenAi {
        chunks: Vec<Value>,
        delay: Duration,
    },
    /// `event: <name>` + `data:` frames, `delay` before each.
    Anthropic {
        events: Vec<(String, Value)>,
        delay: Duration,
    },
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    arrived: Arc<Notify>,
}

pub struct MockModel {
    /// Base URL without a trailing slash (the gateway must add it).
    pub url: String,
    script: Script,
}

impl MockModel {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let script = Script::default();
        script.replies.lock().unwrap().extend(replies);
        let app = axum::Router::new().fallback(handle).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{addr}/v1"), script }
    }

    pub fn push(&self, reply: Reply) {
        self.script.replies.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.requests.lock().unwrap().clone()
    }

    /// Waits until `count` requests have arrived.
    pub async fn wait_requests(&self, count: usize) -> Vec<Recorded> {
        super::within(async {
            loop {
                let notified = self.script.arrived.notified();
                let requests = self.requests();
                if requests.len() >= count {
                    return requests;
                }
                notified.await;
            }
        })
        .await
    }
}

async fn handle(State(script): State<Script>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    script.requests.lock().unwrap().push(Recorded { path, headers, body });
    script.arrived.notify_waiters();
    let reply = script.replies.lock().unwrap().pop_front();
    let sse = |frames: Vec<String>, delay: Duration| {
        let stream = async_stream::stream! {
            for frame in frames {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                yield Ok::<_, std::convert::Infallible>(frame);
            }
        };
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap()
    };
    match reply {
        Some(Reply::OpenAi { chunks, delay }) => {
            let mut frames: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
            frames.push("data: [DONE]\n\n".into());
            sse(frames, delay)
        }
        Some(Reply::Anthropic { events, delay }) => {
            let frames = events.iter().map(|(n, d)| format!("event: {n}\ndata: {d}\n\n")).collect();
            sse(frames, delay)
        }
        Some(Reply::Status { status, headers, body }) => {
            let mut response =
                Response::builder().status(status).header("content-type", "application/json");
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body.to_string())).unwrap()
        }
        None => Response::builder()
            .status(500)
            .body(Body::from(r#"{"error":{"message":"no scripted reply left"}}"#))
            .unwrap(),
    }
}

// ---- OpenAI chunks -------------------------------------------------------------------------

pub fn oa_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

pub fn oa_usage(prompt: u64, completion: u64) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
}

/// A streamed text reply in `pieces`, with usage.
pub fn openai_text(pieces: &[&str]) -> Reply {
    let mut chunks = vec![oa_chunk(json!({"role": "assistant", "content": ""}), None)];
    chunks.extend(pieces.iter().map(|p| oa_chunk(json!({"content": p}), None)));
    chunks.push(oa_chunk(json!({}), Some("stop")));
    chunks.push(oa_usage(11, pieces.len() as u64));
    Reply::OpenAi { chunks, delay: Duration::ZERO }
}

/// One tool call of `read` on `path`, its arguments in two fragments.
pub fn openai_read(call_id: &str, path: &str) -> Reply {
    let args = format!("{{\"path\":\"{path}\"}}");
    let (a, b) = args.split_at(5);
    let call = |extra: Value| json!({"tool_calls": [extra]});
    Reply::OpenAi {
        chunks: vec![
            oa_chunk(
                call(
                    json!({"index": 0, "id": call_id, "type": "function", "function": {"name": "read", "arguments": ""}}),
                ),
                None,
            ),
            oa_chunk(call(json!({"index": 0, "function": {"arguments": a}})), None),
            oa_chunk(call(json!({"index": 0, "function": {"arguments": b}})), None),
            oa_chunk(json!({}), Some("tool_calls")),
            oa_usage(20, 8),
        ],
        delay: Duration::ZERO,
    }
}

pub fn status(status: u16, headers: &[(&str, &str)]) -> Reply {
    Reply::Status {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: json!({"error": {"message": format!("scripted {status}"), "type": "server_error"}}),
    }
}
