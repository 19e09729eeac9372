//! Long-term memory as clients see it (GATEWAY.md §7): records, what is asked to be
//! remembered, search results and the counts of the status view.

use serde::Serialize;

/// A memory record as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRecord {
    pub id: i64,
    pub bucket: String,
    pub kind: String,
    pub key: String,
    pub content: String,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_accessed_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<i64>,
}

/// A record to remember; `key` is already normalised.
#[derive(Clone, Debug)]
pub struct NewMemory {
    pub bucket: String,
    pub kind: String,
    pub key: String,
    pub content: String,
    pub source: String,
}

/// One search result (`sourceType` memory or episode).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub id: i64,
    pub source_type: &'static str,
    /// Higher is better (the negated BM25 rank).
    pub score: f64,
    pub content: String,
    pub snippet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    pub timestamp: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryCounts {
    pub core: u64,
    pub archival: u64,
    pub episodes: u64,
    pub last_memory_write_at: Option<i64>,
    pub last_episode_at: Option<i64>,
}
