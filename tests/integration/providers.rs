//! Real providers against scripted model servers speaking the real wire formats (OpenAI
//! Chat Completions chunks, Anthropic Messages events): text, thinking, parallel tool calls in
//! fragments, tool errors, retries, timeouts, abort mid-reply, steering into the next request,
//! and switching a session's model.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::mock_model::*;
use crate::common::*;

async fn openai_gateway(mock: &MockModel, extra: &[(&str, &str)]) -> Gateway {
    let mut settings = vec![
        ("provider", "openai"),
        ("model", "gpt-test"),
        ("base_url", mock.url.as_str()),
        ("openai_api_key", "sk-test"),
        ("agent.retry_base_delay", "10ms"),
    ];
    settings.extend_from_slice(extra);
    Gateway::with(&settings).await
}

/// Sends over REST and collects the session's events of that run.
async fn run(gw: &Gateway, key: &str, text: &str) -> (u16, Value, Vec<Value>) {
    let send =
        gw.http.post(gw.url(&format!("/sessions/{key}/messages"))).json(&json!({"text": text}));
    let (status, body) = read(send.send().await.unwrap()).await;
    let mut sse = Sse::open(gw, &format!("/sessions/{key}/events?after=0")).await;
    let mut events = Vec::new();
    loop {
        let (id, event) = sse.event().await.unwrap();
        if id.is_none() {
            continue;
        }
        let end = event["type"] == "agent_end";
        events.push(event);
        if end {
            break;
        }
    }
    (status, body, events)
}

fn of<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == ty).collect()
}

fn joined(events: &[Value], ty: &str) -> String {
    of(events, ty).iter().map(|e| text_of(&e["delta"])).collect()
}

#[tokio::test]
async fn openai_text_streams_and_the_request_is_the_real_protocol() {
    let mock = MockModel::start(vec![openai_text(&["Hello", " from", " OpenAI"])]).await;
    let gw = openai_gateway(&mock, &[]).await;
    let (status, body, events) = run(&gw, "o", "hi there").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "Hello from OpenAI");
    assert_eq!(joined(&events, "token"), "Hello from OpenAI");
    let end = of(&events, "agent_end")[0];
    assert_eq!(end["usage"], json!({"inputTokens": 11, "outputTokens": 3}));

    let request = &mock.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions", "the base URL got its trailing slash");
    assert_eq!(request.headers["authorization"], "Bearer sk-test");
    assert_eq!(request.body["model"], "gpt-test");
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    let messages = request.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages.last().unwrap()["role"], "user");
    assert!(messages.last().unwrap().to_string().contains("hi there"));
    let tools: Vec<&str> = request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(tools.contains(&"read"), "{tools:?}");
}

