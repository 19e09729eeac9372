//! What callers read of a session: its snapshot, the model's context, where a history page
//! lies, the state view's in-flight part, the queue listing, and whether it may leave memory.
//! History itself is read from the store by the session manager (`session/reads.rs`).

use super::*;

impl State {
    /// What the model sees: the compaction summary (if any) as a first user message, then the
    /// history after the compaction point (the running run's context).
    pub fn context(&self) -> Vec<HistoryMessage> {
        let tail = self.run.as_ref().map_or(&[][..], |run| &run.context);
        let mut messages = Vec::with_capacity(tail.len() + 1);
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
        messages.extend(tail.iter().cloned());
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
        let counts = SnapshotCounts {
            message_count: self.message_count as usize,
            queue_depth: self.queue.len(),
            processing: self.processing(),
            loaded: true,
            last_message_preview: self.preview.clone(),
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

    /// Where the newest `limit` messages before `cursor` (a position in the whole history)
    /// lie, and the cursor of the page before them.
    pub fn history_span(&self, limit: Option<usize>, cursor: Option<u64>) -> HistorySpan {
        let len = self.message_count;
        let end = cursor.map_or(len, |c| c.saturating_sub(self.history_base).min(len));
        let start = limit.map_or(0, |limit| end.saturating_sub(limit as u64));
        let next_cursor = (start > 0).then(|| (self.history_base + start).to_string());
        HistorySpan { from: self.history_base + start, to: self.history_base + end, next_cursor }
    }

    /// The state view without its history: the snapshot and the in-flight draft and tool
    /// results, plus where history lies (the caller reads it and puts it first).
    pub fn view(&self) -> (SessionStateView, HistorySpan) {
        let mut messages = Vec::new();
        if let Some(run) = &self.run {
            messages.extend(run.draft.as_ref().map(Draft::view));
            for (call_id, message) in &run.pending_tools {
                let mut message = message.clone();
                message.id = format!("draft-tool:{}:{call_id}", self.shown);
                messages.push(message);
            }
        }
        let span = self.history_span(None, None);
        (SessionStateView { session: self.snapshot(), messages }, span)
    }
}

/// A range of history positions to read from the store, and the cursor of what comes before.
pub(crate) struct HistorySpan {
    pub from: u64,
    pub to: u64,
    pub next_cursor: Option<String>,
}
