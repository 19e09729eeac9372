//! `bash` runs in a kernel sandbox (issue 16, item 2), tried in each mode this machine supports
//! (landlock and bwrap; scripts/test.sh installs bubblewrap): the real gateway binary runs with
//! secrets in its environment, its config file and its data dir, and bash reaches none of them,
//! nor a file outside the workspace, while the workspace stays readable and writable. An
//! attempt is a tool error with the OS's message; the gateway carries on.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::process::Process;
use crate::common::*;

const TOKEN: &str = "tok-env-secret";

struct Jailed {
    gw: Process,
    ws: PathBuf,
    config: PathBuf,
    data: PathBuf,
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

/// The gateway with `tools = "all"` and the given sandbox mode; with `inside`, its data dir
/// and config file lie inside the workspace.
fn start(mode: &str, inside: bool) -> Jailed {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("hello.txt"), "hello from the workspace\n").unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "outside-secret\n").unwrap();
    let base = if inside { ws.clone() } else { dir.path().to_path_buf() };
    let (config, data) = (base.join("gateway.toml"), base.join(".gateway-data"));
    let settings = format!(
        "bearer_token = \"tok-file-secret\"\ntools = \"all\"\ntools_sandbox = \"{mode}\"\n\
         workspace = \"{}\"\n",
        ws.display()
    );
    std::fs::write(&config, settings).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "data-secret\n").unwrap();
    let gw = Process::start_with_env(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--set", &format!("data_dir={}", data.display())],
        &[("OPENAI_API_KEY", "sk-env-secret"), ("GATEWAY_AUTH_TOKEN", TOKEN)],
    );
    Jailed { gw, ws, config, data, outside, _dir: dir }
}

