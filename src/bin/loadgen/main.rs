//! `loadgen`: drives a running gateway over gRPC, SSE and REST and prints one JSON line per
//! measured point (its parameters, its results, and its counts checked against the gateway's
//! `/metrics`). See BENCHMARKS.md for the scenarios and how to run them pinned to cores.
//!
//! It starts a fresh gateway (and the bare `hello_baseline` where a scenario compares with
//! one) for every point, with the settings that point needs, unless `--addr` and `--pid` name
//! a gateway that is already running. Timings are reported, never asserted.
#![forbid(unsafe_code)]

mod client;
mod closed_loop;
mod fanout;
mod history;
mod idle;
mod postgres;
mod rest;
mod sessions;
mod stats;
mod subscriber;
mod target;
mod unary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generator for agent-gateway: one JSON line per measured point on stdout.
#[derive(Parser, Debug)]
#[command(about)]
struct Cli {
    /// The gateway binary to start (default: `agent-gateway` beside this binary).
    #[arg(long, global = true)]
    gateway_bin: Option<PathBuf>,
    /// The baseline binary to start (default: `hello_baseline` beside this binary).
    #[arg(long, global = true)]
    baseline_bin: Option<PathBuf>,
    /// Use the gateway already listening here (with `--pid`) instead of starting one; it must
    /// run with `metrics.public=true` and the settings BENCHMARKS.md lists for the scenario.
    #[arg(long, global = true, requires = "pid")]
    addr: Option<String>,
    /// The pid of the gateway at `--addr`, for its CPU time and memory.
    #[arg(long, global = true, requires = "addr")]
    pid: Option<u32>,
    /// Pin the servers loadgen starts to these CPUs (`taskset -c`), e.g. `0`.
    #[arg(long, global = true)]
    server_cpus: Option<String>,
    /// More `--set key=value` settings for every gateway loadgen starts (after the
    /// scenario's own, so they win), e.g. `--set session.event_log=64`.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run every gateway loadgen starts on PostgreSQL: each gets a fresh database on this
    /// server (the URL's database is used to create them), dropped when it stops.
    #[arg(long, global = true, value_name = "postgres://USER:PASS@HOST:PORT/DB")]
    store_url: Option<String>,
    /// `RUST_LOG` of the gateways loadgen starts.
    #[arg(long, global = true, default_value = "info")]
    gateway_log: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// One session, N subscribers: events/s and gateway CPU-s per million events delivered.
    Fanout(fanout::Args),
    /// S sessions started at once, one subscriber each: added latency per token.
    Sessions(sessions::Args),
    /// Many sessions with one short run each: memory per session before and after eviction.
    Idle(idle::Args),
    /// Sessions with long histories made in the store, then loaded: memory per session and
    /// load time against history length.
    History(history::Args),
    /// GetSession / ListSessions at 64 streams over 1 and 4 connections, vs bare tonic.
    Unary(unary::Args),
    /// GET /sessions/:key over 64 keep-alive connections, vs bare axum.
    Rest(rest::Args),
    /// Every scenario with its default parameters.
    All,
}

/// Prints one result line.
pub fn emit(line: &serde_json::Value) {
    println!("{line}");
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Raises the soft open-file limit to the hard one: a thousand subscribers are a thousand
/// sockets here, and as many in a gateway started here (children inherit the limit).
fn raise_open_files() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("loadgen: cannot raise the open-file limit: {e}");
            0
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let launch = target::Launch {
        gateway_bin: cli.gateway_bin.unwrap_or_else(|| sibling("agent-gateway")),
        baseline_bin: cli.baseline_bin.unwrap_or_else(|| sibling("hello_baseline")),
        attach: cli.addr.zip(cli.pid),
        cpus: cli.server_cpus,
        log: cli.gateway_log,
        extra: cli.set,
        store_url: cli.store_url,
    };
    match cli.scenario {
        Scenario::Fanout(args) => fanout::run(&launch, &args).await.map(drop),
        Scenario::Sessions(args) => sessions::run(&launch, &args).await.map(drop),
        Scenario::Idle(args) => idle::run(&launch, &args).await.map(drop),
        Scenario::History(args) => history::run(&launch, &args).await.map(drop),
        Scenario::Unary(args) => unary::run(&launch, &args).await.map(drop),
        Scenario::Rest(args) => rest::run(&launch, &args).await.map(drop),
        Scenario::All => {
            let parse = |name: &'static str| vec!["loadgen", name];
            let defaults = |name| Cli::parse_from(parse(name)).scenario;
            for scenario in ["fanout", "sessions", "idle", "history", "unary", "rest"] {
                match defaults(scenario) {
                    Scenario::Fanout(args) => fanout::run(&launch, &args).await.map(drop)?,
                    Scenario::Sessions(args) => sessions::run(&launch, &args).await.map(drop)?,
                    Scenario::Idle(args) => idle::run(&launch, &args).await.map(drop)?,
                    Scenario::History(args) => history::run(&launch, &args).await.map(drop)?,
                    Scenario::Unary(args) => unary::run(&launch, &args).await.map(drop)?,
                    Scenario::Rest(args) => rest::run(&launch, &args).await.map(drop)?,
                    Scenario::All => {}
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let limit = raise_open_files();
    if limit > 0 && limit < 4096 {
        eprintln!("loadgen: only {limit} open files allowed; 1,000 subscribers need more");
    }
    // One worker per CPU loadgen may use (`taskset` narrows it); the servers measured get
    // the other cores.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
