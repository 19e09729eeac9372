//! `agent-gateway`: CLI → config → tracing → bind → `server::run`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use agent_gateway::app::AppState;
use agent_gateway::config::{Config, Sources};
use agent_gateway::{server, telemetry};
use clap::Parser;
use tracing::{info, warn};

// The `jemalloc` feature (for the allocator statistics in `/metrics`); the default build keeps
// the system allocator.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hosts long-lived AI agent sessions over gRPC, grpc-web, REST, SSE and webhooks on one port.
///
/// Settings come from defaults < the TOML file (--config) < the environment < the command line;
/// every key is in the README's configuration table.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file (unknown keys are rejected).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Address to bind (config `bind`).
    #[arg(long, global = true)]
    bind: Option<String>,
    /// Port to listen on; 0 picks a free one (config `port`).
    #[arg(long, short, global = true)]
    port: Option<u16>,
    /// Data directory (config `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Any config key, e.g. `--set session.idle=10m` (repeatable; wins over everything).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    set: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Print the effective configuration as TOML, after every layer, secrets redacted.
    Config,
    /// Exit 0 when the gateway this config describes answers `GET /health` with 200 (for a
    /// container's HEALTHCHECK; needs no curl).
    Healthcheck,
}

/// `--help`'s closing text: the environment variables and the keys they set.
fn env_help() -> String {
    let mut text = String::from("Environment variables (each sets a config key):\n");
    for (name, key) in agent_gateway::config::ENV_KEYS {
        text.push_str(&format!("  {name:<28} {key}\n"));
    }
    text.push_str("\nEvery key, its default and its meaning: README.md, \"Configuration\".");
    text
}

fn sources(cli: &Cli) -> Result<Sources, String> {
    let mut overrides = Vec::new();
    if let Some(bind) = &cli.bind {
        overrides.push(("bind".to_string(), bind.clone()));
    }
    if let Some(port) = cli.port {
        overrides.push(("port".to_string(), port.to_string()));
    }
    if let Some(dir) = &cli.data_dir {
        overrides.push(("data_dir".to_string(), dir.display().to_string()));
    }
    for setting in &cli.set {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("--set {setting:?}: expected KEY=VALUE"))?;
        overrides.push((key.trim().to_string(), value.to_string()));
    }
    Ok(Sources { file: cli.config.clone(), env: std::env::vars().collect(), overrides })
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().after_help(env_help()).get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Some(Command::Config) => return print_config(&cli),
        Some(Command::Healthcheck) => return healthcheck(&cli),
        Some(Command::Serve) | None => {}
    }
    telemetry::init(true);
    // Every subscriber is a socket: the usual soft limit of 1024 would cap them.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // Printed once, on stderr (the log goes there too, so it is not logged a second time).
    let config = match load(&cli) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let addr = format!("{}:{}", config.bind, config.port);
    let model = format!("{}/{}", config.provider, config.model_id());
    let base_url = if config.base_url.is_empty() {
        "the provider's own".to_string()
    } else {
        config.base_url.clone()
    };
    let auth = !config.bearer_token.is_empty() || !config.tokens.is_empty();
    let scheme = if config.tls.cert.is_empty() { "http" } else { "https" };
    // The port first: a start that cannot listen must not have created the data dir or the
    // store. Connections wait in the backlog until the server accepts them.
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("agent-gateway: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let state = match AppState::open(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("agent-gateway: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %local,
        scheme,
        store = %state.admin.store(),
        model,
        auth = if auth { "on" } else { "off" },
        tools_sandbox = state.admin.sandbox(),
        "agent-gateway starting"
    );
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    if !auth && !loopback {
        warn!(
            addr = %local,
            "listening beyond loopback with no token: anyone who reaches this port can use every \
             API; set GATEWAY_AUTH_TOKEN (or [[tokens]]), or bind 127.0.0.1"
        );
    }
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

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    sources(cli).and_then(|s| Config::load(&s).map_err(|e| e.to_string())).map_err(|e| {
        eprintln!("agent-gateway: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

/// `agent-gateway config`.
fn print_config(cli: &Cli) -> ExitCode {
    let config = match load(cli) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match config.redacted_toml() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agent-gateway: {e}");
            ExitCode::from(1)
        }
    }
}

/// `agent-gateway healthcheck`: a plain HTTP/1.1 `GET /health` to the configured port (on
/// loopback when bound to every address). With TLS configured, a TCP connect is all it checks.
fn healthcheck(cli: &Cli) -> ExitCode {
    use std::io::{Read, Write};
    let config = match load(cli) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let host = match config.bind.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    let addr = format!(
        "{}:{}",
        if host.contains(':') { format!("[{host}]") } else { host.into() },
        config.port
    );
    let timeout = std::time::Duration::from_secs(5);
    let answer = (|| -> std::io::Result<bool> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        if !config.tls.cert.is_empty() {
            return Ok(true);
        }
        stream.set_read_timeout(Some(timeout))?;
        write!(stream, "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    })();
    match answer {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("agent-gateway: {addr} answered /health, not with 200");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("agent-gateway: {addr}: {e}");
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
