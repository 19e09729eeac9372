//! The tool trait and the configured tool set. Confinement lives beside them: every file tool
//! opens through [`Workspace`], every process a tool starts runs in the [`Sandbox`].

mod bash;
mod edit;
mod listing;
pub mod memory;
mod read;
mod workspace;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::provider::ToolSpec;
use super::sandbox::Sandbox;
use crate::domain::ToolSet;
pub use workspace::{Entry, Node, Refused, Workspace};

/// A tool's answer: `result` is JSON (`{"content":[{"type":"text","text":...}]}` for text, as pi
/// tools answer), `is_error` marks a failure the model should see.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    pub result: Value,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        Self { result: text_content(text.into()), is_error: false }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self { result: text_content(text.into()), is_error: true }
    }
}

fn text_content(text: String) -> Value {
    json!({ "content": [{ "type": "text", "text": text }] })
}

/// The text of a tool result, the one reading of it for a model (the providers), for the echo
/// model and for a UI (Vercel's `errorText`): the `text` of every part of its `content`, joined
/// by newlines, so a result of several parts loses none; a result without text parts as its
/// JSON. (Every result the gateway's own tools give has exactly one text part.)
pub fn result_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if texts.is_empty() { result.to_string() } else { texts.join("\n") }
}

/// A call's arguments as the tool's argument type, or the error result the model gets for
/// arguments that do not fit it.
pub fn parse_args<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolOutput> {
    serde_json::from_value(args)
        .map_err(|e| ToolOutput::error(format!("Invalid arguments for {tool}: {e}")))
}

/// What a running tool may use: partial results go out as `tool_update` events.
pub struct ToolContext<'a> {
    pub update: &'a (dyn Fn(Value) + Send + Sync),
    pub cancel: &'a CancellationToken,
    /// The memory namespace of the session the run belongs to.
    pub namespace: &'a str,
    /// Set when the session's owner is an `own_sessions_only` token: the memory tools find
    /// episodes of that owner's sessions only.
    pub episodes_of: Option<&'a str>,
}

pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput>;
}

/// Text outputs beyond this many bytes are cut, with a note saying so.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Cuts `text` to at most [`MAX_OUTPUT`] bytes at a character boundary, keeping the head
/// (`keep_tail` false) or the tail, with a note of what was left out.
pub fn truncate(text: &str, keep_tail: bool) -> String {
    if text.len() <= MAX_OUTPUT {
        return text.to_string();
    }
    if keep_tail {
        let mut start = text.len() - MAX_OUTPUT;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!(
            "[output truncated: showing the last {} of {} bytes]\n{}",
            text.len() - start,
            text.len(),
            &text[start..]
        )
    } else {
        let mut end = MAX_OUTPUT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}\n[output truncated: showing the first {end} of {} bytes]",
            &text[..end],
            text.len()
        )
    }
}

