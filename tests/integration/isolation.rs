//! What a token must not learn or touch (issue 16, items 3–5): `own_sessions_only` tokens find
//! no episodes of other owners' sessions in memory search and cannot tell whether another
//! owner's session key exists; tokens without `admin` can neither see nor change `secret`
//! memories. Each on REST and gRPC.

use agent_gateway::proto as pb;
use pb::memory_client::MemoryClient;
use pb::sessions_client::SessionsClient;
use serde_json::{Value, json};

use crate::common::*;

const TOKENS: &str = r#"[
  {name = "alice", token = "alice-token", scopes = ["chat", "sessions", "memory"], own_sessions_only = true},
  {name = "bob", token = "bob-token-1", scopes = ["chat", "sessions", "memory"], own_sessions_only = true},
  {name = "librarian", token = "memory-token-1", scopes = ["memory"]}
]"#;

async fn gateway() -> Gateway {
    Gateway::with(&[("tokens", TOKENS), ("bearer_token", "root-token-1")]).await
}

async fn post(gw: &Gateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    read(gw.http.post(gw.url(path)).bearer_auth(token).json(&body).send().await.unwrap()).await
}

async fn get(gw: &Gateway, token: &str, path: &str) -> (u16, Value) {
    read(gw.http.get(gw.url(path)).bearer_auth(token).send().await.unwrap()).await
}

fn contents(results: &Value) -> Vec<String> {
    results["results"].as_array().unwrap().iter().map(|r| text_of(&r["content"])).collect()
}

#[tokio::test]
async fn memory_search_finds_no_episode_of_a_session_the_token_does_not_own() {
    let gw = gateway().await;
    let (status, _) =
        post(&gw, "alice-token", "/sessions/sA/messages", json!({"text": "aardvark"})).await;
    assert_eq!(status, 200);
    let (status, _) =
        post(&gw, "bob-token-1", "/sessions/sB/messages", json!({"text": "zebra"})).await;
    assert_eq!(status, 200);

    let (status, found) =
        post(&gw, "bob-token-1", "/memory/search", json!({"query": "aardvark"})).await;
    assert_eq!(status, 200);
    assert_eq!(contents(&found), Vec::<String>::new(), "bob finds nothing of alice's: {found}");
    let (_, own) =
        post(&gw, "bob-token-1", "/memory/search", json!({"query": "zebra", "limit": 10})).await;
    let hits = own["results"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| h["sessionKey"] == "sB"), "{own}");
    // A token that sees every session finds both.
    let (_, all) = post(
        &gw,
        "root-token-1",
        "/memory/search",
        json!({"query": "aardvark zebra", "limit": 10}),
    )
    .await;
    let found = contents(&all);
    assert!(found.iter().any(|c| c == "aardvark") && found.iter().any(|c| c == "zebra"));

    // gRPC Memory.Search: the same.
    let mut memory = MemoryClient::new(gw.channel().await);
    let search = pb::SearchMemoryRequest { query: "aardvark".into(), ..Default::default() };
    let hits = memory.search(with_token(search, "bob-token-1")).await.unwrap().into_inner();
    assert!(hits.results.is_empty(), "{hits:?}");
}

