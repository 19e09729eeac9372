//! The file tools stay inside the workspace however it is reached (issue 16, item 1): a
//! symlink found while walking a tree is followed only when it leads to a place inside the
//! workspace, never into the gateway's data dir or config file, and never out; links that stay
//! inside still work. The workspace's `AGENTS.md` is read under the same rules.

use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::mock_model::{MockModel, openai_text};
use crate::common::process::Process;
use crate::common::*;

/// Runs one tool through the echo model and returns `(isError, text)` of its result.
async fn tool(gw: &Gateway, name: &str, args: Value) -> (bool, String) {
    let (status, body) = gw.message("t", &format!("!tool {name} {args}")).await;
    assert_eq!(status, 200, "{body}");
    let (_, history) = gw.get("/sessions/t/history").await;
    let messages = history["messages"].as_array().unwrap();
    let part = &messages.iter().rev().find(|m| m["role"] == "toolResult").unwrap()["parts"][0];
    (part["state"] == "error", text_of(&part["result"]["content"][0]["text"]))
}

/// Links out of the workspace, into the data dir, and links that stay inside.
fn lay_out(ws: &Path, outside: &Path) {
    std::fs::write(outside.join("secret.txt"), "outside-secret\n").unwrap();
    std::fs::write(ws.join(".gateway-data/notes.txt"), "data-secret\n").unwrap();
    std::fs::write(ws.join("real.txt"), "inside-line\n").unwrap();
    std::fs::create_dir(ws.join("sub")).unwrap();
    symlink(outside.join("secret.txt"), ws.join("notes.txt")).unwrap();
    symlink(outside, ws.join("outdir")).unwrap();
    symlink(outside.join("missing.txt"), ws.join("dangling.txt")).unwrap();
    symlink(".gateway-data", ws.join("db-link")).unwrap();
    symlink(".gateway-data/notes.txt", ws.join("db-notes.txt")).unwrap();
    symlink(ws.join("real.txt"), ws.join("abs.txt")).unwrap();
    symlink("real.txt", ws.join("rel.txt")).unwrap();
    symlink("../real.txt", ws.join("sub/up.txt")).unwrap();
}

