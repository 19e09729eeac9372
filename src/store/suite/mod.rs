//! The store test suite: every case takes a `&dyn Store`, so every implementation (SQLite on
//! disk, SQLite in memory, PostgreSQL) runs the same cases by invoking [`store_suite!`] in its
//! own test module (see `sqlite/tests.rs` and `postgres/tests.rs`). The helpers build records for them; the
//! memory cases are in [`memory`].

mod memory;

use serde_json::json;

pub use self::memory::*;
use super::*;
use crate::domain::{ModelRef, Part, Role, SessionMeta, ThinkingLevel, ToolState, Usage};

pub(crate) fn record(key: &str, last_active_at: i64) -> SessionRecord {
    SessionRecord {
        key: key.into(),
        meta: SessionMeta {
            session_id: format!("id-{key}"),
            name: Some(format!("name {key}")),
            created_at: 1,
            updated_at: 2,
            last_active_at,
            model: ModelRef { provider: "echo".into(), model_id: "echo".into() },
            thinking: ThinkingLevel::Medium,
            usage: Usage { input_tokens: 3, output_tokens: 4 },
            compacted_upto: 0,
            compaction_summary: None,
            memory_namespace: "default".into(),
            owner: None,
        },
        history_base: 0,
        message_count: 0,
        preview: Some("hi".into()),
    }
}

pub(crate) fn message(id: &str, role: Role, text: &str) -> HistoryMessage {
    HistoryMessage {
        id: id.into(),
        role,
        parts: vec![
            Part::Text { text: text.into() },
            Part::ToolInvocation {
                tool_call_id: "c1".into(),
                tool_name: "read".into(),
                args: json!({"path": "a"}),
                state: ToolState::Result,
                result: Some(json!({"content": []})),
            },
            Part::Error { code: "aborted".into(), message: "Run aborted".into() },
        ],
        timestamp: 5,
    }
}

pub(crate) fn accepted(key: &str, id: &str) -> MessageRecord {
    MessageRecord {
        message_id: id.into(),
        session_key: key.into(),
        joined: None,
        text: format!("text of {id}"),
        images: vec![Image { data: vec![0, 1, 2, 255], mime_type: "image/png".into() }],
        state: MessageState::Queued,
        source: crate::domain::Source::Webhook,
        created_at: 7,
        checkpoint: None,
    }
}

pub(crate) async fn write(store: &dyn Store, batch: Vec<Op>) {
    store.write(batch).wait().await.expect("batch applies");
}

pub(crate) async fn loaded(store: &dyn Store, key: &str) -> StoredSession {
    store.load(key).await.unwrap().session.expect("session is stored")
}

/// The whole stored history of `key`.
pub(crate) async fn all_history(store: &dyn Store, key: &str) -> Vec<HistoryMessage> {
    store.history(key, 0, u64::MAX).await.unwrap()
}

pub async fn unknown_keys_load_as_nothing(store: &dyn Store) {
    assert_eq!(store.load("nobody").await.unwrap(), Stored { seq: 0, session: None });
}

pub async fn sessions_history_and_messages_round_trip(store: &dyn Store) {
    let history = vec![message("m1", Role::User, "one"), message("m2", Role::Assistant, "two")];
    let mut compacted = record("k", 10);
    compacted.meta.compacted_upto = 1;
    compacted.meta.compaction_summary = Some("earlier: greetings".into());
    let mut batch = vec![Op::PutSession(compacted.clone())];
    for (position, message) in history.iter().enumerate() {
        batch.push(Op::AppendHistory {
            key: "k".into(),
            position: position as u64,
            message: message.clone(),
        });
    }
    batch.push(Op::Accept(accepted("k", "q1")));
    batch.push(Op::Seq { key: "k".into(), seq: 99 });
    write(store, batch).await;
    let stored = store.load("k").await.unwrap();
    assert_eq!(stored.seq, 99);
    let session = stored.session.unwrap();
    // The row comes back with the count the history table has (the row said 0).
    assert_eq!(session.record, SessionRecord { message_count: 2, ..compacted });
    assert!(session.open_tail.is_empty(), "a load reads no history when no run was open");
    assert_eq!(session.messages, vec![accepted("k", "q1")]);
    assert_eq!(all_history(store, "k").await, history);
    // Ranges by position, as history pages and a run's context read them.
    assert_eq!(store.history("k", 1, 2).await.unwrap(), history[1..]);
    assert_eq!(store.history("k", 0, 1).await.unwrap(), history[..1]);
    assert!(store.history("k", 2, 10).await.unwrap().is_empty());
    assert!(store.history("other", 0, 10).await.unwrap().is_empty());
}

