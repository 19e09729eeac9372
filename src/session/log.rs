//! The per-session event log: assigns `seq`, keeps the newest events for resuming streams, and
//! fans each event out to every subscriber.
//!
//! Fan-out is a `tokio::sync::broadcast` ring: publishing never waits for a subscriber, and a
//! subscriber that falls more than `subscriber_buffer` events behind is told how many it missed
//! (`lagged`) and continues with live events. The ring is only allocated while somebody
//! listens, so idle sessions cost no more than their log.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::{Event, EventKind};

pub struct EventLog {
    key: Arc<str>,
    last_seq: u64,
    recent: VecDeque<Arc<Event>>,
    capacity: usize,
    subscriber_buffer: usize,
    tx: Option<broadcast::Sender<Arc<Event>>>,
    closed: bool,
    /// The gateway's `events_logged` metric.
    logged: Option<prometheus_client::metrics::counter::Counter>,
}

/// Where a new subscriber starts: the logged events it asked to replay, how many it can no
/// longer get, and the live feed from the same instant (so nothing is skipped or repeated).
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    pub missed: u64,
    pub live: Option<broadcast::Receiver<Arc<Event>>>,
    pub last_seq: u64,
}

/// The seqs of a run's `agent_start` and `agent_end`, where the log holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSpan {
    pub start: Option<u64>,
    pub end: Option<u64>,
}

impl EventLog {
    /// `last_seq` continues a key's sequence (seq keeps rising across reset and eviction).
    pub fn new(key: Arc<str>, last_seq: u64, capacity: usize, subscriber_buffer: usize) -> Self {
        Self {
            key,
            last_seq,
            recent: VecDeque::new(),
            capacity,
            subscriber_buffer,
            tx: None,
            closed: false,
            logged: None,
        }
    }

    /// Counts every logged event into `counter`.
    pub fn counting(mut self, counter: prometheus_client::metrics::counter::Counter) -> Self {
        self.logged = Some(counter);
        self
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Logs and publishes one event.
    pub fn push(&mut self, kind: EventKind) {
        debug_assert!(!kind.is_note(), "notes are per subscriber and never logged");
        self.last_seq += 1;
        if let Some(logged) = &self.logged {
            logged.inc();
        }
        let event = Arc::new(Event::new(self.key.clone(), self.last_seq, kind));
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(event.clone());
        // Nobody listens any more: free the ring until somebody does.
        if let Some(tx) = &self.tx
            && tx.send(event.clone()).is_err()
        {
            self.tx = None;
        }
    }

    /// Live subscribers (event streams and run streams).
    pub fn subscribers(&self) -> usize {
        self.tx.as_ref().map_or(0, |tx| tx.receiver_count())
    }

    /// Starts a subscription. With `after`, the logged events after that seq are replayed; if
    /// the log no longer reaches back that far, `missed` counts what is gone.
    pub fn subscribe(&mut self, after: Option<u64>) -> Subscription {
        let mut backlog = Vec::new();
        let mut missed = 0;
        if let Some(after) = after.filter(|after| *after < self.last_seq) {
            let oldest = self.recent.front().map_or(self.last_seq + 1, |e| e.seq);
            missed = oldest.saturating_sub(after + 1);
            backlog.extend(self.recent.iter().filter(|e| e.seq > after).cloned());
        }
        let live = if self.closed {
            None
        } else {
            let buffer = self.subscriber_buffer;
            Some(self.tx.get_or_insert_with(|| broadcast::channel(buffer).0).subscribe())
        };
        Subscription { backlog, missed, live, last_seq: self.last_seq }
    }

    /// Where run `message_id` stands in the log, as far as the log still reaches back.
    pub fn find_run(&self, message_id: &str) -> RunSpan {
        let mut span = RunSpan::default();
        for event in &self.recent {
            match &event.kind {
                EventKind::AgentStart { message_id: id } if id == message_id => {
                    span.start = Some(event.seq)
                }
                EventKind::AgentEnd { message_id: id, .. } if id == message_id => {
                    span.end = Some(event.seq)
                }
                _ => {}
            }
        }
        span
    }

    /// The run the first logged run event after `after` belongs to: the one that was going
    /// on at `after`, or else the next one to start.
    pub fn run_after(&self, after: u64) -> Option<String> {
        let mut current: Option<&str> = None;
        for event in &self.recent {
            match &event.kind {
                EventKind::AgentStart { message_id } if event.seq > after => {
                    return Some(message_id.clone());
                }
                EventKind::AgentStart { message_id } => current = Some(message_id),
                EventKind::AgentEnd { message_id, .. } if event.seq > after => {
                    return Some(message_id.clone());
                }
                EventKind::AgentEnd { .. } => current = None,
                EventKind::SessionState { .. } => {}
                _ if event.seq > after && current.is_some() => return current.map(str::to_string),
                _ => {}
            }
        }
        None
    }

    /// The seq of the oldest event the log still holds.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.recent.front().map(|e| e.seq)
    }

