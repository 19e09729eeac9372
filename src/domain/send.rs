//! Sending calls and their answers: the request every transport builds, what it gets at once
//! (`Accepted`) and at the end (`RunOutcome`), and explicit creation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Caller;
use super::message::Image;
use super::run::RunStatus;
use super::session::ModelRef;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamingBehavior {
    /// Queue behind whatever runs (the default).
    #[default]
    FollowUp,
    /// Join the running run at its next model call; queue when idle.
    Steer,
}

/// The transport a message came in by (shown in the queue listing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `POST /sessions/:key/messages` and the other seed REST routes.
    #[default]
    Rest,
    Grpc,
    Webhook,
    /// The v1 conversation API and its adapter routes.
    V1,
    /// The Vercel AI SDK chat route.
    Vercel,
    Socketio,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rest => "rest",
            Source::Grpc => "grpc",
            Source::Webhook => "webhook",
            Source::V1 => "v1",
            Source::Vercel => "vercel",
            Source::Socketio => "socketio",
        }
    }

    /// A stored value; unknown ones (older rows) read as `rest`.
    pub fn parse(text: &str) -> Self {
        [Source::Grpc, Source::Webhook, Source::V1, Source::Vercel, Source::Socketio]
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or_default()
    }
}

/// A sending call: messages, webhook, SendMessage/StreamChat.
#[derive(Clone, Debug, Default)]
pub struct SendRequest {
    /// Which transport it came by.
    pub source: Source,
    pub session_key: String,
    pub text: String,
    pub images: Vec<Image>,
    pub behavior: StreamingBehavior,
    /// From `idempotencyKey`, the `Idempotency-Key` header or `idempotency_key`.
    pub idempotency_key: Option<String>,
    /// Who sends: a new session is theirs; one they may not see is 404.
    pub caller: Caller,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// Waits in the queue for its own run.
    Queued,
    /// Joined the running run.
    Steer,
}

/// What a sending call gets at once: its message id and whether it queued or steered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub session_key: String,
    pub message_id: String,
    pub mode: SendMode,
    /// A repeat of an earlier call with the same idempotency key: the message is that call's,
    /// and nothing new runs.
    pub repeat: bool,
}

/// The end of a run as its callers see it (`{ok, response, error?, sessionKey, messageId}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub ok: bool,
    pub response: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub session_key: String,
    pub message_id: String,
    /// How the message's run ended, typed, for transports that tell an abort or a failure's
    /// code apart. `None` when it never ran (cancelled, cleared, reset) or when the outcome was
    /// read back from the store (an idempotent repeat): not part of the JSON.
    #[serde(skip)]
    pub status: Option<RunStatus>,
}

impl RunOutcome {
    /// The outcome of a run that ended with `status`: the reply only when it completed.
    pub fn of_run(
        status: RunStatus,
        response: String,
        session_key: impl Into<String>,
        message_id: impl Into<String>,
    ) -> Self {
        let ok = status.is_completed();
        Self {
            ok,
            response: if ok { response } else { String::new() },
            error: status.error().map(str::to_string),
            session_key: session_key.into(),
            message_id: message_id.into(),
            status: Some(status),
        }
    }

    /// A failure with no typed end: the message never ran (cancelled, cleared, reset), or
    /// its run is not known here (a repeat of a message a crash cut short).
    pub fn failed(
        error: impl Into<String>,
        session_key: impl Into<String>,
        message_id: impl Into<String>,
    ) -> Self {
        Self {
            ok: false,
            response: String::new(),
            error: Some(error.into()),
            session_key: session_key.into(),
            message_id: message_id.into(),
            status: None,
        }
    }
}

/// Explicit creation (`CreateSession`, `POST /v1/conversations`).
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    /// None: a new UUID.
    pub session_key: Option<String>,
    pub name: Option<String>,
    pub model: Option<ModelRef>,
    pub memory_namespace: Option<String>,
    /// Who creates it: the session records the token's name as its owner.
    pub caller: Caller,
}
