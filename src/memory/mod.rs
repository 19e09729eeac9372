//! Long-term memory (GATEWAY.md §7): the rules of remember, forget, search, status and rebuild
//! over the store's memory tables, for the HTTP routes, the `Memory` gRPC service and the
//! agent's memory tools alike. Namespaces are plain names; a session's namespace is chosen
//! when it is created (default `default`).

use std::sync::Arc;

use serde::Serialize;

use crate::domain::{MemoryBucket, MemoryKind, MemoryRecord, MemorySource, NewMemory, SearchHit};
use crate::error::{GatewayError, Result};
use crate::store::Store;

pub const DEFAULT_NAMESPACE: &str = "default";
/// Results of a search when the caller gives no limit.
pub const DEFAULT_LIMIT: usize = 4;
const MAX_LIMIT: usize = 100;

/// `{enabled, ready, namespace, storagePath, coreCount, ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStatus {
    pub enabled: bool,
    pub ready: bool,
    pub namespace: String,
    pub storage_path: String,
    pub core_count: u64,
    pub archival_count: u64,
    pub episode_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_memory_write_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_episode_at: Option<i64>,
}

/// What to remember, as the caller wrote it: [`prepare`] validates bucket and kind, so every
/// transport gets the same 400 for a wrong one.
#[derive(Clone, Debug, Default)]
pub struct Remember {
    pub content: String,
    pub bucket: Option<String>,
    pub kind: Option<String>,
    pub key: Option<String>,
    /// `manual` (API), `tool` (the agent), `auto`.
    pub source: MemorySource,
}

/// Lowercase; runs of anything but letters and digits become one `-`; at most 80 characters.
pub fn normalize_key(text: &str) -> String {
    let mut key = String::new();
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            key.push(c);
        } else if !key.ends_with('-') && !key.is_empty() {
            key.push('-');
        }
    }
    let key: String = key.trim_end_matches('-').chars().take(80).collect();
    key.trim_end_matches('-').to_string()
}

/// The plain words of a query (letters and digits), at most 32: FTS syntax never reaches
/// SQLite, so `"`, `*`, `NEAR(` or unbalanced parentheses are just text.
pub fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(32)
        .collect()
}

/// Profile, preference and relationship are core (in every run's context); facts and secrets
/// are archival (found by search).
pub fn default_bucket(kind: MemoryKind) -> MemoryBucket {
    match kind {
        MemoryKind::Profile | MemoryKind::Preference | MemoryKind::Relationship => {
            MemoryBucket::Core
        }
        MemoryKind::Fact | MemoryKind::Secret => MemoryBucket::Archival,
    }
}

#[derive(Clone)]
pub struct Memory {
    store: Arc<dyn Store>,
    storage_path: String,
}

impl Memory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let storage_path = store.describe();
        Self { store, storage_path }
    }

    /// Stores a record. A `secret` record with the same key is superseded only by a caller
    /// that sees secrets (`access.secrets`).
    pub async fn remember(
        &self,
        namespace: &str,
        request: Remember,
        access: &Access,
    ) -> Result<MemoryRecord> {
        let memory = prepare(request)?;
        Ok(self.store.remember(namespace, memory, access.secrets).await?)
    }

    /// Soft-deletes by id or key (a `secret` record only for `access.secrets`); how many.
    pub async fn forget(
        &self,
        namespace: &str,
        id: Option<i64>,
        key: Option<&str>,
        access: &Access,
    ) -> Result<u64> {
        let key = forget_key(id, key)?;
        Ok(self.store.forget(namespace, id, key, access.secrets).await?)
    }

    pub async fn core(&self, namespace: &str) -> Result<Vec<MemoryRecord>> {
        Ok(self.store.core(namespace).await?)
    }

    /// Ranked search over active records and episodes, as far as `access` reaches.
    pub async fn search(
        &self,
        namespace: &str,
        query: &str,
        limit: Option<usize>,
        access: &Access,
    ) -> Result<Vec<SearchHit>> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let owner = access.episodes_of.clone();
        Ok(self.store.search(namespace, words(query), limit, access.secrets, owner).await?)
    }

    pub async fn status(&self, namespace: &str) -> Result<MemoryStatus> {
        let counts = self.store.counts(namespace).await?;
        Ok(MemoryStatus {
            enabled: true,
            ready: true,
            namespace: namespace.to_string(),
            storage_path: self.storage_path.clone(),
            core_count: counts.core,
            archival_count: counts.archival,
            episode_count: counts.episodes,
            last_memory_write_at: counts.last_memory_write_at,
            last_episode_at: counts.last_episode_at,
        })
    }

    /// Re-creates the namespace's search index: (memory rows, episode rows).
    pub async fn rebuild(&self, namespace: &str) -> Result<(u64, u64)> {
        Ok(self.store.rebuild(namespace).await?)
    }
}

