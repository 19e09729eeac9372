//! Bearer-token checks shared by both transports (HTTP middleware, gRPC interceptor).
//!
//! Tokens are compared in constant time and never logged.

use subtle::ConstantTimeEq;

use crate::error::GatewayError;

#[derive(Clone, Debug, Default)]
pub struct Auth {
    token: Option<Vec<u8>>,
}

impl Auth {
    /// An empty token disables auth.
    pub fn new(token: &str) -> Self {
        Self { token: (!token.is_empty()).then(|| token.as_bytes().to_vec()) }
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), GatewayError> {
        let Some(expected) = &self.token else { return Ok(()) };
        let presented = authorization
            .and_then(|value| {
                let (scheme, token) = value.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
            })
            .ok_or_else(GatewayError::unauthenticated)?;
        if bool::from(presented.ct_eq(expected)) {
            Ok(())
        } else {
            Err(GatewayError::unauthenticated())
        }
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
        assert!(auth.check(Some(b"Bearer s3cret")).is_ok());
        assert!(auth.check(Some(b"bearer s3cret")).is_ok());
        assert!(auth.check(Some(b"Bearer s3cre")).is_err());
        assert!(auth.check(Some(b"Basic s3cret")).is_err());
        assert!(auth.check(None).is_err());
        assert!(Auth::new("").check(None).is_ok());
    }
}