pub async fn a_load_reads_only_the_tail_a_crash_left_open(store: &dyn Store) {
    let mut batch = vec![Op::PutSession(record("t", 1))];
    let history: Vec<_> = (0..6)
        .map(|i| {
            message(&format!("h{i}"), if i % 2 == 0 { Role::User } else { Role::Assistant }, "x")
        })
        .collect();
    for (position, message) in history.iter().enumerate() {
        batch.push(Op::AppendHistory {
            key: "t".into(),
            position: position as u64,
            message: message.clone(),
        });
    }
    // h4 is the user message of a run that started and never finished; s steered into it.
    let mut run = accepted("t", "h4");
    run.state = MessageState::Started;
    let mut steer = accepted("t", "s");
    steer.state = MessageState::Started;
    steer.joined = Some("h4".into());
    batch.extend([Op::Accept(run), Op::Accept(steer)]);
    write(store, batch).await;
    let session = loaded(store, "t").await;
    assert_eq!(session.open_tail, history[4..]);
    assert_eq!(session.record.message_count, 6);
    write(store, vec![Op::Finish { message_id: "h4".into(), error: None }]).await;
    assert!(loaded(store, "t").await.open_tail.is_empty());
}

pub async fn a_failing_batch_writes_nothing(store: &dyn Store) {
    // The second op fails (nothing is queued under that id): the first must not land.
    let ticket = store
        .write(vec![Op::PutSession(record("half", 1)), Op::Start { message_id: "missing".into() }]);
    assert!(ticket.wait().await.unwrap_err().message.contains("not queued"));
    assert!(store.load("half").await.unwrap().session.is_none());
    write(store, vec![Op::PutSession(record("after", 1))]).await;
    assert!(store.load("after").await.unwrap().session.is_some(), "later batches still apply");
}

pub async fn messages_move_from_queued_to_started_to_done_once(store: &dyn Store) {
    write(
        store,
        vec![
            Op::PutSession(record("q", 1)),
            Op::Accept(accepted("q", "a")),
            Op::Accept(accepted("q", "b")),
            Op::Accept(accepted("q", "c")),
        ],
    )
    .await;
    assert_eq!(store.pending_sessions().await.unwrap(), vec!["q".to_string()]);
    let checkpoint = Checkpoint {
        draft: Some(message("draft", Role::Assistant, "partial")),
        pending_tools: vec![message("t", Role::ToolResult, "")],
    };
    write(
        store,
        vec![
            Op::Start { message_id: "a".into() },
            Op::Checkpoint { message_id: "a".into(), checkpoint: checkpoint.clone() },
            Op::Finish { message_id: "b".into(), error: Some("Cancelled".into()) },
        ],
    )
    .await;
    let again = store.write(vec![Op::Start { message_id: "a".into() }]).wait().await;
    assert!(again.is_err(), "a message starts once");
    let messages = loaded(store, "q").await.messages;
    let states: Vec<_> = messages.iter().map(|m| (m.message_id.as_str(), m.state)).collect();
    assert_eq!(states, vec![("a", MessageState::Started), ("c", MessageState::Queued)]);
    assert_eq!(messages[0].checkpoint.as_ref(), Some(&checkpoint));
    write(
        store,
        vec![
            Op::Finish { message_id: "a".into(), error: None },
            Op::Finish { message_id: "c".into(), error: None },
        ],
    )
    .await;
    assert!(loaded(store, "q").await.messages.is_empty());
    assert!(store.pending_sessions().await.unwrap().is_empty());
}

pub async fn steering_messages_are_stored_as_started(store: &dyn Store) {
    let steer = MessageRecord {
        joined: Some("run".into()),
        state: MessageState::Started,
        ..accepted("s", "steer")
    };
    write(store, vec![Op::PutSession(record("s", 1)), Op::Accept(steer.clone())]).await;
    assert_eq!(loaded(store, "s").await.messages, vec![steer]);
}

pub async fn delete_removes_everything_but_the_seq(store: &dyn Store) {
    write(
        store,
        vec![
            Op::PutSession(record("d", 1)),
            Op::AppendHistory {
                key: "d".into(),
                position: 0,
                message: message("m", Role::User, "x"),
            },
            Op::Accept(accepted("d", "dq")),
            Op::Seq { key: "d".into(), seq: 42 },
        ],
    )
    .await;
    write(store, vec![Op::DeleteSession { key: "d".into() }]).await;
    assert_eq!(store.load("d").await.unwrap(), Stored { seq: 42, session: None });
    assert!(store.pending_sessions().await.unwrap().is_empty());
    // Re-created under the same key: no old history or messages come back.
    write(store, vec![Op::PutSession(record("d", 2))]).await;
    let session = loaded(store, "d").await;
    assert!(session.messages.is_empty() && all_history(store, "d").await.is_empty());
    assert_eq!(session.record.message_count, 0);
}

