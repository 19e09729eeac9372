//! The stand-ins the agent's tests run against: a scripted [`Provider`], a tool, a fake
//! [`RunHost`] that records what it is told, and an [`Agent`] built around them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::super::provider::{
    ModelInfo, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream, ToolSpec,
};
use super::super::registry::{ModelEntry, Registry};
use super::super::retry::RetryPolicy;
use super::super::sandbox::SandboxMode;
use super::super::tools::{Tool, ToolContext, ToolOutput, Workspace};
use super::super::{Agent, RunHost};
use crate::domain::{
    EventKind, HistoryMessage, Interruption, ModelRef, Part, Role, RunEnd, ThinkingLevel,
};
use crate::memory::Memory;
use crate::store::SqliteStore;

/// One model call's items; with `hang`, the stream then waits forever (a slow model).
pub(super) struct Turn {
    pub(super) items: Vec<Result<ProviderEvent, ProviderError>>,
    pub(super) hang: bool,
}

pub(super) fn turn(items: Vec<Result<ProviderEvent, ProviderError>>) -> Turn {
    Turn { items, hang: false }
}

/// Answers each model call with the next scripted turn, and keeps the requests.
pub(super) struct Scripted {
    turns: Mutex<VecDeque<Turn>>,
    pub(super) requests: Mutex<Vec<ModelRequest>>,
}

impl Provider for Scripted {
    fn name(&self) -> &str {
        "test"
    }

    fn models(&self) -> Vec<ModelInfo> {
        Vec::new()
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        self.requests.lock().unwrap().push(request);
        let Some(Turn { items, hang }) = self.turns.lock().unwrap().pop_front() else {
            return stream::iter([Err(ProviderError::fatal("nothing scripted"))]).boxed();
        };
        let items = stream::iter(items);
        if hang { items.chain(stream::pending()).boxed() } else { items.boxed() }
    }
}

/// `upper {text}`: one progress update, then the text in capitals. `stall` never answers.
pub(super) struct Upper {
    spec: ToolSpec,
}

impl Tool for Upper {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(async move {
            if self.spec.name == "stall" {
                return std::future::pending().await;
            }
            (ctx.update)(json!({"progress": ctx.namespace}));
            ToolOutput::text(args["text"].as_str().unwrap_or_default().to_uppercase())
        })
    }
}

pub(super) fn tool(name: &str) -> Arc<dyn Tool> {
    let parameters = json!({"type": "object"});
    Arc::new(Upper { spec: ToolSpec { name: name.into(), description: String::new(), parameters } })
}

/// What the host was told, in order: events, and each finished message with its error part.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Told {
    Event(EventKind),
    Finished { text: String, error: Option<Part> },
}

/// A session stand-in: a fixed context, the draft's text from the tokens, and optionally a
/// cancellation (abort or interruption) when a given event arrives.
#[derive(Default)]
pub(super) struct FakeHost {
    told: Mutex<Vec<Told>>,
    draft: Mutex<String>,
    cancel_on: Option<(&'static str, CancellationToken, Option<Interruption>)>,
    interrupted: Mutex<Option<Interruption>>,
}

impl FakeHost {
    pub(super) fn cancelling_on(
        event: &'static str,
        cancel: &CancellationToken,
        why: Option<Interruption>,
    ) -> Self {
        Self { cancel_on: Some((event, cancel.clone(), why)), ..Self::default() }
    }

    pub(super) fn told(&self) -> Vec<Told> {
        self.told.lock().unwrap().clone()
    }

    /// The event types in order, finished messages as `finished`.
    pub(super) fn names(&self) -> Vec<String> {
        self.told()
            .iter()
            .map(|told| match told {
                Told::Event(event) => type_of(event),
                Told::Finished { .. } => "finished".into(),
            })
            .collect()
    }

    pub(super) fn finished(&self) -> Vec<(String, Option<Part>)> {
        let finished = self.told().into_iter().filter_map(|told| match told {
            Told::Finished { text, error } => Some((text, error)),
            Told::Event(_) => None,
        });
        finished.collect()
    }

