//! What the store keeps of a session: its row, the batch of writes each critical section
//! makes, the exact seq when it leaves memory, and clearing or deleting it.

use super::*;

impl State {
    /// The session's row as the store keeps it.
    pub(super) fn record(&self) -> SessionRecord {
        SessionRecord {
            key: self.key.to_string(),
            meta: self.meta.clone(),
            history_base: self.history_base,
            message_count: self.message_count,
            preview: self.preview.clone(),
        }
    }

    /// The writes of this critical section, as one batch: the session row first (when it
    /// changed), then the changes in order, then the running run's checkpoint (when due).
    /// Forgets writes not yet submitted (a session dropped before it was ever stored).
    pub fn discard_writes(&mut self) {
        self.dirty = false;
        self.ops.clear();
    }

    pub fn take_ops(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        if self.dirty && !self.deleted {
            ops.push(Op::PutSession(self.record()));
        }
        self.dirty = false;
        ops.append(&mut self.ops);
        if std::mem::take(&mut self.checkpoint_due)
            && let Some(run) = &self.run
        {
            ops.push(Op::Checkpoint {
                message_id: run.message_id.clone(),
                checkpoint: run.checkpoint(),
            });
            self.last_checkpoint = Instant::now();
        }
        ops
    }

    /// Removes the session, its history and its messages from the store (its seq stays).
    pub fn delete_stored(&mut self) {
        self.deleted = true;
        self.ops.push(Op::DeleteSession { key: self.key.to_string() });
    }

    /// Marks the row for rewriting (name, model, thinking level, activity changed).
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Writes the exact last seq (instead of the reserved block), when the session leaves
    /// memory, so the next load continues without a gap.
    pub fn save_seq(&mut self) {
        self.seq_floor = self.log.last_seq();
        self.ops.push(Op::Seq { key: self.key.to_string(), seq: self.seq_floor });
        self.dirty = true;
    }

    /// Clears the conversation in place under a new session id.
    pub fn clear(&mut self) {
        self.history_base += self.message_count;
        self.message_count = 0;
        self.preview = None;
        self.ops.push(Op::ClearHistory { key: self.key.to_string() });
        self.meta.compacted_upto = 0;
        self.meta.compaction_summary = None;
        self.dirty = true;
        self.meta.session_id = uuid::Uuid::new_v4().to_string();
        self.meta.usage = Usage::default();
        self.meta.updated_at = now_ms();
    }
}
