//! `memory_search`, `memory_remember`, `memory_forget`: the agent's own long-term memory, in
//! its session's namespace (where it also sees `secret` records).

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput, parse_args};
use crate::agent::provider::ToolSpec;
use crate::domain::{HitSource, MemoryKind, MemorySource};
use crate::memory::{Access, Memory, Remember};

pub fn tools(memory: &Memory) -> Vec<std::sync::Arc<dyn Tool>> {
    vec![
        std::sync::Arc::new(Search { spec: search_spec(), memory: memory.clone() }),
        std::sync::Arc::new(RememberTool { spec: remember_spec(), memory: memory.clone() }),
        std::sync::Arc::new(Forget { spec: forget_spec(), memory: memory.clone() }),
    ]
}

fn search_spec() -> ToolSpec {
    ToolSpec {
        name: "memory_search".into(),
        description: "Search long-term memory (remembered facts and past conversations) for \
                      plain words; best matches first."
            .into(),
        parameters: json!({"type": "object", "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100}
        }, "required": ["query"], "additionalProperties": false}),
    }
}

fn remember_spec() -> ToolSpec {
    ToolSpec {
        name: "memory_remember".into(),
        description: "Remember something for later conversations. kind: profile, preference \
                      or relationship (always in context), fact or secret (found by search). \
                      The same key replaces an older memory."
            .into(),
        parameters: json!({"type": "object", "properties": {
            "content": {"type": "string"},
            "kind": {"type": "string", "enum": ["profile", "preference", "relationship", "fact", "secret"]},
            "bucket": {"type": "string", "enum": ["core", "archival"]},
            "key": {"type": "string"}
        }, "required": ["content"], "additionalProperties": false}),
    }
}

fn forget_spec() -> ToolSpec {
    ToolSpec {
        name: "memory_forget".into(),
        description: "Forget a memory by its id or key.".into(),
        parameters: json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "key": {"type": "string"}
        }, "additionalProperties": false}),
    }
}

/// The agent sees the secrets of its namespace, and episodes as its session's owner would.
fn access(ctx: &ToolContext<'_>) -> Access {
    Access::agent(ctx.episodes_of.map(str::to_string))
}

struct Search {
    spec: ToolSpec,
    memory: Memory,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    limit: Option<usize>,
}

impl Tool for Search {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(async move {
            let args: SearchArgs = match parse_args("memory_search", args) {
                Ok(args) => args,
                Err(e) => return e,
            };
            match self.memory.search(ctx.namespace, &args.query, args.limit, &access(&ctx)).await {
                Ok(hits) if hits.is_empty() => ToolOutput::text("No memories match."),
                Ok(hits) => {
                    let lines: Vec<String> = hits
                        .iter()
                        .map(|h| match h.source_type {
                            HitSource::Memory => format!(
                                "[memory {} | {} | key {}] {}",
                                h.id,
                                h.kind.map_or("", MemoryKind::as_str),
                                h.key.as_deref().unwrap_or(""),
                                h.content
                            ),
                            HitSource::Episode => format!(
                                "[conversation {} | {}] {}",
                                h.session_key.as_deref().unwrap_or(""),
                                h.role.as_deref().unwrap_or(""),
                                h.snippet
                            ),
                        })
                        .collect();
                    ToolOutput::text(lines.join("\n"))
                }
                Err(e) => ToolOutput::error(e.message),
            }
        })
    }
}

struct RememberTool {
    spec: ToolSpec,
    memory: Memory,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RememberArgs {
    content: String,
    kind: Option<String>,
    bucket: Option<String>,
    key: Option<String>,
}

impl Tool for RememberTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(async move {
            let args: RememberArgs = match parse_args("memory_remember", args) {
                Ok(args) => args,
                Err(e) => return e,
            };
            let request = Remember {
                content: args.content,
                bucket: args.bucket,
                kind: args.kind,
                key: args.key,
                source: MemorySource::Tool,
            };
            match self.memory.remember(ctx.namespace, request, &access(&ctx)).await {
                Ok(record) => ToolOutput::text(format!(
                    "Remembered (id {}, key {}, {} {}).",
                    record.id, record.key, record.bucket, record.kind
                )),
                Err(e) => ToolOutput::error(e.message),
            }
        })
    }
}

struct Forget {
    spec: ToolSpec,
    memory: Memory,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetArgs {
    id: Option<i64>,
    key: Option<String>,
}

impl Tool for Forget {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(async move {
            let args: ForgetArgs = match parse_args("memory_forget", args) {
                Ok(args) => args,
                Err(e) => return e,
            };
            match self
                .memory
                .forget(ctx.namespace, args.id, args.key.as_deref(), &access(&ctx))
                .await
            {
                Ok(0) => ToolOutput::error("No such memory."),
                Ok(n) => ToolOutput::text(format!(
                    "Forgot {n} memor{}.",
                    if n == 1 { "y" } else { "ies" }
                )),
                Err(e) => ToolOutput::error(e.message),
            }
        })
    }
}
