//! The socket.io chat channel of seed 004 (GATEWAY.md §5.4) on namespace `/chat`, same port,
//! over the same session manager and slash commands as every other transport.
//!
//! Handshake auth: the token in socket.io's `auth.token` or the `Authorization` header (with
//! the `chat` scope). On connect the client gets `commands:manifest`. `message` answers
//! `session:info` and `message:ack`, then relays the run as `agent:*` events; `set:thinking`,
//! `abort` and `command:execute` do what they say. A client that leaves stops receiving; the
//! run goes on.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;

use crate::app::AppState;
use crate::auth::Operation;
use crate::domain::Caller;
use crate::domain::EventKind;
use crate::domain::{ModelRef, RunStatus, SendRequest, Snapshot, StreamingBehavior, ThinkingLevel};
use crate::error::GatewayError;
use crate::service::admin::ChannelStatus;
use crate::service::chat::{self as commands, CommandResult};
use crate::session::stream::RunItem;
use crate::session::validate_key;

/// The socket.io layer for the router, and its handle (to close every socket at shutdown).
pub fn layer(state: &AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .with_state(state.clone())
        // Room for a burst of tokens for a slow client; beyond it the relay waits.
        .max_buffer_size(1024)
        .max_payload(state.config.startup().http.max_body as u64)
        .build_layer();
    io.ns("/chat", on_connect.with(authenticate));
    (layer, io)
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The handshake: `auth.token`, else `Authorization: Bearer`. A refusal is the client's
/// `connect_error` with the gateway's message.
async fn authenticate(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let from_auth =
        auth.ok().and_then(|a| a.get("token").and_then(Value::as_str).map(String::from));
    let header = match from_auth {
        Some(token) => Some(format!("Bearer {token}").into_bytes()),
        None => socket
            .req_parts()
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec()),
    };
    let caller = state
        .auth
        .check(header.as_deref())
        .and_then(|caller| Operation::Chat.authorize(&caller).map(|()| caller))
        .map_err(|e| Refused(e.message))?;
    socket.extensions.insert(caller);
    Ok(())
}

fn caller(socket: &SocketRef) -> Caller {
    socket.extensions.get::<Caller>().unwrap_or_default()
}

fn channel_id(socket: &SocketRef) -> String {
    format!("socketio:{}", socket.id)
}

/// The client on `/channels/status`, marked active now.
fn seen(state: &AppState, socket: &SocketRef) {
    let name = match caller(socket).name {
        Some(token) => format!("socket.io /chat ({token})"),
        None => "socket.io /chat".to_string(),
    };
    let status = ChannelStatus {
        id: channel_id(socket),
        name,
        connected: true,
        last_active_at: Some(crate::domain::now_ms()),
        error: None,
    };
    state.admin.channels.client(&channel_id(socket), Some(status));
}

async fn on_connect(socket: SocketRef, State(state): State<AppState>) {
    seen(&state, &socket);
    emit(&socket, "commands:manifest", &json!({ "manifest": commands::manifest() })).await;
    socket.on("message", on_message);
    socket.on("set:thinking", on_set_thinking);
    socket.on("abort", on_abort);
    socket.on("command:execute", on_command);
    socket.on_disconnect(
        async |socket: SocketRef, State(state): State<AppState>, _: DisconnectReason| {
            state.admin.channels.client(&channel_id(&socket), None);
        },
    );
}

/// Sends one event. A full buffer (a slow client) waits for room; a closed socket is false,
/// so the relay stops. The session never waits on a client: relays read their own feed.
async fn emit<T: Serialize + ?Sized>(socket: &SocketRef, event: &str, data: &T) -> bool {
    loop {
        match socket.emit(event, data) {
            Ok(()) => return true,
            Err(socketioxide::SendError::Socket(
                socketioxide::SocketError::InternalChannelFull,
            )) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(_) => return false,
        }
    }
}

async fn error(socket: &SocketRef, conversation_id: &str, message: &str) {
    emit(socket, "error", &json!({ "conversationId": conversation_id, "error": message })).await;
}

