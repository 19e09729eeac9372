//! `write` and `edit`: the two tools that change files of the workspace (only with
//! `tools = "all"` or when listed). Paths are confined like every file tool's.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput, Workspace};
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
        let args: WriteArgs = match serde_json::from_value(args) {
            Ok(args) => args,
            Err(e) => return ToolOutput::error(format!("Invalid arguments for write: {e}")),
        };
        let path = match self.workspace.resolve_new(&args.path) {
            Ok(path) => path,
            Err(message) => return ToolOutput::error(message),
        };
        match tokio::fs::write(&path, args.content.as_bytes()).await {
            Ok(()) => {
                ToolOutput::text(format!("Wrote {} bytes to {}", args.content.len(), args.path))
            }
            Err(e) => ToolOutput::error(format!("Cannot write {}: {e}", args.path)),
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
        let args: EditArgs = match serde_json::from_value(args) {
            Ok(args) => args,
            Err(e) => return ToolOutput::error(format!("Invalid arguments for edit: {e}")),
        };
        if args.old_text.is_empty() {
            return ToolOutput::error("oldText must not be empty");
        }
        let path = match self.workspace.resolve(&args.path) {
            Ok(path) => path,
            Err(message) => return ToolOutput::error(message),
        };
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => return ToolOutput::error(format!("Cannot read {}: {e}", args.path)),
        };
        match text.matches(&args.old_text).count() {
            0 => return ToolOutput::error(format!("oldText not found in {}", args.path)),
            1 => {}
            n => {
                return ToolOutput::error(format!(
                    "oldText occurs {n} times in {}; include more context to make it unique",
                    args.path
                ));
            }
        }
        let updated = text.replacen(&args.old_text, &args.new_text, 1);
        match tokio::fs::write(&path, updated).await {
            Ok(()) => ToolOutput::text(format!("Edited {}", args.path)),
            Err(e) => ToolOutput::error(format!("Cannot write {}: {e}", args.path)),
        }
    }
}

impl Tool for Edit {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, _: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(self.run(args))
    }
}
