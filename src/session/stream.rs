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

/// A stream's place in the session's log and what it does when it falls behind: the seq it
/// has reached, and for a lag, the count in `/metrics` and the `lagged {missed}` note it
/// yields (at the seq the stream has then reached).
struct Position {
    key: Arc<str>,
    last: u64,
    lagged: Counter,
}

impl Position {
    fn new(key: Arc<str>, last: u64, lagged: Counter) -> Self {
        Self { key, last, lagged }
    }

    fn reached(&mut self, event: &Event) {
        self.last = event.seq;
    }

    /// `missed` events were dropped for this stream.
    fn lag(&mut self, missed: u64) -> Arc<Event> {
        self.last += missed;
        self.lagged.inc();
        note(&self.key, self.last, EventKind::Lagged { missed })
    }

    /// A note at the current position (`hello`, a `lagged` that was not counted live).
    fn note(&self, kind: EventKind) -> Arc<Event> {
        note(&self.key, self.last, kind)
    }
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
        let mut at = Position::new(key, sub.last_seq, lagged);
        yield at.note(EventKind::Hello { snapshot: Box::new(snapshot) });
        if sub.missed > 0 {
            yield at.note(EventKind::Lagged { missed: sub.missed });
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
                    at.reached(&event);
                    let end = matches!(event.kind, EventKind::SessionDeleted { .. });
                    yield event;
                    if end {
                        break;
                    }
                }
                Err(RecvError::Lagged(missed)) => yield at.lag(missed),
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
        let mut at = Position::new(key, 0, lagged);
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
                    at.reached(&event);
                    if let Some(item) = run_item(event, &run_message_id, &mut active, &mut ended) {
                        yield item;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let note = at.lag(missed);
                    if active {
                        yield RunItem::Event(note);
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
        while active && !ended {
            match live.try_recv() {
                Ok(event) => {
                    at.reached(&event);
                    if let Some(item) = run_item(event, &run_message_id, &mut active, &mut ended) {
                        yield item;
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    yield RunItem::Event(at.lag(missed))
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
        let mut at = Position::new(key.clone(), sub.last_seq, lagged);
        if missed > 0 {
            yield RunItem::Event(at.note(EventKind::Lagged { missed }));
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
                    at.reached(&event);
                    if let Some(item) = follow(event, &mut active, &mut ended) {
                        yield item;
                    }
                }
                Some(Err(RecvError::Lagged(missed))) => {
                    let note = at.lag(missed);
                    if active {
                        yield RunItem::Event(note);
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

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::domain::{ThinkingLevel, Usage};
    use crate::session::log::EventLog;

    fn snapshot() -> Snapshot {
        Snapshot {
            session_key: "k".into(),
            session_id: "id".into(),
            name: None,
            message_count: 0,
            queue_depth: 0,
            processing: false,
            loaded: true,
            created_at: 0,
            updated_at: 0,
            last_active_at: 0,
            last_message_preview: None,
            model_provider: None,
            model_id: None,
            thinking_level: ThinkingLevel::Off,
            usage: Usage::default(),
        }
    }

    fn token(i: u32) -> EventKind {
        EventKind::Token { delta: i.to_string(), content_index: 0 }
    }

    fn start(id: &str) -> EventKind {
        EventKind::AgentStart { message_id: id.into() }
    }

    fn end(id: &str) -> EventKind {
        EventKind::AgentEnd {
            status: crate::domain::RunStatus::Completed,
            message_id: id.into(),
            ok: true,
            error: None,
            usage: Usage::default(),
        }
    }

    /// What a stream yielded, as `(seq, type)`.
    fn kinds(events: &[Arc<Event>]) -> Vec<(u64, String)> {
        events
            .iter()
            .map(|e| {
                let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
                (e.seq, json["type"].as_str().unwrap().to_string())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_hears_how_much_it_missed_and_goes_on() {
        let mut log = EventLog::new("k".into(), 10, 64, 2);
        let sub = log.subscribe(None);
        let counter = Counter::default();
        let shutdown = CancellationToken::new();
        let stream = subscription("k".into(), snapshot(), sub, shutdown.clone(), counter.clone());
        for i in 0..5 {
            log.push(token(i));
        }
        let deleted = EventKind::SessionDeleted { session_id: "id".into() };
        // The buffer holds two: the four oldest of the six are lost to this subscriber.
        log.push(deleted);
        let events: Vec<_> = stream.collect().await;
        let got = kinds(&events);
        assert_eq!(got[0], (10, "hello".into()));
        assert_eq!(got[1], (14, "lagged".into()), "at the seq it has then reached: {got:?}");
        assert_eq!(&got[2..], [(15, "token".into()), (16, "session_deleted".into())]);
        let json: serde_json::Value = serde_json::from_str(&events[1].to_json()).unwrap();
        assert_eq!(json["missed"], 4);
        assert_eq!(counter.get(), 1, "counted once in /metrics");
    }

    #[tokio::test]
    async fn a_run_stream_keeps_only_its_runs_events_then_the_outcome() {
        let mut log = EventLog::new("k".into(), 0, 64, 64);
        let live = log.subscribe(None).live.unwrap();
        let (tx, outcome) = oneshot::channel();
        let stream = run_events(
            "k".into(),
            "mine".into(),
            false,
            live,
            outcome,
            CancellationToken::new(),
            Counter::default(),
        );
        for kind in [start("other"), token(0), end("other"), start("mine"), token(1)] {
            log.push(kind);
        }
        log.push(EventKind::SessionState { snapshot: Box::new(snapshot()) });
        log.push(end("mine"));
        log.push(token(2));
        let answer = RunOutcome {
            ok: true,
            response: "1".into(),
            error: None,
            session_key: "k".into(),
            message_id: "mine".into(),
            status: None,
        };
        tx.send(answer.clone()).unwrap();
        let items: Vec<RunItem> = stream.collect().await;
        let events: Vec<Arc<Event>> = items
            .iter()
            .filter_map(|i| match i {
                RunItem::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds(&events),
            [(4, "agent_start".into()), (5, "token".into()), (7, "agent_end".into())],
            "another run's events, queue changes and what follows its end are left out"
        );
        assert!(matches!(items.last(), Some(RunItem::Outcome(o)) if *o == answer));
    }
}