#[tokio::test]
async fn a_token_confined_to_its_sessions_cannot_tell_whether_another_owners_key_exists() {
    let gw = gateway().await;
    let (status, _) =
        post(&gw, "alice-token", "/sessions/sA/messages", json!({"text": "alice was here"})).await;
    assert_eq!(status, 200);

    // Creating alice's key succeeds for bob, as for a key nobody uses: it is his own sA.
    let (status, created) =
        post(&gw, "bob-token-1", "/v1/conversations", json!({"conversationId": "sA"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["conversation"]["conversationId"], "sA");
    assert_eq!(created["conversation"]["messageCount"], 0);
    let (status, twice) =
        post(&gw, "bob-token-1", "/v1/conversations", json!({"conversationId": "sA"})).await;
    assert_eq!(status, 409, "his own exists now: {twice}");
    assert_eq!(twice["error"], "Session already exists: sA");
    let mut sessions = SessionsClient::new(gw.channel().await);
    for key in ["sA", "fresh"] {
        let create = pb::CreateSessionRequest { session_key: key.into(), ..Default::default() };
        let answer = sessions.create_session(with_token(create, "alice-token")).await;
        let expected = if key == "sA" { tonic::Code::AlreadyExists } else { tonic::Code::Ok };
        assert_eq!(answer.as_ref().map_or_else(|e| e.code(), |_| tonic::Code::Ok), expected);
    }
    let create = pb::CreateSessionRequest { session_key: "fresh".into(), ..Default::default() };
    let created = sessions.create_session(with_token(create, "bob-token-1")).await.unwrap();
    assert_eq!(created.into_inner().session.unwrap().session_key, "fresh");

    // Bob's sA is his: his message and events name it sA; alice's history is untouched.
    let mut events =
        Sse::open_with(gw.http.get(gw.url("/sessions/sA/events")).bearer_auth("bob-token-1")).await;
    let (status, reply) =
        post(&gw, "bob-token-1", "/sessions/sA/messages", json!({"text": "bob was here"})).await;
    assert_eq!((status, reply["sessionKey"].as_str()), (200, Some("sA")), "{reply}");
    let logged = events.until("agent_end").await;
    assert!(logged.iter().all(|(_, e)| e["sessionKey"] == "sA"), "{logged:?}");
    let (_, history) = get(&gw, "alice-token", "/sessions/sA/history").await;
    let texts: Vec<String> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| text_of(&m["parts"][0]["text"]))
        .collect();
    assert_eq!(texts, ["alice was here", "alice was here"]);
    let (_, listed) = get(&gw, "bob-token-1", "/sessions").await;
    let mut keys: Vec<String> =
        listed["sessions"].as_array().unwrap().iter().map(|s| text_of(&s["sessionKey"])).collect();
    keys.sort();
    assert_eq!(keys, ["fresh", "sA"]);

    // A token that sees every session addresses bob's by its stored key.
    let (status, bobs) = get(&gw, "root-token-1", "/sessions/~bob%2FsA/history").await;
    assert_eq!(status, 200, "{bobs}");
    assert_eq!(bobs["messages"][0]["parts"][0]["text"], "bob was here");
}

#[tokio::test]
async fn secret_memories_are_untouchable_without_admin() {
    let gw = gateway().await;
    let secret = json!({"content": "the vault code is 1234", "kind": "secret", "key": "vault"});
    let (status, _) = post(&gw, "root-token-1", "/memory/remember", secret).await;
    assert_eq!(status, 200);

    // Forget by key, over REST and gRPC: nothing to forget for who cannot see it.
    let (status, forgot) =
        post(&gw, "memory-token-1", "/memory/forget", json!({"key": "vault"})).await;
    assert_eq!((status, forgot["forgotten"].as_u64()), (200, Some(0)), "{forgot}");
    let mut memory = MemoryClient::new(gw.channel().await);
    let forget = pb::ForgetRequest { key: Some("vault".into()), ..Default::default() };
    let forgot = memory.forget(with_token(forget, "memory-token-1")).await.unwrap().into_inner();
    assert_eq!(forgot.forgotten, 0);
    // Remembering the same key does not supersede it either.
    let overwrite = json!({"content": "no code here", "key": "vault"});
    let (status, _) = post(&gw, "memory-token-1", "/memory/remember", overwrite).await;
    assert_eq!(status, 200);
    let (_, seen) =
        post(&gw, "memory-token-1", "/memory/search", json!({"query": "vault code"})).await;
    assert!(!contents(&seen).iter().any(|c| c.contains("1234")), "invisible: {seen}");

    let (_, found) =
        post(&gw, "root-token-1", "/memory/search", json!({"query": "vault code 1234"})).await;
    assert!(contents(&found).iter().any(|c| c == "the vault code is 1234"), "still there: {found}");
    let (status, forgot) =
        post(&gw, "root-token-1", "/memory/forget", json!({"key": "vault"})).await;
    assert_eq!((status, forgot["forgotten"].as_u64()), (200, Some(2)), "admin forgets both");
}
