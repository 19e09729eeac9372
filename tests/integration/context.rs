//! What the model sees: one conversation through every path a session's context can take
//! (plain turns, a tool call and its result, an eviction and reload, a restart, a compaction,
//! turns after the compaction, and a restart after it) must give exactly the provider requests
//! pinned in `tests/golden/provider_requests.json`. The fixture was recorded while history was
//! still held in RAM, so reading the context from the store changes nothing the model sees.

use agent_gateway::proto as pb;
use serde_json::Value;

use crate::common::golden::assert_golden;
use crate::common::mock_model::*;
use crate::common::*;

/// The request bodies so far, with the per-test workspace path replaced.
fn bodies(mock: &MockModel, workspace: &str) -> Value {
    let text = Value::Array(mock.requests().into_iter().map(|r| r.body).collect()).to_string();
    serde_json::from_str(&text.replace(workspace, "{workspace}")).unwrap()
}

async fn send(gw: &Gateway, key: &str, text: &str) -> Value {
    let (status, body) = gw.message(key, text).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the session is no longer held in memory.
async fn until_unloaded(gw: &Gateway, key: &str) {
    within(async {
        loop {
            // The list reads the store for sessions not in memory (a GET would load it).
            let (_, list) = gw.get("/sessions").await;
            let sessions = list["sessions"].as_array().unwrap();
            if sessions.iter().any(|s| s["sessionKey"] == key && s["loaded"] == false) {
                return;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn the_same_conversation_gives_the_same_provider_requests() {
    let mock = MockModel::start(vec![
        openai_text(&["hello ", "there"]),
        openai_read("call_1", "a.txt"),
        openai_text(&["it says alpha"]),
        openai_text(&["after the reload"]),
        openai_text(&["after the restart"]),
    ])
    .await;
    let settings = [
        ("provider", "openai"),
        ("model", "gpt-test"),
        ("base_url", mock.url.as_str()),
        ("openai_api_key", "sk-test"),
        ("agent.retry_base_delay", "10ms"),
        ("context_window", "1600"),
        ("agent.compact_at_percent", "50"),
        ("limits.max_live_sessions", "2"),
    ];
    let gw = Gateway::with(&settings).await;
    let workspace = gw.workspace.display().to_string();
    std::fs::write(gw.workspace.join("a.txt"), "alpha").unwrap();

    assert_eq!(send(&gw, "k", "hi").await["response"], "hello there");
    assert_eq!(send(&gw, "k", "read a.txt").await["response"], "it says alpha");
    // Two other sessions push `k` out of memory; its next run loads it again.
    let mut sessions = gw.sessions().await;
    for other in ["other1", "other2"] {
        let create = pb::CreateSessionRequest { session_key: other.into(), ..Default::default() };
        sessions.create_session(create).await.unwrap();
    }
    until_unloaded(&gw, "k").await;
    assert_eq!(send(&gw, "k", "still there?").await["response"], "after the reload");

    let gw = gw.stop_keeping_data().await.start().await;
    assert_eq!(send(&gw, "k", "and now?").await["response"], "after the restart");

    // A long message passes half the window: the older turns are summarised first.
    mock.push(openai_text(&["SUMMARY: greetings, a.txt says alpha."]));
    mock.push(openai_text(&["long one answered"]));
    assert_eq!(send(&gw, "k", &words(700)).await["response"], "long one answered");
    // The long message is still in the context: the next turn compacts again, over the summary.
    mock.push(openai_text(&["SUMMARY: a long list of words."]));
    mock.push(openai_text(&["after the compaction"]));
    assert_eq!(send(&gw, "k", "short").await["response"], "after the compaction");

    let gw = gw.stop_keeping_data().await.start().await;
    mock.push(openai_text(&["compacted and restarted"]));
    assert_eq!(send(&gw, "k", "last").await["response"], "compacted and restarted");

    let requests = bodies(&mock, &workspace);
    let summaries = requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.to_string().contains("Summarize the conversation"))
        .count();
    assert_eq!(summaries, 2, "two compactions: {requests}");
    assert_golden("provider_requests", &requests);
    // History itself keeps every message: 2 + 4 (tool call, result, answer) + 2 * 5 turns.
    let (_, history) = gw.get("/sessions/k/history").await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 16, "{history}");
}

/// History stays in the store: loading a session reads its row, a run reads its context (from
/// the compaction point on), a page reads its range. Stored messages before the compaction
/// point are made unreadable here; everything that does not ask for them must still work.
#[tokio::test]
async fn a_load_and_a_run_read_only_what_they_need_of_history() {
    let gw = Gateway::start().await;
    for i in 0..6 {
        assert_eq!(send(&gw, "k", &format!("message {i}")).await["ok"], true);
    }
    let stopped = gw.stop_keeping_data().await;
    {
        let db = rusqlite::Connection::open(stopped.database()).unwrap();
        db.execute(
            "UPDATE sessions SET compacted_upto = 8, compaction_summary = 'earlier' WHERE key = 'k'",
            [],
        )
        .unwrap();
        let broken = db
            .execute(
                "UPDATE history SET parts = 'unreadable' WHERE session_key = 'k' AND position < 8",
                [],
            )
            .unwrap();
        assert_eq!(broken, 8);
    }
    let gw = stopped.start().await;
    let (status, snapshot) = gw.get("/sessions/k").await;
    assert_eq!(status, 200, "the load reads no history: {snapshot}");
    assert_eq!(snapshot["session"]["messageCount"], 12);
    assert_eq!(snapshot["session"]["lastMessagePreview"], "message 5");
    assert_eq!(send(&gw, "k", "after").await["response"], "after", "the run reads positions 8..");
    let (status, page) = gw.get("/sessions/k/history?limit=6").await;
    assert_eq!(status, 200, "{page}");
    let texts = page_texts(&page);
    assert_eq!(texts, ["message 4", "message 4", "message 5", "message 5", "after", "after"]);
    assert_eq!(page["nextCursor"], "8");
    // The page before it is the unreadable part: that read fails, and says so.
    let (status, error) = gw.get("/sessions/k/history?limit=6&cursor=8").await;
    assert_eq!((status, &error["code"]), (503, &serde_json::json!("unavailable")), "{error}");
}
