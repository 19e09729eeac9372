//! One session: all of its state behind one lock, and the operations that change it.
//!
//! The rule that keeps every view consistent: state changes and the event that announces them
//! happen in one critical section ([`State::emit`] applies an event to the draft, the pending
//! tool results and history, then logs it). A subscriber that saw event `n` and then reads
//! `state` sees at least what event `n` described. The lock is never held across an `.await`.

mod idempotency;
mod restore;

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

/// Seqs reserved in the store at a time: a crash can skip at most this many, never reuse one.
const SEQ_BLOCK: u64 = 1000;
/// How often a streaming run's draft is written to the store, so a crash keeps partial text.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
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

/// A message waiting in the queue (or steering into the running run).
pub(crate) struct Queued {
    pub message_id: String,
    pub text: String,
    pub images: Vec<Image>,
    pub source: Source,
    pub enqueued_at: i64,
    /// Its callers: the one that sent it, and any repeat with the same idempotency key.
    pub waiters: Vec<oneshot::Sender<RunOutcome>>,
    /// Counts against the sending token's `max_concurrent_runs` until the message is done
    /// (it moves into the run when the message starts).
    pub permit: Option<crate::domain::RunPermit>,
}

impl Queued {
    fn record(&self, key: &str, joined: Option<String>) -> MessageRecord {
        MessageRecord {
            message_id: self.message_id.clone(),
            session_key: key.to_string(),
            state: if joined.is_some() { MessageState::Started } else { MessageState::Queued },
            joined,
            text: self.text.clone(),
            images: self.images.clone(),
            source: self.source,
            created_at: self.enqueued_at,
            checkpoint: None,
        }
    }

