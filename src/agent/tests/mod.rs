//! `Agent::run` against a fake [`RunHost`](super::RunHost) and a scripted provider: no
//! session, no network. Each test checks what the host was told, in order, and the
//! [`RunEnd`].

mod fakes;

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::provider::{ProviderError, ProviderEvent};
use super::tools::ToolOutput;
use crate::domain::{
    EventKind, FailureCode, HistoryMessage, Interruption, ModelRef, RunEnd, RunStatus,
    ThinkingLevel, Usage,
};
use fakes::{FakeHost, Turn, bench, call, error_part, run, text, tool, turn};

#[tokio::test]
async fn a_plain_reply_streams_and_completes() {
    let usage = Usage { input_tokens: 3, output_tokens: 2 };
    let bench =
        bench(vec![turn(vec![text("Hel"), text("lo"), Ok(ProviderEvent::Usage(usage))])], vec![]);
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!(end, RunEnd { status: RunStatus::Completed, response: "Hello".into(), usage });
    assert_eq!(
        host.names(),
        ["turn_start", "message_start", "token", "token", "finished", "turn_end"]
    );
    assert_eq!(host.finished(), [("Hello".to_string(), None)]);
    assert_eq!(
        host.events("message_start"),
        [EventKind::MessageStart { role: "assistant".into() }]
    );
    // The model got the host's prompt and context, and the tools.
    let request = bench.provider.requests.lock().unwrap()[0].clone();
    assert_eq!(request.model_id, "scripted");
    assert_eq!(request.system_prompt, "You are under test.");
    assert_eq!(request.messages.len(), 3);
}

#[tokio::test]
async fn a_tool_call_runs_then_the_model_replies() {
    let turns = vec![turn(call("c1", "upper", "abc")), turn(vec![text("ABC it is")])];
    let bench = bench(turns, vec![tool("upper")]);
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!(end.status, RunStatus::Completed);
    assert_eq!(end.response, "ABC it is");
    #[rustfmt::skip]
    assert_eq!(host.names(), [
        "turn_start", "message_start", "tool_call_start", "tool_call_delta", "tool_call_end",
        "finished", "tool_start", "tool_update", "tool_complete", "turn_end",
        "turn_start", "message_start", "token", "finished", "turn_end",
    ]);
    assert_eq!(
        host.events("tool_start"),
        [EventKind::ToolStart {
            tool_call_id: "c1".into(),
            tool_name: "upper".into(),
            args: json!({"text": "abc"}),
        }]
    );
    assert_eq!(
        host.events("tool_update"),
        [EventKind::ToolUpdate {
            tool_call_id: "c1".into(),
            tool_name: "upper".into(),
            partial_result: json!({"progress": "ns"}),
        }]
    );
    assert_eq!(
        host.events("tool_complete"),
        [EventKind::ToolComplete {
            tool_call_id: "c1".into(),
            tool_name: "upper".into(),
            result: ToolOutput::text("ABC").result,
            is_error: false,
        }]
    );
    let tools = &bench.provider.requests.lock().unwrap()[0].tools;
    assert_eq!(tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["upper"]);
}

#[tokio::test]
async fn an_unknown_tool_is_an_error_result_not_a_failure() {
    let turns = vec![turn(call("c1", "ghost", "x")), turn(vec![text("sorry")])];
    let bench = bench(turns, vec![]);
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!(end.status, RunStatus::Completed);
    let EventKind::ToolComplete { result, is_error, .. } = &host.events("tool_complete")[0] else {
        unreachable!()
    };
    assert_eq!((result, *is_error), (&ToolOutput::error("Tool not found: ghost").result, true));
}

#[tokio::test]
async fn a_model_failure_fails_the_run_and_closes_open_calls() {
    let mut items = call("c1", "upper", "abc")[..1].to_vec();
    items.push(Err(ProviderError::fatal("upstream exploded")));
    let bench = bench(vec![turn(items)], vec![tool("upper")]);
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!(end.status, RunStatus::failed(FailureCode::ModelError, "upstream exploded"));
    assert_eq!(end.status.code(), Some("model_error"));
    assert_eq!(
        host.names(),
        ["turn_start", "message_start", "tool_call_start", "finished", "tool_complete", "turn_end"]
    );
    assert_eq!(host.finished(), [(String::new(), error_part("model_error", "upstream exploded"))]);
    assert_eq!(
        host.events("tool_complete"),
        [EventKind::ToolComplete {
            tool_call_id: "c1".into(),
            tool_name: "upper".into(),
            result: ToolOutput::error("model call failed").result,
            is_error: true,
        }]
    );
}

#[tokio::test]
async fn a_retryable_failure_is_retried_before_anything_streams() {
    let overloaded = ProviderError {
        message: "overloaded".into(),
        retryable: true,
        retry_after: Some(Duration::from_millis(1)),
    };
    let turns = vec![turn(vec![Err(overloaded)]), turn(vec![text("fine")])];
    let mut bench = bench(turns, vec![]);
    bench.agent.retry.max_retries = 2;
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!((end.status, end.response.as_str()), (RunStatus::Completed, "fine"));
    assert_eq!(
        host.events("retry_start"),
        [EventKind::RetryStart {
            attempt: 1,
            max_attempts: 2,
            delay_ms: 1,
            error: "overloaded".into()
        }]
    );
    assert_eq!(host.events("retry_end"), [EventKind::RetryEnd { attempt: 1, success: true }]);
}

