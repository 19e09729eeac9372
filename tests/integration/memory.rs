//! Memory (GATEWAY.md §7) over HTTP and gRPC: remember, supersede, forget, core, status,
//! namespaces that never see each other, FTS-hostile queries, BM25 ranking fixtures, episodes
//! indexed from history and removed with their session, secrets for admin callers only, a
//! rebuild of a damaged index, and the agent's memory tools with core memories in context.

use agent_gateway::proto as pb;
use agent_gateway::proto::memory_client::MemoryClient;
use serde_json::{Value, json};
use tonic::Code;

use crate::common::mock_model::{MockModel, openai_text};
use crate::common::*;

async fn memory_client(gw: &Gateway) -> MemoryClient<tonic::transport::Channel> {
    MemoryClient::new(gw.channel().await)
}

async fn remember(gw: &Gateway, body: Value) -> Value {
    let (status, answer) = gw.post("/memory/remember", body).await;
    assert_eq!((status, &answer["ok"]), (200, &json!(true)), "{answer}");
    answer["memory"].clone()
}

async fn search(gw: &Gateway, body: Value) -> Vec<Value> {
    let (status, answer) = gw.post("/memory/search", body.clone()).await;
    assert_eq!(status, 200, "{body} -> {answer}");
    assert_eq!(answer["query"], body["query"]);
    answer["results"].as_array().unwrap().clone()
}

fn contents(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| text_of(&r["content"])).collect()
}

/// A session with its own memory namespace.
async fn session_in(gw: &Gateway, key: &str, namespace: &str) {
    let body = json!({"conversationId": key, "memoryNamespace": namespace});
    assert_eq!(gw.post("/v1/conversations", body).await.0, 201);
}

#[tokio::test]
async fn remember_supersede_forget_core_and_status() {
    let gw = Gateway::start().await;
    let tea =
        remember(&gw, json!({"content": "Likes green tea", "kind": "preference", "key": "Drink!"}))
            .await;
    assert_eq!(
        (&tea["bucket"], &tea["kind"], &tea["key"], &tea["source"]),
        (&json!("core"), &json!("preference"), &json!("drink"), &json!("manual"))
    );
    assert!(tea["id"].is_i64());
    let fact = remember(&gw, json!({"content": "Lives in Lisbon"})).await;
    assert_eq!((&fact["bucket"], &fact["kind"]), (&json!("archival"), &json!("fact")));
    assert_eq!(fact["key"], "lives-in-lisbon", "the key defaults to the content");

    // The same key supersedes: one active record, the newest.
    let coffee = remember(
        &gw,
        json!({"content": "Likes black coffee", "kind": "preference", "key": "drink"}),
    )
    .await;
    assert_ne!(coffee["id"], tea["id"]);
    let (_, core) = gw.get("/memory/core").await;
    assert_eq!(contents(core["memories"].as_array().unwrap()), ["Likes black coffee"]);
    let listed = memory_client(&gw).await.list_core(pb::ListCoreMemoriesRequest::default()).await;
    let listed = listed.unwrap().into_inner().memories;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id, listed[0].kind),
        (coffee["id"].as_i64().unwrap(), pb::MemoryKind::Preference as i32)
    );
    assert!(
        search(&gw, json!({"query": "tea"})).await.is_empty(),
        "superseded records are not found"
    );

    let (_, status) = gw.get("/memory/status").await;
    let status = &status["memory"];
    assert_eq!((&status["coreCount"], &status["archivalCount"]), (&json!(1), &json!(1)));
    assert_eq!(
        (&status["namespace"], &status["enabled"], &status["ready"]),
        (&json!("default"), &json!(true), &json!(true))
    );
    assert!(status["lastMemoryWriteAt"].as_i64().unwrap() > 0);

    // Forget by key and by id; forgetting again finds nothing.
    let (code, answer) = gw.post("/memory/forget", json!({"key": "DRINK"})).await;
    assert_eq!((code, &answer), (200, &json!({"ok": true, "forgotten": 1})));
    let (_, answer) = gw.post("/memory/forget", json!({"id": fact["id"]})).await;
    assert_eq!(answer["forgotten"], 1);
    let mut grpc = memory_client(&gw).await;
    let again = pb::ForgetRequest { id: fact["id"].as_i64(), ..Default::default() };
    assert_eq!(grpc.forget(again).await.unwrap().into_inner().forgotten, 0);
    let status = grpc.get_status(pb::GetMemoryStatusRequest::default()).await.unwrap();
    let status = status.into_inner().memory.unwrap();
    assert_eq!((status.core_count, status.archival_count), (0, 0));

    // The seed's messages; wrong types are 400s too.
    for (path, body, message) in [
        ("/memory/remember", json!({}), "Missing memory content"),
        ("/memory/remember", json!({"content": "  "}), "Missing memory content"),
        ("/memory/remember", json!({"content": 5}), "content must be a string"),
        (
            "/memory/remember",
            json!({"content": "x", "kind": "gossip"}),
            "Invalid memory kind: gossip (use profile, preference, relationship, fact, secret)",
        ),
        ("/memory/forget", json!({}), "Memory forget requires an id or key"),
        ("/memory/forget", json!({"id": "7"}), "id must be a number"),
        ("/memory/search", json!({"query": ["x"]}), "query must be a string"),
        ("/memory/search", json!({"query": "x", "limit": "all"}), "limit must be a number"),
    ] {
        let (status, error) = gw.post(path, body.clone()).await;
        assert_eq!((status, text_of(&error["error"])), (400, message.to_string()), "{path} {body}");
        assert_eq!(error["code"], "invalid_argument");
    }
    let refused = grpc.remember(pb::RememberRequest::default()).await.unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::InvalidArgument, "Missing memory content")
    );
    let refused = grpc.forget(pb::ForgetRequest::default()).await.unwrap_err();
    assert_eq!(refused.message(), "Memory forget requires an id or key");
}

