//! Who may call what (GATEWAY.md §10), checked the same way for every transport (HTTP
//! middleware, the gRPC guard, socket.io, the webhook): the token table, which bearer token is
//! which [`Caller`], and the one operation -> scope table, [`Operation`].
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

/// What a call asks to do, as far as access goes: one row of the README's "Tokens and scopes"
/// table. Every gRPC method (by [`GRPC_METHODS`]), HTTP route group, socket.io connection and
/// webhook call is one of these, and [`Operation::scope`] says what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Talking to the agent: sending, steering, aborting, cancelling a queued message, slash
    /// commands, following a run's stream. The HTTP chat routes, socket.io, the webhook (when
    /// no webhook secret replaces the token), `Chat/*`, `Sessions/AbortSession`.
    Chat,
    /// Reading and managing sessions (list, create, get, rename, delete, reset, history, queue,
    /// state, events, model, thinking, reload) and listing the models.
    Sessions,
    /// Long-term memory: `/memory/*`, `Memory/*`.
    Memory,
    /// Operating the gateway: `/config`, `/channels/status`, `/logs`, `/metrics`, `Admin/*`.
    Admin,
    /// Asking whether the gateway takes work: `GET /ready`, `Admin/Ready`.
    Ready,
}

impl Operation {
    /// The scope the operation needs; `None`: any valid token will do.
    pub const fn scope(self) -> Option<Scope> {
        match self {
            Operation::Chat => Some(Scope::Chat),
            Operation::Sessions => Some(Scope::Sessions),
            Operation::Memory => Some(Scope::Memory),
            Operation::Admin => Some(Scope::Admin),
            Operation::Ready => None,
        }
    }

    /// 403 `permission_denied` unless `caller` may do this.
    pub fn authorize(self, caller: &Caller) -> Result<(), GatewayError> {
        match self.scope() {
            Some(scope) => caller.require(scope),
            None => Ok(()),
        }
    }

    /// The operation of a gRPC method, by its path (`/agentgateway.v1.Chat/SendMessage`). A
    /// method that is not in [`GRPC_METHODS`] is [`Operation::Admin`]: refused rather than
    /// guessed (tonic then answers UNIMPLEMENTED to those allowed it).
    pub fn of_grpc(path: &str) -> Operation {
        let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
            return Operation::Admin;
        };
        GRPC_METHODS
            .iter()
            .find(|(s, _, methods)| *s == service && methods.contains(&method))
            .map_or(Operation::Admin, |(_, operation, _)| *operation)
    }
}

/// Every method of our gRPC services, by service, with its operation. A test holds it to
/// `proto/agentgateway/v1/*.proto`: an RPC added there without a row here fails it.
pub const GRPC_METHODS: &[(&str, Operation, &[&str])] = &[
    (
        "agentgateway.v1.Chat",
        Operation::Chat,
        &["SendMessage", "StreamChat", "Steer", "CancelQueued", "ExecuteCommand"],
    ),
    ("agentgateway.v1.Sessions", Operation::Chat, &["AbortSession"]),
    (
        "agentgateway.v1.Sessions",
        Operation::Sessions,
        &[
            "ListSessions",
            "GetSession",
            "CreateSession",
            "DeleteSession",
            "RenameSession",
            "ResetSession",
            "ClearQueue",
            "GetHistory",
            "GetState",
            "ListQueued",
            "SetModel",
            "SetThinkingLevel",
            "ReloadSession",
            "Subscribe",
        ],
    ),
    ("agentgateway.v1.Admin", Operation::Sessions, &["ListModels"]),
    (
        "agentgateway.v1.Memory",
        Operation::Memory,
        &["GetStatus", "ListCore", "Search", "Remember", "Forget", "Rebuild"],
    ),
    (
        "agentgateway.v1.Admin",
        Operation::Admin,
        &["GetConfig", "PatchConfig", "ListChannels", "GetLogs", "TailLogs"],
    ),
    ("agentgateway.v1.Admin", Operation::Ready, &["Ready"]),
];

