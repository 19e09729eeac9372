//! `agentgateway.v1.Sessions` through a tonic client: every RPC.

use agent_gateway::proto as pb;
use pb::event::Kind;
use tonic::Code;

use crate::common::*;

fn key(k: &str) -> String {
    k.to_string()
}

#[tokio::test]
async fn create_get_list_rename_delete() {
    let gw = Gateway::start().await;
    let mut client = gw.sessions().await;
    let created = client
        .create_session(pb::CreateSessionRequest {
            session_key: key("alpha"),
            name: Some("Alpha".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!((created.session_key.as_str(), created.name.as_deref()), ("alpha", Some("Alpha")));
    assert_eq!(created.thinking_level, pb::ThinkingLevel::Off as i32);
    assert!(created.loaded);

    let again = client
        .create_session(pb::CreateSessionRequest {
            session_key: key("alpha"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let generated =
        client.create_session(pb::CreateSessionRequest::default()).await.unwrap().into_inner();
    assert_eq!(generated.session.unwrap().session_key.len(), 36, "a UUID when no key is given");
    let namespaced = client
        .create_session(pb::CreateSessionRequest {
            session_key: key("ns"),
            memory_namespace: Some("team".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(namespaced.session.unwrap().session_key, "ns");
    let mut memory = pb::memory_client::MemoryClient::new(gw.channel().await);
    let status = pb::GetMemoryStatusRequest { session_key: Some("ns".into()) };
    let status = memory.get_status(status).await.unwrap().into_inner().memory.unwrap();
    assert_eq!(status.namespace, "team", "the session's own memory namespace");
    let unknown_model = client
        .create_session(pb::CreateSessionRequest {
            session_key: key("m"),
            model: Some(pb::ModelRef { provider: "nope".into(), model_id: "x".into() }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_model.code(), Code::NotFound);
    assert_eq!(unknown_model.message(), "Model not found: nope/x");

    client
        .rename_session(pb::RenameSessionRequest { session_key: key("alpha"), name: "A".into() })
        .await
        .unwrap();
    let got =
        client.get_session(pb::GetSessionRequest { session_key: key("alpha") }).await.unwrap();
    assert_eq!(got.into_inner().session.unwrap().name.as_deref(), Some("A"));

    let page = client
        .list_sessions(pb::ListSessionsRequest { page_size: 2, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.sessions.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let rest = client
        .list_sessions(pb::ListSessionsRequest { page_size: 10, page_token: page.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.sessions.len(), 2, "main, alpha, the generated one and ns");
    assert!(rest.next_page_token.is_empty());

    client.delete_session(pb::DeleteSessionRequest { session_key: key("alpha") }).await.unwrap();
    let gone =
        client.get_session(pb::GetSessionRequest { session_key: key("alpha") }).await.unwrap_err();
    assert_eq!((gone.code(), gone.message()), (Code::NotFound, "Session not found: alpha"));
    let primary = client
        .delete_session(pb::DeleteSessionRequest { session_key: key("main") })
        .await
        .unwrap_err();
    assert_eq!(
        (primary.code(), primary.message()),
        (Code::FailedPrecondition, "Cannot delete primary session")
    );
    let invalid =
        client.get_session(pb::GetSessionRequest { session_key: String::new() }).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn history_state_abort_clear_reset() {
    let gw = Gateway::start().await;
    gw.message("h", "one").await;
    gw.message("h", "two").await;
    let mut client = gw.sessions().await;

    let history = client
        .get_history(pb::GetHistoryRequest {
            session_key: key("h"),
            limit: 3,
            cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.messages.len(), 3);
    assert_eq!(history.messages[0].role, pb::Role::Assistant as i32);
    let older = client
        .get_history(pb::GetHistoryRequest {
            session_key: key("h"),
            limit: 3,
            cursor: history.next_cursor,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(older.messages.len(), 1);
    assert_eq!(older.messages[0].role, pb::Role::User as i32);
    match older.messages[0].parts[0].kind.as_ref().unwrap() {
        pb::part::Kind::Text(text) => assert_eq!(text.text, "one"),
        other => panic!("{other:?}"),
    }

    let state =
        client.get_state(pb::GetStateRequest { session_key: key("h") }).await.unwrap().into_inner();
    assert_eq!(state.messages.len(), 4);
    assert_eq!(state.session.unwrap().message_count, 4);

    let aborted =
        client.abort_session(pb::AbortSessionRequest { session_key: key("h") }).await.unwrap();
    assert!(!aborted.into_inner().aborted, "nothing was running");
    let cleared =
        client.clear_queue(pb::ClearQueueRequest { session_key: key("h") }).await.unwrap();
    assert_eq!(cleared.into_inner().cleared, 0);

    let before =
        client.get_session(pb::GetSessionRequest { session_key: key("main") }).await.unwrap();
    gw.message("main", "hello").await;
    client.reset_session(pb::ResetSessionRequest { session_key: key("main") }).await.unwrap();
    let after =
        client.get_session(pb::GetSessionRequest { session_key: key("main") }).await.unwrap();
    let (before, after) =
        (before.into_inner().session.unwrap(), after.into_inner().session.unwrap());
    assert_ne!(before.session_id, after.session_id, "a reset gives a new session id");
    assert_eq!(after.message_count, 0);
    client.reset_session(pb::ResetSessionRequest { session_key: key("h") }).await.unwrap();
    let gone =
        client.get_session(pb::GetSessionRequest { session_key: key("h") }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "a non-primary session is removed by reset");
}

#[tokio::test]
async fn subscribe_starts_with_hello_and_resumes_after_seq() {
    let gw = Gateway::start().await;
    let mut client = gw.sessions().await;
    let mut stream = client
        .subscribe(pb::SubscribeRequest { session_key: key("main"), after_seq: None })
        .await
        .unwrap()
        .into_inner();
    let hello = next(&mut stream).await.unwrap();
    let Some(Kind::Hello(h)) = hello.kind else { panic!("hello first: {hello:?}") };
    assert_eq!(h.snapshot.unwrap().session_key, "main");
    gw.message("main", "hi there").await;
    let run = until_event(&mut stream, |k| matches!(k, Kind::AgentEnd(_))).await;
    let seqs: Vec<u64> = run.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gaps: {seqs:?}");
    let tokens: String = run
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Token(t)) => Some(t.delta.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, "hi there");

    let mid = seqs[seqs.len() / 2];
    let mut resumed = client
        .subscribe(pb::SubscribeRequest { session_key: key("main"), after_seq: Some(mid) })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut resumed).await.unwrap().kind, Some(Kind::Hello(_))));
    let replayed = until_event(&mut resumed, |k| matches!(k, Kind::AgentEnd(_))).await;
    assert_eq!(replayed.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[seqs.len() / 2 + 1..]);

    let unknown = client
        .subscribe(pb::SubscribeRequest { session_key: key("nobody"), after_seq: None })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn ready_counts_live_sessions() {
    let gw = Gateway::start().await;
    let mut admin = pb::admin_client::AdminClient::new(gw.channel().await);
    let ready = admin.ready(pb::ReadyRequest {}).await.unwrap().into_inner();
    assert_eq!((ready.ok, ready.ready, ready.sessions), (true, true, 1));
    gw.message("r", "hi").await;
    assert_eq!(admin.ready(pb::ReadyRequest {}).await.unwrap().into_inner().sessions, 2);
}

#[tokio::test]
async fn models_and_thinking_levels_over_grpc() {
    let gw = Gateway::start().await;
    let mut admin = pb::admin_client::AdminClient::new(gw.channel().await);
    let models = admin.list_models(pb::ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(models.models[0].model_id, "echo");
    assert_eq!(models.current.unwrap().provider, "echo");
    let mut client = gw.sessions().await;
    let set = |provider: &str, model: &str| pb::SetModelRequest {
        session_key: key("main"),
        provider: provider.into(),
        model_id: model.into(),
    };
    let model = client.set_model(set("echo", "echo")).await.unwrap().into_inner();
    assert_eq!(model.model.unwrap().model_id, "echo");
    let unknown = client.set_model(set("openai", "nope")).await.unwrap_err();
    assert_eq!(
        (unknown.code(), unknown.message()),
        (Code::NotFound, "Model not found: openai/nope")
    );
    let level = pb::SetThinkingLevelRequest {
        session_key: key("main"),
        level: pb::ThinkingLevel::High as i32,
    };
    let answer = client.set_thinking_level(level).await.unwrap().into_inner();
    assert_eq!(answer.level, pb::ThinkingLevel::High as i32);
    let session = client.get_session(pb::GetSessionRequest { session_key: key("main") }).await;
    let snapshot = session.unwrap().into_inner().session.unwrap();
    assert_eq!(snapshot.thinking_level, pb::ThinkingLevel::High as i32);
    let unspecified = pb::SetThinkingLevelRequest { session_key: key("main"), level: 0 };
    let error = client.set_thinking_level(unspecified).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let missing = client.set_thinking_level(pb::SetThinkingLevelRequest {
        session_key: key("nobody"),
        level: pb::ThinkingLevel::Low as i32,
    });
    assert_eq!(missing.await.unwrap_err().code(), Code::NotFound);
}
