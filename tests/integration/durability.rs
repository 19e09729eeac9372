//! Durability through real processes (GATEWAY.md §2 crash semantics, §10 shutdown): a SIGKILL
//! mid-run loses no accepted message and runs nothing twice (on SQLite and on PostgreSQL);
//! SIGTERM drains; a bad database stops the start with a message naming the file.

use agent_gateway::proto as pb;
use agent_gateway::proto::chat_client::ChatClient;
use pb::event::Kind;
use pb::stream_chat_response::Kind as Item;
use serde_json::{Value, json};
use tonic::Streaming;
use tonic::transport::Channel;

use crate::common::process::{Process, history};
use crate::common::*;
use crate::grpc_chat::send;

/// Sends over StreamChat; returns the stream (past its `accepted` item) and the message id.
async fn stream_chat(
    chat: &mut ChatClient<Channel>,
    key: &str,
    text: &str,
) -> (Streaming<pb::StreamChatResponse>, String) {
    let mut stream = chat.stream_chat(send(key, text)).await.unwrap().into_inner();
    let Some(Item::Accepted(accepted)) = next(&mut stream).await.unwrap().kind else {
        panic!("accepted first")
    };
    (stream, accepted.message_id)
}

/// The next event of a run stream.
async fn next_event(stream: &mut Streaming<pb::StreamChatResponse>) -> pb::Event {
    match next(stream).await.expect("the run streams").kind.unwrap() {
        Item::Event(event) => event,
        Item::Result(result) => panic!("the run ended early: {result:?}"),
        Item::Accepted(_) => panic!("accepted twice"),
    }
}

/// Reads a run stream to its end: its events and its result.
async fn run_to_end(
    stream: &mut Streaming<pb::StreamChatResponse>,
) -> (Vec<pb::Event>, pb::RunResult) {
    let mut events = Vec::new();
    loop {
        match next(stream).await.expect("a result before the end").kind.unwrap() {
            Item::Event(event) => events.push(event),
            Item::Result(result) => return (events, result),
            Item::Accepted(_) => panic!("accepted twice"),
        }
    }
}

/// Logged events of a session after `after`, until the `agent_end` of `last_message_id`.
async fn events_until_end(
    gw: &Process,
    key: &str,
    after: u64,
    last_message_id: &str,
) -> Vec<Value> {
    let url = gw.url(&format!("/sessions/{key}/events?after={after}"));
    let mut sse = Sse::open_with(reqwest::Client::new().get(url)).await;
    let mut logged = Vec::new();
    loop {
        let (id, event) = sse.event().await.expect("the stream stays open");
        if id.is_none() {
            continue; // hello, lagged: per-subscriber notes
        }
        let end = event["type"] == "agent_end" && event["messageId"] == last_message_id;
        logged.push(event);
        if end {
            return logged;
        }
    }
}

fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == ty).collect()
}

fn parts_of_type<'a>(message: &'a Value, ty: &str) -> Vec<&'a Value> {
    message["parts"].as_array().unwrap().iter().filter(|p| p["type"] == ty).collect()
}

#[tokio::test]
async fn a_crash_mid_run_loses_no_message_and_runs_nothing_twice() {
    crash_mid_run(&[]).await;
}

/// The same crash with the store on PostgreSQL (issue 18).
#[tokio::test]
async fn a_crash_mid_run_on_postgres_loses_no_message_and_runs_nothing_twice() {
    let (url, _, _) = crate::postgres::fresh_database().await;
    crash_mid_run(&["--set", &format!("store_url={url}")]).await;
}

