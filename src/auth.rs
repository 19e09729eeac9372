//! The token table (GATEWAY.md §10): which bearer token is which [`Caller`], checked the same
//! way for every transport (HTTP middleware, the gRPC guard, socket.io, the webhook).
//!
//! `bearer_token` has every scope; `[[tokens]]` entries have names and the scopes they list.
//! With no token configured the gateway is open and every caller has every scope. Tokens are
//! compared in constant time and never logged: a caller is known by its token's name only.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::domain::{Caller, Scope};
use crate::error::GatewayError;

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
            let mut caller = Caller::new(&token.name, &scopes, token.own_sessions_only);
            if token.requests_per_minute > 0 || token.max_concurrent_runs > 0 {
                caller = caller.with_limits(token.requests_per_minute, token.max_concurrent_runs);
            }
            tokens.push((token.token.as_bytes().to_vec(), caller));
        }
        Self { tokens: Arc::new(tokens) }
    }

    /// One token with every scope; an empty token disables auth.
    #[cfg(test)]
    fn new(token: &str) -> Self {
        let tokens = if token.is_empty() {
            Vec::new()
        } else {
            vec![(token.as_bytes().to_vec(), Caller::full())]
        };
        Self { tokens: Arc::new(tokens) }
    }

    /// Checks an `Authorization` header value (`Bearer <token>`): who calls, or 401; 429 when
    /// the token is over its requests per minute.
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
        let caller = found.ok_or_else(GatewayError::unauthenticated)?;
        caller.take_request()?;
        Ok(caller)
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
}
