//! The long-history scenario (issue 24): sessions whose histories are long, made directly in
//! the store (not through runs, which would take hours), then loaded by a gateway. It reports,
//! per history length, the time to load a session (its first `GET /sessions/:key`), the time
//! of a history page, the time of a run (which reads its context from the store), and RSS per
//! loaded idle session. With history in the store, RSS per session and load time should not
//! depend on the length of history.

use std::time::{Duration, Instant};

use agent_gateway::domain::{HistoryMessage, ModelRef, Part, Role, SessionMeta};
use agent_gateway::store::{Op, PostgresStore, SessionRecord, SqliteStore, Store};
use serde_json::{Value, json};

use crate::client::{self, Http1};
use crate::stats::{self, mib, round3};
use crate::target::{Launch, Server, scratch_dir};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Sessions per point.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// History lengths to measure, one point each (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100,10000")]
    pub messages: Vec<usize>,
    /// Characters of text per message.
    #[arg(long, default_value_t = 300)]
    pub message_chars: usize,
    /// Messages since the last compaction (the context a run reads); the rest is summarised.
    #[arg(long, default_value_t = 40)]
    pub context: usize,
    /// Sessions that also get one run (echo model) after loading.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

pub async fn run(launch: &Launch, args: &Args) -> Result<Vec<Value>, String> {
    if launch.attach.is_some() {
        return Err("the history scenario makes its own store; it cannot use --addr".into());
    }
    let mut lines = Vec::new();
    for &messages in &args.messages {
        let dir = scratch_dir("history")?;
        let database = launch.fresh_database().await?;
        let made = Instant::now();
        let store: Box<dyn Store> = match &database {
            Some(url) => Box::new(PostgresStore::open(url).await?),
            None => {
                let data = dir.join("data");
                std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
                Box::new(SqliteStore::open(&data.join(agent_gateway::app::STORE_FILE))?)
            }
        };
        make_store(&*store, args, messages).await?;
        drop(store);
        let make_seconds = made.elapsed().as_secs_f64();
        let settings = [("limits.max_live_sessions", (args.sessions + 100).to_string())];
        let server = launch.gateway_in(dir, &settings, database).await?;
        let result = measure(&server, args, messages, make_seconds).await;
        server.stop().await;
        let line = result?;
        crate::emit(&line);
        lines.push(line);
    }
    Ok(lines)
}

fn key(i: usize) -> String {
    format!("long-{i}")
}

/// Writes `args.sessions` sessions of `messages` messages each, compacted so that the last
/// `args.context` are the model's context, in batches the store commits one at a time.
async fn make_store(store: &dyn Store, args: &Args, messages: usize) -> Result<(), String> {
    let text = "lorem ipsum dolor sit amet ".repeat(args.message_chars / 27 + 1);
    let text = &text[..args.message_chars];
    for i in 0..args.sessions {
        let mut meta = SessionMeta::new(
            ModelRef { provider: "echo".into(), model_id: "echo".into() },
            "default",
        );
        meta.compacted_upto = messages.saturating_sub(args.context) as u64;
        if meta.compacted_upto > 0 {
            meta.compaction_summary = Some(format!("Summary of {} messages.", meta.compacted_upto));
        }
        let record = SessionRecord {
            key: key(i),
            meta,
            history_base: 0,
            message_count: messages as u64,
            preview: Some(text.chars().take(120).collect()),
        };
        let mut batch = vec![Op::PutSession(record)];
        for position in 0..messages {
            let role = if position % 2 == 0 { Role::User } else { Role::Assistant };
            batch.push(Op::AppendHistory {
                key: key(i),
                position: position as u64,
                message: HistoryMessage {
                    id: uuid::Uuid::new_v4().to_string(),
                    role,
                    parts: vec![Part::Text { text: format!("{position}: {text}") }],
                    timestamp: 1_700_000_000_000 + position as i64,
                },
            });
            if batch.len() >= 5000 {
                store.write(std::mem::take(&mut batch)).wait().await.map_err(|e| e.message)?;
            }
        }
        store.write(batch).wait().await.map_err(|e| e.message)?;
    }
    store.close().await.map_err(|e| e.message)
}

async fn measure(
    server: &Server,
    args: &Args,
    messages: usize,
    make_seconds: f64,
) -> Result<Value, String> {
    let mut conn = Http1::connect(&server.addr).await?;
    // The first load warms what every load needs once (statements, caches) into the base.
    conn.json("GET", &format!("/sessions/{}", key(0)), None, 200).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = server.memory().rss as f64;
    let base_metrics = server.metrics().await?;

    let mut load_us = Vec::new();
    for i in 1..args.sessions {
        let started = Instant::now();
        let snapshot = conn.json("GET", &format!("/sessions/{}", key(i)), None, 200).await?;
        load_us.push(started.elapsed().as_micros() as i64);
        if snapshot["session"]["messageCount"] != messages {
            return Err(format!(
                "{}: messageCount {} != {messages}",
                key(i),
                snapshot["messageCount"]
            ));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let loaded = server.memory().rss as f64;
    let loaded_metrics = server.metrics().await?;

    let mut page_us = Vec::new();
    for i in 0..args.sessions {
        let started = Instant::now();
        let page =
            conn.json("GET", &format!("/sessions/{}/history?limit=50", key(i)), None, 200).await?;
        page_us.push(started.elapsed().as_micros() as i64);
        let items = page["messages"].as_array().map_or(0, Vec::len);
        if items != 50.min(messages) {
            return Err(format!("{}: a page of {items} messages", key(i)));
        }
    }

    let mut run_us = Vec::new();
    for i in 0..args.runs.min(args.sessions) {
        let started = Instant::now();
        let answer = client::send_message(&mut conn, &key(i), "one more").await?;
        run_us.push(started.elapsed().as_micros() as i64);
        if answer["ok"] != true {
            return Err(format!("{}: run failed: {answer}", key(i)));
        }
    }

    let measured = args.sessions.saturating_sub(1).max(1) as f64;
    let checks = [stats::check(
        "gateway_sessions_live (loaded)",
        base_metrics.get("gateway_sessions_live") + args.sessions.saturating_sub(1) as f64,
        loaded_metrics.get("gateway_sessions_live"),
    )];
    Ok(json!({
        "scenario": "history",
        "sessions": args.sessions,
        "messages_per_session": messages,
        "context_messages": args.context.min(messages),
        "make_seconds": round3(make_seconds),
        "rss_base_mib": mib(base),
        "rss_loaded_mib": mib(loaded),
        "rss_per_session_kib": round3((loaded - base) / measured / 1024.0),
        "load": stats::latency_ms(&mut load_us),
        "history_page_50": stats::latency_ms(&mut page_us),
        "run": stats::latency_ms(&mut run_us),
        "counts_ok": checks.iter().all(|c| c.0),
        "checks": checks.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
    }))
}
