//! The session's state machine on its own (no store, no agent): admission and the queue, a
//! run's start and end with the events held until the end is durable, steering, and a start
//! the store refused.

use tokio_util::sync::CancellationToken;

use super::*;
use crate::domain::{Caller, RunEnd, RunStatus, SendRequest};

fn state() -> State {
    let log = EventLog::new("k".into(), 0, 1024, 1024);
    let model = ModelRef { provider: "echo".into(), model_id: "echo".into() };
    let mut state = State::new("k".into(), model, log);
    state.take_ops();
    state
}

fn request(text: &str) -> SendRequest {
    SendRequest {
        session_key: "k".into(),
        text: text.into(),
        caller: Caller::full(),
        ..Default::default()
    }
}

/// The types of the events logged so far.
fn logged(state: &mut State) -> Vec<String> {
    state
        .log
        .subscribe(Some(0))
        .backlog
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.to_json()).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn ended(response: &str) -> RunEnd {
    RunEnd { status: RunStatus::Completed, response: response.into(), usage: Usage::default() }
}

#[test]
fn messages_queue_up_to_the_cap_and_a_cancelled_one_answers_cancelled() {
    let mut state = state();
    let first = state.admit(request("one"), 2, false).unwrap();
    assert!(first.start_driver, "the first message needs a driver");
    let mut second = state.admit(request("two"), 2, false).unwrap();
    assert!(!second.start_driver);
    let Err(full) = state.admit(request("three"), 2, false) else { panic!("the queue is full") };
    assert_eq!(full.code, ErrorCode::QueueFull);
    assert_eq!(full.message, "Queue full (2 pending).");
    let ops = state.take_ops();
    let accepted = ops.iter().filter(|op| matches!(op, Op::Accept(_))).count();
    assert_eq!(accepted, 2, "two acceptances in the batch: {ops:?}");

    assert!(state.cancel_queued(&second.accepted.message_id));
    let outcome = second.outcome.try_recv().unwrap();
    assert_eq!((outcome.ok, outcome.error.as_deref()), (false, Some("Cancelled")));
    let ops = state.take_ops();
    assert!(ops.iter().any(|op| matches!(op, Op::Finish { message_id, .. } if *message_id == second.accepted.message_id)));
    assert_eq!(state.queue_view().queue.len(), 1);
    assert!(!state.cancel_queued("no-such-id"));
}

#[test]
fn a_runs_end_is_heard_only_once_it_is_stored() {
    let mut state = state();
    let mut admitted = state.admit(request("hello"), 8, false).unwrap();
    let mut queued = state.queue.pop_front().unwrap();
    state.begin_run(&mut queued, CancellationToken::new(), Vec::new());
    let start = state.take_ops();
    assert!(
        start.iter().any(|op| matches!(op, Op::Start { .. }))
            && start.iter().any(
                |op| matches!(op, Op::AppendHistory { message, .. } if message.role == Role::User)
            ),
        "the start and the user message are one batch: {start:?}"
    );
    state.announce_start(&queued.message_id);
    state.emit(EventKind::TurnStart);
    state.emit(EventKind::MessageStart { role: "assistant".into() });
    state.emit(EventKind::Token { delta: "hello".into(), content_index: 0 });
    state.take_ops();

    assert_eq!(state.finish_message(None), "hello");
    state.emit(EventKind::TurnEnd);
    let report = state.finish_run(ended("hello"));
    let before = logged(&mut state);
    assert_eq!(
        before.last().map(String::as_str),
        Some("token"),
        "nothing of the end yet: {before:?}"
    );
    assert!(admitted.outcome.try_recv().is_err(), "nor the caller");
    let end = state.take_ops();
    let last_message = end.iter().position(
        |op| matches!(op, Op::AppendHistory { message, .. } if message.role == Role::Assistant),
    );
    let finished = end.iter().position(|op| matches!(op, Op::Finish { .. }));
    assert!(last_message.is_some() && finished.is_some(), "one batch: {end:?}");

    state.report_end(report, Ok(()));
    let after = logged(&mut state);
    let tail: Vec<&str> = after[before.len()..].iter().map(String::as_str).collect();
    assert_eq!(tail, ["message_complete", "turn_end", "agent_end", "session_state"]);
    let outcome = admitted.outcome.try_recv().unwrap();
    assert!(outcome.ok && outcome.response == "hello", "{outcome:?}");
}

#[test]
fn an_end_the_store_refused_is_reported_as_failed() {
    let mut state = state();
    let mut admitted = state.admit(request("hello"), 8, false).unwrap();
    let mut queued = state.queue.pop_front().unwrap();
    state.begin_run(&mut queued, CancellationToken::new(), Vec::new());
    state.announce_start(&queued.message_id);
    let report = state.finish_run(ended("hello"));
    state.report_end(report, Err("Store unavailable: disk full".into()));
    let outcome = admitted.outcome.try_recv().unwrap();
    assert_eq!(
        (outcome.ok, outcome.error.as_deref()),
        (false, Some("Store unavailable: disk full"))
    );
    let events = logged(&mut state);
    let tail: Vec<&str> = events.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(tail, ["session_state", "agent_end", "error"]);
}

#[test]
fn a_start_the_store_refused_goes_back_to_the_head_of_the_queue() {
    let mut state = state();
    let mut admitted = state.admit(request("first"), 8, false).unwrap();
    state.admit(request("second"), 8, false).unwrap();
    let mut queued = state.queue.pop_front().unwrap();
    state.begin_run(&mut queued, CancellationToken::new(), Vec::new());
    assert_eq!((state.message_count, state.preview.as_deref()), (1, Some("first")));
    // Not started yet: a steer queues instead of joining a run that may never start.
    let steer = SendRequest { behavior: StreamingBehavior::Steer, ..request("steer") };
    assert_eq!(state.admit(steer, 8, false).unwrap().accepted.mode, SendMode::Queued);
    state.unstart_run(queued);
    assert!(state.run.is_none());
    assert_eq!(state.message_count, 0, "its user message left history again");
    assert_eq!(state.preview, None, "and the preview with it");
    let order: Vec<&str> = state.queue.iter().map(|q| q.text.as_str()).collect();
    assert_eq!(order, ["first", "second", "steer"]);
    assert!(admitted.outcome.try_recv().is_err(), "its caller still waits");
    // Once started, steering joins the run.
    let mut queued = state.queue.pop_front().unwrap();
    state.begin_run(&mut queued, CancellationToken::new(), Vec::new());
    state.announce_start(&queued.message_id);
    let steer = SendRequest { behavior: StreamingBehavior::Steer, ..request("join") };
    assert_eq!(state.admit(steer, 8, false).unwrap().accepted.mode, SendMode::Steer);
}