#[tokio::test]
async fn an_unknown_model_fails_at_once() {
    let bench = bench(vec![], vec![]);
    let host = FakeHost::default();
    let ghost = ModelRef { provider: "nope".into(), model_id: "x".into() };
    let end = bench.agent.run(&host, &ghost, ThinkingLevel::Off, &CancellationToken::new()).await;
    assert_eq!(end.status, RunStatus::failed(FailureCode::ModelError, "Model not found: nope/x"));
    assert!(host.told().is_empty());
}

#[tokio::test]
async fn an_abort_mid_stream_keeps_the_partial_text() {
    let bench = bench(vec![Turn { items: vec![text("partial")], hang: true }], vec![]);
    let cancel = CancellationToken::new();
    let host = FakeHost::cancelling_on("token", &cancel, None);
    let end = run(&bench, &host, &cancel).await;
    assert_eq!(
        end,
        RunEnd { status: RunStatus::Aborted, response: String::new(), usage: Usage::default() }
    );
    assert_eq!(host.names(), ["turn_start", "message_start", "token", "finished", "turn_end"]);
    assert_eq!(host.finished(), [("partial".to_string(), error_part("aborted", "Run aborted"))]);
}

#[tokio::test]
async fn an_abort_during_a_tool_gives_it_an_error_result() {
    let turns = vec![turn(call("c1", "stall", "x"))];
    let bench = bench(turns, vec![tool("stall")]);
    let cancel = CancellationToken::new();
    let host = FakeHost::cancelling_on("tool_start", &cancel, None);
    let end = run(&bench, &host, &cancel).await;
    assert_eq!(end.status, RunStatus::Aborted);
    assert_eq!(host.finished(), [(String::new(), None)]);
    let names = host.names();
    assert_eq!(names[names.len() - 3..], ["tool_start", "tool_complete", "turn_end"]);
    let EventKind::ToolComplete { result, is_error, .. } = &host.events("tool_complete")[0] else {
        unreachable!()
    };
    assert_eq!((result, *is_error), (&ToolOutput::error("aborted").result, true));
}

#[tokio::test]
async fn an_interruption_ends_the_run_with_its_own_status() {
    let limit = Duration::from_secs(60);
    for (why, status, code) in [
        (
            Interruption::Shutdown,
            RunStatus::Interrupted { reason: "interrupted by shutdown".into() },
            "interrupted",
        ),
        (
            Interruption::Timeout { limit },
            RunStatus::failed(FailureCode::Timeout, "run timed out after 1m (agent.run_timeout)"),
            "timeout",
        ),
    ] {
        let bench = bench(vec![Turn { items: vec![text("so far")], hang: true }], vec![]);
        let cancel = CancellationToken::new();
        let host = FakeHost::cancelling_on("token", &cancel, Some(why));
        let end = run(&bench, &host, &cancel).await;
        let message = status.error().unwrap().to_string();
        assert_eq!(end.status, status);
        assert_eq!(host.finished(), [("so far".to_string(), error_part(code, &message))]);
    }
}

#[tokio::test]
async fn max_steps_stops_a_model_that_keeps_calling_tools() {
    let turns = vec![turn(call("c1", "upper", "a")), turn(call("c2", "upper", "b"))];
    let mut bench = bench(turns, vec![tool("upper")]);
    bench.agent.max_steps = 2;
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!(
        end.status,
        RunStatus::failed(
            FailureCode::MaxSteps,
            "Run stopped after 2 model calls (agent.max_steps)"
        )
    );
    assert_eq!(end.status.code(), Some("max_steps"));
    // Two whole turns, each with its tool result, and no third model call.
    assert_eq!(host.events("turn_start").len(), 2);
    assert_eq!(host.events("tool_complete").len(), 2);
    assert_eq!(host.names().last().map(String::as_str), Some("turn_end"));
    assert_eq!(bench.provider.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_context_near_the_window_is_compacted_first() {
    let spent = Usage { input_tokens: 5, output_tokens: 1 };
    let summary = turn(vec![text("the gist"), Ok(ProviderEvent::Usage(spent))]);
    let mut bench = bench(vec![summary, turn(vec![text("reply")])], vec![]);
    bench.agent.registry.models[0].context_window = 5;
    let host = FakeHost::default();
    let end = run(&bench, &host, &CancellationToken::new()).await;
    assert_eq!(
        (end.status, end.response.as_str(), end.usage),
        (RunStatus::Completed, "reply", spent)
    );
    assert_eq!(
        host.names()[..4],
        ["turn_start", "message_start", "compaction_start", "compaction_end"]
    );
    assert_eq!(host.events("compaction_end"), [EventKind::CompactionEnd { summary_tokens: 2 }]);
    // The summary call saw what comes before the latest user message, and a request for it.
    let requests = bench.provider.requests.lock().unwrap();
    let texts: Vec<String> = requests[0].messages.iter().map(HistoryMessage::text).collect();
    assert_eq!(texts[..2], ["hi", "hello"]);
    assert!(requests[0].tools.is_empty() && requests[0].messages.len() == 3);
    assert_eq!(requests[1].system_prompt, "You are under test.");
}
