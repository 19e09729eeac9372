//! `read`: a text file of the workspace, optionally a window of its lines.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput, Workspace, parse_args};
use crate::agent::provider::ToolSpec;

/// Output beyond this many bytes is cut, with a note saying how to read on.
const MAX_BYTES: usize = 256 * 1024;

pub struct ReadTool {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    /// First line to return, 1-based.
    offset: Option<usize>,
    /// Number of lines to return.
    limit: Option<usize>,
}

impl ReadTool {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = ToolSpec {
            name: "read".into(),
            description: "Read a text file of the workspace. Paths are relative to the \
                          workspace; use offset and limit (in lines) for large files."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path relative to the workspace"},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line (1-based)"},
                    "limit": {"type": "integer", "minimum": 1, "description": "Number of lines"}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        };
        Self { spec, workspace }
    }

    async fn read(&self, args: Value) -> ToolOutput {
        let args: ReadArgs = match parse_args("read", args) {
            Ok(args) => args,
            Err(refused) => return refused,
        };
        let path = args.path.clone();
        let read = self.workspace.run(false, move |ws| ws.read(&Workspace::relative(&path)?));
        let bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(refused)) => return ToolOutput::error(refused.message(&args.path)),
            Err(message) => return ToolOutput::error(message),
        };
        let text = String::from_utf8_lossy(&bytes);
        let text = match (args.offset, args.limit) {
            (None, None) => text.into_owned(),
            (offset, limit) => {
                let skip = offset.unwrap_or(1).saturating_sub(1);
                let lines = text.lines().skip(skip);
                let lines: Vec<&str> = match limit {
                    Some(limit) => lines.take(limit).collect(),
                    None => lines.collect(),
                };
                lines.join("\n")
            }
        };
        if text.len() > MAX_BYTES {
            let mut cut = MAX_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let shown = text[..cut].lines().count();
            return ToolOutput::text(format!(
                "{}\n\n[truncated after {shown} lines; read on with offset]",
                &text[..cut]
            ));
        }
        ToolOutput::text(text)
    }
}

impl Tool for ReadTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, _ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(self.read(args))
    }
}
