//! `AppState`: what every transport handler holds: the live config, the session manager, the
//! memory and admin APIs, the metrics, the auth check, and the shutdown signal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::auth::Auth;
use crate::config::{Config, Live};
use crate::error::GatewayError;
use crate::memory::Memory;
use crate::service::ChatService;
use crate::service::MemoryService;
use crate::service::admin::restore_live_config;
use crate::service::{AdminService, Channels};
use crate::session::SessionManager;
use crate::store::{PostgresStore, SqliteStore, Store};
use crate::telemetry::Metrics;

/// The database file under `data_dir`.
pub const STORE_FILE: &str = "gateway.db";

/// What every handler holds: one `Arc`, so that a handler's copy (axum clones the state for
/// every request) is one reference count, not one per service and metric family.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// The one live config, shared with the session manager: `config.get()` for the keys of
    /// [`crate::config::LIVE_KEYS`], `config.startup()` for every other (start-up-only) key.
    pub config: Arc<Live>,
    pub sessions: SessionManager,
    pub memory: MemoryService,
    /// Sending calls and slash commands, for every transport.
    pub chat: ChatService,
    pub admin: AdminService,
    pub metrics: Metrics,
    pub auth: Auth,
    /// TLS on the port, when `tls.cert` and `tls.key` are set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Cancelled when the gateway stops: every stream ends.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Opens the store (PostgreSQL at `store_url`, else SQLite in `data_dir`, created), builds
    /// the agent (providers, tools, workspace) and the session manager, which picks up the work
    /// a previous process left. The error says what could not start, naming the file,
    /// directory or database (never its password).
    pub async fn open(config: Config) -> Result<Self, String> {
        let live = Arc::new(Live::new(config));
        // What is built here is built once: every key read below is start-up only.
        let config = live.startup();
        let tls = match (config.tls.cert.as_str(), config.tls.key.as_str()) {
            ("", "") => None,
            (cert, key) => Some(crate::tls::acceptor(cert.as_ref(), key.as_ref())?),
        };
        let store: Arc<dyn Store> = if !config.store_url.is_empty() {
            Arc::new(
                PostgresStore::open_with_timeout(&config.store_url, config.store_timeout).await?,
            )
        } else if config.persist {
            let dir = &config.data_dir;
            if dir.exists() && !dir.is_dir() {
                return Err(format!("data_dir {}: exists and is not a directory", dir.display()));
            }
            std::fs::create_dir_all(dir).map_err(|e| format!("data_dir {}: {e}", dir.display()))?;
            Arc::new(SqliteStore::open(&dir.join(STORE_FILE))?)
        } else {
            Arc::new(SqliteStore::in_memory())
        };
        let memory = Memory::new(store.clone());
        // After the data dir exists, so the tools' confinement can resolve and forbid it.
        let agent =
            Arc::new(Agent::from_config(config, memory.clone()).map_err(|e| e.to_string())?);
        let sandbox = agent.sandbox_mode().as_str();
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new();
        let store_error = |e: GatewayError| format!("store {}: {}", store.describe(), e.message);
        // Before the sessions start, so resumed work already sees the patched limits.
        restore_live_config(&live, &*store).await.map_err(store_error)?;
        let sessions = SessionManager::open(
            live.clone(),
            agent,
            store.clone(),
            shutdown.clone(),
            metrics.clone(),
        )
        .await
        .map_err(store_error)?;
        let auth = Auth::from_config(config);
        let memory = MemoryService::new(memory, sessions.clone());
        let chat = ChatService::new(sessions.clone(), memory.clone());
        let admin = AdminService::new(
            live.clone(),
            store.clone(),
            sessions.clone(),
            metrics.clone(),
            Channels::default(),
            sandbox,
        );
        Ok(Self(Arc::new(Shared {
            config: live,
            sessions,
            memory,
            chat,
            admin,
            metrics,
            auth,
            tls,
            shutdown,
        })))
    }

    /// False once shutdown has begun (draining).
    pub fn ready(&self) -> bool {
        !self.sessions.draining()
    }
}
