//! The memory cases of the store suite: supersede and soft delete, secrets out of reach of
//! who cannot see them, search over records and episodes, counts, rebuild, and namespaces.

use super::{message, record, write};
use crate::domain::{HitSource, MemoryBucket, MemoryKind, MemorySource, NewMemory, Role};
use crate::store::{Op, Store};

/// A record in the bucket the memory rules would give it (the store itself takes any).
fn memory(kind: MemoryKind, key: &str, content: &str) -> NewMemory {
    let core = matches!(kind, MemoryKind::Profile | MemoryKind::Preference);
    NewMemory {
        bucket: if core { MemoryBucket::Core } else { MemoryBucket::Archival },
        kind,
        key: key.into(),
        content: content.into(),
        source: MemorySource::Manual,
    }
}

/// A session of `namespace` whose history holds one user message with `text` (an episode).
async fn episode(store: &dyn Store, key: &str, namespace: &str, owner: Option<&str>, text: &str) {
    let mut session = record(key, 1);
    session.meta.memory_namespace = namespace.into();
    session.meta.owner = owner.map(str::to_string);
    let said = message(&format!("{key}-m"), Role::User, text);
    let batch = vec![
        Op::PutSession(session),
        Op::AppendHistory { key: key.into(), position: 0, message: said },
    ];
    write(store, batch).await;
}

pub async fn remembering_a_key_again_supersedes_and_forget_is_soft(store: &dyn Store) {
    let kind = MemoryKind::Preference;
    let tea = store.remember("ns", memory(kind, "drink", "Likes tea"), false).await.unwrap();
    assert_eq!(
        (tea.bucket, tea.kind, tea.source),
        (MemoryBucket::Core, kind, MemorySource::Manual)
    );
    let coffee = store.remember("ns", memory(kind, "drink", "Likes coffee"), false).await.unwrap();
    assert!(coffee.id > tea.id && coffee.superseded_by.is_none());
    let core = store.core("ns").await.unwrap();
    assert_eq!(core, vec![coffee.clone()], "the superseded record is inactive");
    let words = vec!["tea".to_string()];
    assert!(store.search("ns", words, 4, false, None).await.unwrap().is_empty());
    assert_eq!(store.forget("ns", None, Some("drink".into()), false).await.unwrap(), 1);
    assert!(store.core("ns").await.unwrap().is_empty());
    assert_eq!(store.forget("ns", Some(coffee.id), None, false).await.unwrap(), 0, "once");
}

pub async fn secrets_are_out_of_reach_without_access(store: &dyn Store) {
    let pin = store.remember("ns", memory(MemoryKind::Secret, "pin", "pin 4321"), true).await;
    let pin = pin.unwrap();
    assert_eq!(pin.bucket, MemoryBucket::Archival);
    let words = || vec!["4321".to_string()];
    assert!(store.search("ns", words(), 4, false, None).await.unwrap().is_empty());
    let hits = store.search("ns", words(), 4, true, None).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| (h.id, h.kind)).collect::<Vec<_>>(),
        [(pin.id, Some(MemoryKind::Secret))]
    );
    // Without access, the same key neither supersedes nor forgets the secret.
    store.remember("ns", memory(MemoryKind::Fact, "pin", "pin unknown"), false).await.unwrap();
    assert_eq!(store.forget("ns", Some(pin.id), None, false).await.unwrap(), 0);
    assert_eq!(store.search("ns", words(), 4, true, None).await.unwrap().len(), 1);
    assert_eq!(store.forget("ns", Some(pin.id), None, true).await.unwrap(), 1);
}

pub async fn search_ranks_records_and_episodes_of_the_namespace(store: &dyn Store) {
    let fact = memory(MemoryKind::Fact, "otters", "Otters hold hands while sleeping");
    let fact = store.remember("ns", fact, false).await.unwrap();
    episode(store, "mine", "ns", Some("bot"), "we talked about otters today").await;
    episode(store, "theirs", "ns", None, "sea otters").await;
    episode(store, "elsewhere", "other", None, "otters elsewhere").await;
    let words = || vec!["otters".to_string()];
    let hits = store.search("ns", words(), 10, false, None).await.unwrap();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    let found = hits.iter().find(|h| h.source_type == HitSource::Memory).unwrap();
    assert_eq!(found.id, fact.id);
    assert_eq!((found.kind, found.bucket), (Some(MemoryKind::Fact), Some(MemoryBucket::Archival)));
    assert_eq!((found.key.as_deref(), found.role.as_deref()), (Some("otters"), None));
    assert!(found.snippet.contains("[Otters]"), "{}", found.snippet);
    let mut episodes: Vec<_> = hits
        .iter()
        .filter(|h| h.source_type == HitSource::Episode)
        .map(|h| (h.session_key.as_deref().unwrap(), h.role.as_deref(), h.kind.is_none()))
        .collect();
    episodes.sort();
    assert_eq!(episodes, [("mine", Some("user"), true), ("theirs", Some("user"), true)]);
    // An `own_sessions_only` caller finds the episodes of its own sessions only.
    let own = store.search("ns", words(), 10, false, Some("bot".into())).await.unwrap();
    let keys: Vec<_> = own.iter().filter_map(|h| h.session_key.as_deref()).collect();
    assert_eq!(keys, ["mine"]);
    assert_eq!(store.search("ns", words(), 1, false, None).await.unwrap().len(), 1, "limit");
    assert!(store.search("ns", Vec::new(), 10, false, None).await.unwrap().is_empty());
}

pub async fn counts_rebuild_and_deleted_sessions(store: &dyn Store) {
    let empty = store.counts("ns").await.unwrap();
    assert_eq!((empty.core, empty.archival, empty.episodes), (0, 0, 0));
    assert_eq!((empty.last_memory_write_at, empty.last_episode_at), (None, None));
    store.remember("ns", memory(MemoryKind::Profile, "name", "Ada"), false).await.unwrap();
    store.remember("ns", memory(MemoryKind::Fact, "lang", "Ada writes Rust"), false).await.unwrap();
    store.remember("ns", memory(MemoryKind::Fact, "lang", "Ada writes C"), false).await.unwrap();
    episode(store, "s", "ns", None, "Ada said hello").await;
    let counts = store.counts("ns").await.unwrap();
    assert_eq!((counts.core, counts.archival, counts.episodes), (1, 1, 1));
    assert!(counts.last_memory_write_at.is_some());
    assert_eq!(counts.last_episode_at, Some(5), "the message's timestamp");
    assert_eq!(store.rebuild("ns").await.unwrap(), (2, 1), "active records and episodes");
    let words = || vec!["ada".to_string()];
    assert_eq!(store.search("ns", words(), 10, false, None).await.unwrap().len(), 3);
    write(store, vec![Op::DeleteSession { key: "s".into() }]).await;
    assert_eq!(store.counts("ns").await.unwrap().episodes, 0, "its episodes go with it");
    assert_eq!(store.search("ns", words(), 10, false, None).await.unwrap().len(), 2);
    assert_eq!(store.counts("other").await.unwrap().core, 0, "namespaces are separate");
}