/// Runs `command` through the bash tool; `(isError, text)` of its result.
async fn bash(gw: &Process, args: Value) -> (bool, String) {
    let http = reqwest::Client::new();
    let text = format!("!tool bash {args}");
    let send = http.post(gw.url("/sessions/sb/messages")).bearer_auth(TOKEN);
    let (status, body) = read(send.json(&json!({ "text": text })).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let history = http.get(gw.url("/sessions/sb/history")).bearer_auth(TOKEN);
    let (_, history) = read(history.send().await.unwrap()).await;
    let messages = history["messages"].as_array().unwrap();
    let part = &messages.iter().rev().find(|m| m["role"] == "toolResult").unwrap()["parts"][0];
    (part["state"] == "error", text_of(&part["result"]["content"][0]["text"]))
}

async fn confines_bash(mode: &str, inside: bool) {
    let jail = start(mode, inside);
    let pid = jail.gw.pid();
    let bwrap = mode == "bwrap";
    let masked = inside && bwrap;
    let probes = [
        (format!("cat /proc/{pid}/environ"), "env-secret", true),
        (format!("tr '\\0' '\\n' < /proc/{pid}/environ"), "env-secret", true),
        ("cat /proc/$PPID/environ".to_string(), "env-secret", false),
        (format!("cat {}", jail.config.display()), "file-secret", !masked),
        (format!("cat {}/notes.txt", jail.data.display()), "data-secret", true),
        (format!("cat {}/gateway.db", jail.data.display()), "SQLite", true),
        (format!("ls {}", jail.data.display()), "gateway.db", !masked),
        (format!("cat {}", jail.outside.display()), "outside-secret", true),
        // bwrap shows the workspace's parents, with nothing but the workspace in them.
        (format!("ls {}", jail.outside.parent().unwrap().display()), "outside.txt", !bwrap),
    ];
    for (command, secret, refused) in probes {
        let (error, text) = bash(&jail.gw, json!({ "command": command })).await;
        assert!(!text.contains(secret), "{mode}: `{command}` shows {secret}: {text}");
        if refused {
            assert!(error, "{mode}: `{command}` is a tool error: {text}");
            assert!(
                text.contains("Permission denied") || text.contains("No such file or directory"),
                "{mode}: `{command}` fails with the OS's reason: {text}"
            );
        }
    }
    // Nor can it signal the gateway: landlock's signal scope (EPERM), or a PID namespace
    // without it (ESRCH).
    let (error, text) = bash(&jail.gw, json!({"command": format!("kill -STOP {pid}")})).await;
    assert!(error, "{mode}: {text}");
    assert!(text.contains("Operation not permitted") || text.contains("No such process"), "{text}");
    let command = "cat hello.txt && echo written > new.txt && cat new.txt \
                   && echo temp > \"$TMPDIR/t\" && cat \"$TMPDIR/t\"";
    let (error, text) = bash(&jail.gw, json!({ "command": command })).await;
    assert!(!error, "{mode}: the workspace and TMPDIR stay usable: {text}");
    assert_eq!(text, "hello from the workspace\nwritten\ntemp\n");
    assert_eq!(std::fs::read_to_string(jail.ws.join("new.txt")).unwrap(), "written\n");

    // A timeout takes the whole sandbox down, background children included.
    let marker = format!("sleep 600.{pid}");
    let command = format!("{marker} & echo started; wait");
    let (error, text) = bash(&jail.gw, json!({"command": command, "timeout": 1})).await;
    assert!(error && text.contains("started") && text.contains("timed out"), "{text}");
    until_gone(&marker).await;

    let http = reqwest::Client::new();
    let config = http.get(jail.gw.url("/config")).bearer_auth(TOKEN).send().await.unwrap();
    let (status, config) = read(config).await;
    assert_eq!(status, 200, "the gateway carries on");
    assert_eq!(
        (config["tools_sandbox"].clone(), config["tools_sandbox_active"].clone()),
        (json!(mode), json!(mode))
    );
}

#[tokio::test]
async fn landlock_keeps_bash_from_the_gateways_secrets() {
    confines_bash("landlock", false).await;
}

#[tokio::test]
async fn bwrap_keeps_bash_from_the_gateways_secrets() {
    confines_bash("bwrap", false).await;
}

#[tokio::test]
async fn bwrap_masks_the_data_dir_and_config_file_inside_the_workspace() {
    confines_bash("bwrap", true).await;
}

#[tokio::test]
async fn a_bwrap_sandbox_dies_with_the_gateway() {
    let jail = start("bwrap", false);
    let sleep = format!("sleep 600.{}", jail.gw.pid());
    let command = json!({"command": format!("{sleep} & wait")});
    let http = reqwest::Client::new();
    let send = http.post(jail.gw.url("/sessions/sb/messages")).bearer_auth(TOKEN);
    let _running =
        tokio::spawn(send.json(&json!({"text": format!("!tool bash {command}")})).send());
    within(async {
        while !running(&sleep) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    // SIGKILL: the gateway cleans nothing up; --die-with-parent takes the sandbox down.
    jail.gw.signal("KILL");
    until_gone(&sleep).await;
}

/// Runs the gateway until it exits (it must: these configurations cannot start).
async fn exit_of(dir: &Path, args: &[&str]) -> (bool, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-gateway"));
    command.args(["--port", "0"]).args(args).current_dir(dir).env_clear().kill_on_drop(true);
    let output = within(command.output()).await.unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn landlock_refuses_to_start_with_the_data_dir_inside_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--data-dir", "./data", "--set", "tools=all", "--set", "tools_sandbox=landlock"];
    let (ok, stderr) = exit_of(dir.path(), &args).await;
    assert!(!ok, "{stderr}");
    for needed in ["data_dir", "workspace", "bubblewrap", "tools_sandbox = \"none\""] {
        assert!(stderr.contains(needed), "the refusal names {needed}: {stderr}");
    }
    // Without bash no process is started, so the same layout is fine.
    let gw = Process::start(dir.path(), &["--set", "tools_sandbox=landlock"]);
    let (status, _) = read(reqwest::get(gw.url("/health")).await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bash_without_a_sandbox_is_an_explicit_choice_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Process::start(dir.path(), &["--set", "tools=all", "--set", "tools_sandbox=none"]);
    let warning = gw.startup.iter().find(|line| line.contains("WARN"));
    let warning = warning.expect("a warning at start");
    assert!(warning.contains("bash") && warning.contains("sandbox"), "{warning}");
    let (_, config) = read(reqwest::get(gw.url("/config")).await.unwrap()).await;
    assert_eq!(config["tools_sandbox_active"], "none");
}
