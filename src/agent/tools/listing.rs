//! `ls`, `find` and `grep`: looking around the workspace without changing it. Every directory
//! and file is opened through [`Workspace`] (walks included), so nothing outside it or of the
//! gateway's own files is listed or read; results are capped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Node, Tool, ToolContext, ToolOutput, Workspace, parse_args, truncate};
use crate::agent::provider::ToolSpec;

const DEFAULT_LIMIT: usize = 500;
/// Entries a walk looks at, at most.
const WALK_LIMIT: usize = 100_000;
/// Files larger than this are not searched by `grep`.
const GREP_MAX_FILE: u64 = 4 * 1024 * 1024;

/// Where to start: `path` (default the workspace root), relative to the root.
fn start(path: Option<&str>) -> Result<PathBuf, ToolOutput> {
    match path.filter(|p| !p.is_empty() && *p != ".") {
        Some(path) => Workspace::relative(path).map_err(|r| ToolOutput::error(r.message(path))),
        None => Ok(PathBuf::new()),
    }
}

/// `path` for outputs ("." for the root).
fn display(path: &Path) -> String {
    if path.as_os_str().is_empty() { ".".into() } else { path.display().to_string() }
}

/// A glob (`*`, `?`, `**`) as a regex over the path relative to the search root; a pattern
/// without `/` matches file names.
fn glob_regex(pattern: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("Invalid pattern {pattern:?}: {e}"))
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec { name: name.into(), description: description.into(), parameters }
}

pub struct Ls {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LsArgs {
    path: Option<String>,
    limit: Option<usize>,
}

impl Ls {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "ls",
            "List a directory of the workspace (default: its root). Directories end with /, symlinks with @.",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Directory relative to the workspace"},
                "limit": {"type": "integer", "minimum": 1}
            }, "additionalProperties": false}),
        );
        Self { spec, workspace }
    }
}

fn ls(workspace: &Workspace, args: Value) -> ToolOutput {
    let args: LsArgs = match parse_args("ls", args) {
        Ok(args) => args,
        Err(e) => return e,
    };
    let dir = match start(args.path.as_deref()) {
        Ok(dir) => dir,
        Err(e) => return e,
    };
    let shown = display(&dir);
    let entries =
        workspace.open_dir(&dir).map_err(|r| r.message(&shown)).and_then(|(dir, real)| {
            workspace.list(&dir, &real).map_err(|e| format!("Cannot list {shown}: {e}"))
        });
    let entries = match entries {
        Ok(entries) => entries,
        Err(message) => return ToolOutput::error(message),
    };
    let mut names: Vec<String> = entries
        .into_iter()
        .map(|(name, kind)| {
            let suffix = match kind {
                t if t.is_dir() => "/",
                t if t.is_symlink() => "@",
                _ => "",
            };
            format!("{}{suffix}", name.to_string_lossy())
        })
        .collect();
    names.sort();
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    let more = names.len().saturating_sub(limit);
    names.truncate(limit);
    let mut text =
        if names.is_empty() { "(empty directory)".to_string() } else { names.join("\n") };
    if more > 0 {
        text.push_str(&format!("\n[{more} more entries not shown; raise limit]"));
    }
    ToolOutput::text(text)
}

impl Tool for Ls {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, _: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        blocking(self.workspace.clone(), args, ls)
    }
}

/// Runs a read-only file tool on its own confined thread (it does synchronous I/O).
fn blocking(
    workspace: Arc<Workspace>,
    args: Value,
    run: fn(&Workspace, Value) -> ToolOutput,
) -> BoxFuture<'static, ToolOutput> {
    Box::pin(async move {
        workspace.run(false, move |ws| run(ws, args)).await.unwrap_or_else(ToolOutput::error)
    })
}

pub struct Find {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindArgs {
    pattern: String,
    path: Option<String>,
    limit: Option<usize>,
}

impl Find {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "find",
            "Find files by glob pattern (e.g. *.rs, src/**/*.toml) under a directory of the workspace.",
            json!({"type": "object", "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Directory relative to the workspace"},
                "limit": {"type": "integer", "minimum": 1}
            }, "required": ["pattern"], "additionalProperties": false}),
        );
        Self { spec, workspace }
    }
}

