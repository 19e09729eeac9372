//! The tool trait, the configured tool set, and workspace confinement shared by every tool
//! that touches files.

mod bash;
mod edit;
mod listing;
pub mod memory;
mod read;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::provider::ToolSpec;

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

/// Tool names each `tools` setting expands to.
const READONLY: &[&str] = &["read", "ls", "grep", "find"];
const ALL: &[&str] = &["read", "ls", "grep", "find", "write", "edit", "bash"];

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

/// The configured tools, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolSet(Vec<String>);

impl ToolSet {
    /// `readonly` (default), `all`, `none`, or a comma-separated list.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let names: Vec<String> = match setting.trim() {
            "readonly" | "" => READONLY.iter().map(|s| s.to_string()).collect(),
            "all" => ALL.iter().map(|s| s.to_string()).collect(),
            "none" => Vec::new(),
            list => {
                list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            }
        };
        for name in &names {
            if !ALL.contains(&name.as_str()) {
                return Err(format!("tools: unknown tool {name:?} (known: {})", ALL.join(", ")));
            }
        }
        Ok(Self(names))
    }

    pub fn build(&self, workspace: Arc<Workspace>) -> Vec<Arc<dyn Tool>> {
        self.0
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
                    _ => Arc::new(bash::Bash::new(ws)),
                }
            })
            .collect()
    }
}

/// The directory tools may see, minus what they must never read (the data dir, the config file).
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    forbidden: Vec<PathBuf>,
}

impl Workspace {
    /// `forbidden` paths need not exist; those that do are compared by their canonical form.
    pub fn new(root: &Path, forbidden: &[PathBuf]) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let forbidden = forbidden.iter().filter_map(|p| p.canonicalize().ok()).collect();
        Ok(Self { root, forbidden })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A canonical path that belongs to the gateway (data dir, config file).
    pub fn is_forbidden(&self, canonical: &Path) -> bool {
        self.forbidden.iter().any(|f| canonical.starts_with(f))
    }

    /// `path` relative to the workspace root, for outputs.
    pub fn display(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.root).unwrap_or(path).display().to_string();
        if relative.is_empty() { ".".into() } else { relative }
    }

    fn check_syntax(path: &str) -> Result<&Path, String> {
        let requested = Path::new(path);
        if path.is_empty() {
            return Err("Missing path".into());
        }
        if requested.is_absolute() || path.starts_with('~') {
            return Err(format!("Path must be relative to the workspace: {path}"));
        }
        if requested.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(format!("Path escapes the workspace: {path}"));
        }
        Ok(requested)
    }

    /// A path to write: its nearest existing ancestor must resolve inside the workspace, and
    /// an existing target (or symlink) must too. Missing parent directories are created.
    pub fn resolve_new(&self, path: &str) -> Result<PathBuf, String> {
        let requested = Self::check_syntax(path)?;
        let joined = self.root.join(requested);
        if joined.symlink_metadata().is_ok() {
            return self.resolve(path);
        }
        let mut existing = joined.parent();
        while let Some(dir) = existing {
            if dir.exists() {
                break;
            }
            existing = dir.parent();
        }
        let base = existing
            .unwrap_or(&self.root)
            .canonicalize()
            .map_err(|e| format!("Cannot open {path}: {e}"))?;
        if !base.starts_with(&self.root) {
            return Err(format!("Path escapes the workspace: {path}"));
        }
        if self.is_forbidden(&base) {
            return Err(format!("Access denied: {path} belongs to the gateway"));
        }
        let rest = joined.strip_prefix(existing.unwrap_or(&self.root)).unwrap_or(requested);
        let target = base.join(rest);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("Cannot create {path}: {e}"))?;
        }
        Ok(target)
    }

    /// Resolves a path given by the model: relative, no `..`, and after following symlinks
    /// still inside the workspace and outside the gateway's own files.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let requested = Self::check_syntax(path)?;
        let joined = self.root.join(requested);
        let canonical = joined.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("File not found: {path}"),
            _ => format!("Cannot open {path}: {e}"),
        })?;
        if !canonical.starts_with(&self.root) {
            return Err(format!("Path escapes the workspace: {path}"));
        }
        if self.forbidden.iter().any(|f| canonical.starts_with(f)) {
            return Err(format!("Access denied: {path} belongs to the gateway"));
        }
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls a tool by name over a workspace, as the agent does.
    async fn call(ws: &Arc<Workspace>, name: &str, args: Value) -> ToolOutput {
        let tools = ToolSet::parse("all").unwrap().build(ws.clone());
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
    fn tool_settings() {
        assert_eq!(ToolSet::parse("readonly").unwrap().0.len(), 4);
        assert_eq!(ToolSet::parse("read").unwrap().0, vec!["read"]);
        assert!(ToolSet::parse("none").unwrap().0.is_empty());
        assert_eq!(ToolSet::parse("all").unwrap().0.len(), 7);
        assert!(ToolSet::parse("read,wget").unwrap_err().contains("unknown tool"));
    }

    #[test]
    fn confinement() {
        let dir = tempfile::tempdir().unwrap();
        let ws_root = dir.path().join("ws");
        std::fs::create_dir_all(ws_root.join("data")).unwrap();
        std::fs::write(ws_root.join("ok.txt"), "hi").unwrap();
        std::fs::write(ws_root.join("data/secret"), "no").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "no").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), ws_root.join("link")).unwrap();
        let ws = Workspace::new(&ws_root, &[ws_root.join("data")]).unwrap();
        assert!(ws.resolve("ok.txt").is_ok());
        assert!(ws.resolve("../outside.txt").unwrap_err().contains("escapes"));
        assert!(ws.resolve("/etc/passwd").unwrap_err().contains("relative"));
        assert!(ws.resolve("data/secret").unwrap_err().contains("Access denied"));
        assert!(ws.resolve("missing.txt").unwrap_err().contains("not found"));
        #[cfg(unix)]
        assert!(ws.resolve("link").unwrap_err().contains("escapes"));
    }
}
