//! Session events (GATEWAY.md §3): the kinds, their flat camelCase JSON, and the SSE frame of a
//! logged event, encoded once and shared by every subscriber.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::run::RunStatus;
use super::session::{Snapshot, Usage};

/// What happened. Serialised flat: `{"type":"token","delta":"Hi","contentIndex":0,...}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum EventKind {
    /// First thing on every subscription (a per-subscriber note, never logged).
    Hello {
        snapshot: Box<Snapshot>,
    },
    /// This subscriber lost `missed` events (a per-subscriber note, never logged).
    Lagged {
        missed: u64,
    },
    SessionState {
        snapshot: Box<Snapshot>,
    },
    AgentStart {
        message_id: String,
    },
    TurnStart,
    TurnEnd,
    MessageStart {
        role: String,
    },
    Token {
        delta: String,
        content_index: u32,
    },
    Thinking {
        delta: String,
        content_index: u32,
    },
    ToolCallStart {
        tool_call_id: String,
        tool_name: String,
    },
    ToolCallDelta {
        tool_call_id: String,
        delta: String,
    },
    ToolCallEnd {
        tool_call_id: String,
        tool_name: String,
        args: Value,
    },
    ToolStart {
        tool_call_id: String,
        tool_name: String,
        args: Value,
    },
    ToolUpdate {
        tool_call_id: String,
        tool_name: String,
        partial_result: Value,
    },
    ToolComplete {
        tool_call_id: String,
        tool_name: String,
        result: Value,
        is_error: bool,
    },
    MessageComplete {
        text: String,
    },
    RetryStart {
        attempt: u32,
        max_attempts: u32,
        delay_ms: u64,
        error: String,
    },
    RetryEnd {
        attempt: u32,
        success: bool,
    },
    CompactionStart {
        reason: String,
    },
    CompactionEnd {
        summary_tokens: u64,
    },
    /// Made by [`EventKind::agent_end`]: `ok` and `error` are what the wire carries, `status`
    /// the same end typed, for the gateway's own readers (a resumed run stream's outcome).
    AgentEnd {
        message_id: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        usage: Usage,
        #[serde(skip)]
        status: RunStatus,
    },
    Error {
        error: String,
        code: String,
    },
    Aborted,
    SessionReset {
        session_id: String,
    },
    SessionDeleted {
        session_id: String,
    },
}

impl EventKind {
    /// The `agent_end` of run `message_id`, which ended with `status`.
    pub fn agent_end(message_id: impl Into<String>, status: RunStatus, usage: Usage) -> Self {
        EventKind::AgentEnd {
            message_id: message_id.into(),
            ok: status.is_completed(),
            error: status.error().map(str::to_string),
            usage,
            status,
        }
    }

    /// Per-subscriber notes are not logged and carry no SSE `id:`.
    pub fn is_note(&self) -> bool {
        matches!(self, EventKind::Hello { .. } | EventKind::Lagged { .. })
    }
}

/// One event of one session. Logged events are shared as `Arc<Event>` by the log and every
/// subscriber; their encodings are cached on first use.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(flatten)]
    pub kind: EventKind,
    pub session_key: Arc<str>,
    pub seq: u64,
    #[serde(skip)]
    sse: OnceLock<Bytes>,
    /// The protobuf encoding, made by the gRPC layer on first use (the domain does not know
    /// protobuf; it only keeps the bytes so every subscriber shares them).
    #[serde(skip)]
    proto: OnceLock<Bytes>,
}

impl Event {
    pub fn new(session_key: Arc<str>, seq: u64, kind: EventKind) -> Self {
        Self { kind, session_key, seq, sse: OnceLock::new(), proto: OnceLock::new() }
    }

    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The SSE frame: `id: <seq>` for logged events (notes have none), then `data: <json>`.
    pub fn sse_frame(&self) -> Bytes {
        self.sse
            .get_or_init(|| {
                let id = (!self.kind.is_note()).then_some(self.seq);
                sse_frame(id, None, &self.to_json())
            })
            .clone()
    }

    /// The protobuf encoding of this event, made by `encode` once and then shared.
    pub fn proto_frame(&self, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.proto.get_or_init(|| encode(self)).clone()
    }
}

/// One Server-Sent Events frame, the one encoder of every SSE stream: `id: <id>` (when the
/// frame can be resumed from), `event: <name>` (named streams), then `data: <data>` and the
/// blank line. `data` is one line (JSON, or the AI SDK's `[DONE]`).
pub fn sse_frame(id: Option<u64>, name: Option<&str>, data: &str) -> Bytes {
    let mut frame = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        frame.push_str("id: ");
        frame.push_str(&id.to_string());
        frame.push('\n');
    }
    if let Some(name) = name {
        frame.push_str("event: ");
        frame.push_str(name);
        frame.push('\n');
    }
    frame.push_str("data: ");
    frame.push_str(data);
    frame.push_str("\n\n");
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flat_camel_case() {
        let event =
            Event::new("k".into(), 42, EventKind::Token { delta: "Hi".into(), content_index: 0 });
        let value: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type":"token","sessionKey":"k","seq":42,"delta":"Hi","contentIndex":0})
        );
        assert_eq!(
            &event.sse_frame()[..],
            b"id: 42\ndata: {\"type\":\"token\",\"delta\":\"Hi\",\"contentIndex\":0,\"sessionKey\":\"k\",\"seq\":42}\n\n"
        );
        let lagged = Event::new("k".into(), 7, EventKind::Lagged { missed: 3 });
        assert!(lagged.sse_frame().starts_with(b"data: {\"type\":\"lagged\""));
    }
}