fn find(workspace: &Workspace, args: Value) -> ToolOutput {
    let args: FindArgs = match parse_args("find", args) {
        Ok(args) => args,
        Err(e) => return e,
    };
    let root = match start(args.path.as_deref()) {
        Ok(root) => root,
        Err(e) => return e,
    };
    let regex = match glob_regex(&args.pattern) {
        Ok(regex) => regex,
        Err(e) => return ToolOutput::error(e),
    };
    let by_name = !args.pattern.contains('/');
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    let entries = match workspace.walk(&root, WALK_LIMIT) {
        Ok(entries) => entries,
        Err(refused) => return ToolOutput::error(refused.message(&display(&root))),
    };
    let found: Vec<String> = entries
        .iter()
        .filter(|entry| {
            let path = &entry.path;
            let relative = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().to_string();
            let subject = if by_name {
                path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
            } else {
                relative
            };
            regex.is_match(&subject)
        })
        .map(|entry| format!("{}{}", entry.path.display(), if entry.dir { "/" } else { "" }))
        .take(limit)
        .collect();
    if found.is_empty() {
        return ToolOutput::text(format!("No files match {}", args.pattern));
    }
    ToolOutput::text(truncate(&found.join("\n"), false))
}

impl Tool for Find {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, _: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        blocking(self.workspace.clone(), args, find)
    }
}

pub struct Grep {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GrepArgs {
    pattern: String,
    path: Option<String>,
    /// Only files whose name matches this glob.
    glob: Option<String>,
    ignore_case: Option<bool>,
    /// The pattern is plain text, not a regex.
    literal: Option<bool>,
    limit: Option<usize>,
}

impl Grep {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "grep",
            "Search file contents of the workspace for a regex (or literal text); answers path:line: text.",
            json!({"type": "object", "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "File or directory relative to the workspace"},
                "glob": {"type": "string", "description": "Only files whose name matches, e.g. *.rs"},
                "ignoreCase": {"type": "boolean"},
                "literal": {"type": "boolean"},
                "limit": {"type": "integer", "minimum": 1}
            }, "required": ["pattern"], "additionalProperties": false}),
        );
        Self { spec, workspace }
    }
}

fn grep(workspace: &Workspace, args: Value) -> ToolOutput {
    let args: GrepArgs = match parse_args("grep", args) {
        Ok(args) => args,
        Err(e) => return e,
    };
    let root = match start(args.path.as_deref()) {
        Ok(root) => root,
        Err(e) => return e,
    };
    let source = if args.literal.unwrap_or(false) {
        regex::escape(&args.pattern)
    } else {
        args.pattern.clone()
    };
    let regex = match regex::RegexBuilder::new(&source)
        .case_insensitive(args.ignore_case.unwrap_or(false))
        .build()
    {
        Ok(regex) => regex,
        Err(e) => return ToolOutput::error(format!("Invalid pattern: {e}")),
    };
    let names = match args.glob.as_deref().map(glob_regex).transpose() {
        Ok(names) => names,
        Err(e) => return ToolOutput::error(e),
    };
    let files: Vec<PathBuf> = match workspace.open(&root) {
        Ok((Node::File(_), _)) => vec![root.clone()],
        Ok((Node::Dir(_), _)) => match workspace.walk(&root, WALK_LIMIT) {
            Ok(entries) => entries.into_iter().filter(|e| !e.dir).map(|e| e.path).collect(),
            Err(refused) => return ToolOutput::error(refused.message(&display(&root))),
        },
        Err(refused) => return ToolOutput::error(refused.message(&display(&root))),
    };
    let limit = args.limit.unwrap_or(200);
    let mut matches = Vec::new();
    'files: for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if names.as_ref().is_some_and(|n| !n.is_match(&name)) {
            continue;
        }
        // Opened again like any path: a file swapped for a link since the walk is refused.
        let Ok(mut opened) = workspace.open_file(&file, false) else { continue };
        if opened.metadata().map(|m| m.len() > GREP_MAX_FILE).unwrap_or(true) {
            continue;
        }
        let mut bytes = Vec::new();
        if opened.read_to_end(&mut bytes).is_err() {
            continue;
        }
        if bytes.contains(&0) {
            continue; // binary
        }
        let text = String::from_utf8_lossy(&bytes);
        for (number, line) in text.lines().enumerate() {
            if regex.is_match(line) {
                let line: String = line.chars().take(300).collect();
                matches.push(format!("{}:{}: {line}", file.display(), number + 1));
                if matches.len() >= limit {
                    matches.push(format!("[stopped after {limit} matches; raise limit]"));
                    break 'files;
                }
            }
        }
    }
    if matches.is_empty() {
        return ToolOutput::text(format!("No matches for {}", args.pattern));
    }
    ToolOutput::text(truncate(&matches.join("\n"), false))
}

impl Tool for Grep {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, _: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        blocking(self.workspace.clone(), args, grep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_regex("*.rs").unwrap().is_match("main.rs"));
        assert!(!glob_regex("*.rs").unwrap().is_match("src/main.rs"));
        assert!(glob_regex("src/**/*.rs").unwrap().is_match("src/a/b/c.rs"));
        assert!(glob_regex("src/**/*.rs").unwrap().is_match("src/c.rs"));
        assert!(glob_regex("a?c.txt").unwrap().is_match("abc.txt"));
        assert!(!glob_regex("a.txt").unwrap().is_match("abtxt"));
    }
}
