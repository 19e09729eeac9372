//! Who is calling (GATEWAY.md §10): a token's name, its scopes, `own_sessions_only`, and its
//! rate limits. Every layer that decides what a call may do takes a [`Caller`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{ErrorCode, GatewayError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Sending calls: messages, chat streams, steer, cancel, commands, webhooks.
    Chat,
    /// Reading and managing sessions: list, get, history, events, abort, reset, delete, model.
    Sessions,
    /// The memory API.
    Memory,
    /// Config, logs, channels, metrics; `secret` memories in search results.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Chat, Scope::Sessions, Scope::Memory, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Chat => "chat",
            Scope::Sessions => "sessions",
            Scope::Memory => "memory",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A token's rate limits (GATEWAY.md §10): requests per minute as a token bucket (a burst of
/// up to a minute's worth, refilled evenly), and messages in flight, queued or running.
#[derive(Debug)]
pub struct TokenLimits {
    per_minute: u32,
    bucket: Mutex<(f64, Instant)>,
    max_runs: u32,
    runs: AtomicU32,
}

impl TokenLimits {
    fn new(per_minute: u32, max_runs: u32) -> Self {
        Self {
            per_minute,
            bucket: Mutex::new((per_minute as f64, Instant::now())),
            max_runs,
            runs: AtomicU32::new(0),
        }
    }

    /// Takes one request from the bucket, or says when the next one may come.
    fn take(&self) -> Result<(), GatewayError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = self.per_minute as f64 / 60.0;
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let tokens =
            (tokens + now.duration_since(last).as_secs_f64() * rate).min(self.per_minute as f64);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            return Ok(());
        }
        *bucket = (tokens, now);
        let wait = ((1.0 - tokens) / rate).ceil() as u64;
        Err(GatewayError::rate_limited(
            format!("Rate limit exceeded: {} requests per minute for this token", self.per_minute),
            wait,
        ))
    }
}

/// A message of a token with `max_concurrent_runs` in flight; dropped when its run ends or it
/// leaves the queue.
#[derive(Debug)]
pub struct RunPermit(Arc<TokenLimits>);

impl Drop for RunPermit {
    fn drop(&mut self) {
        self.0.runs.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The caller of one request, put into the request's extensions by the auth check.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name (`None`: no auth configured, or the unnamed `bearer_token`).
    pub name: Option<Arc<str>>,
    scopes: u8,
    /// Sees only the sessions this token created; others are 404 to it.
    pub own_sessions_only: bool,
    limits: Option<Arc<TokenLimits>>,
}

impl PartialEq for Caller {
    fn eq(&self, other: &Self) -> bool {
        let same_limits = match (&self.limits, &other.limits) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.name == other.name
            && self.scopes == other.scopes
            && self.own_sessions_only == other.own_sessions_only
            && same_limits
    }
}

impl Eq for Caller {}

/// The default caller may do nothing and see nothing: a request that forgot to say who calls
/// is refused, never granted.
impl Default for Caller {
    fn default() -> Self {
        Self { name: None, scopes: 0, own_sessions_only: true, limits: None }
    }
}

impl Caller {
    /// A caller with every scope and no restriction (auth off, `bearer_token`, internal work).
    pub fn full() -> Self {
        Self { name: None, scopes: u8::MAX, own_sessions_only: false, limits: None }
    }

    pub fn new(name: &str, scopes: &[Scope], own_sessions_only: bool) -> Self {
        Self {
            name: Some(name.into()),
            scopes: scopes.iter().fold(0, |bits, s| bits | s.bit()),
            own_sessions_only,
            limits: None,
        }
    }

    /// This caller with a token's rate limits (requests per minute, messages in flight; 0 is
    /// no limit).
    pub fn with_limits(mut self, per_minute: u32, max_runs: u32) -> Self {
        self.limits = Some(Arc::new(TokenLimits::new(per_minute, max_runs)));
        self
    }

    /// Counts one request against the token's requests per minute: 429 past them.
    pub fn take_request(&self) -> Result<(), GatewayError> {
        self.limits.as_ref().map_or(Ok(()), |limits| limits.take())
    }

    /// A place for one more message in flight, or 429 when the token's
    /// `max_concurrent_runs` are taken. `None`: no such limit.
    pub fn run_permit(&self) -> Result<Option<RunPermit>, GatewayError> {
        let Some(limits) = self.limits.as_ref().filter(|l| l.max_runs > 0) else {
            return Ok(None);
        };
        let taken = limits.runs.fetch_add(1, Ordering::AcqRel);
        let permit = RunPermit(limits.clone());
        if taken >= limits.max_runs {
            return Err(GatewayError::rate_limited(
                format!(
                    "Too many messages in flight for this token (max_concurrent_runs {})",
                    limits.max_runs
                ),
                1,
            ));
        }
        Ok(Some(permit))
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }

    /// 403 `permission_denied` unless the caller has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), GatewayError> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(GatewayError::new(
                ErrorCode::PermissionDenied,
                format!("This token lacks the {} scope", scope.as_str()),
            ))
        }
    }

    /// The owner recorded on sessions this caller creates.
    pub fn owner(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether this caller may see a session owned by `owner`.
    pub fn sees(&self, owner: Option<&str>) -> bool {
        !self.own_sessions_only || (owner.is_some() && owner == self.owner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_ownership() {
        let caller = Caller::new("bot", &[Scope::Chat, Scope::Memory], true);
        assert!(caller.allows(Scope::Chat) && caller.allows(Scope::Memory));
        assert!(!caller.allows(Scope::Admin) && !caller.allows(Scope::Sessions));
        let denied = caller.require(Scope::Admin).unwrap_err();
        assert_eq!(denied.code, ErrorCode::PermissionDenied);
        assert!(caller.sees(Some("bot")));
        assert!(!caller.sees(Some("other")) && !caller.sees(None));
        assert!(Caller::full().sees(Some("anyone")) && Caller::full().sees(None));
    }

    #[test]
    fn a_bucket_lets_a_minute_through_then_says_when() {
        let caller = Caller::full().with_limits(3, 0);
        for _ in 0..3 {
            caller.take_request().unwrap();
        }
        let refused = caller.take_request().unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.retry_after, Some(20), "one request per 20 s at 3 per minute");
    }

    #[test]
    fn run_permits_are_given_back_when_dropped() {
        let caller = Caller::new("bot", &[Scope::Chat], false).with_limits(0, 2);
        let first = caller.run_permit().unwrap().unwrap();
        let _second = caller.run_permit().unwrap().unwrap();
        assert_eq!(caller.run_permit().unwrap_err().code, ErrorCode::RateLimited);
        drop(first);
        assert!(caller.run_permit().unwrap().is_some());
        assert!(Caller::full().run_permit().unwrap().is_none());
    }
}