/// `conversationId` of a payload: a valid session key, or a new UUID when `create` allows.
fn conversation(data: &Value, create: bool) -> Result<String, String> {
    match data.get("conversationId") {
        Some(Value::String(id)) => {
            validate_key(id).map_err(|e| e.message)?;
            Ok(id.clone())
        }
        None | Some(Value::Null) if create => Ok(uuid::Uuid::new_v4().to_string()),
        None | Some(Value::Null) => Err("Missing conversationId".into()),
        Some(_) => Err("conversationId must be a string".into()),
    }
}

fn session_info(snapshot: &Snapshot) -> Value {
    let levels: Vec<&str> = ThinkingLevel::ALL.iter().map(|l| l.as_str()).collect();
    json!({
        "conversationId": snapshot.session_key,
        "provider": snapshot.model_provider,
        "modelId": snapshot.model_id,
        "thinkingLevel": snapshot.thinking_level,
        "availableThinkingLevels": levels,
    })
}

/// Every event handler's start: the client is active now; the payload and its
/// `conversationId` (a new one when `create`), or `None` after telling the client what is wrong.
async fn payload(
    state: &AppState,
    socket: &SocketRef,
    data: Result<Value, socketioxide::ParserError>,
    create: bool,
) -> Option<(Value, String)> {
    seen(state, socket);
    let data = data.unwrap_or(Value::Null);
    match conversation(&data, create) {
        Ok(id) => Some((data, id)),
        Err(e) => {
            error(socket, "", &e).await;
            None
        }
    }
}

/// `message {conversationId?, content, provider?, modelId?}`.
async fn on_message(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(data): TryData<Value>,
) {
    let Some((data, conversation_id)) = payload(&state, &socket, data, true).await else {
        return;
    };
    if let Err(e) = relay_message(&socket, &state, &conversation_id, &data).await {
        error(&socket, &conversation_id, &e.message).await;
    }
}

async fn relay_message(
    socket: &SocketRef,
    state: &AppState,
    conversation_id: &str,
    data: &Value,
) -> Result<(), GatewayError> {
    let caller = caller(socket);
    let content = data
        .get("content")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| GatewayError::invalid("Missing message content"))?;
    state.sessions.ensure(&caller, conversation_id).await?;
    if let Some((command, args)) = commands::parse(content) {
        let result = state.chat.execute(&caller, conversation_id, command, &args).await?;
        emit(socket, "command:result", &command_result(conversation_id, command, result)).await;
        return Ok(());
    }
    let text = |field| data.get(field).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let (Some(provider), Some(model_id)) = (text("provider"), text("modelId")) {
        let model = ModelRef { provider: provider.into(), model_id: model_id.into() };
        state.sessions.set_model(&caller, conversation_id, model).await?;
    }
    let snapshot = state.sessions.get(&caller, conversation_id).await?;
    let request = SendRequest {
        source: crate::domain::Source::Socketio,
        session_key: conversation_id.to_string(),
        text: content.to_string(),
        images: Vec::new(),
        behavior: StreamingBehavior::FollowUp,
        idempotency_key: None,
        caller,
    };
    let (accepted, mut run) = state.chat.send_stream(request).await?;
    if !emit(socket, "session:info", &session_info(&snapshot)).await {
        return Ok(());
    }
    let ack = json!({ "conversationId": conversation_id, "messageId": accepted.message_id });
    emit(socket, "message:ack", &ack).await;
    let usage = |input: u64, output: u64| {
        json!({
            "provider": snapshot.model_provider,
            "modelId": snapshot.model_id,
            "thinkingLevel": snapshot.thinking_level,
            "inputTokens": input,
            "outputTokens": output,
            "tokens": { "input": input, "output": output, "total": input + output },
        })
    };
    while let Some(item) = run.next().await {
        let (event, payload) = match item {
            RunItem::Event(event) => match &event.kind {
                EventKind::AgentStart { .. } => ("agent:start", json!({})),
                EventKind::Token { delta, .. } => ("agent:text", json!({ "text": delta })),
                EventKind::Thinking { delta, .. } => ("agent:thinking", json!({ "text": delta })),
                EventKind::ToolStart { tool_call_id, tool_name, .. } => (
                    "agent:tool:start",
                    json!({ "toolCallId": tool_call_id, "toolName": tool_name }),
                ),
                EventKind::ToolComplete { tool_call_id, tool_name, is_error, .. } => (
                    "agent:tool:end",
                    json!({ "toolCallId": tool_call_id, "toolName": tool_name, "isError": is_error }),
                ),
                EventKind::AgentEnd { usage: u, .. } => {
                    ("agent:end", json!({ "usage": usage(u.input_tokens, u.output_tokens) }))
                }
                _ => continue,
            },
            // An abort is the client's own doing; anything else that ended the run badly is
            // an `error`.
            RunItem::Outcome(outcome) => match (outcome.status, outcome.error) {
                (Some(RunStatus::Aborted), _) => continue,
                (_, Some(error)) if !outcome.ok => ("error", json!({ "error": error })),
                _ => continue,
            },
            RunItem::Stopped => {
                ("error", json!({ "error": GatewayError::shutting_down().message }))
            }
        };
        let mut payload = payload;
        payload["conversationId"] = json!(conversation_id);
        if !emit(socket, event, &payload).await {
            // The client left: it stops receiving, the run goes on.
            break;
        }
    }
    Ok(())
}

