//! What the session manager answers without changing anything: the listing (live and stored
//! sessions merged, with its cursor), one snapshot, history, the queue, the state view, the
//! event subscription and the resume of a run's stream, and the gauges of `/metrics`.

use std::collections::HashMap;

use super::*;

impl SessionManager {
    /// All stored sessions, newest activity first, each with `loaded`; `limit` defaults to
    /// 100 (at most 1000). Live sessions count with their in-memory activity time.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Snapshot>> {
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        let after = cursor.map(decode_list_cursor).transpose()?;
        let live: Vec<_> = self.registry().live.values().cloned().collect();
        let mut snapshots: HashMap<String, Snapshot> = live
            .iter()
            .filter_map(|s| {
                let state = s.lock();
                caller
                    .sees(state.meta.owner.as_deref())
                    .then(|| snapshot_for(&Caller::full(), &state))
            })
            .map(|snapshot| (snapshot.session_key.clone(), snapshot))
            .collect();
        // Stored rows of live sessions may be stale and are replaced below, so fetch enough
        // rows that `limit` of them are certainly not live ones.
        let owner =
            caller.own_sessions_only.then(|| caller.owner().unwrap_or_default().to_string());
        let stored =
            self.inner.store.list(limit + 1 + snapshots.len(), after.clone(), owner).await?;
        for record in stored {
            snapshots.entry(record.key.clone()).or_insert_with(|| stored_snapshot(record));
        }
        let mut items: Vec<Snapshot> = snapshots
            .into_values()
            .filter(|s| match &after {
                Some((at, key)) => {
                    s.last_active_at < *at || (s.last_active_at == *at && s.session_key > *key)
                }
                None => true,
            })
            .collect();
        items.sort_by(|a, b| {
            b.last_active_at.cmp(&a.last_active_at).then_with(|| a.session_key.cmp(&b.session_key))
        });
        items.truncate(limit + 1);
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|s| encode_list_cursor(s.last_active_at, &s.session_key))
        } else {
            None
        };
        for item in &mut items {
            if caller.own_sessions_only {
                item.session_key = keys::shown(&item.session_key).to_string();
            }
        }
        Ok(Page { items, next_cursor })
    }

    /// Reads the gauges of `/metrics`: sessions live and stored, messages waiting, streams
    /// open.
    pub async fn observe(&self) -> Result<()> {
        let metrics = &self.inner.metrics;
        let (mut queued, mut subscribers) = (0, 0);
        let live = self.live();
        for session in &live {
            let state = session.lock();
            queued += state.queue.len() as i64;
            subscribers += state.log.subscribers() as i64;
        }
        metrics.sessions_live.set(live.len() as i64);
        metrics.queue_depth.set(queued);
        metrics.subscribers.set(subscribers);
        metrics.sessions_stored.set(self.inner.store.count_sessions().await? as i64);
        Ok(())
    }

    pub async fn get(&self, caller: &Caller, key: &str) -> Result<Snapshot> {
        Ok(snapshot_for(caller, &self.existing(caller, key).await?.lock()))
    }

    pub async fn history(
        &self,
        caller: &Caller,
        key: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<HistoryMessage>> {
        if limit == Some(0) {
            return Err(GatewayError::invalid("History limit must be a positive integer"));
        }
        let cursor = cursor
            .map(|c| c.parse::<u64>().map_err(|_| GatewayError::invalid("Invalid history cursor")))
            .transpose()?;
        let session = self.existing(caller, key).await?;
        // The span is taken under the lock, so the batch of every message it counts has been
        // submitted; the store answers reads after the writes submitted before them.
        let span = session.lock().history_span(limit, cursor);
        let items = self.inner.store.history(&session.key, span.from, span.to).await?;
        Ok(Page { items, next_cursor: span.next_cursor })
    }

    /// The messages waiting in the queue, next first.
    pub async fn queue(&self, caller: &Caller, key: &str) -> Result<QueueView> {
        Ok(self.existing(caller, key).await?.lock().queue_view())
    }

    pub async fn state(&self, caller: &Caller, key: &str) -> Result<SessionStateView> {
        let session = self.existing(caller, key).await?;
        let (mut view, span) = session.lock().view();
        let mut messages = self.inner.store.history(&session.key, span.from, span.to).await?;
        messages.append(&mut view.messages);
        view.messages = messages;
        Ok(view)
    }

    /// Live events: `hello`, the logged events after `after_seq`, then live ones.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        key: &str,
        after_seq: Option<u64>,
    ) -> Result<EventStream> {
        let session = self.existing(caller, key).await?;
        let (snapshot, subscription) = {
            let mut state = session.lock();
            self.room_for_subscriber(&state)?;
            let subscription = state.log.subscribe(after_seq);
            (snapshot_for(caller, &state), subscription)
        };
        Ok(stream::subscription(
            session.shown.clone(),
            snapshot,
            subscription,
            self.inner.shutdown.clone(),
            self.inner.metrics.lagged.clone(),
        ))
    }

    /// Picks a run's stream up again (the Vercel and v1 resume routes): run `run` (a message
    /// id: running, queued or still in the log), else the running run, else the run the log
    /// holds events of after `after`. The stream replays the run's logged events after
    /// `after` (from its start without it), follows it live through `agent_end`, and ends with
    /// its outcome. `None`: there is no such run to follow.
    pub async fn resume_run(
        &self,
        caller: &Caller,
        key: &str,
        run: Option<&str>,
        after: Option<u64>,
    ) -> Result<Option<(String, RunStream)>> {
        let session = self.existing(caller, key).await?;
        let mut state = session.lock();
        self.room_for_subscriber(&state)?;
        let running = state.run.as_ref().map(|run| run.message_id.clone());
        let Some(target) = run
            .map(str::to_string)
            .or_else(|| running.clone())
            .or_else(|| after.and_then(|after| state.log.run_after(after)))
        else {
            return Ok(None);
        };
        let span = state.log.find_run(&target);
        let queued = state.queue.iter().any(|q| q.message_id == target);
        let known = running.as_deref() == Some(target.as_str()) || queued;
        if !known && span.start.is_none() && span.end.is_none() {
            return Ok(None);
        }
        // From just before the run's start; a run older than the log starts at its oldest
        // event, and the caller hears how much is gone.
        let underway = span.start.is_none() && !queued;
        let oldest = state.log.oldest_seq().unwrap_or(state.log.last_seq() + 1);
        let from = match span.start {
            Some(start) => start - 1,
            None if queued => state.log.last_seq(),
            None => oldest - 1,
        };
        let seen = after.unwrap_or(from).max(from);
        let missed = if underway { (oldest - 1).saturating_sub(after.unwrap_or(0)) } else { 0 };
        let sub = state.log.subscribe(Some(from));
        drop(state);
        let stream = stream::resumed_run(
            session.shown.clone(),
            target.clone(),
            sub,
            stream::ResumePoint { underway, missed, seen },
            self.inner.shutdown.clone(),
            self.inner.metrics.lagged.clone(),
        );
        Ok(Some((target, stream)))
    }
}

