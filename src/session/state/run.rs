//! The run in progress: its start (durable before the model is called), what the agent reports
//! through the host, steering, abort and interruption, and its end (reported once durable).

use super::*;

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
    /// Set when shutdown or the run timeout cut the run short (rather than an abort).
    pub interrupted: Option<Interruption>,
    /// The message's place in its token's `max_concurrent_runs`, freed as the run ends.
    pub permit: Option<crate::domain::RunPermit>,
    /// The store has the run's start: only then may steering text join it (a run whose start
    /// cannot be stored goes back to the queue, alone).
    pub started: bool,
    /// What the model sees of history: positions `context_from..` (since the last compaction),
    /// read from the store when the run began, extended as the run commits messages, and let
    /// go when it ends.
    pub context: Vec<HistoryMessage>,
    pub context_from: u64,
    /// The preview before the run's user message was committed, for a start the store refused.
    preview_before: Option<String>,
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
            context: Vec::new(),
            context_from: 0,
            preview_before: None,
            withdrawn: false,
        }
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            draft: self.draft.as_ref().map(Draft::view),
            pending_tools: self.pending_tools.iter().map(|(_, m)| m.clone()).collect(),
        }
    }
}

/// Where the next run's context lies in history, and in which conversation (a clear starts a
/// new one): the read is still that context while all three are unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContextRange {
    pub from: u64,
    pub to: u64,
    session_id: String,
}

/// The callers of a run that has ended, answered once its end is durable.
#[derive(Default)]
pub(crate) struct RunReport {
    outcomes: Vec<(oneshot::Sender<RunOutcome>, RunOutcome)>,
    permit: Option<crate::domain::RunPermit>,
    usage: Usage,
}

impl State {
    /// Puts a user message into history and announces it.
    pub fn commit_user(&mut self, queued: &Queued) {
        self.commit(queued.user_message());
        self.emit(EventKind::MessageStart { role: Role::User.as_str().into() });
    }

    /// Begins the run of `queued`, taken off the queue: the store marks it started and gets
    /// its user message in the same batch, so a started run always has its message in
    /// history. Nothing is announced until that batch is durable ([`State::announce_start`]).
    pub fn begin_run(
        &mut self,
        queued: &mut Queued,
        cancel: CancellationToken,
        context: Vec<HistoryMessage>,
    ) {
        let mut run = ActiveRun::new(queued.message_id.clone(), cancel);
        run.context_from = self.context_range().from;
        run.context = context;
        run.preview_before = self.preview.clone();
        run.waiters.extend(queued.waiters.drain(..).map(|w| (queued.message_id.clone(), w)));
        run.permit = queued.permit.take();
        self.run = Some(run);
        self.ops.push(Op::Start { message_id: queued.message_id.clone() });
        self.commit(queued.user_message());
    }

    /// The part of history the next run's context is: from the compaction point (or the
    /// start of history after a clear) to the end.
    pub fn context_range(&self) -> ContextRange {
        ContextRange {
            from: self.meta.compacted_upto.max(self.history_base),
            to: self.history_base + self.message_count,
            session_id: self.meta.session_id.clone(),
        }
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
        if run.context.last().is_some_and(|m| m.id == queued.message_id) {
            self.message_count -= 1;
            self.preview = run.preview_before.take();
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

    /// Cuts the running run short (shutdown, run timeout): it ends with the interruption's
    /// status rather than as aborted.
    pub fn interrupt(&mut self, why: Interruption) {
        if let Some(run) = self.run.as_mut() {
            run.interrupted = Some(why);
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
        self.meta.usage += end.usage;
        if let Some(event) = end.status.end_event() {
            self.emit(event);
        }
        let error = end.status.error().map(str::to_string);
        self.emit(EventKind::agent_end(run.message_id.clone(), end.status.clone(), end.usage));
        self.ops.push(Op::Finish { message_id: run.message_id.clone(), error: error.clone() });
        let outcome = RunOutcome::of_run(
            end.status,
            end.response,
            self.shown.to_string(),
            run.message_id.clone(),
        );
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
                // The end the run had is not durable: it failed to be recorded.
                let status = RunStatus::failed(FailureCode::Unavailable, error.clone());
                for kind in held {
                    match kind {
                        EventKind::AgentEnd { message_id, .. } => {
                            self.log_event(status.end_event().expect("a failure has one"));
                            self.log_event(EventKind::agent_end(
                                message_id,
                                status.clone(),
                                report.usage,
                            ));
                        }
                        kind => self.log_event(kind),
                    }
                }
                for (waiter, outcome) in report.outcomes {
                    let outcome = RunOutcome::of_run(
                        status.clone(),
                        String::new(),
                        outcome.session_key,
                        outcome.message_id,
                    );
                    let _ = waiter.send(outcome);
                }
            }
        }
    }
}