fn command_result(conversation_id: &str, command: &str, result: CommandResult) -> Value {
    let mut value = json!(result);
    value["conversationId"] = json!(conversation_id);
    value["command"] = json!(command);
    value
}

/// `set:thinking {conversationId, level}`: `session:info` when set, else an `error` that
/// lists the valid levels.
async fn on_set_thinking(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(data): TryData<Value>,
) {
    let Some((data, conversation_id)) = payload(&state, &socket, data, false).await else {
        return;
    };
    let caller = caller(&socket);
    if state.sessions.get(&caller, &conversation_id).await.is_err() {
        return error(&socket, &conversation_id, "No active session for this conversation.").await;
    }
    let text = data.get("level").and_then(Value::as_str).unwrap_or_default();
    let Some(level) = ThinkingLevel::parse(text) else {
        let valid: Vec<&str> = ThinkingLevel::ALL.iter().map(|l| l.as_str()).collect();
        let message = format!("Invalid thinking level \"{text}\". Available: {}", valid.join(", "));
        return error(&socket, &conversation_id, &message).await;
    };
    match state.sessions.set_thinking(&caller, &conversation_id, level).await {
        Ok(_) => match state.sessions.get(&caller, &conversation_id).await {
            Ok(snapshot) => {
                emit(&socket, "session:info", &session_info(&snapshot)).await;
            }
            Err(e) => error(&socket, &conversation_id, &e.message).await,
        },
        Err(e) => error(&socket, &conversation_id, &e.message).await,
    }
}

/// `abort {conversationId}`: the run's own events say it ended.
async fn on_abort(socket: SocketRef, State(state): State<AppState>, TryData(data): TryData<Value>) {
    let Some((_, conversation_id)) = payload(&state, &socket, data, false).await else {
        return;
    };
    if state.sessions.abort(&caller(&socket), &conversation_id).await.is_err() {
        error(&socket, &conversation_id, "No active session to abort.").await;
    }
}

/// `command:execute {conversationId, command, args}` → `command:result`.
async fn on_command(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(data): TryData<Value>,
) {
    let Some((data, conversation_id)) = payload(&state, &socket, data, false).await else {
        return;
    };
    let command = data.get("command").and_then(Value::as_str).unwrap_or_default();
    let args = data.get("args").and_then(Value::as_str).unwrap_or_default();
    let result = match state.chat.execute(&caller(&socket), &conversation_id, command, args).await {
        Ok(result) => result,
        Err(e) => CommandResult { ok: false, output: e.message, data: None },
    };
    let command = command.trim_start_matches('/');
    emit(&socket, "command:result", &command_result(&conversation_id, command, result)).await;
}
