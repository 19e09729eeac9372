//! A full disk loses nothing accepted (issue 16, item 6): the data dir is a small tmpfs, async
//! webhook messages (202) go to five sessions until the store refuses them, the gateway stops,
//! the disk gets room, and after the restart every message that was answered 202 has run.
//!
//! The tmpfs needs root (CI runs as root); `sudo -n` is tried otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::process::Process;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

fn privileged(args: &[&str]) -> bool {
    let as_root = is_root();
    let mut command = if as_root { Command::new(args[0]) } else { Command::new("sudo") };
    if !as_root {
        command.arg("-n").arg(args[0]);
    }
    command.args(&args[1..]).status().is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let options = format!("size={size}");
        let target = path.to_str().unwrap();
        assert!(
            privileged(&["mount", "-t", "tmpfs", "-o", &options, "tmpfs", target]),
            "this test mounts a small tmpfs: run it as root (CI does) or with passwordless sudo"
        );
        Self(path.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let options = format!("remount,size={size}");
        assert!(privileged(&["mount", "-o", &options, self.0.to_str().unwrap()]));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        privileged(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

#[tokio::test]
async fn every_message_accepted_on_a_full_disk_runs_after_the_restart() {
    let client = reqwest::Client::new();
    let filler = "lorem ipsum dolor sit amet ".repeat(8);
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let disk = Tmpfs::mount(&dir.path().join("data"), "5m");
        let gw = Process::start(dir.path(), &[]);
        let mut accepted: Vec<(String, String)> = Vec::new();
        let mut refused = 0;
        let mut sent = 0;
        while refused < 20 {
            assert!(sent < 20_000, "round {round}: the disk never filled");
            let key = format!("s{}", sent % 5);
            let body =
                json!({"text": format!("{sent} {filler}"), "sessionKey": key, "async": true});
            let response = client.post(gw.url("/webhooks/full")).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            match status {
                202 => accepted.push((key, answer["messageId"].as_str().unwrap().to_string())),
                503 => refused += 1,
                other => panic!("round {round}: {other} {answer}"),
            }
            sent += 1;
        }
        assert!(accepted.len() > 100, "round {round}: the disk filled after {sent} messages");
        gw.signal("TERM");
        gw.exit().await;
        disk.grow("64m");

        let gw = Process::start(dir.path(), &[]);
        for key in (0..5).map(|i| format!("s{i}")) {
            // Answers once everything queued before it on the session has run.
            let probe = client
                .post(gw.url(&format!("/sessions/{key}/messages")))
                .json(&json!({"text": "probe"}))
                .send()
                .await
                .unwrap();
            assert_eq!(probe.status(), 200, "round {round}: {}", probe.text().await.unwrap());
            let history: Value = client
                .get(gw.url(&format!("/sessions/{key}/history")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ids: Vec<&str> = history["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["id"].as_str())
                .collect();
            for (_, id) in accepted.iter().filter(|(k, _)| *k == key) {
                assert!(
                    ids.contains(&id.as_str()),
                    "round {round}: {key}: message {id} was answered 202 and never ran"
                );
            }
        }
        gw.signal("TERM");
        gw.exit().await;
    }
}