    pub(super) fn events(&self, kind: &str) -> Vec<EventKind> {
        let events = self.told().into_iter().filter_map(|told| match told {
            Told::Event(event) if type_of(&event) == kind => Some(event),
            _ => None,
        });
        events.collect()
    }
}

pub(super) fn type_of(event: &EventKind) -> String {
    serde_json::to_value(event).unwrap()["type"].as_str().unwrap().to_string()
}

impl RunHost for FakeHost {
    fn emit(&self, event: EventKind) {
        if let EventKind::Token { delta, .. } = &event {
            self.draft.lock().unwrap().push_str(delta);
        }
        let name = type_of(&event);
        self.told.lock().unwrap().push(Told::Event(event));
        if let Some((on, cancel, why)) = &self.cancel_on
            && *on == name
        {
            *self.interrupted.lock().unwrap() = *why;
            cancel.cancel();
        }
    }

    /// An earlier exchange, then the message of this run.
    fn context(&self) -> Vec<HistoryMessage> {
        let message = |id: &str, role, text: &str| HistoryMessage {
            id: id.into(),
            role,
            parts: vec![Part::Text { text: text.into() }],
            timestamp: 1,
        };
        vec![
            message("u1", Role::User, "hi"),
            message("a1", Role::Assistant, "hello"),
            message("u2", Role::User, "again"),
        ]
    }

    fn system_prompt(&self) -> String {
        "You are under test.".into()
    }

    fn memory_namespace(&self) -> String {
        "ns".into()
    }

    fn episodes_of(&self) -> Option<String> {
        None
    }

    fn compact(&self, _first_kept: &str, _summary: String, summary_tokens: u64) {
        self.emit(EventKind::CompactionEnd { summary_tokens });
    }

    fn finish_message(&self, error: Option<Part>) -> String {
        let text = std::mem::take(&mut *self.draft.lock().unwrap());
        self.told.lock().unwrap().push(Told::Finished { text: text.clone(), error });
        text
    }

    fn take_steering(&self, _close_if_none: bool) -> usize {
        0
    }

    fn interrupted(&self) -> Option<Interruption> {
        *self.interrupted.lock().unwrap()
    }
}

/// An agent whose one model (`test/scripted`) plays `turns`, with the given tools.
pub(super) struct Bench {
    pub(super) agent: Agent,
    pub(super) provider: Arc<Scripted>,
    _workspace: tempfile::TempDir,
}

pub(super) fn bench(turns: Vec<Turn>, tools: Vec<Arc<dyn Tool>>) -> Bench {
    let provider =
        Arc::new(Scripted { turns: Mutex::new(turns.into()), requests: Mutex::new(Vec::new()) });
    let info = ModelInfo {
        provider: "test".into(),
        model_id: "scripted".into(),
        display_name: "Scripted".into(),
        capabilities: Vec::new(),
    };
    let entry = ModelEntry { info, provider: provider.clone(), context_window: u64::MAX };
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent {
        registry: Registry { models: vec![entry], default_model: model() },
        tools,
        max_steps: 8,
        system_prompt: "unused: the host has the session's prompt".into(),
        workspace: Arc::new(Workspace::new(dir.path(), &[]).unwrap()),
        sandbox_mode: SandboxMode::None,
        memory: Memory::new(Arc::new(SqliteStore::in_memory())),
        retry: RetryPolicy {
            max_retries: 0,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        call_timeout: Duration::from_secs(30),
        compact_at_percent: 80,
    };
    Bench { agent, provider, _workspace: dir }
}

pub(super) fn model() -> ModelRef {
    ModelRef { provider: "test".into(), model_id: "scripted".into() }
}

pub(super) async fn run(bench: &Bench, host: &FakeHost, cancel: &CancellationToken) -> RunEnd {
    bench.agent.run(host, &model(), ThinkingLevel::Off, cancel).await
}

pub(super) fn text(delta: &str) -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::TextDelta { content_index: 0, delta: delta.into() })
}

/// A complete tool call `upper {text}` (start, one argument fragment, end).
pub(super) fn call(id: &str, name: &str, text: &str) -> Vec<Result<ProviderEvent, ProviderError>> {
    let args = json!({ "text": text });
    vec![
        Ok(ProviderEvent::ToolCallStart { id: id.into(), name: name.into() }),
        Ok(ProviderEvent::ToolCallDelta { id: id.into(), delta: args.to_string() }),
        Ok(ProviderEvent::ToolCallEnd { id: id.into(), name: name.into(), args }),
    ]
}

pub(super) fn error_part(code: &str, message: &str) -> Option<Part> {
    Some(Part::Error { code: code.into(), message: message.into() })
}
