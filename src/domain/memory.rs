//! Long-term memory as clients see it (GATEWAY.md §7): records, what is asked to be
//! remembered, search results and the counts of the status view. Bucket, kind and source are
//! enums whose names are the JSON strings, the stored text and the words in error messages.

use std::fmt;

use serde::{Serialize, Serializer};

/// An enum spelled as lowercase words: `as_str` is its one spelling (JSON, store, messages),
/// `parse` reads exactly that spelling back, `ALL` lists the variants in the spec's order.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Exactly one of the names (case matters); anything else is `None`.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// The names, comma-separated, for "use ..." hints.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        /// A string with one of the names (GET /openapi.json).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

named_enum! {
    /// Core records enter every run's context; archival ones are found by search.
    MemoryBucket { Core = "core", Archival = "archival" }
}

named_enum! {
    MemoryKind {
        Profile = "profile",
        Preference = "preference",
        Relationship = "relationship",
        Fact = "fact",
        /// Seen and changed only by admin callers and the agent's own tools.
        Secret = "secret",
    }
}

named_enum! {
    /// Who wrote a record: an API call, the gateway itself, or the agent's memory tool.
    MemorySource { Manual = "manual", Auto = "auto", Tool = "tool" }
}

/// An API call, unless said otherwise.
impl Default for MemorySource {
    fn default() -> Self {
        MemorySource::Manual
    }
}

named_enum! {
    /// What a search hit is: a memory record or an episode (a conversation message).
    HitSource { Memory = "memory", Episode = "episode" }
}

/// A memory record as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRecord {
    pub id: i64,
    pub bucket: MemoryBucket,
    pub kind: MemoryKind,
    pub key: String,
    pub content: String,
    pub source: MemorySource,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_accessed_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<i64>,
}

/// A record to remember, validated; `key` is already normalised.
#[derive(Clone, Debug)]
pub struct NewMemory {
    pub bucket: MemoryBucket,
    pub kind: MemoryKind,
    pub key: String,
    pub content: String,
    pub source: MemorySource,
}

/// One search result: a record (with kind, bucket and key) or an episode (with role and
/// session key).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub id: i64,
    pub source_type: HitSource,
    /// Higher is better (the negated BM25 rank).
    pub score: f64,
    pub content: String,
    pub snippet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<MemoryKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<MemoryBucket>,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_parse_back_exactly_and_nothing_else() {
        for bucket in MemoryBucket::ALL {
            assert_eq!(MemoryBucket::parse(bucket.as_str()), Some(*bucket));
        }
        for kind in MemoryKind::ALL {
            assert_eq!(MemoryKind::parse(&kind.to_string()), Some(*kind));
        }
        for source in MemorySource::ALL {
            assert_eq!(MemorySource::parse(source.as_str()), Some(*source));
        }
        for source in HitSource::ALL {
            assert_eq!(HitSource::parse(source.as_str()), Some(*source));
        }
        for wrong in ["", "Core", "CORE", " core", "core ", "cores", "memory"] {
            assert_eq!(MemoryBucket::parse(wrong), None, "{wrong:?}");
        }
        assert_eq!(MemoryKind::parse("Secret"), None, "case matters, as before");
        assert_eq!(MemoryKind::parse("secrets"), None);
        assert_eq!(MemorySource::parse("api"), None);
    }

    #[test]
    fn names_are_the_spec_words_in_the_spec_order() {
        assert_eq!(MemoryBucket::names(), "core, archival");
        assert_eq!(MemoryKind::names(), "profile, preference, relationship, fact, secret");
        assert_eq!(MemorySource::names(), "manual, auto, tool");
        assert_eq!(HitSource::names(), "memory, episode");
    }

    #[test]
    fn json_is_the_lowercase_strings() {
        let record = MemoryRecord {
            id: 1,
            bucket: MemoryBucket::Core,
            kind: MemoryKind::Preference,
            key: "drink".into(),
            content: "tea".into(),
            source: MemorySource::Tool,
            created_at: 2,
            updated_at: 3,
            last_accessed_at: 4,
            superseded_by: None,
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            json!({"id": 1, "bucket": "core", "kind": "preference", "key": "drink",
                   "content": "tea", "source": "tool", "createdAt": 2, "updatedAt": 3,
                   "lastAccessedAt": 4})
        );
        let hit = SearchHit {
            id: 7,
            source_type: HitSource::Episode,
            score: 1.5,
            content: "hello".into(),
            snippet: "[hello]".into(),
            kind: None,
            bucket: None,
            key: None,
            role: Some("user".into()),
            session_key: Some("s".into()),
            timestamp: 9,
        };
        assert_eq!(
            serde_json::to_value(&hit).unwrap(),
            json!({"id": 7, "sourceType": "episode", "score": 1.5, "content": "hello",
                   "snippet": "[hello]", "role": "user", "sessionKey": "s", "timestamp": 9})
        );
        let memory_hit = SearchHit {
            source_type: HitSource::Memory,
            kind: Some(MemoryKind::Secret),
            bucket: Some(MemoryBucket::Archival),
            ..hit
        };
        let value = serde_json::to_value(&memory_hit).unwrap();
        assert_eq!(
            (&value["sourceType"], &value["kind"], &value["bucket"]),
            (&json!("memory"), &json!("secret"), &json!("archival"))
        );
    }
}