/// Kills the gateway (started with the `store` arguments) mid-run in two sessions, and checks
/// the restart: nothing accepted is lost, nothing that had started runs again.
async fn crash_mid_run(store: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "the note").unwrap();
    let mut args = vec!["--set", "session.event_log=5000"];
    args.extend_from_slice(store);
    let gw = Process::start(dir.path(), &args);
    let mut chat = gw.chat().await;

    // Session a: a tool runs, then a long reply streams; four messages queue behind it.
    let reply = words(100);
    let a_text = format!("!tool read {{\"path\":\"note.txt\"}}\n!delay 100\n{reply}");
    let (mut a, a_id) = stream_chat(&mut chat, "a", &a_text).await;
    // Session b: two tool calls streaming slowly; the crash comes between them.
    let b_text =
        "!tool read {\"path\":\"note.txt\"}\n!tool read {\"path\":\"x.txt\"}\n!delay 1500\nb";
    let (mut b, _) = stream_chat(&mut chat, "b", b_text).await;
    let mut queued = Vec::new();
    for i in 0..4 {
        let (stream, id) = stream_chat(&mut chat, "a", &format!("queued {i}")).await;
        queued.push((stream, id));
    }

    // a: its tool ran, then more of the reply streamed than one checkpoint interval.
    let (mut max_seq, mut tool_ran, mut tokens) = (0, false, 0);
    while tokens < 8 {
        let event = next_event(&mut a).await;
        max_seq = max_seq.max(event.seq);
        match event.kind.unwrap() {
            Kind::ToolComplete(c) => {
                assert!(!c.is_error);
                tool_ran = true;
            }
            Kind::Token(_) if tool_ran => tokens += 1,
            _ => {}
        }
    }
    // b: its first call is complete, the second is still streaming.
    while !matches!(next_event(&mut b).await.kind, Some(Kind::ToolCallEnd(_))) {}
    gw.signal("KILL");
    assert_eq!(gw.exit().await.code(), None, "killed by the signal");
    drop((a, b));
    let queued: Vec<String> = queued.into_iter().map(|(_, id)| id).collect();

    let gw = Process::start(dir.path(), &args);
    let events = events_until_end(&gw, "a", max_seq, queued.last().unwrap()).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs[0] > max_seq, "seq keeps rising past {max_seq}: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let errors = of_type(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0]["code"], "interrupted");
    assert_eq!(errors[0]["error"], "interrupted by restart");
    let ends = of_type(&events, "agent_end");
    assert_eq!(ends[0]["messageId"], a_id.as_str());
    assert_eq!(ends[0]["ok"], false);
    // The queue ran in order, each message once; the interrupted run did not run again.
    let started: Vec<&str> =
        of_type(&events, "agent_start").iter().map(|e| e["messageId"].as_str().unwrap()).collect();
    assert_eq!(started, queued.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(of_type(&events, "tool_start").is_empty(), "no tool ran again");

    let a = history(&gw, "a").await;
    assert_eq!(a.len(), 4 + 2 * queued.len(), "{a:#?}");
    assert_eq!(a[0]["id"], a_id.as_str());
    assert_eq!(a[1]["parts"][0]["type"], "tool-invocation");
    assert_eq!(a[2]["role"], "toolResult");
    assert_eq!(a[2]["parts"][0]["state"], "result");
    let tool_results = a.iter().filter(|m| m["role"] == "toolResult").count();
    assert_eq!(tool_results, 1, "the tool executed once");
    // The partial reply is kept, marked interrupted.
    let partial = text_of(&parts_of_type(&a[3], "text")[0]["text"]);
    assert!(!partial.is_empty() && reply.starts_with(partial.trim_end()), "{partial:?}");
    let error = parts_of_type(&a[3], "error");
    assert_eq!(
        error[0],
        &json!({"type": "error", "code": "interrupted", "message": "interrupted by restart"})
    );
    for (i, id) in queued.iter().enumerate() {
        let user = &a[4 + 2 * i];
        assert_eq!(user["id"], id.as_str());
        assert_eq!(user["parts"][0]["text"], format!("queued {i}"));
        assert_eq!(a[5 + 2 * i]["parts"][0]["text"], format!("queued {i}"));
    }

    // b: the call that was open gets an error result; nothing is left dangling.
    let b = history(&gw, "b").await;
    let calls: Vec<&Value> = b
        .iter()
        .filter(|m| m["role"] == "assistant")
        .flat_map(|m| parts_of_type(m, "tool-invocation"))
        .collect();
    assert!(!calls.is_empty(), "{b:#?}");
    for call in calls {
        let result = b
            .iter()
            .filter(|m| m["role"] == "toolResult")
            .find(|m| m["parts"][0]["toolCallId"] == call["toolCallId"])
            .unwrap_or_else(|| panic!("no result for {call}: {b:#?}"));
        assert_eq!(result["parts"][0]["state"], "error");
        assert_eq!(result["parts"][0]["result"]["content"][0]["text"], "interrupted by restart");
    }
}

