//! `agent-gateway`: CLI → config → tracing → bind → `server::run`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use agent_gateway::app::AppState;
use agent_gateway::config::{Config, Sources};
use agent_gateway::{server, telemetry};
use clap::Parser;
use tracing::{error, info};

// The `jemalloc` feature (for the allocator statistics in `/metrics`); the default build keeps
// the system allocator.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hosts long-lived AI agent sessions over gRPC, grpc-web, REST, SSE and webhooks on one port.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// TOML config file (unknown keys are rejected).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to bind (config `bind`).
    #[arg(long)]
    bind: Option<String>,
    /// Port to listen on; 0 picks a free one (config `port`).
    #[arg(long, short)]
    port: Option<u16>,
    /// Data directory (config `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Any config key, e.g. `--set session.idle=10m` (repeatable; wins over everything).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn sources(cli: Cli) -> Result<Sources, String> {
    let mut overrides = Vec::new();
    if let Some(bind) = cli.bind {
        overrides.push(("bind".to_string(), bind));
    }
    if let Some(port) = cli.port {
        overrides.push(("port".to_string(), port.to_string()));
    }
    if let Some(dir) = cli.data_dir {
        overrides.push(("data_dir".to_string(), dir.display().to_string()));
    }
    for setting in cli.set {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("--set {setting:?}: expected KEY=VALUE"))?;
        overrides.push((key.trim().to_string(), value.to_string()));
    }
    Ok(Sources { file: cli.config, env: std::env::vars().collect(), overrides })
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init(true);
    // Every subscriber is a socket: the usual soft limit of 1024 would cap them.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let config =
        match sources(Cli::parse()).and_then(|s| Config::load(&s).map_err(|e| e.to_string())) {
            Ok(config) => config,
            Err(e) => {
                error!("invalid configuration: {e}");
                eprintln!("agent-gateway: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        };
    let addr = format!("{}:{}", config.bind, config.port);
    let model = format!("{}/{}", config.provider, config.model_id());
    let base_url = if config.base_url.is_empty() {
        "the provider's own".to_string()
    } else {
        config.base_url.clone()
    };
    let state = match AppState::open(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("agent-gateway: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("agent-gateway: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    if model == "echo/echo" {
        info!(
            model,
            "using the built-in echo model (set GATEWAY_PROVIDER=openai|anthropic, GATEWAY_MODEL \
             and OPENAI_API_KEY / ANTHROPIC_API_KEY, or GATEWAY_BASE_URL for a local server)"
        );
    } else {
        info!(model, base_url = %base_url, "default model");
    }
    match server::run(listener, state, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent-gateway: server error: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
