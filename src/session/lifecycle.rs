//! Session lifecycle on the manager: explicit creation, rename, abort, cancel, clear, reset,
//! delete, and idle eviction. Reset and delete span two locks and an await: mark the session
//! closing, reject its queue, abort its run, wait on the run gate until the run has wound
//! down, then clear it in place or remove it. Callers that arrive meanwhile wait until it
//! settles, then see the result.

use std::sync::Arc;

use tracing::info;

use super::state::Session;
use super::{SessionManager, run, validate_key};
use crate::agent::UnknownModel;
use crate::domain::Caller;
use crate::domain::EventKind;
use crate::domain::*;
use crate::error::{GatewayError, Result};
use crate::store::Op;

/// How long finished messages (and idempotency records) are kept in the store.
const KEEP_FINISHED: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

impl SessionManager {
    pub async fn create(&self, request: CreateRequest) -> Result<Snapshot> {
        let key = request.session_key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        validate_key(&key)?;
        if let Some(namespace) = &request.memory_namespace {
            crate::memory::validate_namespace(namespace)?;
        }
        if let Some(name) = &request.name {
            validate_name(name)?;
        }
        if let Some(model) = &request.model {
            self.check_model(model)?;
        }
        let stored_key = self.key_for(&request.caller, &key).await?;
        let session = {
            let _loading = self.inner.loading.lock().await;
            let stored = self.inner.store.load(&stored_key).await?;
            if self.lookup(&stored_key).is_some() || stored.session.is_some() {
                return Err(GatewayError::conflict(format!("Session already exists: {key}")));
            }
            // A created session counts against `limits.max_live_sessions` like any other.
            self.make_room()?;
            let mut registry = self.registry();
            let owner = request.caller.owner().map(str::to_string);
            self.install(&mut registry, &stored_key, stored, |state| {
                state.meta.owner = owner;
                state.meta.name = request.name.filter(|n| !n.is_empty());
                if let Some(namespace) = request.memory_namespace {
                    state.meta.memory_namespace = namespace;
                }
                if let Some(model) = request.model {
                    state.meta.model = model;
                }
            })
        };
        let (snapshot, stored) = {
            let mut state = session.lock();
            (super::reads::snapshot_for(&request.caller, &state), state.commit())
        };
        stored.wait().await?;
        Ok(snapshot)
    }

    /// Makes sure the session exists (created on use, owned by `caller`), as a sending call
    /// would; 404 for one the caller may not see.
    pub async fn ensure(&self, caller: &Caller, key: &str) -> Result<()> {
        validate_key(key)?;
        let stored = self.key_for(caller, key).await?;
        let session = self.get_or_create(caller, &stored).await?;
        if !caller.sees(session.lock().meta.owner.as_deref()) {
            return Err(GatewayError::session_not_found(key));
        }
        Ok(())
    }

    pub async fn rename(&self, caller: &Caller, key: &str, name: Option<String>) -> Result<()> {
        if let Some(name) = &name {
            validate_name(name)?;
        }
        let session = self.existing(caller, key).await?;
        Self::durably(&session, |state| {
            if let Some(name) = name {
                state.meta.name = (!name.is_empty()).then_some(name);
                state.meta.updated_at = now_ms();
                state.touch();
                state.emit_state();
            }
        })
        .await
    }

    /// Switches the session's model (from the next run on); an unknown model is 404.
    pub async fn set_model(&self, caller: &Caller, key: &str, model: ModelRef) -> Result<ModelRef> {
        self.check_model(&model)?;
        let session = self.existing(caller, key).await?;
        Self::durably(&session, |state| {
            state.meta.model = model.clone();
            state.meta.updated_at = now_ms();
            state.touch();
            state.emit_state();
        })
        .await?;
        Ok(model)
    }