    pub fn user_message(&self) -> HistoryMessage {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(Part::Text { text: self.text.clone() });
        }
        for image in &self.images {
            parts.push(Part::Media {
                url: image.data_url(),
                mime_type: Some(image.mime_type.clone()),
            });
        }
        HistoryMessage { id: self.message_id.clone(), role: Role::User, parts, timestamp: now_ms() }
    }

    /// The outcome of a message that is not run.
    fn rejected(&self, session_key: &str, error: &str) -> RunOutcome {
        RunOutcome {
            ok: false,
            response: String::new(),
            error: Some(error.to_string()),
            session_key: session_key.to_string(),
            message_id: self.message_id.clone(),
        }
    }

    /// Answers the waiting callers without running the message.
    pub fn reject(self, session_key: &str, error: &str) {
        let outcome = self.rejected(session_key, error);
        for waiter in self.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// The run in progress.
pub(crate) struct ActiveRun {
    pub message_id: String,
    pub cancel: CancellationToken,
    /// Steering messages waiting for the next model call.
    pub steering: Vec<Queued>,
    /// Set when the run has decided to end: steers after that queue instead of joining.
    pub closing: bool,
    /// Callers that get this run's outcome, each under its own message id: the message's
    /// own caller, plus steering callers.
    pub waiters: Vec<(String, oneshot::Sender<RunOutcome>)>,
    pub draft: Option<Draft>,
    /// Tool results of the current turn, moved into history at `turn_end`.
    pub pending_tools: Vec<(String, HistoryMessage)>,
    /// Set when shutdown or the run timeout cut the run short (rather than an abort):
    /// `(code, message)`.
    pub interrupted: Option<(String, String)>,
    /// The message's place in its token's `max_concurrent_runs`, freed as the run ends.
    pub permit: Option<crate::domain::RunPermit>,
    /// The store has the run's start: only then may steering text join it (a run whose start
    /// cannot be stored goes back to the queue, alone).
    pub started: bool,
    /// The message's acceptance was never stored (its caller got the store's error): if the
    /// start fails too, the message is dropped rather than queued again.
    pub withdrawn: bool,
}

impl ActiveRun {
    pub fn new(message_id: String, cancel: CancellationToken) -> Self {
        Self {
            message_id,
            cancel,
            steering: Vec::new(),
            closing: false,
            waiters: Vec::new(),
            draft: None,
            pending_tools: Vec::new(),
            interrupted: None,
            permit: None,
            started: false,
            withdrawn: false,
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            draft: self.draft.as_ref().map(Draft::view),
            pending_tools: self.pending_tools.iter().map(|(_, m)| m.clone()).collect(),
        }
    }
}

pub(crate) struct State {
    /// The key the store knows the session by.
    pub key: Arc<str>,
    /// The key its callers know it by (see [`super::keys`]): what events, outcomes and
    /// snapshots say.
    pub shown: Arc<str>,
    pub session_id: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_active_at: i64,
    pub model: ModelRef,
    pub thinking: ThinkingLevel,
    pub history: Vec<HistoryMessage>,
    /// Position of `history[0]` in the session's whole history (cursors stay valid as it grows).
    pub history_base: u64,
    pub queue: VecDeque<Queued>,
    pub run: Option<ActiveRun>,
    /// A driver task is running or about to run the queue.
    pub driver_running: bool,
    pub usage: Usage,
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
    /// Context compaction: for the model, history before this position is replaced by the
    /// summary (history itself keeps everything).
    pub compacted_upto: u64,
    pub compaction_summary: Option<String>,
    /// Where this session's memory tools and episodes belong.
    pub memory_namespace: String,
    /// The name of the token that created the session (`None`: no named token).
    pub owner: Option<String>,
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

/// The callers of a run that has ended, answered once its end is durable.
#[derive(Default)]
pub(crate) struct RunReport {
    outcomes: Vec<(oneshot::Sender<RunOutcome>, RunOutcome)>,
    permit: Option<crate::domain::RunPermit>,
    usage: Usage,
}

/// What a sending call gets from the session.
pub(crate) struct Admitted {
    pub accepted: Accepted,
    pub outcome: oneshot::Receiver<RunOutcome>,
    /// The message id of the run whose events belong to this caller.
    pub run_message_id: String,
    pub live: Option<broadcast::Receiver<Arc<Event>>>,
    /// The queue has no driver yet: the caller must start one.
    pub start_driver: bool,
    /// The caller joins a run already going: its events stream from now.
    pub joined: bool,
}

impl Admitted {
    /// A repeat of a message that is done: its outcome at once, nothing to stream.
    pub fn finished(session_key: &str, outcome: RunOutcome) -> Self {
        let (tx, rx) = oneshot::channel();
        let message_id = outcome.message_id.clone();
        let _ = tx.send(outcome);
        let accepted = Accepted {
            session_key: session_key.to_string(),
            message_id: message_id.clone(),
            mode: SendMode::Queued,
            repeat: true,
        };
        Self {
            accepted,
            outcome: rx,
            run_message_id: message_id,
            live: None,
            start_driver: false,
            joined: false,
        }
    }

    /// A repeat of a message still in flight: the same outcome, the run's events from now.
    pub fn repeat(session_key: &str, message_id: String, attached: Attached) -> Self {
        let mode =
            if attached.run_message_id == message_id { SendMode::Queued } else { SendMode::Steer };
        let accepted =
            Accepted { session_key: session_key.to_string(), message_id, mode, repeat: true };
        Self {
            accepted,
            outcome: attached.outcome,
            run_message_id: attached.run_message_id,
            live: attached.live,
            start_driver: false,
            joined: attached.running,
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
        let now = now_ms();
        let seq_floor = log.last_seq();
        Self {
            shown: super::keys::shown(&key).into(),
            key,
            session_id: uuid::Uuid::new_v4().to_string(),
            name: None,
            created_at: now,
            updated_at: now,
            last_active_at: now,
            model,
            thinking: ThinkingLevel::default(),
            history: Vec::new(),
            history_base: 0,
            queue: VecDeque::new(),
            run: None,
            driver_running: false,
            usage: Usage::default(),
            log,
            closing: false,
            removed: false,
            deleted: false,
            system_prompt: None,
            compacted_upto: 0,
            compaction_summary: None,
            memory_namespace: crate::memory::DEFAULT_NAMESPACE.to_string(),
            owner: None,
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

    /// The session's row as the store keeps it.
    fn record(&self) -> SessionRecord {
        let snapshot = self.snapshot();
        SessionRecord {
            key: self.key.to_string(),
            session_id: self.session_id.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_active_at: self.last_active_at,
            model: self.model.clone(),
            thinking: self.thinking,
            usage: self.usage,
            history_base: self.history_base,
            message_count: self.history.len() as u64,
            preview: snapshot.last_message_preview,
            compacted_upto: self.compacted_upto,
            compaction_summary: self.compaction_summary.clone(),
            memory_namespace: self.memory_namespace.clone(),
            owner: self.owner.clone(),
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

    /// What the model sees: the compaction summary (if any) as a first user message, then the
    /// history after the compaction point.
    pub fn context(&self) -> Vec<HistoryMessage> {
        let from = self.compacted_upto.saturating_sub(self.history_base) as usize;
        let mut messages = Vec::with_capacity(self.history.len() + 1);
        if let Some(summary) = &self.compaction_summary {
            messages.push(HistoryMessage {
                id: COMPACTION_ID.into(),
                role: Role::User,
                parts: vec![Part::Text {
                    text: format!("[Summary of the earlier conversation]\n{summary}"),
                }],
                timestamp: self.created_at,
            });
        }
        messages.extend(self.history.iter().skip(from.min(self.history.len())).cloned());
        messages
    }

    /// Replaces, for the model, everything before the message `first_kept` by `summary`.
    pub fn compact(&mut self, first_kept: &str, summary: String, summary_tokens: u64) {
        if let Some(index) = self.history.iter().position(|m| m.id == first_kept) {
            self.compacted_upto = self.history_base + index as u64;
            self.compaction_summary = Some(summary);
            self.dirty = true;
        }
        self.emit(EventKind::CompactionEnd { summary_tokens });
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
        Snapshot {
            session_key: self.shown.to_string(),
            session_id: self.session_id.clone(),
            name: self.name.clone(),
            message_count: self.history.len(),
            queue_depth: self.queue.len(),
            processing: self.processing(),
            loaded: true,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_active_at: self.last_active_at,
            last_message_preview: preview,
            model_provider: Some(self.model.provider.clone()),
            model_id: Some(self.model.model_id.clone()),
            thinking_level: self.thinking,
            usage: self.usage,
        }
    }

    /// Applies an event to the session's state and logs it, in one step.
    pub fn emit(&mut self, kind: EventKind) {
        let now = now_ms();
        self.last_active_at = now;
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
                    let args = find_call_args(&self.history, tool_call_id);
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

    fn log_event(&mut self, kind: EventKind) {
        self.log.push(kind);
        if self.log.last_seq() > self.seq_floor {
            self.seq_floor = self.log.last_seq() + SEQ_BLOCK;
            self.ops.push(Op::Seq { key: self.key.to_string(), seq: self.seq_floor });
        }
    }

    /// Logs the held events, in the order they were emitted.
    fn release_held(&mut self) {
        for kind in self.held.take().unwrap_or_default() {
            self.log_event(kind);
        }
    }

    /// From here until the run's end is durable (or the run goes on), events are held back.
    fn hold_events(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    pub fn emit_state(&mut self) {
        let snapshot = Box::new(self.snapshot());
        self.emit(EventKind::SessionState { snapshot });
    }

    fn commit(&mut self, message: HistoryMessage) {
        self.updated_at = now_ms();
        self.dirty = true;
        let position = self.history_base + self.history.len() as u64;
        let key = self.key.to_string();
        self.ops.push(Op::AppendHistory { key, position, message: message.clone() });
        self.history.push(message);
    }

    /// Puts a user message into history and announces it.
    pub fn commit_user(&mut self, queued: &Queued) {
        self.commit(queued.user_message());
        self.emit(EventKind::MessageStart { role: Role::User.as_str().into() });
    }

    /// Begins the run of `queued`, taken off the queue: the store marks it started and gets
    /// its user message in the same batch, so a started run always has its message in
    /// history. Nothing is announced until that batch is durable ([`State::announce_start`]).
    pub fn begin_run(&mut self, queued: &mut Queued, cancel: CancellationToken) {
        let mut run = ActiveRun::new(queued.message_id.clone(), cancel);
        run.waiters.extend(queued.waiters.drain(..).map(|w| (queued.message_id.clone(), w)));
        run.permit = queued.permit.take();
        self.run = Some(run);
        self.ops.push(Op::Start { message_id: queued.message_id.clone() });
        self.commit(queued.user_message());
    }

    /// The run's start is durable: steering may join it, and subscribers hear of it.
    pub fn announce_start(&mut self, message_id: &str) {
        if let Some(run) = self.run.as_mut() {
            run.started = true;
        }
        self.emit(EventKind::AgentStart { message_id: message_id.to_string() });
        self.emit(EventKind::MessageStart { role: Role::User.as_str().into() });
        self.emit_state();
    }

    /// The store could not record the run's start: it never ran. The message goes back to the
    /// head of the queue with its callers, its user message leaves history again, and the
    /// driver retries once the store recovers (an accepted message is never dropped).
    pub fn unstart_run(&mut self, mut queued: Queued) {
        let Some(mut run) = self.run.take() else { return };
        if self.history.last().is_some_and(|m| m.id == queued.message_id) {
            self.history.pop();
        }
        if run.withdrawn {
            self.emit_state();
            return;
        }
        queued.waiters = run.waiters.drain(..).map(|(_, waiter)| waiter).collect();
        queued.permit = run.permit.take();
        self.queue.push_front(queued);
        self.dirty = true;
        self.emit_state();
    }

    /// Moves the draft into history (see `RunHost::finish_message`).
    pub fn finish_message(&mut self, error: Option<Part>) -> String {
        let now = now_ms();
        if self.run.is_none() {
            return String::new();
        }
        // This may be the run's last message: its `message_complete` waits until the run
        // goes on, or until its end is durable.
        self.hold_events();
        let Some(run) = self.run.as_mut() else { return String::new() };
        let draft = run.draft.take().unwrap_or_else(|| Draft::new(&self.shown, now));
        let mut message = draft.view();
        message.id = uuid::Uuid::new_v4().to_string();
        message.parts.retain(
            |p| !matches!(p, Part::Text { text } | Part::Reasoning { text } if text.is_empty()),
        );
        message.parts.extend(error);
        let text = message.text();
        if !message.parts.is_empty() {
            self.commit(message);
        }
        self.emit(EventKind::MessageComplete { text: text.clone() });
        text
    }

    /// See `RunHost::take_steering`.
    pub fn take_steering(&mut self, close_if_none: bool) -> usize {
        let Some(run) = self.run.as_mut() else { return 0 };
        let steering = std::mem::take(&mut run.steering);
        if steering.is_empty() && close_if_none {
            run.closing = true;
        }
        for queued in &steering {
            self.commit_user(queued);
        }
        steering.len()
    }

    /// Accepts a message: joins the running run (steer) or waits in the queue.
    pub fn admit(
        &mut self,
        request: SendRequest,
        max_queue: usize,
        subscribe: bool,
    ) -> Result<Admitted, GatewayError> {
        let permit = request.caller.run_permit()?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let (tx, outcome) = oneshot::channel();
        let live = subscribe.then(|| self.log.subscribe(None).live).flatten();
        let joinable = self.run.as_ref().is_some_and(|run| run.started && !run.closing);
        let queued = Queued {
            message_id: message_id.clone(),
            text: request.text,
            images: request.images,
            source: request.source,
            enqueued_at: now_ms(),
            waiters: Vec::new(),
            permit,
        };
        let (mode, run_message_id) = if request.behavior == StreamingBehavior::Steer && joinable {
            let run = self.run.as_mut().expect("joinable implies a run");
            self.ops.push(Op::Accept(queued.record(&self.key, Some(run.message_id.clone()))));
            run.steering.push(queued);
            run.waiters.push((message_id.clone(), tx));
            (SendMode::Steer, run.message_id.clone())
        } else {
            if self.queue.len() >= max_queue {
                let mut error = GatewayError::new(
                    ErrorCode::QueueFull,
                    format!("Queue full ({max_queue} pending)."),
                );
                error.retry_after = Some(1);
                return Err(error);
            }
            self.ops.push(Op::Accept(queued.record(&self.key, None)));
            self.queue.push_back(Queued { waiters: vec![tx], ..queued });
            self.emit_state();
            (SendMode::Queued, message_id.clone())
        };
        self.dirty = true;
        let start_driver = mode == SendMode::Queued && !self.driver_running;
        if start_driver {
            self.driver_running = true;
        }
        let accepted =
            Accepted { session_key: self.shown.to_string(), message_id, mode, repeat: false };
        Ok(Admitted {
            accepted,
            outcome,
            run_message_id,
            live,
            start_driver,
            joined: mode == SendMode::Steer,
        })
    }

    /// Removes one queued message; its caller gets `Cancelled`.
    pub fn cancel_queued(&mut self, message_id: &str) -> bool {
        let Some(position) = self.queue.iter().position(|q| q.message_id == message_id) else {
            return false;
        };
        if let Some(queued) = self.queue.remove(position) {
            self.finish_queued(queued, "Cancelled");
        }
        self.emit_state();
        true
    }

    /// Rejects a queued message: its caller gets `reason`, the store marks it done.
    fn finish_queued(&mut self, queued: Queued, reason: &str) {
        let error = Some(reason.to_string());
        self.ops.push(Op::Finish { message_id: queued.message_id.clone(), error });
        self.record_outcome(&queued.rejected(&self.shown, reason));
        queued.reject(&self.shown, reason);
    }

    /// Takes back a message whose acceptance could not be stored: it leaves the queue (or the
    /// run it was steering into) without a trace; its caller gets the store's error.
    pub fn withdraw(&mut self, message_id: &str) {
        self.forget_idempotent(message_id);
        if let Some(position) = self.queue.iter().position(|q| q.message_id == message_id) {
            self.queue.remove(position);
            self.emit_state();
        } else if let Some(run) = self.run.as_mut() {
            run.steering.retain(|q| q.message_id != message_id);
            run.waiters.retain(|(id, _)| id != message_id);
            // Taken by the driver already: its start cannot be stored either (the store has
            // no such message), and then it must not go back to the queue.
            run.withdrawn |= run.message_id == message_id && !run.started;
        }
    }

    /// Callers still waiting on queued messages stop waiting (shutdown): the messages stay
    /// queued in the store and run after the next start.
    pub fn release_waiters(&mut self) {
        for queued in self.queue.iter_mut() {
            queued.waiters.clear();
        }
    }

    /// Drops every queued message with `reason` for their callers; returns how many.
    pub fn reject_queue(&mut self, reason: &str) -> usize {
        let queued: Vec<_> = self.queue.drain(..).collect();
        let count = queued.len();
        for q in queued {
            self.finish_queued(q, reason);
        }
        if count > 0 {
            self.emit_state();
        }
        count
    }

    /// Cuts the running run short (shutdown, run timeout): it ends with an error `code`.
    pub fn interrupt(&mut self, code: &str, reason: &str) {
        if let Some(run) = self.run.as_mut() {
            run.interrupted = Some((code.to_string(), reason.to_string()));
            run.cancel.cancel();
        }
    }

    /// Cancels the running run; whether there was one.
    pub fn abort(&mut self) -> bool {
        match &self.run {
            Some(run) => {
                run.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends the run in memory and in this critical section's batch: the last history, the
    /// message marked done, the idempotency outcomes. Its events are held and its callers
    /// not yet answered: the driver commits the batch, waits until it is durable, and then
    /// calls [`State::report_end`] (GATEWAY.md §2: an acknowledged outcome is the outcome).
    pub fn finish_run(&mut self, end: RunEnd) -> RunReport {
        self.hold_events();
        let Some(mut run) = self.run.take() else { return RunReport::default() };
        // Steering text that arrived too late for any model call is kept, not lost.
        for queued in run.steering.drain(..) {
            self.commit_user(&queued);
        }
        self.usage += end.usage;
        let error = match end.status {
            RunStatus::Completed => None,
            RunStatus::Failed { error, code } => {
                self.emit(EventKind::Error { error: error.clone(), code });
                Some(error)
            }
            RunStatus::Aborted => {
                self.emit(EventKind::Aborted);
                Some(crate::agent::ABORTED.to_string())
            }
        };
        self.emit(EventKind::AgentEnd {
            message_id: run.message_id.clone(),
            ok: error.is_none(),
            error: error.clone(),
            usage: end.usage,
        });
        self.ops.push(Op::Finish { message_id: run.message_id.clone(), error: error.clone() });
        let outcome = RunOutcome {
            ok: error.is_none(),
            response: if error.is_none() { end.response } else { String::new() },
            error: error.clone(),
            session_key: self.shown.to_string(),
            message_id: run.message_id.clone(),
        };
        self.record_outcome(&outcome);
        let mut outcomes = Vec::with_capacity(run.waiters.len());
        for (message_id, waiter) in run.waiters {
            if message_id != run.message_id {
                self.ops.push(Op::Finish { message_id: message_id.clone(), error: error.clone() });
                self.record_outcome(&RunOutcome {
                    message_id: message_id.clone(),
                    ..outcome.clone()
                });
            }
            outcomes.push((waiter, RunOutcome { message_id, ..outcome.clone() }));
        }
        self.dirty = true;
        self.emit_state();
        RunReport { outcomes, permit: run.permit.take(), usage: end.usage }
    }

    /// Tells everyone how the run ended, once the batch of [`State::finish_run`] has been
    /// stored (`stored`). If the store refused it, the end is not durable and will never be:
    /// the callers and subscribers hear that the run failed with the store's error (after a
    /// restart the store still has the run as started and closes it as interrupted).
    pub fn report_end(&mut self, report: RunReport, stored: Result<(), String>) {
        let held = self.held.take().unwrap_or_default();
        // Freed before anyone hears the outcome, so a caller may send the next one at once.
        drop(report.permit);
        match stored {
            Ok(()) => {
                for kind in held {
                    self.log_event(kind);
                }
                for (waiter, outcome) in report.outcomes {
                    let _ = waiter.send(outcome);
                }
            }
            Err(error) => {
                for kind in held {
                    match kind {
                        EventKind::AgentEnd { message_id, .. } => {
                            let code = ErrorCode::Unavailable.as_str().to_string();
                            self.log_event(EventKind::Error { error: error.clone(), code });
                            self.log_event(EventKind::AgentEnd {
                                message_id,
                                ok: false,
                                error: Some(error.clone()),
                                usage: report.usage,
                            });
                        }
                        kind => self.log_event(kind),
                    }
                }
                for (waiter, outcome) in report.outcomes {
                    let _ = waiter.send(RunOutcome {
                        ok: false,
                        response: String::new(),
                        error: Some(error.clone()),
                        ..outcome
                    });
                }
            }
        }
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

    /// Clears the conversation in place under a new session id.
    pub fn clear(&mut self) {
        self.history_base += self.history.len() as u64;
        self.history.clear();
        self.ops.push(Op::ClearHistory { key: self.key.to_string() });
        self.compacted_upto = 0;
        self.compaction_summary = None;
        self.dirty = true;
        self.session_id = uuid::Uuid::new_v4().to_string();
        self.usage = Usage::default();
        self.updated_at = now_ms();
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
