//! A session loaded from the store (GATEWAY.md §2 crash semantics): queued messages go back in
//! the queue, and runs a crash left started are closed as interrupted, never re-run. Only the
//! session's row and unfinished messages are read, plus, after a crash, the tail of history
//! from the interrupted run's message: never the whole history.

use serde_json::Value;

use super::{EventLog, Queued, State};
use crate::agent::tools::ToolOutput;
use crate::domain::EventKind;
use crate::domain::*;
use crate::store::{MessageRecord, MessageState, Op};

use super::INTERRUPTED_BY_RESTART;

impl State {
    /// A session loaded from the store. Queued messages go back in the queue (without a
    /// waiting caller); runs that had started are closed as interrupted, never re-run.
    pub fn restore(stored: crate::store::StoredSession, log: EventLog) -> Self {
        let record = stored.record;
        let mut state = State::new(record.key.as_str().into(), record.meta.model.clone(), log);
        state.meta = record.meta;
        state.history_base = record.history_base;
        state.message_count = record.message_count;
        state.preview = record.preview;
        state.dirty = false;
        let (started, queued): (Vec<_>, Vec<_>) =
            stored.messages.into_iter().partition(|m| m.state == MessageState::Started);
        state.queue = queued
            .into_iter()
            .map(|m| Queued {
                message_id: m.message_id,
                text: m.text,
                images: m.images,
                source: m.source,
                enqueued_at: m.created_at,
                waiters: Vec::new(),
                permit: None,
            })
            .collect();
        state.restore_idempotent(stored.idempotency);
        state.close_interrupted(started, stored.open_tail);
        state
    }

    /// Crash semantics (GATEWAY.md §2): a started run keeps its partial text, its open tool
    /// calls get `interrupted by restart` error results, an `error` event says so, and its
    /// message (and any steering text that joined it) is marked done. `seen` is history from
    /// the first such run's message on; what is committed here joins it.
    fn close_interrupted(&mut self, started: Vec<MessageRecord>, mut seen: Vec<HistoryMessage>) {
        let (runs, steering): (Vec<_>, Vec<_>) =
            started.into_iter().partition(|m| m.joined.is_none());
        self.closed_at_restore = runs.len();
        for run in &runs {
            let user = |m: &MessageRecord| Queued {
                message_id: m.message_id.clone(),
                text: m.text.clone(),
                images: m.images.clone(),
                source: m.source,
                enqueued_at: m.created_at,
                waiters: Vec::new(),
                permit: None,
            };
            if !seen.iter().any(|h| h.id == run.message_id) {
                self.commit_seen(&mut seen, user(run).user_message());
            }
            let start = seen.iter().rposition(|h| h.id == run.message_id).unwrap_or(0);
            for steer in steering.iter().filter(|s| s.joined.as_ref() == Some(&run.message_id)) {
                if !seen.iter().any(|h| h.id == steer.message_id) {
                    self.commit_seen(&mut seen, user(steer).user_message());
                }
            }
            let status = RunStatus::Interrupted { reason: INTERRUPTED_BY_RESTART.into() };
            let checkpoint = run.checkpoint.clone().unwrap_or_default();
            let mut parts = checkpoint.draft.map(|d| d.parts).unwrap_or_default();
            parts.retain(
                |p| !matches!(p, Part::Text { text } | Part::Reasoning { text } if text.is_empty()),
            );
            parts.push(Part::Error {
                code: status.code().unwrap_or_default().into(),
                message: INTERRUPTED_BY_RESTART.into(),
            });
            let closing = HistoryMessage {
                id: uuid::Uuid::new_v4().to_string(),
                role: Role::Assistant,
                parts,
                timestamp: now_ms(),
            };
            self.commit_seen(&mut seen, closing);
            for result in checkpoint.pending_tools {
                self.commit_seen(&mut seen, result);
            }
            for (id, name, args) in open_calls(&seen[start..]) {
                let message = HistoryMessage {
                    id: uuid::Uuid::new_v4().to_string(),
                    role: Role::ToolResult,
                    parts: vec![Part::ToolInvocation {
                        tool_call_id: id,
                        tool_name: name,
                        args,
                        state: ToolState::Error,
                        result: Some(ToolOutput::error(INTERRUPTED_BY_RESTART).result),
                    }],
                    timestamp: now_ms(),
                };
                self.commit_seen(&mut seen, message);
            }
            self.emit(status.end_event().expect("an interruption has one"));
            self.emit(EventKind::agent_end(run.message_id.clone(), status, Usage::default()));
        }
        for message in runs.iter().chain(&steering) {
            let error = Some(INTERRUPTED_BY_RESTART.to_string());
            self.ops.push(Op::Finish { message_id: message.message_id.clone(), error });
            let status = RunStatus::Interrupted { reason: INTERRUPTED_BY_RESTART.into() };
            let outcome = RunOutcome::of_run(
                status,
                String::new(),
                self.shown.to_string(),
                message.message_id.clone(),
            );
            self.record_outcome(&outcome);
        }
    }
}

impl State {
    fn commit_seen(&mut self, seen: &mut Vec<HistoryMessage>, message: HistoryMessage) {
        seen.push(message.clone());
        self.commit(message);
    }
}

/// Tool calls in these messages that have no result: (id, name, args).
fn open_calls(messages: &[HistoryMessage]) -> Vec<(String, String, Value)> {
    let answered = |id: &str| {
        messages.iter().filter(|m| m.role == Role::ToolResult).any(|m| {
            m.parts.iter().any(
                |p| matches!(p, Part::ToolInvocation { tool_call_id, .. } if tool_call_id == id),
            )
        })
    };
    messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.parts.iter())
        .filter_map(|part| match part {
            Part::ToolInvocation { tool_call_id, tool_name, args, .. }
                if !answered(tool_call_id) =>
            {
                Some((tool_call_id.clone(), tool_name.clone(), args.clone()))
            }
            _ => None,
        })
        .collect()
}