/// The caller a valid webhook secret makes: the adapter that knows it, which may post to any
/// session as a chat caller.
pub fn webhook_caller() -> Caller {
    Caller::new("webhook", Operation::Chat.scope().as_slice(), false)
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

    fn scope(path: &str) -> Option<Scope> {
        Operation::of_grpc(path).scope()
    }

    #[test]
    fn scopes_by_method() {
        assert_eq!(scope("/agentgateway.v1.Admin/Ready"), None);
        assert_eq!(scope("/agentgateway.v1.Admin/GetConfig"), Some(Scope::Admin));
        assert_eq!(scope("/agentgateway.v1.Admin/ListModels"), Some(Scope::Sessions));
        assert_eq!(scope("/agentgateway.v1.Sessions/GetSession"), Some(Scope::Sessions));
        assert_eq!(scope("/agentgateway.v1.Sessions/AbortSession"), Some(Scope::Chat));
        assert_eq!(scope("/agentgateway.v1.Chat/StreamChat"), Some(Scope::Chat));
        assert_eq!(scope("/agentgateway.v1.Memory/Search"), Some(Scope::Memory));
        assert_eq!(scope("/other.Service/Method"), Some(Scope::Admin));
        assert_eq!(scope("/agentgateway.v1.Chat/NoSuchMethod"), Some(Scope::Admin));
        assert_eq!(scope("nonsense"), Some(Scope::Admin));
    }

    /// Every RPC of `proto/agentgateway/v1/*.proto` has exactly one row in [`GRPC_METHODS`], and
    /// every row names an RPC that exists: a new RPC without a scope fails here.
    #[test]
    fn every_rpc_has_one_operation() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut rpcs = Vec::new();
        for file in set.file.iter().filter(|f| f.package() == "agentgateway.v1") {
            for service in &file.service {
                for method in &service.method {
                    rpcs.push(format!("agentgateway.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        assert!(rpcs.len() > 30, "{rpcs:?}");
        let mut rows: Vec<String> = GRPC_METHODS
            .iter()
            .flat_map(|(service, _, methods)| methods.iter().map(move |m| format!("{service}/{m}")))
            .collect();
        for rpc in &rpcs {
            let found = rows.iter().filter(|row| *row == rpc).count();
            assert_eq!(found, 1, "{rpc} needs exactly one row in auth::GRPC_METHODS, has {found}");
        }
        rows.retain(|row| !rpcs.contains(row));
        assert!(rows.is_empty(), "rows for RPCs the protos do not have: {rows:?}");
    }

    /// The rows agree with the README's table ("Tokens and scopes", the gRPC column).
    #[test]
    fn the_readme_table_says_the_same() {
        let readme = include_str!("../README.md");
        let row = |first: &str| {
            readme
                .lines()
                .find(|line| line.starts_with(&format!("| {first} |")))
                .unwrap_or_else(|| panic!("README scope table misses the {first} row"))
                .rsplit('|')
                .nth(1)
                .unwrap()
                .to_string()
        };
        for (operation, first) in [
            (Operation::Chat, "`chat`"),
            (Operation::Sessions, "`sessions`"),
            (Operation::Memory, "`memory`"),
            (Operation::Admin, "`admin`"),
            (Operation::Ready, "any valid token"),
        ] {
            let grpc = row(first);
            for (service, _, methods) in GRPC_METHODS.iter().filter(|r| r.1 == operation) {
                let short = service.trim_start_matches("agentgateway.v1.");
                let named = methods.iter().all(|m| grpc.contains(&format!("{short}/{m}")));
                assert!(
                    named || grpc.contains(&format!("{short}/*")),
                    "{first}: {short} {methods:?} not in {grpc:?}"
                );
            }
        }
    }

    #[test]
    fn operations_need_their_scope() {
        let chat = Caller::new("bot", &[Scope::Chat], false);
        assert!(Operation::Chat.authorize(&chat).is_ok());
        assert!(Operation::Ready.authorize(&chat).is_ok());
        let denied = Operation::Sessions.authorize(&chat).unwrap_err();
        assert_eq!(denied.message, "This token lacks the sessions scope");
        assert!(Operation::Chat.authorize(&webhook_caller()).is_ok());
        assert!(Operation::Memory.authorize(&webhook_caller()).is_err());
    }
}