pub async fn clear_history_keeps_the_session(store: &dyn Store) {
    let mut cleared = record("c", 1);
    cleared.history_base = 1;
    write(
        store,
        vec![
            Op::PutSession(record("c", 1)),
            Op::AppendHistory {
                key: "c".into(),
                position: 0,
                message: message("m", Role::User, "x"),
            },
        ],
    )
    .await;
    write(store, vec![Op::ClearHistory { key: "c".into() }, Op::PutSession(cleared.clone())]).await;
    let session = loaded(store, "c").await;
    assert!(all_history(store, "c").await.is_empty());
    assert_eq!(session.record, cleared);
    let next = message("n", Role::User, "after reset");
    write(store, vec![Op::AppendHistory { key: "c".into(), position: 1, message: next.clone() }])
        .await;
    assert_eq!(all_history(store, "c").await, vec![next.clone()]);
    assert_eq!(store.history("c", 1, 2).await.unwrap(), vec![next]);
    assert_eq!(loaded(store, "c").await.record.message_count, 1, "counted from the base");
}

pub async fn list_is_newest_first_and_pages(store: &dyn Store) {
    let batch = [("a", 5), ("b", 9), ("c", 7), ("d", 7), ("e", 1)]
        .into_iter()
        .map(|(key, at)| {
            let owner = matches!(key, "a" | "c").then(|| "bot".to_string());
            let mut session = record(key, at);
            session.meta.owner = owner;
            Op::PutSession(session)
        })
        .collect();
    write(store, batch).await;
    let keys = |records: Vec<SessionRecord>| records.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(keys(store.list(3, None, None).await.unwrap()), ["b", "c", "d"]);
    assert_eq!(keys(store.list(3, Some((7, "c".into())), None).await.unwrap()), ["d", "a", "e"]);
    assert_eq!(
        keys(store.list(3, Some((1, "e".into())), None).await.unwrap()),
        Vec::<String>::new()
    );
    // Only one token's sessions, with the same cursor.
    let bot = || Some("bot".to_string());
    assert_eq!(keys(store.list(1, None, bot()).await.unwrap()), ["c"]);
    assert_eq!(keys(store.list(5, Some((7, "c".into())), bot()).await.unwrap()), ["a"]);
    assert_eq!(store.load("a").await.unwrap().session.unwrap().record.meta.owner, bot());
}

pub async fn reads_see_every_earlier_write(store: &dyn Store) {
    // Submitted, not awaited: the next read must still see it.
    drop(store.write(vec![Op::PutSession(record("r", 1))]));
    assert!(store.load("r").await.unwrap().session.is_some());
}

pub async fn idempotency_records_and_pruning(store: &dyn Store) {
    let old = IdempotencyRecord {
        scope: "".into(),
        key: "k1".into(),
        session_key: "s".into(),
        message_id: "m1".into(),
        outcome: Some(r#"{"ok":true}"#.into()),
        created_at: 100,
    };
    let new = IdempotencyRecord { key: "k2".into(), created_at: 300, ..old.clone() };
    write(
        store,
        vec![
            Op::PutIdempotency(old.clone()),
            Op::PutIdempotency(new.clone()),
            Op::PutSession(record("p", 1)),
            Op::Accept(accepted("p", "done-1")),
            Op::Finish { message_id: "done-1".into(), error: None },
        ],
    )
    .await;
    assert_eq!(store.idempotency("", "k1").await.unwrap(), Some(old));
    assert_eq!(store.idempotency("other", "k1").await.unwrap(), None, "scoped per token");
    write(store, vec![Op::Prune { before: 200 }]).await;
    assert_eq!(store.idempotency("", "k1").await.unwrap(), None);
    assert_eq!(store.idempotency("", "k2").await.unwrap(), Some(new));
}

/// One `#[tokio::test]` per case for a store made by `$make` (which may also return guards,
/// such as a temp dir, kept alive for the test).
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store::suite::store_suite!($make;
            unknown_keys_load_as_nothing,
            sessions_history_and_messages_round_trip,
            a_load_reads_only_the_tail_a_crash_left_open,
            a_failing_batch_writes_nothing,
            messages_move_from_queued_to_started_to_done_once,
            steering_messages_are_stored_as_started,
            delete_removes_everything_but_the_seq,
            clear_history_keeps_the_session,
            list_is_newest_first_and_pages,
            reads_see_every_earlier_write,
            idempotency_records_and_pruning,
            remembering_a_key_again_supersedes_and_forget_is_soft,
            secrets_are_out_of_reach_without_access,
            search_ranks_records_and_episodes_of_the_namespace,
            counts_rebuild_and_deleted_sessions
        );
    };
    ($make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $make;
                $crate::store::suite::$case(&*store).await;
            }
        )*
    };
}
pub(crate) use store_suite;