#[tokio::test]
async fn namespaces_never_see_each_other() {
    let gw = Gateway::start().await;
    session_in(&gw, "alice", "ns-alice").await;
    session_in(&gw, "bob", "ns-bob").await;
    remember(&gw, json!({"content": "The launch code is tangerine", "sessionKey": "alice"})).await;
    let mut grpc = memory_client(&gw).await;
    let request = pb::RememberRequest {
        content: "Tangerine trees grow in the garden".into(),
        kind: pb::MemoryKind::Fact as i32,
        session_key: Some("bob".into()),
        ..Default::default()
    };
    let bob = grpc.remember(request).await.unwrap().into_inner().memory.unwrap();
    assert_eq!(bob.bucket, pb::MemoryBucket::Archival as i32);

    let found = |who: &'static str| {
        let gw = &gw;
        async move { contents(&search(gw, json!({"query": "tangerine", "sessionKey": who})).await) }
    };
    assert_eq!(found("alice").await, ["The launch code is tangerine"]);
    assert_eq!(found("bob").await, ["Tangerine trees grow in the garden"]);
    assert!(
        search(&gw, json!({"query": "tangerine"})).await.is_empty(),
        "nothing in the default namespace"
    );
    let grpc_search = pb::SearchMemoryRequest {
        query: "tangerine".into(),
        session_key: Some("alice".into()),
        ..Default::default()
    };
    let results = grpc.search(grpc_search).await.unwrap().into_inner().results;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].source_type, pb::SearchSourceType::Memory as i32);
    // Forgetting in one namespace never touches the other.
    let (_, answer) = gw.post("/memory/forget", json!({"id": bob.id, "sessionKey": "alice"})).await;
    assert_eq!(answer["forgotten"], 0);
    let (_, status) = gw.get("/memory/status?sessionKey=bob").await;
    assert_eq!(
        (&status["memory"]["namespace"], &status["memory"]["archivalCount"]),
        (&json!("ns-bob"), &json!(1))
    );

    let (status, error) =
        gw.post("/memory/search", json!({"query": "x", "sessionKey": "nobody"})).await;
    assert_eq!((status, text_of(&error["error"])), (404, "Session not found: nobody".into()));
    let missing = pb::GetMemoryStatusRequest { session_key: Some("nobody".into()) };
    assert_eq!(grpc.get_status(missing).await.unwrap_err().code(), Code::NotFound);
    let bad = json!({"conversationId": "x", "memoryNamespace": "no spaces"});
    assert_eq!(gw.post("/v1/conversations", bad).await.0, 400);
}