    /// Sets the session's thinking level (from the next model call on).
    pub async fn set_thinking(
        &self,
        caller: &Caller,
        key: &str,
        level: ThinkingLevel,
    ) -> Result<ThinkingLevel> {
        let session = self.existing(caller, key).await?;
        Self::durably(&session, |state| {
            state.meta.thinking = level;
            state.meta.updated_at = now_ms();
            state.touch();
            state.emit_state();
        })
        .await?;
        Ok(level)
    }

    /// Re-reads the session's settings (the system prompt with the workspace's `AGENTS.md`):
    /// the next model call, even within a running run, uses them.
    pub async fn reload(&self, caller: &Caller, key: &str) -> Result<()> {
        let session = self.existing(caller, key).await?;
        let prompt = self.inner.agent.session_prompt();
        session.lock().system_prompt = Some(prompt);
        info!(session_key = key, "session reloaded");
        Ok(())
    }

    /// The memory namespace a memory call works in: the session's (unknown session: 404),
    /// else the default one.
    pub async fn memory_namespace(&self, caller: &Caller, key: Option<&str>) -> Result<String> {
        match key {
            None => Ok(crate::memory::DEFAULT_NAMESPACE.to_string()),
            Some(key) => Ok(self.existing(caller, key).await?.lock().meta.memory_namespace.clone()),
        }
    }

    /// The model registry and the model new sessions get.
    pub fn models(&self) -> (Vec<crate::agent::provider::ModelInfo>, ModelRef) {
        (self.inner.agent.models(), self.inner.agent.default_model().clone())
    }

    /// Whether the registry has the model; 404 `Model not found: ...` as a call's answer.
    pub fn check_model(&self, model: &ModelRef) -> std::result::Result<(), UnknownModel> {
        self.inner.agent.check_model(model)
    }

    /// Aborts the running run; whether one was running.
    pub async fn abort(&self, caller: &Caller, key: &str) -> Result<bool> {
        Ok(self.existing(caller, key).await?.lock().abort())
    }

    pub async fn cancel_queued(
        &self,
        caller: &Caller,
        key: &str,
        message_id: &str,
    ) -> Result<bool> {
        let session = self.existing(caller, key).await?;
        Self::durably(&session, |state| state.cancel_queued(message_id)).await
    }

    /// Withdraws a caller's own message (its stream went away): out of the queue if it waits,
    /// aborted if its run is the one running. A run it only steered into belongs to another
    /// caller and is left alone. Whether anything was cancelled.
    pub async fn cancel_own(&self, caller: &Caller, key: &str, message_id: &str) -> Result<bool> {
        let session = self.existing(caller, key).await?;
        Self::durably(&session, |state| {
            if state.cancel_queued(message_id) {
                return true;
            }
            state.run.as_ref().is_some_and(|run| run.message_id == message_id) && state.abort()
        })
        .await
    }

    pub async fn clear_queue(&self, caller: &Caller, key: &str) -> Result<usize> {
        let session = self.existing(caller, key).await?;
        Self::durably(&session, |state| state.reject_queue("Queue cleared")).await
    }

    /// Aborts, rejects the queue with `Session reset`, clears history under a new session id.
    /// The primary session resets in place; any other is removed until a message recreates it.
    pub async fn reset(&self, caller: &Caller, key: &str) -> Result<()> {
        let session = self.wind_down(caller, key, "Session reset").await?;
        let stored = if session.primary {
            let (stored, has_work) = {
                let mut state = session.lock();
                let old_id = state.meta.session_id.clone();
                state.clear();
                state.emit(EventKind::SessionReset { session_id: old_id });
                state.emit_state();
                session.set_closing(&mut state, false);
                let has_work = !state.queue.is_empty() && !state.driver_running;
                if has_work {
                    state.driver_running = true;
                }
                (state.commit(), has_work)
            };
            if has_work {
                run::spawn_driver(session.clone(), self.clone());
            }
            stored
        } else {
            {
                let mut state = session.lock();
                let session_id = state.meta.session_id.clone();
                state.emit(EventKind::SessionReset { session_id });
            }
            self.remove(&session)
        };
        stored.wait().await?;
        info!(session_key = key, "session reset");
        Ok(())
    }

