//! `AppState`: what every transport handler holds: the config, the session manager, the auth
//! check, and the shutdown signal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::auth::Auth;
use crate::config::Config;
use crate::session::SessionManager;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub sessions: SessionManager,
    pub auth: Auth,
    /// Cancelled when the gateway shuts down: every stream ends.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Builds the agent (providers, tools, workspace) and the session manager.
    pub fn new(config: Config) -> std::io::Result<Self> {
        let config = Arc::new(config);
        let agent = Arc::new(Agent::from_config(&config)?);
        let shutdown = CancellationToken::new();
        let sessions = SessionManager::new(config.clone(), agent, shutdown.clone());
        let auth = Auth::new(&config.bearer_token);
        Ok(Self { config, sessions, auth, shutdown })
    }

    /// False once shutdown has begun.
    pub fn ready(&self) -> bool {
        !self.shutdown.is_cancelled()
    }
}
