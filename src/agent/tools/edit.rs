//! `write` and `edit`: the two tools that change files of the workspace (only with
//! `tools = "all"` or when listed). Paths are confined like every file tool's: the file is
//! opened (or created in its checked parent directory) through [`Workspace`], then read and
//! written through that one handle.

use std::io::{Read, Seek, Write as _};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput, Workspace, parse_args};
use crate::agent::provider::ToolSpec;

pub struct Write {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

impl Write {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = ToolSpec {
            name: "write".into(),
            description: "Create or overwrite a file of the workspace with the given content \
                          (parent directories are created)."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace"},
                "content": {"type": "string"}
            }, "required": ["path", "content"], "additionalProperties": false}),
        };
        Self { spec, workspace }
    }

    async fn run(&self, args: Value) -> ToolOutput {
        let args: WriteArgs = match parse_args("write", args) {
            Ok(args) => args,
            Err(refused) => return refused,
        };
        let (path, content) = (args.path.clone(), args.content);
        let length = content.len();
        let written = self
            .workspace
            .run(true, move |ws| ws.write(&Workspace::relative(&path)?, content.as_bytes()));
        match written.await {
            Ok(Ok(())) => ToolOutput::text(format!("Wrote {length} bytes to {}", args.path)),
            Ok(Err(refused)) => ToolOutput::error(refused.message(&args.path)),
            Err(message) => ToolOutput::error(message),
        }
    }
}

impl Tool for Write {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, _: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(self.run(args))
    }
}

pub struct Edit {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
}

impl Edit {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = ToolSpec {
            name: "edit".into(),
            description: "Replace one exact occurrence of oldText with newText in a file of the \
                          workspace. oldText must match exactly once."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace"},
                "oldText": {"type": "string"},
                "newText": {"type": "string"}
            }, "required": ["path", "oldText", "newText"], "additionalProperties": false}),
        };
        Self { spec, workspace }
    }

    async fn run(&self, args: Value) -> ToolOutput {
        let args: EditArgs = match parse_args("edit", args) {
            Ok(args) => args,
            Err(refused) => return refused,
        };
        if args.old_text.is_empty() {
            return ToolOutput::error("oldText must not be empty");
        }
        let shown = args.path.clone();
        match self.workspace.run(true, move |ws| edit(ws, &args)).await {
            Ok(Ok(())) => ToolOutput::text(format!("Edited {shown}")),
            Ok(Err(message)) | Err(message) => ToolOutput::error(message),
        }
    }
}

/// Reads, replaces and writes back through one handle, so what is written is the file that
/// was read.
fn edit(workspace: &Workspace, args: &EditArgs) -> Result<(), String> {
    let path = &args.path;
    let relative = Workspace::relative(path).map_err(|r| r.message(path))?;
    let mut file = workspace.open_file(&relative, true).map_err(|r| r.message(path))?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| format!("Cannot read {path}: {e}"))?;
    match text.matches(&args.old_text).count() {
        0 => return Err(format!("oldText not found in {path}")),
        1 => {}
        n => {
            return Err(format!(
                "oldText occurs {n} times in {path}; include more context to make it unique"
            ));
        }
    }
    let updated = text.replacen(&args.old_text, &args.new_text, 1);
    let write = |file: &mut cap_std::fs::File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(updated.as_bytes())
    };
    write(&mut file).map_err(|e| format!("Cannot write {path}: {e}"))
}

impl Tool for Edit {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, _: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(self.run(args))
    }
}
