//! Events applied to the session: each changes the draft, the pending tool results or history
//! and is logged in the same step, unless it is held back until a run's end is durable.

use super::*;

impl State {
    /// Replaces, for the model, everything before the message `first_kept` by `summary`.
    /// The run's context lets the summarised messages go.
    pub fn compact(&mut self, first_kept: &str, summary: String, summary_tokens: u64) {
        if let Some(run) = self.run.as_mut()
            && let Some(index) = run.context.iter().position(|m| m.id == first_kept)
        {
            run.context.drain(..index);
            run.context_from += index as u64;
            self.meta.compacted_upto = run.context_from;
            self.meta.compaction_summary = Some(summary);
            self.dirty = true;
        }
        self.emit(EventKind::CompactionEnd { summary_tokens });
    }

    /// Applies an event to the session's state and logs it, in one step.
    pub fn emit(&mut self, kind: EventKind) {
        let now = now_ms();
        self.meta.last_active_at = now;
        if let Some(run) = self.run.as_mut() {
            self.checkpoint_due |= match &kind {
                EventKind::Token { .. }
                | EventKind::Thinking { .. }
                | EventKind::ToolCallDelta { .. }
                | EventKind::ToolUpdate { .. } => {
                    self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
                }
                EventKind::ToolCallEnd { .. }
                | EventKind::ToolComplete { .. }
                | EventKind::TurnEnd
                | EventKind::MessageComplete { .. } => true,
                _ => false,
            };
            match &kind {
                EventKind::MessageStart { role } if role == Role::Assistant.as_str() => {
                    run.draft = Some(Draft::new(&self.shown, now));
                }
                EventKind::Token { .. }
                | EventKind::Thinking { .. }
                | EventKind::ToolCallStart { .. }
                | EventKind::ToolCallEnd { .. } => {
                    if let Some(draft) = run.draft.as_mut() {
                        draft.apply(&kind);
                    }
                }
                EventKind::ToolComplete { tool_call_id, tool_name, result, is_error } => {
                    let args = find_call_args(&run.context, tool_call_id);
                    let message = HistoryMessage {
                        id: uuid::Uuid::new_v4().to_string(),
                        role: Role::ToolResult,
                        parts: vec![Part::ToolInvocation {
                            tool_call_id: tool_call_id.clone(),
                            tool_name: tool_name.clone(),
                            args,
                            state: if *is_error { ToolState::Error } else { ToolState::Result },
                            result: Some(result.clone()),
                        }],
                        timestamp: now,
                    };
                    run.pending_tools.push((tool_call_id.clone(), message));
                }
                EventKind::TurnEnd => {
                    let pending = std::mem::take(&mut run.pending_tools);
                    for (_, message) in pending {
                        self.commit(message);
                    }
                }
                _ => {}
            }
        }
        if let Some(held) = self.held.as_mut() {
            // A new turn or a tool call means the run goes on: what was held was not its end.
            if !matches!(kind, EventKind::TurnStart | EventKind::ToolStart { .. }) {
                held.push(kind);
                return;
            }
            self.release_held();
        }
        self.log_event(kind);
    }

    pub(super) fn log_event(&mut self, kind: EventKind) {
        self.log.push(kind);
        if self.log.last_seq() > self.seq_floor {
            self.seq_floor = self.log.last_seq() + SEQ_BLOCK;
            self.ops.push(Op::Seq { key: self.key.to_string(), seq: self.seq_floor });
        }
    }

    /// Logs the held events, in the order they were emitted.
    pub(super) fn release_held(&mut self) {
        for kind in self.held.take().unwrap_or_default() {
            self.log_event(kind);
        }
    }

    /// From here until the run's end is durable (or the run goes on), events are held back.
    pub(super) fn hold_events(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    pub fn emit_state(&mut self) {
        let snapshot = Box::new(self.snapshot());
        self.emit(EventKind::SessionState { snapshot });
    }

    /// Appends a message to history: to the store in this critical section's batch, and to
    /// the running run's context (which is the tail of history while a run holds it).
    pub(super) fn commit(&mut self, message: HistoryMessage) {
        self.meta.updated_at = now_ms();
        self.dirty = true;
        let position = self.history_base + self.message_count;
        self.message_count += 1;
        if message.role != Role::ToolResult
            && let Some(text) = message.first_text()
        {
            self.preview = Some(text.chars().take(PREVIEW_CHARS).collect());
        }
        let key = self.key.to_string();
        match self.run.as_mut() {
            Some(run) => {
                self.ops.push(Op::AppendHistory { key, position, message: message.clone() });
                run.context.push(message);
            }
            None => self.ops.push(Op::AppendHistory { key, position, message }),
        }
    }
}

/// The arguments of a tool call, from the assistant message that made it.
fn find_call_args(history: &[HistoryMessage], id: &str) -> Value {
    history
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.parts.iter())
        .find_map(|part| match part {
            Part::ToolInvocation { tool_call_id, args, .. } if tool_call_id == id => {
                Some(args.clone())
            }
            _ => None,
        })
        .unwrap_or(Value::Null)
}
