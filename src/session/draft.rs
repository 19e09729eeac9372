//! The assistant message being streamed: built from token, thinking and tool-call events,
//! shown by `state` as `draft:<key>:<ts>`, and moved into history when the message ends.

use serde_json::Value;

use crate::domain::EventKind;
use crate::domain::{HistoryMessage, Part, Role, ToolState};

/// The assistant message being streamed, as `state` shows it.
pub(crate) struct Draft {
    id: String,
    timestamp: i64,
    parts: Vec<Part>,
    /// (content index, is reasoning) → position in `parts`.
    blocks: Vec<(u32, bool, usize)>,
}

impl Draft {
    pub fn new(key: &str, now: i64) -> Self {
        Self {
            id: format!("draft:{key}:{now}"),
            timestamp: now,
            parts: Vec::new(),
            blocks: Vec::new(),
        }
    }

    fn append(&mut self, content_index: u32, reasoning: bool, delta: &str) {
        let found = self.blocks.iter().find(|b| b.0 == content_index && b.1 == reasoning);
        let position = match found {
            Some(block) => block.2,
            None => {
                self.parts.push(if reasoning {
                    Part::Reasoning { text: String::new() }
                } else {
                    Part::Text { text: String::new() }
                });
                self.blocks.push((content_index, reasoning, self.parts.len() - 1));
                self.parts.len() - 1
            }
        };
        if let Part::Text { text } | Part::Reasoning { text } = &mut self.parts[position] {
            text.push_str(delta);
        }
    }

    pub fn apply(&mut self, event: &EventKind) {
        match event {
            EventKind::Token { delta, content_index } => self.append(*content_index, false, delta),
            EventKind::Thinking { delta, content_index } => {
                self.append(*content_index, true, delta)
            }
            EventKind::ToolCallStart { tool_call_id, tool_name } => {
                self.parts.push(Part::ToolInvocation {
                    tool_call_id: tool_call_id.clone(),
                    tool_name: tool_name.clone(),
                    args: Value::Null,
                    state: ToolState::Call,
                    result: None,
                })
            }
            EventKind::ToolCallEnd { tool_call_id: id, args: new_args, .. } => {
                for part in &mut self.parts {
                    if let Part::ToolInvocation { tool_call_id, args, .. } = part
                        && tool_call_id == id
                    {
                        *args = new_args.clone();
                    }
                }
            }
            _ => {}
        }
    }

    pub fn view(&self) -> HistoryMessage {
        HistoryMessage {
            id: self.id.clone(),
            role: Role::Assistant,
            parts: self.parts.clone(),
            timestamp: self.timestamp,
        }
    }
}