#[tokio::test]
async fn images_reach_openai_as_data_urls() {
    let mock = MockModel::start(vec![openai_text(&["a red pixel"])]).await;
    let gw = openai_gateway(&mock, &[]).await;
    let image = json!({"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"});
    let (status, _) =
        gw.post("/sessions/img/messages", json!({"text": "what is it?", "images": [image]})).await;
    assert_eq!(status, 200);
    let user = mock.requests()[0].body["messages"].as_array().unwrap().last().unwrap().clone();
    let parts = user["content"].as_array().unwrap();
    assert_eq!(parts[0], json!({"type": "text", "text": "what is it?"}));
    assert_eq!(parts[1]["type"], "image_url");
    assert_eq!(parts[1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
}

#[tokio::test]
async fn openai_reasoning_becomes_thinking_and_the_level_reaches_the_request() {
    let chunks = vec![
        oa_chunk(json!({"role": "assistant", "reasoning_content": "Let me"}), None),
        oa_chunk(json!({"reasoning_content": " think."}), None),
        oa_chunk(json!({"content": "Answer."}), None),
        oa_chunk(json!({}), Some("stop")),
    ];
    let mock = MockModel::start(vec![Reply::OpenAi { chunks, delay: Duration::ZERO }]).await;
    let gw = openai_gateway(&mock, &[]).await;
    gw.post("/v1/conversations", json!({"conversationId": "t"})).await;
    let (status, _) = gw.post("/sessions/t/thinking", json!({"level": "high"})).await;
    assert_eq!(status, 200);
    let (_, body, events) = run(&gw, "t", "why?").await;
    assert_eq!(body["response"], "Answer.");
    assert_eq!(joined(&events, "thinking"), "Let me think.");
    let (_, history) = gw.get("/sessions/t/history").await;
    let parts = &history["messages"][1]["parts"];
    assert_eq!(parts[0], json!({"type": "reasoning", "text": "Let me think."}));
    assert_eq!(mock.requests()[0].body["reasoning_effort"], "high");
}

#[tokio::test]
async fn two_parallel_tool_calls_in_fragments_and_their_results_in_the_next_request() {
    let call = |extra: Value| oa_chunk(json!({"tool_calls": [extra]}), None);
    let chunks = vec![
        call(
            json!({"index": 0, "id": "call_a", "type": "function", "function": {"name": "read", "arguments": ""}}),
        ),
        call(json!({"index": 0, "function": {"arguments": "{\"path\":"}})),
        call(
            json!({"index": 1, "id": "call_b", "type": "function", "function": {"name": "read", "arguments": ""}}),
        ),
        call(json!({"index": 0, "function": {"arguments": "\"a.txt\"}"}})),
        call(json!({"index": 1, "function": {"arguments": "{\"path\":\"b.txt\"}"}})),
        oa_chunk(json!({}), Some("tool_calls")),
    ];
    let mock = MockModel::start(vec![
        Reply::OpenAi { chunks, delay: Duration::ZERO },
        openai_text(&["Both read."]),
    ])
    .await;
    let gw = openai_gateway(&mock, &[]).await;
    std::fs::write(gw.workspace.join("a.txt"), "alpha").unwrap();
    std::fs::write(gw.workspace.join("b.txt"), "beta").unwrap();
    let (_, body, events) = run(&gw, "p", "read both").await;
    assert_eq!(body["response"], "Both read.");
    let starts: Vec<&str> =
        of(&events, "tool_call_start").iter().map(|e| e["toolCallId"].as_str().unwrap()).collect();
    assert_eq!(starts, ["call_a", "call_b"]);
    for (id, path) in [("call_a", "a.txt"), ("call_b", "b.txt")] {
        let args: String = of(&events, "tool_call_delta")
            .iter()
            .filter(|e| e["toolCallId"] == id)
            .map(|e| text_of(&e["delta"]))
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"path": path}));
        let end = of(&events, "tool_call_end").into_iter().find(|e| e["toolCallId"] == id).unwrap();
        assert_eq!(end["args"], json!({"path": path}));
    }
    let completes = of(&events, "tool_complete");
    assert_eq!(completes.len(), 2);
    assert!(completes.iter().all(|c| c["isError"] == false));

    let second = &mock.wait_requests(2).await[1].body["messages"];
    let messages = second.as_array().unwrap();
    let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    let ids: Vec<&str> = assistant["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["call_a", "call_b"]);
    assert_eq!(assistant["tool_calls"][0]["function"]["name"], "read");
    let tool_messages: Vec<(&str, String)> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| (m["tool_call_id"].as_str().unwrap(), m["content"].to_string()))
        .collect();
    assert_eq!(tool_messages.len(), 2);
    assert!(
        tool_messages[0].0 == "call_a" && tool_messages[0].1.contains("alpha"),
        "{tool_messages:?}"
    );
    assert!(
        tool_messages[1].0 == "call_b" && tool_messages[1].1.contains("beta"),
        "{tool_messages:?}"
    );
}

