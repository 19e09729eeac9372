//! Memory search with PostgreSQL's full-text search: active records and episodes of a
//! namespace, each ranked by `ts_rank_cd` (cover density, divided by 1 + the log of the
//! text's length, so that as with BM25 a short text that matches ranks above a long one) over
//! its `search` column, merged best first, with `ts_headline` snippets of about a dozen words
//! around the match, marked `[` `]` as SQLite's.
//!
//! The query is the one SQLite runs: any of the plain words (OR), each word through
//! `plainto_tsquery('simple', ...)`, so no text is ever read as query syntax and no query is an
//! error. The GIN indexes find the matching rows; only those are ranked.

use tokio_postgres::Row;

use super::conn::{Db, get};
use super::memory::named;
use crate::domain::{HitSource, MemoryBucket, MemoryKind, SearchHit, now_ms};
use crate::store::StoreResult;

/// `q.query`: `$1` (the words, `TEXT[]`) as one tsquery matching any of them; NULL when no
/// word has a lexeme, and then nothing matches.
macro_rules! with_query {
    () => {
        "WITH q AS (SELECT (SELECT string_agg('(' || t::TEXT || ')', ' | ')::TSQUERY
                            FROM unnest($1::TEXT[]) AS w, plainto_tsquery('simple', w) AS t
                            WHERE numnode(t) > 0) AS query) "
    };
}

/// How snippets are cut: about a dozen words around the best match, as SQLite's
/// `snippet(..., 12)`.
macro_rules! headline {
    () => {
        "'StartSel=[, StopSel=], MaxFragments=1, MaxWords=12, MinWords=6, ShortWord=0'"
    };
}

pub(super) async fn search(
    db: &mut Db,
    namespace: &str,
    words: &[String],
    limit: usize,
    with_secrets: bool,
    owner: Option<&str>,
) -> StoreResult<Vec<SearchHit>> {
    if words.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let records = db
        .query(
            concat!(
                with_query!(),
                "SELECT m.id, m.content, m.updated_at, ts_rank_cd(m.search, q.query, 1),
                        ts_headline('simple', m.content, q.query, ",
                headline!(),
                "), m.kind, m.bucket, m.key
                 FROM memories m, q
                 WHERE m.search @@ q.query AND m.namespace = $2 AND m.active
                   AND ($3 OR m.kind <> 'secret')
                 ORDER BY 4 DESC, m.id DESC LIMIT $4"
            ),
            &[&words, &namespace, &with_secrets, &limit],
        )
        .await?;
    let mut hits = Vec::with_capacity(records.len());
    for row in &records {
        hits.push(SearchHit {
            kind: Some(named(row, 5, MemoryKind::parse, "MemoryKind")?),
            bucket: Some(named(row, 6, MemoryBucket::parse, "MemoryBucket")?),
            key: Some(get(row, 7)?),
            ..hit(row, HitSource::Memory)?
        });
    }
    let episodes = db
        .query(
            concat!(
                with_query!(),
                "SELECT e.id, e.content, e.timestamp, ts_rank_cd(e.search, q.query, 1),
                        ts_headline('simple', e.content, q.query, ",
                headline!(),
                "), e.role, e.session_key
                 FROM episodes e JOIN sessions s ON s.key = e.session_key, q
                 WHERE e.search @@ q.query AND s.memory_namespace = $2
                   AND ($4::TEXT IS NULL OR s.owner = $4)
                 ORDER BY 4 DESC, e.id DESC LIMIT $3"
            ),
            &[&words, &namespace, &limit, &owner],
        )
        .await?;
    for row in &episodes {
        hits.push(SearchHit {
            role: Some(get(row, 5)?),
            session_key: Some(get(row, 6)?),
            ..hit(row, HitSource::Episode)?
        });
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(limit as usize);
    let now = now_ms();
    for hit in hits.iter().filter(|h| h.source_type == HitSource::Memory) {
        db.execute("UPDATE memories SET last_accessed_at = $2 WHERE id = $1", &[&hit.id, &now])
            .await?;
    }
    Ok(hits)
}

/// The columns both queries share: id, content, timestamp, rank, snippet.
fn hit(row: &Row, source: HitSource) -> StoreResult<SearchHit> {
    Ok(SearchHit {
        id: get(row, 0)?,
        source_type: source,
        content: get(row, 1)?,
        timestamp: get(row, 2)?,
        score: f64::from(get::<f32>(row, 3)?),
        snippet: get(row, 4)?,
        kind: None,
        bucket: None,
        key: None,
        role: None,
        session_key: None,
    })
}