/// The tools of a set, ready to call.
pub fn build(
    set: &ToolSet,
    workspace: Arc<Workspace>,
    sandbox: Arc<Sandbox>,
) -> Vec<Arc<dyn Tool>> {
    set.names()
        .iter()
        .map(|name| -> Arc<dyn Tool> {
            let ws = workspace.clone();
            match name.as_str() {
                "read" => Arc::new(read::ReadTool::new(ws)),
                "ls" => Arc::new(listing::Ls::new(ws)),
                "find" => Arc::new(listing::Find::new(ws)),
                "grep" => Arc::new(listing::Grep::new(ws)),
                "write" => Arc::new(edit::Write::new(ws)),
                "edit" => Arc::new(edit::Edit::new(ws)),
                _ => Arc::new(bash::Bash::new(sandbox.clone())),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::sandbox::SandboxMode;

    /// Calls a tool by name over a workspace, as the agent does.
    async fn call(ws: &Arc<Workspace>, name: &str, args: Value) -> ToolOutput {
        let sandbox = Sandbox::new(SandboxMode::None, ws.root(), Vec::new());
        let tools = build(&ToolSet::parse("all").unwrap(), ws.clone(), Arc::new(sandbox));
        let tool = tools.iter().find(|t| t.spec().name == name).unwrap();
        let cancel = CancellationToken::new();
        tool.call(
            args,
            ToolContext {
                update: &|_| {},
                cancel: &cancel,
                namespace: "default",
                episodes_of: None,
            },
        )
        .await
    }

    fn text(output: &ToolOutput) -> &str {
        output.result["content"][0]["text"].as_str().unwrap()
    }

    /// `ws/` with files, a data dir inside it, and a symlink pointing outside.
    fn workspace() -> (tempfile::TempDir, Arc<Workspace>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join(".data")).unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {\n    println!(\"hi\");\n}\n")
            .unwrap();
        std::fs::write(root.join("src/deep/lib.rs"), "pub fn deep() {}\n").unwrap();
        std::fs::write(root.join("notes.txt"), "Alpha\nbeta\nALPHA again\n").unwrap();
        std::fs::write(root.join(".data/gateway.db"), "secret main").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "outside main").unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("escape")).unwrap();
        let ws = Arc::new(Workspace::new(&root, &[root.join(".data")]).unwrap());
        (dir, ws)
    }

    #[tokio::test]
    async fn ls_find_and_grep_look_around_without_leaving_the_workspace() {
        let (_dir, ws) = workspace();
        let listing = call(&ws, "ls", json!({})).await;
        assert_eq!(text(&listing), "escape@\nnotes.txt\nsrc/", "the data dir is not listed");
        assert_eq!(text(&call(&ws, "ls", json!({"path": "src"})).await), "deep/\nmain.rs");
        let found = call(&ws, "find", json!({"pattern": "*.rs"})).await;
        assert_eq!(text(&found), "src/deep/lib.rs\nsrc/main.rs");
        let found = call(&ws, "find", json!({"pattern": "src/**/lib.rs"})).await;
        assert_eq!(text(&found), "src/deep/lib.rs");
        let hits = call(&ws, "grep", json!({"pattern": "alpha", "ignoreCase": true})).await;
        assert_eq!(text(&hits), "notes.txt:1: Alpha\nnotes.txt:3: ALPHA again");
        let hits = call(&ws, "grep", json!({"pattern": "main", "glob": "*.rs"})).await;
        assert_eq!(
            text(&hits),
            "src/main.rs:1: fn main() {",
            "no match in the data dir or outside"
        );
        let literal = call(&ws, "grep", json!({"pattern": "println!(", "literal": true})).await;
        assert!(text(&literal).starts_with("src/main.rs:2:"));
        for (tool, args, error) in [
            ("ls", json!({"path": "../"}), "escapes"),
            ("ls", json!({"path": "escape"}), "escapes"),
            ("find", json!({"pattern": "*", "path": "/etc"}), "relative"),
            ("grep", json!({"pattern": "x", "path": ".data"}), "Access denied"),
            ("grep", json!({"pattern": "("}), "Invalid pattern"),
        ] {
            let output = call(&ws, tool, args.clone()).await;
            assert!(output.is_error && text(&output).contains(error), "{tool} {args}: {output:?}");
        }
    }

    #[tokio::test]
    async fn write_and_edit_change_only_workspace_files() {
        let (dir, ws) = workspace();
        let written =
            call(&ws, "write", json!({"path": "new/dir/file.txt", "content": "one two"})).await;
        assert!(!written.is_error, "{written:?}");
        assert_eq!(std::fs::read_to_string(ws.root().join("new/dir/file.txt")).unwrap(), "one two");
        let edited = call(
            &ws,
            "edit",
            json!({"path": "new/dir/file.txt", "oldText": "two", "newText": "2"}),
        )
        .await;
        assert!(!edited.is_error);
        assert_eq!(std::fs::read_to_string(ws.root().join("new/dir/file.txt")).unwrap(), "one 2");
        let twice =
            call(&ws, "edit", json!({"path": "notes.txt", "oldText": "a", "newText": "b"})).await;
        assert!(twice.is_error && text(&twice).contains("occurs"), "{twice:?}");
        let missing =
            call(&ws, "edit", json!({"path": "notes.txt", "oldText": "zzz", "newText": "b"})).await;
        assert!(missing.is_error && text(&missing).contains("not found"));
        for (path, error) in [
            ("../outside.txt", "escapes"),
            ("/tmp/x", "relative"),
            ("escape/outside.txt", "escapes"),
            ("escape/new.txt", "escapes"),
            (".data/gateway.db", "Access denied"),
            (".data/other", "Access denied"),
        ] {
            let output = call(&ws, "write", json!({"path": path, "content": "x"})).await;
            assert!(output.is_error && text(&output).contains(error), "{path}: {output:?}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("outside.txt")).unwrap(),
            "outside main"
        );
        assert!(!dir.path().join("new.txt").exists());
        assert_eq!(
            std::fs::read_to_string(ws.root().join(".data/gateway.db")).unwrap(),
            "secret main"
        );
    }

    #[test]
    fn the_workspace_opens_only_what_lies_beneath_it() {
        use std::os::unix::fs::symlink;
        use std::path::Path;
        let (dir, ws) = workspace();
        let root = ws.root().to_path_buf();
        let rel = |p: &str| Workspace::relative(p).unwrap();
        assert!(matches!(Workspace::relative("../x"), Err(Refused::Escapes)));
        assert!(
            Workspace::relative("/etc/passwd")
                .unwrap_err()
                .message("/etc/passwd")
                .contains("relative")
        );
        assert_eq!(rel("./src/./main.rs"), Path::new("src/main.rs"));
        symlink(root.join("notes.txt"), root.join("abs")).unwrap();
        symlink(dir.path().join("gone"), root.join("dangling")).unwrap();
        symlink(".data/gateway.db", root.join("db")).unwrap();
        assert_eq!(
            ws.read(&rel("abs")).unwrap(),
            b"Alpha\nbeta\nALPHA again\n",
            "absolute, inside"
        );
        assert!(matches!(ws.read(&rel("dangling")), Err(Refused::NotFound)));
        assert!(matches!(ws.read(&rel("db")), Err(Refused::Gateway)));
        assert!(matches!(ws.read(&rel("escape/outside.txt")), Err(Refused::Escapes)));
        // A FIFO neither blocks a read nor a walk.
        nix::unistd::mkfifo(&root.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(ws.read(&rel("pipe")), Err(Refused::NotAFile)));
        assert!(ws.write(&rel("pipe"), b"x").is_err());
        let walked: Vec<_> =
            ws.walk(Path::new(""), 100).unwrap().into_iter().map(|e| e.path).collect();
        assert!(
            !walked.iter().any(|p| p.ends_with("pipe") || p.starts_with(".data")),
            "{walked:?}"
        );
        assert!(walked.contains(&rel("abs")) && walked.contains(&rel("src/deep/lib.rs")));
        // Directories are made one checked name at a time, never through a link.
        symlink(".data", root.join("data-link")).unwrap();
        assert!(matches!(ws.write(&rel("data-link/new/x"), b"x"), Err(Refused::Gateway)));
        assert!(!root.join(".data/new").exists());
        ws.write(&rel("made/a/b.txt"), b"made").unwrap();
        assert_eq!(std::fs::read(root.join("made/a/b.txt")).unwrap(), b"made");
    }

    #[tokio::test]
    async fn file_tool_threads_are_confined_by_the_kernel_too() {
        let (dir, ws) = workspace();
        assert!(crate::agent::sandbox::landlocked::supported(), "this machine has landlock");
        let outside = dir.path().join("outside.txt");
        let read_outside = {
            let outside = outside.clone();
            ws.run(false, move |_| std::fs::read_to_string(outside)).await.unwrap()
        };
        let denied = read_outside.unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied, "{denied}");
        let inside = ws.root().join("written.txt");
        let write = move |_: &Workspace| std::fs::write(inside, "x");
        assert!(ws.run(false, write.clone()).await.unwrap().is_err(), "read-only tools");
        assert!(ws.run(true, write).await.unwrap().is_ok(), "write and edit");
        assert_eq!(std::fs::read_to_string(outside).unwrap(), "outside main", "no other thread is");
    }
}