#[tokio::test]
async fn a_tool_error_is_a_result_the_model_sees() {
    let mock =
        MockModel::start(vec![openai_read("call_x", "missing.txt"), openai_text(&["Sorry."])])
            .await;
    let gw = openai_gateway(&mock, &[]).await;
    let (status, body, events) = run(&gw, "e", "read it").await;
    assert_eq!((status, text_of(&body["response"])), (200, "Sorry.".into()));
    let complete = of(&events, "tool_complete")[0];
    assert_eq!(complete["isError"], true);
    let second = mock.wait_requests(2).await[1].body.clone();
    let tool = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    assert_eq!(tool["tool_call_id"], "call_x");
    assert!(tool["content"].to_string().contains("missing.txt"), "{tool}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_delay() {
    let mock =
        MockModel::start(vec![status(429, &[("retry-after", "1")]), openai_text(&["ok"])]).await;
    let gw = openai_gateway(&mock, &[]).await;
    let (status, body, events) = run(&gw, "r", "hi").await;
    assert_eq!((status, text_of(&body["response"])), (200, "ok".into()));
    let start = of(&events, "retry_start")[0];
    assert_eq!((start["attempt"].as_u64(), start["maxAttempts"].as_u64()), (Some(1), Some(3)));
    assert_eq!(start["delayMs"], 1000, "the server's Retry-After wins over the backoff");
    assert!(text_of(&start["error"]).contains("429"));
    assert_eq!(
        of(&events, "retry_end")[0],
        &json!({"type": "retry_end", "sessionKey": "r", "seq": of(&events, "retry_end")[0]["seq"], "attempt": 1, "success": true})
    );
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn a_storm_of_500s_ends_in_a_clear_error() {
    let mock = MockModel::start((0..3).map(|_| status(500, &[])).collect()).await;
    let gw = openai_gateway(&mock, &[("agent.max_retries", "2")]).await;
    let (status, body, events) = run(&gw, "s", "hi").await;
    assert_eq!(status, 500);
    let error = text_of(&body["error"]);
    assert!(error.contains("500") && error.contains("after 2 retries"), "{error}");
    assert_eq!(of(&events, "retry_start").len(), 2);
    assert_eq!(of(&events, "retry_end")[0]["success"], false);
    assert_eq!(of(&events, "error")[0]["code"], "model_error");
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn a_silent_model_call_times_out() {
    let slow = Reply::OpenAi {
        chunks: vec![oa_chunk(json!({"content": "late"}), None)],
        delay: Duration::from_secs(5),
    };
    let mock = MockModel::start(vec![slow]).await;
    let gw =
        openai_gateway(&mock, &[("agent.call_timeout", "300ms"), ("agent.max_retries", "0")]).await;
    let (status, body, _) = run(&gw, "slow", "hi").await;
    assert_eq!(status, 500);
    assert!(text_of(&body["error"]).contains("timed out"), "{body}");
}

#[tokio::test]
async fn abort_during_a_streamed_reply() {
    let pieces: Vec<Value> =
        (0..200).map(|i| oa_chunk(json!({"content": format!("w{i} ")}), None)).collect();
    let mock =
        MockModel::start(vec![Reply::OpenAi { chunks: pieces, delay: Duration::from_millis(30) }])
            .await;
    let gw = openai_gateway(&mock, &[]).await;
    gw.post("/v1/conversations", json!({"conversationId": "ab"})).await;
    let mut sse = Sse::open(&gw, "/sessions/ab/events").await;
    let send = gw.http.post(gw.url("/sessions/ab/messages")).json(&json!({"text": "go"})).send();
    let waiting = tokio::spawn(send);
    let mut tokens = 0;
    while tokens < 3 {
        if sse.event().await.unwrap().1["type"] == "token" {
            tokens += 1;
        }
    }
    assert_eq!(gw.post("/sessions/ab/abort", json!({})).await.1["ok"], true);
    let seen = sse.until("agent_end").await;
    assert!(seen.iter().any(|(_, e)| e["type"] == "aborted"));
    let (status, body) = read(waiting.await.unwrap().unwrap()).await;
    assert_eq!((status, text_of(&body["error"])), (500, "aborted".into()));
    let (_, history) = gw.get("/sessions/ab/history").await;
    let reply = &history["messages"][1]["parts"];
    assert!(text_of(&reply[0]["text"]).starts_with("w0 w1 w2"));
    assert_eq!(reply.as_array().unwrap().last().unwrap()["code"], "aborted");
}

#[tokio::test]
async fn steering_text_lands_in_the_next_request() {
    let mut first = openai_read("call_s", "a.txt");
    if let Reply::OpenAi { delay, .. } = &mut first {
        *delay = Duration::from_millis(150);
    }
    let mock = MockModel::start(vec![first, openai_text(&["Noted."])]).await;
    let gw = openai_gateway(&mock, &[]).await;
    std::fs::write(gw.workspace.join("a.txt"), "alpha").unwrap();
    gw.post("/v1/conversations", json!({"conversationId": "st"})).await;
    let mut sse = Sse::open(&gw, "/sessions/st/events").await;
    let send =
        gw.http.post(gw.url("/sessions/st/messages")).json(&json!({"text": "read a"})).send();
    let waiting = tokio::spawn(send);
    while sse.event().await.unwrap().1["type"] != "tool_call_start" {}
    let (status, body) = gw.post("/sessions/st/steer", json!({"text": "and be brief"})).await;
    assert_eq!((status, text_of(&body["mode"])), (200, "steer".into()));
    assert_eq!(read(waiting.await.unwrap().unwrap()).await.0, 200);
    let second = &mock.wait_requests(2).await[1].body["messages"];
    let messages = second.as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    assert!(last.to_string().contains("and be brief"), "{last}");
    assert!(messages.iter().any(|m| m["role"] == "tool"), "after the tool result");
    assert!(!mock.requests()[0].body.to_string().contains("and be brief"));
}

#[tokio::test]
async fn a_session_switches_between_models() {
    let mock = MockModel::start(vec![openai_text(&["from openai"])]).await;
    let gw = openai_gateway(&mock, &[]).await;
    let (_, models) = gw.get("/models").await;
    assert_eq!(models["current"], json!({"provider": "openai", "modelId": "gpt-test"}));
    let ids: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo", "gpt-test"]);
    gw.post("/v1/conversations", json!({"conversationId": "sw"})).await;
    gw.post("/sessions/sw/model", json!({"provider": "echo", "modelId": "echo"})).await;
    assert_eq!(gw.message("sw", "echo me").await.1["response"], "echo me");
    assert!(mock.requests().is_empty(), "the echo model needs no server");
    gw.post("/sessions/sw/model", json!({"provider": "openai", "modelId": "gpt-test"})).await;
    assert_eq!(gw.message("sw", "now you").await.1["response"], "from openai");
    assert_eq!(gw.get("/sessions/sw").await.1["session"]["modelId"], "gpt-test");
}

#[tokio::test]
async fn reload_brings_a_changed_system_prompt_to_the_next_model_call() {
    let mock =
        MockModel::start(vec![openai_text(&["1"]), openai_text(&["2"]), openai_text(&["3"])]).await;
    let gw = openai_gateway(&mock, &[("system_prompt", "You are terse.")]).await;
    let rules = gw.workspace.join("AGENTS.md");
    std::fs::write(&rules, "Rule A: answer in French.").unwrap();
    gw.message("rl", "one").await;
    std::fs::write(&rules, "Rule B: answer in German.").unwrap();
    gw.message("rl", "two").await;
    let mut sessions = gw.sessions().await;
    let request = agent_gateway::proto::ReloadSessionRequest { session_key: "rl".into() };
    sessions.reload_session(request).await.unwrap();
    gw.message("rl", "three").await;
    let system = |i: usize| {
        let body = &mock.requests()[i].body;
        let first = &body["messages"][0];
        assert_eq!(first["role"], "system");
        first["content"].to_string()
    };
    assert!(system(0).contains("You are terse.") && system(0).contains("Rule A"), "{}", system(0));
    assert!(system(1).contains("Rule A"), "a session keeps its settings until reloaded");
    assert!(system(2).contains("Rule B") && !system(2).contains("Rule A"), "{}", system(2));
    assert_eq!(gw.post("/sessions/rl/reload", json!({})).await, (200, json!({"ok": true})));
    assert_eq!(gw.post("/sessions/nobody/reload", json!({})).await.0, 404);
}

#[tokio::test]
async fn older_history_is_compacted_when_the_context_nears_the_window() {
    let mock = MockModel::start(vec![
        openai_text(&["first answer"]),
        openai_text(&["SUMMARY: the user sent a long line of a's."]),
        openai_text(&["second answer"]),
    ])
    .await;
    let gw =
        openai_gateway(&mock, &[("context_window", "256"), ("agent.compact_at_percent", "50")])
            .await;
    gw.message("c", &"a".repeat(300)).await;
    let mut sse = Sse::open(&gw, "/sessions/c/events").await;
    sse.event().await.unwrap();
    let (_, body) = gw.message("c", &"b".repeat(300)).await;
    assert_eq!(body["response"], "second answer");
    let events: Vec<Value> = sse.until("agent_end").await.into_iter().map(|(_, e)| e).collect();
    let start = of(&events, "compaction_start");
    assert_eq!(start.len(), 1, "{events:?}");
    assert!(text_of(&start[0]["reason"]).contains("256 token window"));
    assert!(of(&events, "compaction_end")[0]["summaryTokens"].as_u64().unwrap() > 0);

    let requests = mock.wait_requests(3).await;
    let summary_request = requests[1].body.to_string();
    assert!(
        summary_request.contains("Summarize the conversation") && summary_request.contains("aaaa")
    );
    assert!(
        !summary_request.contains("bbbb"),
        "the message being answered is kept, not summarised"
    );
    let answer_request = requests[2].body["messages"].to_string();
    assert!(answer_request.contains("SUMMARY: the user sent") && answer_request.contains("bbbb"));
    assert!(!answer_request.contains("aaaa"), "the summarised messages are gone from the context");
    let (_, history) = gw.get("/sessions/c/history").await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 4, "history itself keeps everything");
}

// ---- Anthropic -----------------------------------------------------------------------------

fn ant(name: &str, data: Value) -> (String, Value) {
    (name.to_string(), data)
}

fn anthropic_turn(blocks: Vec<Vec<(String, Value)>>, stop: &str, output_tokens: u64) -> Reply {
    let mut events = vec![ant(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-test", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    )];
    events.extend(blocks.into_iter().flatten());
    events.push(ant("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    events.push(ant("message_stop", json!({"type": "message_stop"})));
    Reply::Anthropic { events, delay: Duration::ZERO }
}

fn block(index: u32, start: Value, deltas: Vec<Value>) -> Vec<(String, Value)> {
    let mut events = vec![ant(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": start}),
    )];
    for delta in deltas {
        events.push(ant(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }
    events.push(ant("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    events
}

#[tokio::test]
async fn anthropic_thinking_text_and_tool_use_blocks() {
    let first = anthropic_turn(
        vec![
            block(
                0,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                vec![
                    json!({"type": "thinking_delta", "thinking": "I should"}),
                    json!({"type": "thinking_delta", "thinking": " read it."}),
                    json!({"type": "signature_delta", "signature": "sig123"}),
                ],
            ),
            block(
                1,
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": "Reading."})],
            ),
            block(
                2,
                json!({"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}),
                vec![
                    json!({"type": "input_json_delta", "partial_json": "{\"pa"}),
                    json!({"type": "input_json_delta", "partial_json": "th\":\"n.txt\"}"}),
                ],
            ),
        ],
        "tool_use",
        30,
    );
    let second = anthropic_turn(
        vec![block(
            0,
            json!({"type": "text", "text": ""}),
            vec![json!({"type": "text_delta", "text": "It says hi."})],
        )],
        "end_turn",
        5,
    );
    let mock = MockModel::start(vec![first, second]).await;
    let gw = Gateway::with(&[
        ("provider", "anthropic"),
        ("model", "claude-test"),
        ("base_url", mock.url.as_str()),
        ("anthropic_api_key", "ak-test"),
    ])
    .await;
    std::fs::write(gw.workspace.join("n.txt"), "hi").unwrap();
    let (status, body, events) = run(&gw, "a", "what does n.txt say?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "It says hi.");
    assert_eq!(joined(&events, "thinking"), "I should read it.");
    let args: String =
        of(&events, "tool_call_delta").iter().map(|e| text_of(&e["delta"])).collect();
    assert_eq!(args, "{\"path\":\"n.txt\"}");
    assert_eq!(of(&events, "tool_call_end")[0]["args"], json!({"path": "n.txt"}));
    assert_eq!(of(&events, "tool_complete")[0]["result"]["content"][0]["text"], "hi");
    let usage = &of(&events, "agent_end")[0]["usage"];
    assert_eq!(usage["inputTokens"], 24, "12 per call");
    assert!(usage["outputTokens"].as_u64().unwrap() >= 35, "{usage}");

    let requests = mock.wait_requests(2).await;
    let request = &requests[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], "ak-test");
    assert!(request.headers.contains_key("anthropic-version"));
    assert_eq!(request.body["model"], "claude-test");
    assert_eq!(request.body["stream"], true);
    assert!(request.body["max_tokens"].as_u64().is_some());
    assert!(request.body["system"].to_string().contains("helpful"));
    let second = requests[1].body["messages"].to_string();
    assert!(second.contains("tool_result") && second.contains("toolu_1"), "{second}");
}
