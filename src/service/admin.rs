//! The admin domain both transports call (`/config`, `/channels/status`, `/logs`, `/metrics`
//! and the `Admin` gRPC service): the public config with every secret removed, live config
//! patches (checked and held by [`Live`], stored here), the channels seen (webhook routes,
//! socket.io clients), the log ring and metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::config::{Config, ConfigError, Live};
use crate::domain::now_ms;
use crate::error::{GatewayError, Result};
use crate::session::SessionManager;
use crate::store::{Op, Store};
use crate::telemetry::{self, Metrics};

/// `{id, name, connected, lastActiveAt?, error?}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub id: String,
    pub name: String,
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The channels the gateway has seen since it started.
#[derive(Clone, Default)]
pub struct Channels {
    seen: Arc<Mutex<BTreeMap<String, ChannelStatus>>>,
}

impl Channels {
    /// A call on a webhook route, and the error it was refused with, if any.
    pub fn webhook(&self, base_path: &str, route: &str, error: Option<String>) {
        let id = format!("webhook:{route}");
        let status = ChannelStatus {
            id: id.clone(),
            name: format!("webhook {base_path}/{route}"),
            connected: true,
            last_active_at: Some(now_ms()),
            error,
        };
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(id, status);
    }

    /// A connected client of a long-lived channel (socket.io); `None` when it left.
    pub fn client(&self, id: &str, status: Option<ChannelStatus>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match status {
            Some(status) => seen.insert(id.to_string(), status),
            None => seen.remove(id),
        };
    }

    pub fn list(&self) -> Vec<ChannelStatus> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

/// Re-applies the live patches a previous process stored, before the sessions start. One that
/// no longer applies (the config file changed under it) is logged and left out.
pub async fn restore_live_config(config: &Live, store: &dyn Store) -> Result<()> {
    let Some(stored) = store.live_config().await? else { return Ok(()) };
    match config.restore(&stored).await {
        Ok(keys) => {
            info!(keys = %keys.join(","), "applying the live config patches stored earlier")
        }
        Err(e) => warn!(error = %e, "ignoring the stored live config patches"),
    }
    Ok(())
}

/// The config as JSON with every secret removed (the keys of
/// [`crate::config::SECRET_KEYS`]): tokens (the values, not their names and scopes), API keys,
/// the webhook secret.
pub fn public_config(config: &Config) -> Value {
    config.public_json()
}

#[derive(Clone)]
pub struct AdminService {
    config: Arc<Live>,
    /// Where live patches are kept, so they outlive restarts.
    store: Arc<dyn Store>,
    sessions: SessionManager,
    metrics: Metrics,
    pub channels: Channels,
    /// The sandbox mode resolved at start from `tools_sandbox`.
    sandbox: &'static str,
}

impl AdminService {
    pub fn new(
        config: Arc<Live>,
        store: Arc<dyn Store>,
        sessions: SessionManager,
        metrics: Metrics,
        channels: Channels,
        sandbox: &'static str,
    ) -> Self {
        Self { config, store, sessions, metrics, channels, sandbox }
    }

    /// Where sessions are kept (the SQLite file, `memory`, or the PostgreSQL URL without its
    /// password), for the start-up log.
    pub fn store(&self) -> String {
        self.store.describe()
    }

    /// The sandbox mode resolved at start, for the start-up log.
    pub fn sandbox(&self) -> &'static str {
        self.sandbox
    }

    /// The public config now, live patches applied.
    pub fn config(&self) -> Value {
        self.with_active(public_config(&self.config.get()))
    }

    /// Applies a patch of live keys (see [`crate::config::LIVE_KEYS`]) once it is stored: live
    /// patches outlive restarts, layered over the file, the environment and the command line.
    /// The public config after it.
    pub async fn patch_config(&self, patch: &Value) -> Result<Value> {
        let invalid = |e: ConfigError| GatewayError::invalid(e.to_string());
        let patching = self.config.begin(patch).await.map_err(invalid)?;
        self.store.write(vec![Op::PutLiveConfig(patching.stored())]).wait().await?;
        let config = patching.apply();
        info!("config patched");
        Ok(self.with_active(public_config(&config)))
    }

    /// Adds what start-up resolved: `tools_sandbox_active` (`auto` made concrete).
    fn with_active(&self, mut config: Value) -> Value {
        if let Value::Object(map) = &mut config {
            map.insert("tools_sandbox_active".into(), Value::from(self.sandbox));
        }
        config
    }

    pub fn channels(&self) -> Vec<ChannelStatus> {
        self.channels.list()
    }

    /// The newest log lines (default 200, at most the ring's 1000).
    pub fn logs(&self, limit: Option<usize>) -> Vec<String> {
        telemetry::ring().recent(limit.unwrap_or(telemetry::DEFAULT_LOG_LINES).max(1))
    }

    /// The Prometheus text, gauges read now.
    pub async fn metrics(&self) -> Result<String> {
        self.sessions.observe().await?;
        Ok(self.metrics.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed() {
        let mut config = Config {
            bearer_token: "tok-1".into(),
            openai_api_key: "sk-2".into(),
            ..Config::default()
        };
        config.webhook.secret = "hook-3".into();
        config.tokens.push(crate::config::TokenConfig {
            name: "bot".into(),
            token: "tok-4".into(),
            scopes: vec!["chat".into()],
            own_sessions_only: false,
            requests_per_minute: 0,
            max_concurrent_runs: 0,
        });
        let text = public_config(&config).to_string();
        for secret in ["tok-1", "sk-2", "hook-3", "tok-4"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("\"bot\"") && text.contains("max_queue"));
    }
}
