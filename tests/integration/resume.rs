//! Resuming the per-message streams (GATEWAY.md §3 resume, for §5.2 and §5.3): a Vercel chat
//! stream picked up at `GET /sessions/:key/chat/:id/stream` (the AI SDK's resume route) and a
//! v1 stream at `GET /v1/conversations/:id/stream`, after a disconnect mid-run, with and
//! without `Last-Event-ID`; 204 when nothing runs.

use serde_json::{Value, json};

use crate::common::*;

/// Reads frames until `enough` text deltas arrived; returns the `(id, data)` pairs read.
async fn read_some(sse: &mut Sse, enough: usize, delta: &str) -> Vec<(Option<u64>, Value)> {
    let mut seen = Vec::new();
    while seen.iter().filter(|(_, c): &&(Option<u64>, Value)| c["type"] == delta).count() < enough {
        seen.push(sse.event().await.expect("the stream goes on"));
    }
    seen
}

fn deltas(chunks: &[(Option<u64>, Value)], field: &str, ty: &str) -> String {
    chunks.iter().filter(|(_, c)| c["type"] == ty).map(|(_, c)| text_of(&c[field])).collect()
}

async fn all(sse: &mut Sse) -> Vec<(Option<u64>, Value)> {
    let mut all = Vec::new();
    while let Some(event) = sse.event().await {
        all.push(event);
    }
    all
}

#[tokio::test]
async fn a_vercel_stream_resumes_after_its_last_event_id_or_from_the_start() {
    let gw = Gateway::start().await;
    let reply = words(60);
    let body = json!({"text": format!("{reply}\n!delay 10")});
    let mut first = Sse::open_with(gw.http.post(gw.url("/sessions/vr/chat")).json(&body)).await;
    let seen = read_some(&mut first, 10, "text-delta").await;
    drop(first);
    let last = seen.iter().rev().find_map(|(id, _)| *id).expect("chunks carry ids");

    // A client that kept what it saw asks for the rest; `chat-1` names no run, so the
    // session's running run is picked up.
    let request = gw
        .http
        .get(gw.url("/sessions/vr/chat/chat-1/stream"))
        .header("last-event-id", last.to_string());
    let mut second = Sse::open_with(request).await;
    assert_eq!(second.response_headers["x-vercel-ai-ui-message-stream"], "v1");
    let rest = all(&mut second).await;
    assert_eq!(rest.first().unwrap().1["type"], "start");
    assert_eq!(rest.last().unwrap().1, "[DONE]");
    assert_eq!(rest[rest.len() - 2].1["type"], "finish");
    let union = deltas(&seen, "delta", "text-delta") + &deltas(&rest, "delta", "text-delta");
    assert_eq!(union, reply, "nothing missed, nothing repeated");
    let ids: Vec<u64> = seen.iter().chain(&rest).filter_map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids only rise: {ids:?}");

    // After a reload (nothing kept) the running run comes again from its start.
    let body = json!({"text": format!("{reply}\n!delay 10")});
    let mut third = Sse::open_with(gw.http.post(gw.url("/sessions/vr/chat")).json(&body)).await;
    let start = third.event().await.unwrap().1;
    let message_id = text_of(&start["messageId"]);
    read_some(&mut third, 5, "text-delta").await;
    drop(third);
    let mut again = Sse::open(&gw, &format!("/sessions/vr/chat/{message_id}/stream")).await;
    let replay = all(&mut again).await;
    assert_eq!(replay[0].1["messageId"], message_id.as_str());
    assert_eq!(deltas(&replay, "delta", "text-delta"), reply);
    assert_eq!(replay.iter().filter(|(_, c)| c["type"] == "start-step").count(), 1);

    // Nothing runs any more: 204, as the AI SDK expects.
    let response = gw.http.get(gw.url("/sessions/vr/chat/chat-1/stream")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = gw.get("/sessions/nobody/chat/x/stream").await;
    assert_eq!(status, 404);
    let bad = gw.http.get(gw.url("/sessions/vr/chat/x/stream")).header("last-event-id", "soon");
    assert_eq!(read(bad.send().await.unwrap()).await.0, 400);
}

#[tokio::test]
async fn a_v1_stream_resumes_with_last_event_id_and_ends_with_done() {
    let gw = Gateway::start().await;
    let reply = words(60);
    // No conversationId: leaving does not cancel the message, so the run goes on.
    let body = json!({"message": format!("{reply}\n!delay 10")});
    let mut first = Sse::open_with(gw.http.post(gw.url("/v1/chat/stream")).json(&body)).await;
    let (_, name, ready) = first.named().await.unwrap();
    assert_eq!(name.as_deref(), Some("ready"));
    let id = text_of(&ready["conversationId"]);
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let (event_id, name, data) = first.named().await.unwrap();
        if name.as_deref() == Some("assistant_text_delta") {
            seen.push((event_id.expect("logged events carry ids"), text_of(&data["delta"])));
        }
    }
    drop(first);
    let last = seen.last().unwrap().0;

    let request = gw
        .http
        .get(gw.url(&format!("/v1/conversations/{id}/stream")))
        .header("last-event-id", last.to_string());
    let mut second = Sse::open_with(request).await;
    let (_, name, again) = second.named().await.unwrap();
    assert_eq!((name.as_deref(), &again["conversationId"]), (Some("ready"), &json!(id)));
    let mut rest = String::new();
    let done = loop {
        let (event_id, name, data) = second.named().await.expect("the stream ends with done");
        match name.as_deref() {
            Some("assistant_text_delta") => {
                assert!(event_id.unwrap() > last, "only what followed the resume point");
                rest.push_str(&text_of(&data["delta"]));
            }
            Some("done") => break data,
            Some("error") => panic!("{data}"),
            _ => {}
        }
    };
    let first_part: String = seen.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(first_part + &rest, reply);
    assert_eq!(done["assistantText"], reply.as_str());
    assert_eq!(done["sessionId"], ready["sessionId"]);
    assert!(second.named().await.is_none(), "the stream ends after done");

    // The run is over: a resume from before its end still gets the rest, one from after it
    // gets nothing to resume.
    let mut late = Sse::open(&gw, &format!("/v1/conversations/{id}/stream?after={last}")).await;
    let mut tail = String::new();
    while let Some((_, name, data)) = late.named().await {
        if name.as_deref() == Some("assistant_text_delta") {
            tail.push_str(&text_of(&data["delta"]));
        }
    }
    assert_eq!(tail, rest);
    let response =
        gw.http.get(gw.url(&format!("/v1/conversations/{id}/stream"))).send().await.unwrap();
    assert_eq!(response.status(), 204);
}