#[tokio::test]
async fn fts_syntax_in_a_query_is_only_words() {
    let gw = Gateway::start().await;
    remember(&gw, json!({"content": "Prefers oolong tea in the afternoon"})).await;
    for query in [
        "\"",
        "*",
        "-",
        "NEAR(",
        "AND (",
        "(((",
        ")",
        "tea\"",
        "\"tea",
        "*tea*",
        "-tea",
        "tea OR",
        "NOT tea",
        "content:tea",
        "^tea",
        "tea AND (",
        "NEAR(tea oolong, 2)",
        "' OR 1=1 --",
        "",
    ] {
        let results = search(&gw, json!({"query": query})).await;
        let expected: &[&str] = if query.to_lowercase().contains("tea") {
            &["Prefers oolong tea in the afternoon"]
        } else {
            &[]
        };
        assert_eq!(contents(&results), expected, "query {query:?}");
    }
}

#[tokio::test]
async fn bm25_ranks_the_best_match_first_and_the_weakest_last() {
    let gw = Gateway::start().await;
    session_in(&gw, "ranking", "ranking").await;
    // Inserted weakest first, so insertion order (what a LIKE scan returns) is wrong.
    let corpus = [
        "a long note about many things: gardening, cooking, travel, music, films, books, chess, and once rust",
        "the rust programming language",
        "compiler design, a classic book",
        "rust compiler errors explained: the rust compiler and its error codes",
        "nothing relevant here at all",
    ];
    for content in corpus {
        remember(&gw, json!({"content": content, "sessionKey": "ranking"})).await;
    }
    let results =
        search(&gw, json!({"query": "Rust compiler", "limit": 10, "sessionKey": "ranking"})).await;
    let found = contents(&results);
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(found[0], corpus[3], "both words, often: first");
    assert_eq!(found[3], corpus[0], "one word in a long text: last");
    let scores: Vec<f64> = results.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "higher is better: {scores:?}");
    assert!(results[0]["snippet"].as_str().unwrap().contains("[rust]"));
    // The default limit is 4, and `limit` cuts the list.
    assert_eq!(
        search(&gw, json!({"query": "rust compiler book", "sessionKey": "ranking"})).await.len(),
        4
    );
    assert_eq!(
        search(&gw, json!({"query": "rust", "limit": 1, "sessionKey": "ranking"})).await.len(),
        1
    );
}

#[tokio::test]
async fn episodes_are_indexed_from_history_and_deleted_with_their_session() {
    let gw = Gateway::start().await;
    gw.message("zoo", "the zebra crossing is closed").await;
    let results = search(&gw, json!({"query": "zebra"})).await;
    let roles: Vec<&str> = results.iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(results.len(), 2, "the user message and the echoed reply: {results:?}");
    assert!(roles.contains(&"user") && roles.contains(&"assistant"));
    assert!(results.iter().all(|r| r["sourceType"] == "episode" && r["sessionKey"] == "zoo"));
    let (_, status) = gw.get("/memory/status").await;
    assert_eq!(status["memory"]["episodeCount"], 2);
    assert_eq!(gw.delete("/sessions/zoo").await.0, 200);
    assert!(search(&gw, json!({"query": "zebra"})).await.is_empty());
}

