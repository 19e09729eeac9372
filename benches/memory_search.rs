//! Memory search latency (GATEWAY.md §7): p50/p99 of ranked FTS5 searches over 100,000
//! memories and 100,000 episodes in one namespace, through the store's own API. Prints one
//! JSON line; asserts nothing about speed.
//!
//! `cargo bench --bench memory_search` runs the full size; under `cargo test` (no `--bench`
//! argument) it runs a smoke size, so the test command checks that it works.

use std::time::{Duration, Instant};

use agent_gateway::domain::{HistoryMessage, MemorySource, ModelRef, Part, Role, SessionMeta};
use agent_gateway::memory::{Access, Memory, Remember};
use agent_gateway::store::{Op, SessionRecord, SqliteStore, Store};

/// Words of a 5,000-word vocabulary, drawn log-uniformly (a few common words, a long tail,
/// as in real text) from a deterministic xorshift stream, so every run searches the same data.
struct Words(u64);

const VOCABULARY: f64 = 5000.0;

impl Words {
    fn next(&mut self) -> String {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        format!("word{}", VOCABULARY.powf(unit) as u64)
    }

    fn sentence(&mut self, words: usize) -> String {
        (0..words).map(|_| self.next()).collect::<Vec<_>>().join(" ")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (records, episodes, searches): (usize, usize, usize) =
        if full { (100_000, 100_000, 2_000) } else { (500, 500, 50) };
    // In memory: the same SQLite code and indexes; a file store would spend the setup on
    // 100,000 fsyncs, and a warm page cache reads alike.
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::in_memory());
    let memory = Memory::new(store.clone());
    let mut words = Words(0x9E37_79B9_7F4A_7C15);

    let started = Instant::now();
    for i in 0..records {
        let remember = Remember {
            content: format!("{} note {i}", words.sentence(8)),
            kind: Some("fact".into()),
            source: MemorySource::Manual,
            ..Default::default()
        };
        memory.remember("bench", remember, &Access::default()).await.expect("remember");
    }
    let remember_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut meta =
        SessionMeta::new(ModelRef { provider: "echo".into(), model_id: "echo".into() }, "bench");
    meta.session_id = "s".into();
    let record = SessionRecord {
        key: "bench-session".into(),
        meta,
        history_base: 0,
        message_count: 0,
        preview: None,
    };

    store.write(vec![Op::PutSession(record)]).wait().await.expect("session row");
    for chunk in 0..episodes.div_ceil(1000) {
        let batch = (chunk * 1000..((chunk + 1) * 1000).min(episodes))
            .map(|i| Op::AppendHistory {
                key: "bench-session".into(),
                position: i as u64,
                message: HistoryMessage {
                    id: format!("m{i}"),
                    role: if i % 2 == 0 { Role::User } else { Role::Assistant },
                    parts: vec![Part::Text { text: words.sentence(12) }],
                    timestamp: i as i64,
                },
            })
            .collect();
        store.write(batch).wait().await.expect("history batch");
    }
    let episodes_s = started.elapsed().as_secs_f64();

    let mut latencies = Vec::with_capacity(searches);
    let mut hits = 0;
    for _ in 0..searches {
        let query = words.sentence(2);
        let started = Instant::now();
        hits +=
            memory.search("bench", &query, None, &Access::default()).await.expect("search").len();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "bench": "memory_search",
            "memories": records,
            "episodes": episodes,
            "searches": searches,
            "store": "in-memory SQLite",
            "limit": 4,
            "hits": hits,
            "p50_us": percentile(&latencies, 0.50),
            "p99_us": percentile(&latencies, 0.99),
            "max_us": percentile(&latencies, 1.0),
            "remember_per_s": records as f64 / remember_s,
            "episodes_per_s": episodes as f64 / episodes_s,
        })
    );
}
