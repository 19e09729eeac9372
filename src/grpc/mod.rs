//! Thin gRPC adapters: one per proto service, each holding only the services it calls,
//! unwrapping the request, calling them, and wrapping the answer. No rule of the domain is
//! written here.

mod admin;
mod chat;
pub mod convert;
pub mod guard;
pub mod malformed;
mod memory;
mod sessions;
mod subscribe;

use crate::app::AppState;
use crate::proto::admin_server::AdminServer;
use crate::proto::chat_server::ChatServer;
use crate::proto::memory_server::MemoryServer;
use crate::proto::sessions_server::SessionsServer;
use guard::Guarded;

/// Our services, as named in health checks and reflection.
pub const SERVICE_NAMES: &[&str] = &[
    "agentgateway.v1.Sessions",
    "agentgateway.v1.Chat",
    "agentgateway.v1.Memory",
    "agentgateway.v1.Admin",
];

/// Largest gRPC message accepted or sent (GATEWAY.md §8); tonic's default, which the services
/// that do not set it (memory, admin, health, reflection) have too.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

pub struct Services {
    pub sessions: Guarded<subscribe::SessionsService>,
    pub chat: Guarded<ChatServer<chat::ChatApi>>,
    pub memory: Guarded<MemoryServer<memory::MemoryApi>>,
    pub admin: Guarded<AdminServer<admin::AdminApi>>,
}

pub fn services(state: &AppState) -> Services {
    let auth = state.auth.clone();
    Services {
        sessions: Guarded::new(
            subscribe::SessionsService::new(
                SessionsServer::new(sessions::SessionsApi::new(state.sessions.clone()))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
                state.sessions.clone(),
                MAX_MESSAGE,
            ),
            auth.clone(),
        ),
        chat: Guarded::new(
            ChatServer::new(chat::ChatApi::new(state.chat.clone(), state.sessions.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            auth.clone(),
        ),
        memory: Guarded::new(
            MemoryServer::new(memory::MemoryApi::new(state.memory.clone())),
            auth.clone(),
        ),
        admin: Guarded::new(
            AdminServer::new(admin::AdminApi::new(
                state.admin.clone(),
                state.sessions.clone(),
                state.shutdown.clone(),
            )),
            auth,
        ),
    }
}