#[tokio::test]
async fn secrets_are_shown_to_admin_callers_only() {
    let tokens = r#"[{name = "reader", token = "reader-token", scopes = ["memory"]}, {name = "root", token = "root-token-1", scopes = ["memory", "admin"]}]"#;
    let gw = Gateway::with(&[("tokens", tokens)]).await;
    let post = |token: &'static str, path: &'static str, body: Value| {
        let request = gw.http.post(gw.url(path)).bearer_auth(token).json(&body);
        async move { read(request.send().await.unwrap()).await }
    };
    let (status, _) = post(
        "root-token-1",
        "/memory/remember",
        json!({"content": "The vault pin is 4321", "kind": "secret"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, admin) = post("root-token-1", "/memory/search", json!({"query": "vault pin"})).await;
    assert_eq!(contents(admin["results"].as_array().unwrap()), ["The vault pin is 4321"]);
    let (_, reader) = post("reader-token", "/memory/search", json!({"query": "vault pin"})).await;
    assert_eq!(reader["results"], json!([]), "not for a caller without the admin scope");
    let mut request = tonic::Request::new(pb::SearchMemoryRequest {
        query: "vault".into(),
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", "Bearer reader-token".parse().unwrap());
    assert!(
        memory_client(&gw).await.search(request).await.unwrap().into_inner().results.is_empty()
    );
    let mut request = tonic::Request::new(pb::SearchMemoryRequest {
        query: "vault".into(),
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", "Bearer root-token-1".parse().unwrap());
    assert_eq!(
        memory_client(&gw).await.search(request).await.unwrap().into_inner().results.len(),
        1
    );
}

#[tokio::test]
async fn a_rebuild_restores_an_index_deleted_behind_the_gateways_back() {
    let gw = Gateway::start().await;
    remember(&gw, json!({"content": "Walks the dog at seven"})).await;
    remember(&gw, json!({"content": "The dog is called Pixel", "kind": "relationship"})).await;
    gw.message("walks", "the dog walk went well").await;
    let before = search(&gw, json!({"query": "dog", "limit": 10})).await;
    assert_eq!(before.len(), 4, "{before:?}");

    let stopped = gw.stop_keeping_data().await;
    let db = rusqlite::Connection::open(stopped.database()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch("DELETE FROM memory_index; DELETE FROM episode_index;").unwrap();
    drop(db);
    let gw = stopped.start().await;
    assert!(search(&gw, json!({"query": "dog"})).await.is_empty(), "the index is gone");

    let (status, answer) = gw.post("/memory/rebuild", json!({})).await;
    assert_eq!((status, answer), (200, json!({"ok": true, "memoryRows": 2, "episodeRows": 2})));
    let after = search(&gw, json!({"query": "dog", "limit": 10})).await;
    let ids = |r: &[Value]| {
        r.iter().map(|h| (h["sourceType"].clone(), h["id"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(&before), "the same results, in the same order");
    let rebuilt = memory_client(&gw).await.rebuild(pb::RebuildMemoryRequest::default()).await;
    assert_eq!(rebuilt.unwrap().into_inner().memory_rows, 2);
}

#[tokio::test]
async fn the_agent_remembers_with_its_tool_and_the_next_run_sees_it() {
    let gw = Gateway::start().await;
    let call = r#"!tool memory_remember {"content":"The user is called Ada","kind":"profile","key":"name"}"#;
    let (status, answer) = gw.message("agent-mem", &format!("note this\n{call}")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(text_of(&answer["response"]).contains("Remembered"), "{answer}");
    let (_, core) = gw.get("/memory/core?sessionKey=agent-mem").await;
    let record = &core["memories"][0];
    assert_eq!(
        (&record["content"], &record["source"], &record["bucket"]),
        (&json!("The user is called Ada"), &json!("tool"), &json!("core"))
    );
    let found = r#"!tool memory_search {"query":"called"}"#;
    let (_, answer) = gw.message("agent-mem", found).await;
    assert!(text_of(&answer["response"]).contains("The user is called Ada"), "{answer}");
    let forget = r#"!tool memory_forget {"key":"name"}"#;
    let (_, answer) = gw.message("agent-mem", forget).await;
    assert!(text_of(&answer["response"]).contains("Forgot 1 memory"), "{answer}");
}

#[tokio::test]
async fn core_memories_reach_the_next_model_request() {
    let mock = MockModel::start(vec![openai_text(&["noted"]), openai_text(&["hello Ada"])]).await;
    let settings = [
        ("provider", "openai"),
        ("model", "gpt-test"),
        ("base_url", mock.url.as_str()),
        ("openai_api_key", "sk-test"),
    ];
    let gw = Gateway::with(&settings).await;
    gw.message("ctx", "hi").await;
    let first = mock.requests()[0].body.to_string();
    assert!(!first.contains("The user is called Ada"));
    remember(
        &gw,
        json!({"content": "The user is called Ada", "kind": "profile", "sessionKey": "ctx"}),
    )
    .await;
    gw.message("ctx", "who am I?").await;
    let requests = mock.requests();
    let system = &requests[1].body["messages"][0];
    assert_eq!(system["role"], "system");
    assert!(system["content"].as_str().unwrap().contains("The user is called Ada"), "{system}");
}