    /// Aborts, rejects the queue with `Session deleted: <key>`, removes the session; every
    /// stream of it ends after `session_deleted`.
    pub async fn delete(&self, caller: &Caller, key: &str) -> Result<()> {
        validate_key(key)?;
        if key == self.inner.config.startup().primary_session {
            return Err(GatewayError::failed_precondition("Cannot delete primary session"));
        }
        let session = self.wind_down(caller, key, &format!("Session deleted: {key}")).await?;
        {
            let mut state = session.lock();
            let session_id = state.meta.session_id.clone();
            state.emit(EventKind::SessionDeleted { session_id });
        }
        self.remove(&session).wait().await?;
        info!(session_key = key, "session deleted");
        Ok(())
    }

    /// First half of reset and delete: mark closing, reject the queue, abort, and wait until
    /// the run has wound down. Returns with the session still closing.
    async fn wind_down(&self, caller: &Caller, key: &str, reason: &str) -> Result<Arc<Session>> {
        let session = loop {
            let session = self.existing(caller, key).await?;
            let mut state = session.lock();
            if state.closing || state.removed {
                continue;
            }
            session.set_closing(&mut state, true);
            state.reject_queue(reason);
            state.abort();
            drop(state);
            break session;
        };
        drop(session.run_gate.lock().await);
        Ok(session)
    }

    /// Second half of delete (and reset of a non-primary session): out of the registry, every
    /// stream ended, waiting callers released to look the key up afresh. The ticket says
    /// when the store has forgotten it.
    fn remove(&self, session: &Arc<Session>) -> crate::store::Ticket {
        // Registry before session: the one lock order used everywhere. The store's delete is
        // submitted under both, so a later load (which takes the registry first) sees it.
        let mut registry = self.registry();
        let mut state = session.lock();
        state.save_seq();
        state.removed = true;
        state.delete_stored();
        state.log.close();
        if registry.live.get(&*session.key).is_some_and(|s| Arc::ptr_eq(s, session)) {
            registry.live.remove(&*session.key);
        }
        session.set_closing(&mut state, false);
        state.commit()
    }

    // ---- eviction --------------------------------------------------------------------------

    /// Drops sessions idle longer than `session.idle` that are not processing, have nothing
    /// queued and nobody subscribed, from memory; they stay in the store. The primary session
    /// is never evicted.
    pub fn evict_idle(&self) -> usize {
        let cutoff = now_ms() - self.config().session.idle.as_millis() as i64;
        let mut registry = self.registry();
        let before = registry.live.len();
        registry.live.retain(|key, session| {
            if session.primary {
                return true;
            }
            let mut state = session.lock();
            let idle = state.meta.last_active_at <= cutoff && state.evictable();
            if idle {
                // A caller that looked the session up just before must not queue on it now.
                state.removed = true;
                state.save_seq();
                // Written while the registry is held: a reload sees the final row.
                drop(state.commit());
                info!(session_key = %key, "evicted idle session");
            }
            !idle
        });
        before - registry.live.len()
    }

    /// Runs the idle sweep every `session.sweep_interval` until shutdown; each sweep also lets
    /// the store forget finished messages older than a day.
    pub fn spawn_sweeper(&self) {
        let manager = self.clone();
        // Start-up only: the ticker is set once.
        let every = self.inner.config.startup().session.sweep_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = manager.inner.shutdown.cancelled() => return,
                    _ = ticker.tick() => {
                        manager.evict_idle();
                        let before = now_ms() - KEEP_FINISHED.as_millis() as i64;
                        drop(manager.inner.store.write(vec![Op::Prune { before }]));
                    }
                }
            }
        });
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.chars().count() > 200 || name.contains(['\n', '\r']) {
        return Err(GatewayError::invalid(
            "Invalid name: use at most 200 characters without line breaks",
        ));
    }
    Ok(())
}