#[tokio::test]
async fn links_out_of_the_workspace_are_followed_by_no_tool() {
    let outside = tempfile::tempdir().unwrap();
    let gw = Gateway::with(&[
        ("tools", "read,ls,grep,find,write,edit"),
        ("data_dir", "{workspace}/.gateway-data"),
    ])
    .await;
    lay_out(&gw.workspace, outside.path());

    let (error, hits) = tool(&gw, "grep", json!({"pattern": "secret|inside-line"})).await;
    assert!(!error, "{hits}");
    assert_eq!(
        hits,
        "abs.txt:1: inside-line\nreal.txt:1: inside-line\nrel.txt:1: inside-line\nsub/up.txt:1: inside-line",
        "a walk follows links that stay inside, and no other"
    );
    let (_, found) = tool(&gw, "find", json!({"pattern": "*"})).await;
    for hidden in ["notes.txt", "outdir", "dangling", "db-", ".gateway-data", "secret"] {
        assert!(!found.contains(hidden), "find shows {hidden}: {found}");
    }
    assert!(found.contains("abs.txt") && found.contains("sub/up.txt"), "{found}");
    let (_, listed) = tool(&gw, "ls", json!({})).await;
    assert!(!listed.contains(".gateway-data") && listed.contains("real.txt"), "{listed}");

    for (name, args) in [
        ("read", json!({"path": "notes.txt"})),
        ("read", json!({"path": "outdir/secret.txt"})),
        ("read", json!({"path": "db-notes.txt"})),
        ("read", json!({"path": "db-link/notes.txt"})),
        ("grep", json!({"pattern": "secret", "path": "notes.txt"})),
        ("grep", json!({"pattern": "secret", "path": "outdir"})),
        ("grep", json!({"pattern": "secret", "path": "db-link"})),
        ("ls", json!({"path": "outdir"})),
        ("ls", json!({"path": "db-link"})),
        ("find", json!({"pattern": "*", "path": "outdir"})),
        ("edit", json!({"path": "notes.txt", "oldText": "outside", "newText": "x"})),
        ("edit", json!({"path": "db-notes.txt", "oldText": "data", "newText": "x"})),
        ("write", json!({"path": "notes.txt", "content": "x"})),
        ("write", json!({"path": "dangling.txt", "content": "x"})),
        ("write", json!({"path": "outdir/new.txt", "content": "x"})),
        ("write", json!({"path": "db-link/new.txt", "content": "x"})),
        ("write", json!({"path": "db-link/deeper/new.txt", "content": "x"})),
    ] {
        let (error, text) = tool(&gw, name, args.clone()).await;
        assert!(error, "{name} {args} is refused: {text}");
        assert!(!text.contains("-secret"), "{name} {args}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "outside-secret\n"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1, "nothing created outside");
    let data = gw.workspace.join(".gateway-data");
    assert!(!data.join("new.txt").exists() && !data.join("deeper").exists());
    assert_eq!(std::fs::read_to_string(data.join("notes.txt")).unwrap(), "data-secret\n");

    for link in ["abs.txt", "rel.txt", "sub/up.txt"] {
        assert_eq!(tool(&gw, "read", json!({"path": link})).await, (false, "inside-line\n".into()));
    }
    let (error, text) =
        tool(&gw, "write", json!({"path": "abs.txt", "content": "new-line\n"})).await;
    assert!(!error, "{text}");
    let edit = json!({"path": "sub/up.txt", "oldText": "new", "newText": "edited"});
    assert!(!tool(&gw, "edit", edit).await.0);
    assert_eq!(std::fs::read_to_string(gw.workspace.join("real.txt")).unwrap(), "edited-line\n");
    let (error, text) = tool(&gw, "write", json!({"path": "a/b/c.txt", "content": "deep"})).await;
    assert!(!error, "{text}");
    assert_eq!(std::fs::read_to_string(gw.workspace.join("a/b/c.txt")).unwrap(), "deep");
}

#[tokio::test]
async fn the_config_file_reaches_no_tool_and_not_the_system_prompt() {
    let mock = MockModel::start(vec![openai_text(&["ok"])]).await;
    let dir = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let config = etc.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "bearer_token = \"tok-in-config-file\"\nopenai_api_key = \"sk-in-config-file\"\n\
             provider = \"openai\"\nmodel = \"gpt-test\"\nbase_url = \"{}\"\n",
            mock.url
        ),
    )
    .unwrap();
    symlink(&config, dir.path().join("notes.txt")).unwrap();
    symlink(&config, dir.path().join("AGENTS.md")).unwrap();
    let gw = Process::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let send = |key: &str, text: String| {
        http.post(gw.url(&format!("/sessions/{key}/messages")))
            .bearer_auth("tok-in-config-file")
            .json(&json!({ "text": text }))
            .send()
    };
    let (status, body) = read(send("prompt", "hello".into()).await.unwrap()).await;
    assert_eq!((status, text_of(&body["response"])), (200, "ok".into()), "{body}");
    let system = mock.requests()[0].body["messages"][0].to_string();
    assert!(!system.contains("in-config-file"), "AGENTS.md leaked the config: {system}");

    let create = http.post(gw.url("/v1/conversations")).bearer_auth("tok-in-config-file");
    let created = create.json(&json!({"conversationId": "tools"})).send().await.unwrap();
    assert!(created.status().is_success());
    let echo = json!({"provider": "echo", "modelId": "echo"});
    let model = http.post(gw.url("/sessions/tools/model")).bearer_auth("tok-in-config-file");
    assert_eq!(model.json(&echo).send().await.unwrap().status(), 200);
    for call in [
        json!({"pattern": "in-config-file"}).to_string(),
        json!({"pattern": "in-config-file", "path": "notes.txt"}).to_string(),
    ] {
        let (status, body) = read(send("tools", format!("!tool grep {call}")).await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let reply = text_of(&body["response"]);
        assert!(!reply.contains("tok-in-config-file"), "grep {call} read the config: {reply}");
    }
}
