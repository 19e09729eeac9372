//! Memory search over SQLite FTS5: active records and episodes of a namespace, each ranked by
//! BM25, merged best first. [`plan`] keeps the work bounded on big indexes.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::{SearchHit, now_ms};
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
    let mut hits: Vec<SearchHit> = conn
        .prepare_cached(
            "SELECT m.id, m.bucket, m.kind, m.key, m.content, m.updated_at, bm25(memory_index),
                    snippet(memory_index, 0, '[', ']', '…', 12)
             FROM memory_index JOIN memories m ON m.id = memory_index.rowid
             WHERE memory_index MATCH ?1 AND memory_index.rowid > ?5
               AND m.namespace = ?2 AND m.active = 1 AND (?3 OR m.kind != 'secret')
             ORDER BY bm25(memory_index) LIMIT ?4",
        )?
        .query_map(params![expression, namespace, with_secrets, limit as i64, after], |r| {
            Ok(SearchHit {
                id: r.get(0)?,
                source_type: "memory",
                bucket: Some(r.get(1)?),
                kind: Some(r.get(2)?),
                key: Some(r.get(3)?),
                content: r.get(4)?,
                timestamp: r.get(5)?,
                score: -r.get::<_, f64>(6)?,
                snippet: r.get(7)?,
                role: None,
                session_key: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (expression, after) = plan(conn, "episode_index", "episode_vocab", words)?;
    let episodes: Vec<SearchHit> = conn
        .prepare_cached(
            "SELECT e.id, e.role, e.session_key, e.content, e.timestamp, bm25(episode_index),
                    snippet(episode_index, 0, '[', ']', '…', 12)
             FROM episode_index JOIN episodes e ON e.id = episode_index.rowid
             JOIN sessions s ON s.key = e.session_key
             WHERE episode_index MATCH ?1 AND episode_index.rowid > ?4
               AND s.memory_namespace = ?2 AND (?5 IS NULL OR s.owner = ?5)
             ORDER BY bm25(episode_index) LIMIT ?3",
        )?
        .query_map(params![expression, namespace, limit as i64, after, owner], |r| {
            Ok(SearchHit {
                id: r.get(0)?,
                source_type: "episode",
                role: Some(r.get(1)?),
                session_key: Some(r.get(2)?),
                content: r.get(3)?,
                timestamp: r.get(4)?,
                score: -r.get::<_, f64>(5)?,
                snippet: r.get(6)?,
                kind: None,
                bucket: None,
                key: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    hits.extend(episodes);
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(limit);
    let now = now_ms();
    for hit in hits.iter().filter(|h| h.source_type == "memory") {
        conn.prepare_cached("UPDATE memories SET last_accessed_at = ?2 WHERE id = ?1")?
            .execute(params![hit.id, now])?;
    }
    Ok(hits)
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
