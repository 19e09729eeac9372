//! Opening a model call, with retries (GATEWAY.md §6): a call that fails before it streams
//! anything with 429, 5xx or a connection error is tried again after an exponential backoff
//! with jitter, or after the server's `Retry-After`, announced as `retry_start` / `retry_end`.
//! A call that has started streaming is never retried: its text is already out.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::provider::{ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream};
use super::{Agent, RunHost};
use crate::domain::EventKind;

/// How often and how long to wait before trying a failed model call again.
#[derive(Clone, Copy, Debug)]
pub(super) struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// `base_delay * 2^(attempt-1)`, capped at `max_delay`, with full jitter in its upper
    /// half so that many sessions retrying together spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let capped = exponential.min(self.max_delay);
        // A fresh v4 UUID is 122 random bits: enough randomness for jitter without a new crate.
        let random = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        capped.mul_f64(0.5 + random / 2.0)
    }
}

/// A model call that has started: its first item (`None` when the stream ended at once), the
/// rest of the stream, and when the call times out.
pub(super) struct OpenCall {
    pub first: Option<Result<ProviderEvent, ProviderError>>,
    pub stream: ProviderStream,
    pub deadline: Instant,
}

impl Agent {
    /// The error of a model call that ran past `agent.call_timeout`.
    pub(super) fn timed_out(&self) -> ProviderError {
        ProviderError::fatal(format!(
            "model call timed out after {} (agent.call_timeout)",
            humantime::format_duration(self.call_timeout)
        ))
    }

    /// Starts a model call and waits for its first item, retrying as the module says. None
    /// when cancelled.
    pub(super) async fn open_call(
        &self,
        host: &dyn RunHost,
        provider: &Arc<dyn Provider>,
        request: &ModelRequest,
        cancel: &CancellationToken,
    ) -> Option<OpenCall> {
        let policy = self.retry;
        let mut attempt = 0u32;
        loop {
            let deadline = Instant::now() + self.call_timeout;
            let mut stream = provider.stream(request.clone());
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(deadline) => Some(Err(self.timed_out())),
                first = stream.next() => first,
            };
            match first {
                Some(Err(error)) if error.retryable && attempt < policy.max_retries => {
                    attempt += 1;
                    let delay = error.retry_after.unwrap_or_else(|| policy.backoff(attempt));
                    host.emit(EventKind::RetryStart {
                        attempt,
                        max_attempts: policy.max_retries,
                        delay_ms: delay.as_millis() as u64,
                        error: error.message,
                    });
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                mut first => {
                    if attempt > 0 {
                        let success = !matches!(first, Some(Err(_)));
                        host.emit(EventKind::RetryEnd { attempt, success });
                        if let Some(Err(error)) = first.as_mut() {
                            error.message = format!("{} (after {attempt} retries)", error.message);
                        }
                    }
                    return Some(OpenCall { first, stream, deadline });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            let delay = policy.backoff(attempt).as_millis() as u64;
            assert!((full / 2..=full).contains(&delay), "attempt {attempt}: {delay} ms");
        }
    }
}
