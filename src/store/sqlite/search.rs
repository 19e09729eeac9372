//! Memory search over SQLite FTS5: active records and episodes of a namespace, each ranked by
//! BM25, merged best first. [`plan`] keeps the work bounded on big indexes.

use rusqlite::{Connection, OptionalExtension, Params, params};

use crate::domain::{HitSource, SearchHit, now_ms};
use crate::store::StoreResult;

/// Rows a search scores at most, about: see [`plan`].
const SCORE_BUDGET: f64 = 5000.0;

/// An FTS5 query matching any of `words` (each quoted, so nothing is read as syntax), and the
/// rowid the ranked rows must exceed.
///
/// This keeps a search's work bounded on big indexes. BM25 scores every row a word matches,
/// yet a word found in more than 5% of the rows adds next to nothing to the ranking (its IDF
/// is near zero): such words are dropped when a rarer one is there. When even the rarest word
/// matches more than [`SCORE_BUDGET`] rows, only the newest rows, where about that many of its
/// matches are, are ranked: a query of only very common words gets the best recent matches.
fn plan(conn: &Connection, fts: &str, vocab: &str, words: &[String]) -> StoreResult<(String, i64)> {
    let rows: i64 = conn
        .prepare_cached(&format!("SELECT rowid FROM {fts} ORDER BY rowid DESC LIMIT 1"))?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut counted = Vec::with_capacity(words.len());
    for word in words {
        let docs: i64 = conn
            .prepare_cached(&format!("SELECT doc FROM {vocab} WHERE term = ?1"))?
            .query_row([word], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        counted.push((docs, word));
    }
    counted.sort();
    let common = (rows as f64 * 0.05).max(50.0);
    let mut kept: Vec<&String> =
        counted.iter().filter(|(docs, _)| *docs as f64 <= common).map(|(_, w)| *w).collect();
    let rarest = counted.first().map_or(0, |(docs, _)| *docs) as f64;
    if kept.is_empty() {
        kept.extend(counted.first().map(|(_, w)| *w));
    }
    let after =
        if rarest > SCORE_BUDGET { rows - (rows as f64 * SCORE_BUDGET / rarest) as i64 } else { 0 };
    let expression =
        kept.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect::<Vec<_>>();
    Ok((expression.join(" OR "), after))
}

pub(super) fn search(
    conn: &mut Connection,
    namespace: &str,
    words: &[String],
    limit: usize,
    with_secrets: bool,
    owner: Option<&str>,
) -> StoreResult<Vec<SearchHit>> {
    if words.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let (expression, after) = plan(conn, "memory_index", "memory_vocab", words)?;
    let mut hits = ranked(
        conn,
        HitSource::Memory,
        "SELECT m.id, m.content, m.updated_at, bm25(memory_index),
                snippet(memory_index, 0, '[', ']', '…', 12), m.kind, m.bucket, m.key, NULL, NULL
         FROM memory_index JOIN memories m ON m.id = memory_index.rowid
         WHERE memory_index MATCH ?1 AND memory_index.rowid > ?5
           AND m.namespace = ?2 AND m.active = 1 AND (?3 OR m.kind != 'secret')
         ORDER BY bm25(memory_index) LIMIT ?4",
        params![expression, namespace, with_secrets, limit as i64, after],
    )?;
    let (expression, after) = plan(conn, "episode_index", "episode_vocab", words)?;
    hits.extend(ranked(
        conn,
        HitSource::Episode,
        "SELECT e.id, e.content, e.timestamp, bm25(episode_index),
                snippet(episode_index, 0, '[', ']', '…', 12), NULL, NULL, NULL, e.role,
                e.session_key
         FROM episode_index JOIN episodes e ON e.id = episode_index.rowid
         JOIN sessions s ON s.key = e.session_key
         WHERE episode_index MATCH ?1 AND episode_index.rowid > ?4
           AND s.memory_namespace = ?2 AND (?5 IS NULL OR s.owner = ?5)
         ORDER BY bm25(episode_index) LIMIT ?3",
        params![expression, namespace, limit as i64, after, owner],
    )?);
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(limit);
    let now = now_ms();
    for hit in hits.iter().filter(|h| h.source_type == HitSource::Memory) {
        conn.prepare_cached("UPDATE memories SET last_accessed_at = ?2 WHERE id = ?1")?
            .execute(params![hit.id, now])?;
    }
    Ok(hits)
}

/// One ranked query's hits. Both queries select the same columns, the ones a source lacks as
/// NULL: id, content, timestamp, BM25 rank, snippet, kind, bucket, key, role, session key.
fn ranked(
    conn: &Connection,
    source: HitSource,
    sql: &str,
    params: impl Params,
) -> StoreResult<Vec<SearchHit>> {
    Ok(conn
        .prepare_cached(sql)?
        .query_map(params, |r| {
            Ok(SearchHit {
                id: r.get(0)?,
                source_type: source,
                content: r.get(1)?,
                timestamp: r.get(2)?,
                // BM25 ranks are lower for better matches; scores are higher.
                score: -r.get::<_, f64>(3)?,
                snippet: r.get(4)?,
                kind: r.get(5)?,
                bucket: r.get(6)?,
                key: r.get(7)?,
                role: r.get(8)?,
                session_key: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_drop_common_words_and_window_very_common_queries() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        for id in 1..=10_000 {
            let text = if id % 4000 == 0 { "common rare" } else { "common" };
            tx.execute(
                "INSERT INTO memory_index (rowid, content, key) VALUES (?1, ?2, '')",
                params![id, text],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let plan = |w: &[&str]| plan(&conn, "memory_index", "memory_vocab", &words(w)).unwrap();
        assert_eq!(plan(&["common", "rare"]), ("\"rare\"".to_string(), 0), "the rare word ranks");
        assert_eq!(plan(&["rare", "absent"]), ("\"absent\" OR \"rare\"".to_string(), 0));
        // Only a word in every row: the newest rows holding about SCORE_BUDGET matches.
        assert_eq!(plan(&["common"]), ("\"common\"".to_string(), 5000));
    }
}
