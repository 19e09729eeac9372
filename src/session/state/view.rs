//! What callers read of a session: its snapshot, the model's context, a history page, the
//! state view with the draft, the queue listing, and whether it may leave memory.

use super::*;

impl State {
    /// What the model sees: the compaction summary (if any) as a first user message, then the
    /// history after the compaction point.
    pub fn context(&self) -> Vec<HistoryMessage> {
        let from = self.meta.compacted_upto.saturating_sub(self.history_base) as usize;
        let mut messages = Vec::with_capacity(self.history.len() + 1);
        if let Some(summary) = &self.meta.compaction_summary {
            messages.push(HistoryMessage {
                id: COMPACTION_ID.into(),
                role: Role::User,
                parts: vec![Part::Text {
                    text: format!("[Summary of the earlier conversation]\n{summary}"),
                }],
                timestamp: self.meta.created_at,
            });
        }
        messages.extend(self.history.iter().skip(from.min(self.history.len())).cloned());
        messages
    }

    /// Nothing to do and nobody listening: the session may leave memory (it stays stored).
    pub fn evictable(&self) -> bool {
        !self.processing()
            && !self.driver_running
            && self.queue.is_empty()
            && !self.closing
            && self.log.subscribers() == 0
    }

    pub fn processing(&self) -> bool {
        self.run.is_some()
    }

    pub fn snapshot(&self) -> Snapshot {
        let preview = self
            .history
            .iter()
            .rev()
            .filter(|m| m.role != Role::ToolResult)
            .find_map(|m| m.first_text())
            .map(|text| text.chars().take(120).collect());
        let counts = SnapshotCounts {
            message_count: self.history.len(),
            queue_depth: self.queue.len(),
            processing: self.processing(),
            loaded: true,
            last_message_preview: preview,
        };
        Snapshot::of(&self.shown, &self.meta, counts)
    }

    /// The waiting messages, next first.
    pub fn queue_view(&self) -> QueueView {
        let queue = self
            .queue
            .iter()
            .enumerate()
            .map(|(index, queued)| QueuedMessage {
                message_id: queued.message_id.clone(),
                position: index + 1,
                text_preview: queued.text.chars().take(120).collect(),
                source: queued.source,
                enqueued_at: queued.enqueued_at,
            })
            .collect();
        QueueView { queue, processing: self.processing() }
    }

    /// Newest `limit` messages before `cursor` (a position in the whole history).
    pub fn history_page(&self, limit: Option<usize>, cursor: Option<u64>) -> Page<HistoryMessage> {
        let len = self.history.len() as u64;
        let end = cursor.map_or(len, |c| c.saturating_sub(self.history_base).min(len)) as usize;
        let start = limit.map_or(0, |limit| end.saturating_sub(limit));
        let next_cursor = (start > 0).then(|| (self.history_base + start as u64).to_string());
        Page { items: self.history[start..end].to_vec(), next_cursor }
    }

    /// History plus the in-flight draft and the tool results not yet in history.
    pub fn view(&self) -> SessionStateView {
        let mut messages = self.history.clone();
        if let Some(run) = &self.run {
            messages.extend(run.draft.as_ref().map(Draft::view));
            for (call_id, message) in &run.pending_tools {
                let mut message = message.clone();
                message.id = format!("draft-tool:{}:{call_id}", self.shown);
                messages.push(message);
            }
        }
        SessionStateView { session: self.snapshot(), messages }
    }
}
