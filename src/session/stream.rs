//! The two kinds of event stream a caller can hold: a subscription to everything a session
//! does, and the events of one message's run followed by its outcome. Transports map these
//! streams; dropping one is the disconnect signal and never affects the run.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use super::log::Subscription;
use crate::domain::{Event, EventKind};
use crate::domain::{RunOutcome, Snapshot};

pub type EventStream = Pin<Box<dyn Stream<Item = Arc<Event>> + Send>>;

/// One item of a run stream: the run's events, then exactly one outcome.
#[derive(Debug, Clone)]
pub enum RunItem {
    Event(Arc<Event>),
    Outcome(RunOutcome),
    /// The gateway shut down before this message's run ended; a message that had not started
    /// stays queued and runs after the next start.
    Stopped,
}

pub type RunStream = Pin<Box<dyn Stream<Item = RunItem> + Send>>;

fn note(key: &Arc<str>, seq: u64, kind: EventKind) -> Arc<Event> {
    Arc::new(Event::new(key.clone(), seq, kind))
}

/// `hello`, then `lagged` if the resume point is gone, then the replayed events, then live
/// ones. Ends after `session_deleted`, when the session goes away, or at shutdown.
pub(crate) fn subscription(
    key: Arc<str>,
    snapshot: Snapshot,
    sub: Subscription,
    shutdown: CancellationToken,
    lagged: Counter,
) -> EventStream {
    Box::pin(async_stream::stream! {
        let mut last = sub.last_seq;
        yield note(&key, last, EventKind::Hello { snapshot: Box::new(snapshot) });
        if sub.missed > 0 {
            yield note(&key, last, EventKind::Lagged { missed: sub.missed });
        }
        for event in sub.backlog {
            yield event;
        }
        let Some(mut live) = sub.live else { return };
        // One wait for shutdown for the whole stream, not a new one per event.
        let stopped = shutdown.cancelled_owned();
        tokio::pin!(stopped);
        loop {
            let received = tokio::select! {
                biased;
                _ = &mut stopped => {
                    // Shutdown drained the runs first: what they logged last is still
                    // buffered here, and the subscriber gets it before the stream ends.
                    while let Ok(event) = live.try_recv() {
                        yield event;
                    }
                    break;
                }
                received = live.recv() => received,
            };
            match received {
                Ok(event) => {
                    last = event.seq;
                    let end = matches!(event.kind, EventKind::SessionDeleted { .. });
                    yield event;
                    if end {
                        break;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    last += missed;
                    lagged.inc();
                    yield note(&key, last, EventKind::Lagged { missed });
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// The events of the run `run_message_id` (from its `agent_start`, or at once for a caller
/// that joined a running run) through its `agent_end`, then the caller's outcome. A message
/// cancelled before it ran yields only the outcome.
pub(crate) fn run_events(
    key: Arc<str>,
    run_message_id: String,
    joined: bool,
    mut live: broadcast::Receiver<Arc<Event>>,
    mut outcome: oneshot::Receiver<RunOutcome>,
    shutdown: CancellationToken,
    lagged: Counter,
) -> RunStream {
    Box::pin(async_stream::stream! {
        let mut active = joined;
        let mut ended = false;
        let mut last = 0;
        let mut resolved = None;
        let mut stopping = false;
        // Follows the live feed until this run's `agent_end`; stops early when the outcome
        // arrives first (the message never ran, or its remaining events are already buffered)
        // or at shutdown (after handing over what is buffered).
        let stopped = shutdown.clone().cancelled_owned();
        tokio::pin!(stopped);
        while !ended {
            let received = tokio::select! {
                biased;
                _ = &mut stopped => {
                    stopping = true;
                    break;
                }
                received = live.recv() => received,
                result = &mut outcome => {
                    resolved = Some(result.map_err(|_| ()));
                    break;
                }
            };
            match received {
                Ok(event) => {
                    last = event.seq;
                    if let Some(item) = run_item(event, &run_message_id, &mut active, &mut ended) {
                        yield item;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    last += missed;
                    lagged.inc();
                    if active {
                        yield RunItem::Event(note(&key, last, EventKind::Lagged { missed }));
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
        while active && !ended {
            match live.try_recv() {
                Ok(event) => {
                    if let Some(item) = run_item(event, &run_message_id, &mut active, &mut ended) {
                        yield item;
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    last += missed;
                    lagged.inc();
                    yield RunItem::Event(note(&key, last, EventKind::Lagged { missed }));
                }
                Err(_) => break,
            }
        }
        let result = match resolved {
            Some(result) => result,
            None if stopping => outcome.try_recv().map_err(|_| ()),
            None => outcome.await.map_err(|_| ()),
        };
        match result {
            Ok(result) => yield RunItem::Outcome(result),
            Err(()) if stopping => yield RunItem::Stopped,
            Err(()) => {}
        }
    })
}

/// Keeps the events of one run: from its `agent_start` (or at once when joined) through its
/// `agent_end`; queue changes of the session are left out.
fn run_item(
    event: Arc<Event>,
    run_message_id: &str,
    active: &mut bool,
    ended: &mut bool,
) -> Option<RunItem> {
    match &event.kind {
        EventKind::AgentStart { message_id } if message_id == run_message_id => *active = true,
        EventKind::AgentEnd { message_id, .. } if message_id == run_message_id && *active => {
            *ended = true
        }
        EventKind::SessionState { .. } => return None,
        _ => {}
    }
    active.then_some(RunItem::Event(event))
}

/// Where a resumed run stream starts (see [`resumed_run`]).
pub(crate) struct ResumePoint {
    pub underway: bool,
    pub missed: u64,
    pub seen: u64,
}

/// A run stream picked up again (the Vercel and v1 resume routes). `sub` starts before the
/// run's `agent_start` (or, when the log no longer holds it, at the oldest logged event, with
/// `underway` set and `missed` counting what the caller can no longer get); events up to seq
/// `seen` (what the caller already has) are read but not yielded. Then the run's events through its `agent_end`, and an outcome made from that
/// `agent_end` (the reply is the run's last `message_complete`, as for the first caller).
pub(crate) fn resumed_run(
    key: Arc<str>,
    run_message_id: String,
    sub: Subscription,
    at: ResumePoint,
    shutdown: CancellationToken,
    lagged: Counter,
) -> RunStream {
    let ResumePoint { underway, missed, seen } = at;
    Box::pin(async_stream::stream! {
        let mut active = underway;
        let mut ended = false;
        let mut reply = String::new();
        let mut outcome = None;
        let mut last = sub.last_seq;
        if missed > 0 {
            yield RunItem::Event(note(&key, last, EventKind::Lagged { missed }));
        }
        let mut follow = |event: Arc<Event>, active: &mut bool, ended: &mut bool| {
            if let EventKind::MessageComplete { text } = &event.kind
                && *active
            {
                reply = text.clone();
            }
            let seq = event.seq;
            let item = run_item(event, &run_message_id, active, ended);
            if let Some(RunItem::Event(event)) = &item
                && let EventKind::AgentEnd { status, .. } = &event.kind
                && *ended
            {
                outcome = Some(RunOutcome::of_run(
                    status.clone(),
                    reply.clone(),
                    key.to_string(),
                    run_message_id.clone(),
                ));
            }
            item.filter(|_| seq > seen)
        };
        for event in sub.backlog {
            if let Some(item) = follow(event, &mut active, &mut ended) {
                yield item;
            }
            if ended {
                break;
            }
        }
        let mut live = sub.live;
        let stopped = shutdown.cancelled_owned();
        tokio::pin!(stopped);
        while !ended {
            let Some(feed) = live.as_mut() else { break };
            let received = tokio::select! {
                biased;
                _ = &mut stopped => None,
                received = feed.recv() => Some(received),
            };
            match received {
                None => {
                    yield RunItem::Stopped;
                    break;
                }
                Some(Ok(event)) => {
                    last = event.seq;
                    if let Some(item) = follow(event, &mut active, &mut ended) {
                        yield item;
                    }
                }
                Some(Err(RecvError::Lagged(missed))) => {
                    last += missed;
                    lagged.inc();
                    if active {
                        yield RunItem::Event(note(&key, last, EventKind::Lagged { missed }));
                    }
                }
                Some(Err(RecvError::Closed)) => break,
            }
        }
        if let Some(outcome) = outcome {
            yield RunItem::Outcome(outcome);
        }
    })
}
