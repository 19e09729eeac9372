//! The gateway as a child process, for what only a real process shows: signals, crashes,
//! exit codes, restarts over the same data dir.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;

use agent_gateway::proto::chat_client::ChatClient;
use serde_json::Value;
use tonic::transport::Channel;

use super::WAIT;

pub struct Process {
    child: Option<Child>,
    pub addr: String,
    /// What it logged until it listened, the start-up line (the first naming the address)
    /// last.
    pub startup: Vec<String>,
    lines: mpsc::Receiver<String>,
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-gateway"));
    command
        .args(["--port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "info");
    command
}

impl Process {
    /// Starts the gateway with `dir/data` as its data dir and waits until it listens.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        Self::start_with_env(dir, args, &[])
    }

    /// Like [`start`](Self::start), with these environment variables set.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = command(dir, args);
        command.envs(env.iter().copied());
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut process =
            Self { child: Some(child), addr: String::new(), startup: Vec::new(), lines };
        loop {
            let line = process.wait_for_line("");
            if let Some(rest) = line.split("addr=").nth(1) {
                process.addr = rest.split_whitespace().next().unwrap().to_string();
                process.startup.push(line);
                return process;
            }
            process.startup.push(line);
        }
    }

    /// Runs the gateway to its exit (for start-up failures).
    pub fn run_to_exit(dir: &Path, args: &[&str]) -> Output {
        command(dir, args).output().unwrap()
    }

    /// Reads the log until a line containing `needle`, and returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("the gateway never logged {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The lines logged from now until one containing `needle` (included).
    pub fn lines_until(&self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.wait_for_line("");
            let done = line.contains(needle);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn chat(&self) -> ChatClient<Channel> {
        let channel = Channel::from_shared(self.url("")).unwrap().connect().await.unwrap();
        ChatClient::new(channel)
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
        assert!(status.success());
    }

    /// SIGKILL at once (no `kill` process in between), and waits until the process is gone.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the gateway runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the process to exit.
    pub async fn exit(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let wait = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(WAIT, wait).await.expect("the gateway exits").unwrap().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The whole history of `key`, read over REST.
pub async fn history(gw: &Process, key: &str) -> Vec<Value> {
    let url = gw.url(&format!("/sessions/{key}/history"));
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body["messages"].as_array().unwrap_or_else(|| panic!("history of {key}: {body}")).clone()
}