/// The snapshot as `caller` sees it: named by the key its owner used for an
/// `own_sessions_only` caller, by the stored key for callers that see every session.
pub(super) fn snapshot_for(caller: &Caller, state: &State) -> Snapshot {
    let mut snapshot = state.snapshot();
    if !caller.own_sessions_only {
        snapshot.session_key = state.key.to_string();
    }
    snapshot
}

/// The snapshot of a session that is only in the store.
fn stored_snapshot(record: SessionRecord) -> Snapshot {
    let counts = SnapshotCounts {
        message_count: record.message_count as usize,
        queue_depth: 0,
        processing: false,
        loaded: false,
        last_message_preview: record.preview,
    };
    Snapshot::of(&record.key, &record.meta, counts)
}

fn encode_list_cursor(last_active_at: i64, key: &str) -> String {
    format!("{last_active_at}\n{key}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_list_cursor(cursor: &str) -> Result<(i64, String)> {
    let invalid = || GatewayError::invalid("Invalid cursor");
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, key) = text.split_once('\n').ok_or_else(invalid)?;
    Ok((at.parse().map_err(|_| invalid())?, key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cursor_round_trips() {
        let cursor = encode_list_cursor(1_700_000_000_000, "a:b c/é");
        assert_eq!(
            decode_list_cursor(&cursor).unwrap(),
            (1_700_000_000_000, "a:b c/é".to_string())
        );
        assert!(decode_list_cursor("zz").is_err());
        assert!(decode_list_cursor("abc").is_err());
    }
}