/// What a memory call may see and touch, from who makes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// `secret` records are visible and can be changed (admin callers; the agent's own tools).
    pub secrets: bool,
    /// Only episodes of the sessions this token created (an `own_sessions_only` caller, or
    /// the agent of such a caller's session); `None`: every session of the namespace.
    pub episodes_of: Option<String>,
}

impl Access {
    /// The agent's tools: secrets of their namespace, episodes as its session's owner sees.
    pub fn agent(episodes_of: Option<String>) -> Self {
        Self { secrets: true, episodes_of }
    }
}

/// Validates what to remember: kind and bucket (defaults by kind), the normalised key.
pub fn prepare(request: Remember) -> Result<NewMemory> {
    let content = request.content.trim();
    if content.is_empty() {
        return Err(GatewayError::invalid("Missing memory content"));
    }
    let kind = match request.kind.as_deref() {
        None | Some("") => MemoryKind::Fact,
        Some(text) => MemoryKind::parse(text).ok_or_else(|| {
            GatewayError::invalid(format!(
                "Invalid memory kind: {text} (use {})",
                MemoryKind::names()
            ))
        })?,
    };
    let bucket = match request.bucket.as_deref() {
        None | Some("") => default_bucket(kind),
        Some(text) => MemoryBucket::parse(text).ok_or_else(|| {
            GatewayError::invalid(format!(
                "Invalid memory bucket: {text} (use {})",
                MemoryBucket::names()
            ))
        })?,
    };
    let key =
        normalize_key(request.key.as_deref().filter(|k| !k.trim().is_empty()).unwrap_or(content));
    if key.is_empty() {
        return Err(GatewayError::invalid("Memory key must contain letters or digits"));
    }
    Ok(NewMemory { bucket, kind, key, content: content.to_string(), source: request.source })
}

/// The normalised key of a forget call; an id or a key is required.
pub fn forget_key(id: Option<i64>, key: Option<&str>) -> Result<Option<String>> {
    let key = key.map(normalize_key).filter(|k| !k.is_empty());
    if id.is_none() && key.is_none() {
        return Err(GatewayError::invalid("Memory forget requires an id or key"));
    }
    Ok(key)
}

/// Namespace names: 1-100 letters, digits, `-`, `_`, `.` or `:`.
pub fn validate_namespace(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "Invalid memory namespace: use 1-100 letters, digits, '-', '_', '.' or ':'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_words() {
        assert_eq!(normalize_key("  Favourite Drink!! (hot) "), "favourite-drink-hot");
        assert_eq!(normalize_key("Ünïcode Straße"), "ünïcode-straße");
        assert_eq!(normalize_key("!!!"), "");
        assert_eq!(
            words("\"rust\" NEAR( compiler* -x AND (a"),
            ["rust", "near", "compiler", "x", "and", "a"]
        );
        assert!(words("\" * ( )").is_empty());
        assert_eq!(default_bucket(MemoryKind::Preference), MemoryBucket::Core);
        assert_eq!(default_bucket(MemoryKind::Secret), MemoryBucket::Archival);
    }

    fn remember(kind: Option<&str>, bucket: Option<&str>) -> Remember {
        Remember {
            content: "Likes tea".into(),
            kind: kind.map(str::to_string),
            bucket: bucket.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn prepare_defaults_kind_and_bucket_and_keeps_the_source() {
        let memory = prepare(remember(None, None)).unwrap();
        assert_eq!((memory.kind, memory.bucket), (MemoryKind::Fact, MemoryBucket::Archival));
        assert_eq!((memory.key.as_str(), memory.source), ("likes-tea", MemorySource::Manual));
        let memory = prepare(remember(Some("profile"), Some(""))).unwrap();
        assert_eq!((memory.kind, memory.bucket), (MemoryKind::Profile, MemoryBucket::Core));
        let memory = prepare(remember(Some("secret"), Some("core"))).unwrap();
        assert_eq!((memory.kind, memory.bucket), (MemoryKind::Secret, MemoryBucket::Core));
        let tool = prepare(Remember { source: MemorySource::Tool, ..remember(None, None) });
        assert_eq!(tool.unwrap().source, MemorySource::Tool);
    }

    #[test]
    fn prepare_refuses_unknown_names_with_the_spec_messages() {
        let message = |r: Remember| prepare(r).unwrap_err().message;
        assert_eq!(
            message(remember(Some("Fact"), None)),
            "Invalid memory kind: Fact (use profile, preference, relationship, fact, secret)"
        );
        assert_eq!(
            message(remember(None, Some("hot"))),
            "Invalid memory bucket: hot (use core, archival)"
        );
        assert_eq!(message(Remember::default()), "Missing memory content");
    }
}