    /// Ends every live stream (after it has read what was already published). Used when the
    /// session goes away; later subscriptions get no live feed.
    pub fn close(&mut self) {
        self.closed = true;
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(i: u32) -> EventKind {
        EventKind::Token { delta: i.to_string(), content_index: 0 }
    }

    #[test]
    fn replay_and_missed() {
        let mut log = EventLog::new("k".into(), 10, 3, 8);
        for i in 0..5 {
            log.push(token(i));
        }
        assert_eq!(log.last_seq(), 15);
        let sub = log.subscribe(Some(13));
        assert_eq!(sub.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![14, 15]);
        assert_eq!(sub.missed, 0);
        let sub = log.subscribe(Some(10));
        assert_eq!(sub.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![13, 14, 15]);
        assert_eq!(sub.missed, 2);
        assert!(log.subscribe(Some(15)).backlog.is_empty());
        assert!(log.subscribe(None).backlog.is_empty());
    }

    #[test]
    fn runs_are_found_in_the_log() {
        let mut log = EventLog::new("k".into(), 0, 64, 8);
        let start = |id: &str| EventKind::AgentStart { message_id: id.into() };
        let end = |id: &str| {
            EventKind::agent_end(id, crate::domain::RunStatus::Completed, Default::default())
        };
        let complete = |text: &str| EventKind::MessageComplete { text: text.into() };
        log.push(start("a")); // 1
        log.push(token(1)); // 2
        log.push(complete("first")); // 3
        log.push(complete("second")); // 4
        log.push(end("a")); // 5
        log.push(start("b")); // 6
        log.push(token(2)); // 7
        assert_eq!(log.find_run("a"), RunSpan { start: Some(1), end: Some(5) });
        assert_eq!(log.find_run("b"), RunSpan { start: Some(6), end: None });
        assert_eq!(log.find_run("c"), RunSpan::default());
        assert_eq!(log.run_after(1).as_deref(), Some("a"));
        assert_eq!(log.run_after(4).as_deref(), Some("a"));
        assert_eq!(log.run_after(5).as_deref(), Some("b"));
        assert_eq!(log.run_after(7), None);
        assert_eq!(log.oldest_seq(), Some(1));
    }

    #[test]
    fn live_feed_starts_where_the_backlog_ends() {
        let mut log = EventLog::new("k".into(), 0, 16, 8);
        log.push(token(1));
        let mut sub = log.subscribe(Some(0));
        log.push(token(2));
        assert_eq!(sub.backlog[0].seq, 1);
        assert_eq!(sub.live.as_mut().unwrap().try_recv().unwrap().seq, 2);
        assert_eq!(log.subscribers(), 1);
        log.close();
        assert!(sub.live.as_mut().unwrap().try_recv().is_err());
        assert!(log.subscribe(None).live.is_none());
    }
}
