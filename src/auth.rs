//! Who is calling (GATEWAY.md §10): bearer tokens, their scopes and `own_sessions_only`,
//! checked the same way for both transports (HTTP middleware, the gRPC guard).
//!
//! `bearer_token` has every scope; `[[tokens]]` entries have names and the scopes they list.
//! With no token configured the gateway is open and every caller has every scope. Tokens are
//! compared in constant time and never logged: a caller is known by its token's name only.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::config::Config;
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

/// The caller of one request, put into the request's extensions by the auth check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (`None`: no auth configured, or the unnamed `bearer_token`).
    pub name: Option<Arc<str>>,
    scopes: u8,
    /// Sees only the sessions this token created; others are 404 to it.
    pub own_sessions_only: bool,
}

/// The default caller may do nothing and see nothing: a request that forgot to say who calls
/// is refused, never granted.
impl Default for Caller {
    fn default() -> Self {
        Self { name: None, scopes: 0, own_sessions_only: true }
    }
}

impl Caller {
    /// A caller with every scope and no restriction (auth off, `bearer_token`, internal work).
    pub fn full() -> Self {
        Self { name: None, scopes: u8::MAX, own_sessions_only: false }
    }

    pub fn new(name: &str, scopes: &[Scope], own_sessions_only: bool) -> Self {
        Self {
            name: Some(name.into()),
            scopes: scopes.iter().fold(0, |bits, s| bits | s.bit()),
            own_sessions_only,
        }
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

#[derive(Clone, Debug, Default)]
pub struct Auth {
    tokens: Arc<Vec<(Vec<u8>, Caller)>>,
}

impl Auth {
    pub fn from_config(config: &Config) -> Self {
        let mut tokens = Vec::new();
        if !config.bearer_token.is_empty() {
            tokens.push((config.bearer_token.as_bytes().to_vec(), Caller::full()));
        }
        for token in &config.tokens {
            let scopes: Vec<Scope> = token.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
            let caller = Caller::new(&token.name, &scopes, token.own_sessions_only);
            tokens.push((token.token.as_bytes().to_vec(), caller));
        }
        Self { tokens: Arc::new(tokens) }
    }

    /// One token with every scope; an empty token disables auth.
    pub fn new(token: &str) -> Self {
        let tokens = if token.is_empty() {
            Vec::new()
        } else {
            vec![(token.as_bytes().to_vec(), Caller::full())]
        };
        Self { tokens: Arc::new(tokens) }
    }

    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks an `Authorization` header value (`Bearer <token>`): who calls, or 401.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Caller, GatewayError> {
        if self.tokens.is_empty() {
            return Ok(Caller::full());
        }
        let presented = authorization
            .and_then(|value| {
                let (scheme, token) = value.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
            })
            .ok_or_else(GatewayError::unauthenticated)?;
        // Every token is compared, so the time taken does not say which one nearly matched.
        let mut found = None;
        for (token, caller) in self.tokens.iter() {
            if bool::from(presented.ct_eq(token)) && found.is_none() {
                found = Some(caller.clone());
            }
        }
        found.ok_or_else(GatewayError::unauthenticated)
    }
}

/// Constant-time equality for other shared secrets (the webhook secret).
pub fn secrets_match(presented: &[u8], expected: &[u8]) -> bool {
    bool::from(presented.ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer() {
        let auth = Auth::new("s3cret");
        assert_eq!(auth.check(Some(b"Bearer s3cret")).unwrap(), Caller::full());
        assert!(auth.check(Some(b"bearer s3cret")).is_ok());
        assert!(auth.check(Some(b"Bearer s3cre")).is_err());
        assert!(auth.check(Some(b"Basic s3cret")).is_err());
        assert!(auth.check(None).is_err());
        assert!(Auth::new("").check(None).is_ok());
    }

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
}
