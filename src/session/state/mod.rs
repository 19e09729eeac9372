//! One session: all of its state behind one lock, and the operations that change it.
//!
//! The rule that keeps every view consistent: state changes and the event that announces them
//! happen in one critical section ([`State::emit`] applies an event to the draft, the pending
//! tool results and history, then logs it). A subscriber that saw event `n` and then reads
//! `state` sees at least what event `n` described. The lock is never held across an `.await`.

mod apply;
mod idempotency;
mod persist;
mod queue;
mod restore;
mod run;
mod view;

use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{broadcast, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::draft::Draft;
use super::log::EventLog;
use crate::domain::*;
use crate::domain::{Event, EventKind};
use crate::domain::{RunEnd, RunStatus};
use crate::error::{ErrorCode, GatewayError};
use crate::store::{Checkpoint, MessageRecord, MessageState, Op, SessionRecord, Store, Ticket};
pub(crate) use idempotency::Attached;
pub(crate) use queue::{Admitted, Queued};
pub(crate) use run::ActiveRun;

/// Seqs reserved in the store at a time: a crash can skip at most this many, never reuse one.
const SEQ_BLOCK: u64 = 1000;
/// How often a streaming run's draft is written to the store, so a crash keeps partial text.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Characters of the newest message a snapshot previews.
const PREVIEW_CHARS: usize = 120;
/// The id of the compaction summary in a model's context (it is not a history message).
pub const COMPACTION_ID: &str = "compaction-summary";

/// The error given to runs a restart cut short.
pub const INTERRUPTED_BY_RESTART: &str = "interrupted by restart";

pub(crate) struct Session {
    /// The stored key (registry, store); callers know it by `State::shown`.
    pub key: Arc<str>,
    pub shown: Arc<str>,
    pub primary: bool,
    state: Mutex<State>,
    store: Arc<dyn Store>,
    /// Held by the run driver for the whole of each run. Reset and delete take it after
    /// cancelling, to wait until the aborted run has wound down.
    pub run_gate: tokio::sync::Mutex<()>,
    /// Mirrors `State::closing` for callers that must wait until a reset or delete settles.
    pub closing: watch::Sender<bool>,
}

pub(crate) struct State {
    /// The key the store knows the session by.
    pub key: Arc<str>,
    /// The key its callers know it by (see [`super::keys`]): what events, outcomes and
    /// snapshots say.
    pub shown: Arc<str>,
    /// Everything the session's row stores and its snapshot shows.
    pub meta: SessionMeta,
    /// History itself lives in the store (issue 24: a long-lived session must not cost RAM in
    /// proportion to its history). What stays here is where it starts and how long it is:
    /// positions `history_base..history_base + message_count` hold it, so cursors stay valid
    /// as it grows, and a page or a run's context is one range read.
    pub history_base: u64,
    pub message_count: u64,
    /// The newest text of a message that is not a tool result (the snapshot's preview),
    /// kept as messages are committed.
    pub preview: Option<String>,
    pub queue: VecDeque<Queued>,
    pub run: Option<ActiveRun>,
    /// A driver task is running or about to run the queue.
    pub driver_running: bool,
    pub log: EventLog,
    /// A reset or delete is in progress.
    pub closing: bool,
    /// The session was removed; callers holding it must look the key up again.
    pub removed: bool,
    /// Deleted from the store: nothing of it is written any more.
    deleted: bool,
    /// The system prompt this session runs with, read at its first model call and again
    /// after a reload.
    pub system_prompt: Option<String>,
    /// Runs a crash left started, closed as interrupted when the session was loaded.
    pub closed_at_restore: usize,
    /// Unfinished messages accepted with an idempotency key: `(scope, key)` → message id,
    /// and back.
    idempotent: HashMap<(String, String), String>,
    idempotent_of: HashMap<String, (String, String)>,
    /// The highest seq reserved in the store; the log may count up to it without a write.
    seq_floor: u64,
    /// Metadata changed: the next flush rewrites the session's row.
    dirty: bool,
    /// Store writes of the current critical section, flushed as one batch.
    ops: Vec<Op>,
    /// Events held back from the log (see [`State::emit`]): from the moment a run may be
    /// ending until the batch that records its end is durable, so nobody hears of an end that
    /// a crash could still take back.
    held: Option<Vec<EventKind>>,
    checkpoint_due: bool,
    last_checkpoint: Instant,
}

/// The lock on a session's state. Everything the critical section changed goes to the store
/// as one batch when the guard drops (or earlier, with [`SessionGuard::commit`]), so the
/// store sees each critical section whole and in lock order.
pub(crate) struct SessionGuard<'a> {
    state: MutexGuard<'a, State>,
    store: &'a dyn Store,
}

impl SessionGuard<'_> {
    /// Submits the writes so far; the ticket says when they are durable.
    pub fn commit(&mut self) -> Ticket {
        let ops = self.state.take_ops();
        self.store.write(ops)
    }
}

impl Deref for SessionGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for SessionGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let ops = self.state.take_ops();
        if !ops.is_empty() {
            // Nobody waits on this one; a failure is logged by the store.
            drop(self.store.write(ops));
        }
    }
}

impl Session {
    pub fn new(key: Arc<str>, primary: bool, state: State, store: Arc<dyn Store>) -> Self {
        Self {
            shown: state.shown.clone(),
            key,
            primary,
            state: Mutex::new(state),
            store,
            run_gate: tokio::sync::Mutex::new(()),
            closing: watch::Sender::new(false),
        }
    }

    pub fn lock(&self) -> SessionGuard<'_> {
        // A panic while holding the lock must not take every later call down with it.
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        SessionGuard { state, store: &*self.store }
    }

    /// Marks the session as closing (under the lock) so new callers wait for it to settle.
    pub fn set_closing(&self, state: &mut State, closing: bool) {
        state.closing = closing;
        self.closing.send_replace(closing);
    }
}

impl State {
    /// A new session; its row is written with the next flush.
    pub fn new(key: Arc<str>, model: ModelRef, log: EventLog) -> Self {
        let seq_floor = log.last_seq();
        Self {
            shown: super::keys::shown(&key).into(),
            key,
            meta: SessionMeta::new(model, crate::memory::DEFAULT_NAMESPACE),
            history_base: 0,
            message_count: 0,
            preview: None,
            queue: VecDeque::new(),
            run: None,
            driver_running: false,
            log,
            closing: false,
            removed: false,
            deleted: false,
            system_prompt: None,
            closed_at_restore: 0,
            idempotent: HashMap::new(),
            idempotent_of: HashMap::new(),
            seq_floor,
            dirty: true,
            ops: Vec::new(),
            held: None,
            checkpoint_due: false,
            last_checkpoint: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests;