#[tokio::test]
async fn sigterm_drains_lets_the_run_finish_and_keeps_the_queue_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Process::start(dir.path(), &[]);
    let mut chat = gw.chat().await;
    let reply = words(30);
    let text = format!("{reply}\n!delay 100");
    let (mut run, _) = stream_chat(&mut chat, "t", &text).await;
    let (_q1, q1) = stream_chat(&mut chat, "t", "after one").await;
    let (_q2, q2) = stream_chat(&mut chat, "t", "after two").await;
    while !matches!(next_event(&mut run).await.kind, Some(Kind::Token(_))) {}

    gw.signal("TERM");
    gw.wait_for_line("draining");
    let health = reqwest::get(gw.url("/health")).await.unwrap();
    assert_eq!(health.status(), 503);
    let late = reqwest::Client::new()
        .post(gw.url("/sessions/t/messages"))
        .json(&json!({"text": "late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 503);
    let refused = gw.chat().await.send_message(send("t", "late")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    // The running run completes within the grace period.
    let (_, result) = run_to_end(&mut run).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(result.response, reply);
    assert_eq!(gw.exit().await.code(), Some(0));

    // The queued remainder runs after the next start, in order; the refused message never.
    let gw = Process::start(dir.path(), &[]);
    let events = events_until_end(&gw, "t", 0, &q2).await;
    let started: Vec<&str> =
        of_type(&events, "agent_start").iter().map(|e| e["messageId"].as_str().unwrap()).collect();
    assert_eq!(started, [q1.as_str(), q2.as_str()]);
    let texts: Vec<String> =
        history(&gw, "t").await.iter().map(|m| text_of(&m["parts"][0]["text"])).collect();
    assert_eq!(texts, [&text, &reply, "after one", "after one", "after two", "after two"]);
    gw.signal("TERM");
    assert_eq!(gw.exit().await.code(), Some(0));
}

#[tokio::test]
async fn a_run_past_the_grace_period_is_interrupted_and_never_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--set", "shutdown_grace=300ms"];
    let gw = Process::start(dir.path(), &args);
    let mut chat = gw.chat().await;
    let reply = words(300);
    let (mut run, _) = stream_chat(&mut chat, "g", &format!("{reply}\n!delay 50")).await;
    while !matches!(next_event(&mut run).await.kind, Some(Kind::Token(_))) {}
    gw.signal("TERM");
    let (events, result) = run_to_end(&mut run).await;
    assert!(!result.ok);
    assert_eq!(result.error.as_deref(), Some("interrupted by shutdown"));
    let error = events.iter().find_map(|e| match &e.kind {
        Some(Kind::Error(error)) => Some(error.clone()),
        _ => None,
    });
    assert_eq!(error.unwrap().code, "interrupted");
    assert_eq!(gw.exit().await.code(), Some(0));

    let gw = Process::start(dir.path(), &args);
    let g = history(&gw, "g").await;
    assert_eq!(g.len(), 2, "the interrupted message is not re-run: {g:#?}");
    let partial = text_of(&parts_of_type(&g[1], "text")[0]["text"]);
    assert!(reply.starts_with(partial.trim_end()) && partial.len() < reply.len());
    assert_eq!(parts_of_type(&g[1], "error")[0]["message"], "interrupted by shutdown");
    let session: Value = reqwest::get(gw.url("/sessions/g")).await.unwrap().json().await.unwrap();
    assert_eq!(session["session"]["processing"], false);
    assert_eq!(session["session"]["queueDepth"], 0);
}

#[tokio::test]
async fn a_locked_or_truncated_database_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Process::start(dir.path(), &[]);
    let reply = reqwest::Client::new()
        .post(gw.url("/sessions/k/messages"))
        .json(&json!({"text": "keep me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    // A second gateway on the same data dir is refused.
    let second = Process::run_to_exit(dir.path(), &[]);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("gateway.db") && stderr.contains("locked"), "{stderr}");
    gw.signal("TERM");
    assert_eq!(gw.exit().await.code(), Some(0));

    let file = dir.path().join("data").join("gateway.db");
    let len = std::fs::metadata(&file).unwrap().len();
    let handle = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    handle.set_len(len / 2).unwrap();
    let output = Process::run_to_exit(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}
