//! The SSE event stream: framing, ids, heartbeats, resume, and the end of a deleted session.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn two_subscribers_see_identical_strictly_increasing_ids() {
    let gw = Gateway::start().await;
    let mut a = Sse::open(&gw, "/sessions/main/events").await;
    let mut b = Sse::open(&gw, "/sessions/main/events").await;
    for sse in [&mut a, &mut b] {
        let (id, hello) = sse.event().await.unwrap();
        assert_eq!(id, None, "hello is a note: no id");
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["snapshot"]["sessionKey"], "main");
    }
    std::fs::write(gw.workspace.join("notes.txt"), "remember the milk").unwrap();
    let (status, _) =
        gw.message("main", "read it\n!think\n!tool read {\"path\":\"notes.txt\"}").await;
    assert_eq!(status, 200);
    let seen_a = a.until("agent_end").await;
    let seen_b = b.until("agent_end").await;
    assert_eq!(seen_a, seen_b, "both subscribers got the same frames");
    let ids: Vec<u64> =
        seen_a.iter().map(|(id, _)| id.expect("logged events carry an id")).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "strictly increasing: {ids:?}");
    for (id, data) in &seen_a {
        assert_eq!(data["seq"].as_u64(), *id, "id: equals the event's seq");
        assert_eq!(data["sessionKey"], "main");
    }
    let types: Vec<String> = seen_a.iter().map(|(_, d)| text_of(&d["type"])).collect();
    for expected in
        ["agent_start", "thinking", "tool_call_delta", "tool_complete", "token", "agent_end"]
    {
        assert!(types.iter().any(|t| t == expected), "{expected} in {types:?}");
    }
}

#[tokio::test]
async fn headers_and_heartbeats() {
    let gw = Gateway::with(&[("http.sse_heartbeat", "100ms")]).await;
    let mut sse = Sse::open(&gw, "/sessions/main/events").await;
    assert_eq!(sse.response_headers["content-type"], "text/event-stream");
    assert_eq!(sse.response_headers["cache-control"], "no-cache, no-transform");
    assert!(matches!(sse.next().await, Some(Frame::Event { id: None, .. })));
    assert_eq!(sse.next().await, Some(Frame::Comment), "a heartbeat follows while idle");
}

#[tokio::test]
async fn resume_after_a_seq_replays_exactly_what_followed() {
    let gw = Gateway::start().await;
    gw.message("r", "first").await;
    let mut full = Sse::open(&gw, "/sessions/r/events?after=0").await;
    let (_, hello) = full.event().await.unwrap();
    let last = hello["seq"].as_u64().unwrap();
    let replay: Vec<u64> = {
        let mut ids = Vec::new();
        while ids.last() != Some(&last) {
            ids.push(full.event().await.unwrap().0.unwrap());
        }
        ids
    };
    assert_eq!(replay, (1..=last).collect::<Vec<_>>(), "after=0 replays the whole log");

    let resume_from = last - 3;
    let request =
        gw.http.get(gw.url("/sessions/r/events")).header("last-event-id", resume_from.to_string());
    let mut resumed = Sse::open_with(request).await;
    assert_eq!(resumed.event().await.unwrap().1["type"], "hello");
    let ids: Vec<u64> = vec![
        resumed.event().await.unwrap().0.unwrap(),
        resumed.event().await.unwrap().0.unwrap(),
        resumed.event().await.unwrap().0.unwrap(),
    ];
    assert_eq!(ids, vec![last - 2, last - 1, last]);
    // Then live events continue after the replay.
    gw.message("r", "second").await;
    assert_eq!(resumed.event().await.unwrap().0, Some(last + 1));

    let bad = gw
        .http
        .get(gw.url("/sessions/r/events"))
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_resume_point_older_than_the_log_gets_lagged() {
    let gw = Gateway::with(&[("session.event_log", "4")]).await;
    gw.message("small", "one two three").await;
    let mut sse = Sse::open(&gw, "/sessions/small/events?after=1").await;
    let (_, hello) = sse.event().await.unwrap();
    let last = hello["seq"].as_u64().unwrap();
    let (id, lagged) = sse.event().await.unwrap();
    assert_eq!(id, None);
    assert_eq!(
        lagged,
        json!({"type": "lagged", "sessionKey": "small", "seq": last, "missed": last - 4 - 1})
    );
    assert_eq!(sse.event().await.unwrap().0, Some(last - 3), "then the oldest event still logged");
}

#[tokio::test]
async fn a_deleted_session_ends_its_streams() {
    let gw = Gateway::start().await;
    gw.message("gone", "hi").await;
    let mut sse = Sse::open(&gw, "/sessions/gone/events").await;
    sse.event().await.unwrap();
    assert_eq!(gw.delete("/sessions/gone").await.0, 200);
    let (_, deleted) = sse.event().await.unwrap();
    assert_eq!(deleted["type"], "session_deleted");
    assert_eq!(sse.next().await, None, "the stream ends after session_deleted");
}
