//! Shutdown on the session manager (GATEWAY.md §10): draining (refuse new messages, let running
//! runs finish within the grace period, then interrupt them) and closing (final rows, exact
//! seqs, the store flushed).

use super::*;

impl SessionManager {
    /// Shutdown, first half (GATEWAY.md §10): sending calls are refused and no new run starts;
    /// running runs get `grace` to finish and are then interrupted as after a crash. Queued
    /// messages stay queued in the store and run after the next start.
    pub async fn drain(&self, grace: Duration) {
        self.inner.draining.cancel();
        info!("draining: new messages are refused");
        // A driver decides to start a run and counts it under the session lock: once every
        // lock has been taken after `draining` was set, the count includes every such run.
        for session in self.live() {
            drop(session.lock());
        }
        let mut runs = self.inner.active_runs.subscribe();
        let busy = *runs.borrow_and_update();
        if busy > 0 {
            info!(runs = busy, ?grace, "draining: letting running runs finish");
        }
        if tokio::time::timeout(grace, runs.wait_for(|n| *n == 0)).await.is_err() {
            warn!(?grace, "runs still going after the shutdown grace period; interrupting them");
            for session in self.live() {
                session.lock().interrupt(crate::domain::Interruption::Shutdown);
            }
            // Cancellation stops them at once; bounded in case a tool ignores it.
            let stopped = runs.wait_for(|n| *n == 0);
            if tokio::time::timeout(Duration::from_secs(5), stopped).await.is_err() {
                warn!("runs did not stop after being interrupted");
            }
        }
        for session in self.live() {
            session.lock().release_waiters();
        }
    }

    /// Shutdown, second half: writes each live session's final row and exact seq, then
    /// closes the store once everything submitted is on disk.
    pub async fn close(&self) {
        let mut last = Ticket::done();
        for session in self.live() {
            let mut state = session.lock();
            state.save_seq();
            last = state.commit();
        }
        // Batches apply in order: the last one resolving means all have been applied.
        if let Err(e) = last.wait().await {
            warn!(error = %e, "cannot store the final session state");
        }
        if let Err(e) = self.inner.store.close().await {
            warn!(error = %e, "cannot close the store cleanly");
        }
    }
}
