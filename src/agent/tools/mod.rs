//! The tool trait, the configured tool set, and workspace confinement shared by every tool
//! that touches files.

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
}

pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput>;
}

/// Tool names each `tools` setting expands to. Only `read` exists so far; the others arrive
/// with the agent work, and naming one before then is a start-up error, not a silent gap.
const READONLY: &[&str] = &["read", "ls", "grep", "find"];
const ALL: &[&str] = &["read", "ls", "grep", "find", "write", "edit", "bash"];
const IMPLEMENTED: &[&str] = &["read"];

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
        // `readonly` keeps working with the subset built so far; anything that names a tool
        // able to change the workspace must not silently get less than it asked for.
        let explicit = !matches!(setting.trim(), "readonly" | "");
        if explicit && let Some(missing) = names.iter().find(|n| !IMPLEMENTED.contains(&n.as_str()))
        {
            return Err(format!("tools: {missing} is not implemented yet (available: read)"));
        }
        Ok(Self(names))
    }

    pub fn build(&self, workspace: Arc<Workspace>) -> Vec<Arc<dyn Tool>> {
        self.0
            .iter()
            .filter_map(|name| match name.as_str() {
                "read" => Some(Arc::new(read::ReadTool::new(workspace.clone())) as Arc<dyn Tool>),
                _ => None,
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

    /// Resolves a path given by the model: relative, no `..`, and after following symlinks
    /// still inside the workspace and outside the gateway's own files.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
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

    #[test]
    fn tool_settings() {
        assert_eq!(ToolSet::parse("readonly").unwrap().0.len(), 4);
        assert_eq!(ToolSet::parse("read").unwrap().0, vec!["read"]);
        assert!(ToolSet::parse("none").unwrap().0.is_empty());
        assert!(ToolSet::parse("all").unwrap_err().contains("not implemented"));
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
