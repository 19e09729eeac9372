//! The `agent-gateway` binary itself: starts with working defaults, serves `/health`, exits 0
//! on SIGTERM, and refuses a bad config with a message naming the problem.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn starts_with_defaults_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent-gateway"))
        .args(["--port", "0"])
        .current_dir(dir.path())
        .env_clear()
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(crate::common::WAIT).expect("the gateway logs its address");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let health: serde_json::Value =
        reqwest::get(format!("http://{addr}/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health, serde_json::json!({"ok": true, "ready": true}));
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/sessions/main/messages"))
        .json(&serde_json::json!({"text": "echo me"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["response"], "echo me", "the built-in echo model answers by default");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_config_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, "port = 0\n[session]\nmax_queeu = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_agent-gateway"))
        .arg("--config")
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_queeu"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_agent-gateway"))
        .args(["--port", "0", "--set", "provider=bogus"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown provider \"bogus\""));
}

fn gateway_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agent-gateway")).args(args).env_clear().output().unwrap()
}

#[test]
fn config_prints_every_layer_as_toml_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, "bearer_token = \"file-token-123\"\n[session]\nmax_queue = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_agent-gateway"))
        .args(["config", "--config", file.to_str().unwrap(), "--set", "session.idle=5m"])
        .env_clear()
        .env("OPENAI_API_KEY", "sk-env-secret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("file-token-123") && !text.contains("sk-env-secret"), "{text}");
    let printed: toml::Table = text.parse().unwrap();
    assert_eq!(printed["bearer_token"].as_str(), Some("<redacted>"));
    assert_eq!(printed["openai_api_key"].as_str(), Some("<redacted>"));
    assert_eq!(printed["anthropic_api_key"].as_str(), Some(""), "unset secrets stay empty");
    assert_eq!(printed["session"]["max_queue"].as_integer(), Some(3), "from the file");
    assert_eq!(printed["session"]["idle"].as_str(), Some("5m"), "from the command line");

    let bad = gateway_command(&["config", "--set", "session.idle=ten"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn help_lists_the_environment_variables() {
    let output = gateway_command(&["--help"]);
    let text = String::from_utf8(output.stdout).unwrap();
    for name in ["GATEWAY_AUTH_TOKEN", "GATEWAY_PORT", "OPENAI_API_KEY", "CWD"] {
        assert!(text.contains(name), "{name} in --help: {text}");
    }
    assert!(text.contains("README.md"));
}

#[tokio::test]
async fn healthcheck_answers_for_a_running_gateway_only() {
    let dir = tempfile::tempdir().unwrap();
    let gw = crate::common::process::Process::start(dir.path(), &[]);
    let port = gw.addr.rsplit(':').next().unwrap().to_string();
    let up = gateway_command(&["healthcheck", "--port", &port]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    drop(gw);
    let down = gateway_command(&["healthcheck", "--port", &port]);
    assert_eq!(down.status.code(), Some(1), "nothing listens there any more");
}

#[test]
fn the_start_up_log_says_what_runs_and_warns_when_open_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let open = crate::common::process::Process::start(dir.path(), &["--bind", "0.0.0.0"]);
    let start = open.startup.iter().find(|l| l.contains("agent-gateway starting"));
    let start = start.unwrap_or_else(|| panic!("a start line: {:?}", open.startup));
    let version = format!("version={}", env!("CARGO_PKG_VERSION"));
    for field in [version.as_str(), "model=echo/echo", "auth=off", "sandbox=", "store="] {
        assert!(start.contains(field), "{field} in {start}");
    }
    assert!(start.contains(&dir.path().join("data").display().to_string()), "{start}");
    let warning = open.startup.iter().find(|l| l.contains("WARN") && l.contains("no token"));
    assert!(warning.is_some(), "a warning for 0.0.0.0 without a token: {:?}", open.startup);
    drop(open);

    let token = ["--bind", "0.0.0.0", "--set", "bearer_token=t0ken"];
    let closed = crate::common::process::Process::start(dir.path(), &token);
    let start = closed.startup.iter().find(|l| l.contains("agent-gateway starting")).unwrap();
    assert!(start.contains("auth=on"), "{start}");
    assert!(!closed.startup.iter().any(|l| l.contains("no token")), "{:?}", closed.startup);
}

#[test]
fn a_taken_port_creates_nothing_and_says_so_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let setting = format!("port={port}");
    let output = crate::common::process::Process::run_to_exit(dir.path(), &["--set", &setting]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("cannot listen").count(), 1, "{stderr}");
    assert!(!dir.path().join("data").exists(), "the data dir waits for the port: {stderr}");

    let bad = gateway_command(&["--port", "0", "--set", "session.max_queue=many"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.matches("invalid configuration").count(), 1, "printed once: {stderr}");
}
