//! Thin gRPC adapters: one per proto service, each unwrapping the request, calling the session
//! manager, and wrapping the answer. No rule of the domain is written here.

mod admin;
mod chat;
pub mod convert;
mod memory;
mod sessions;
mod subscribe;

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

use crate::app::AppState;
use crate::auth::Auth;
use crate::proto::admin_server::AdminServer;
use crate::proto::chat_server::ChatServer;
use crate::proto::memory_server::MemoryServer;
use crate::proto::sessions_server::SessionsServer;

/// Our services, as named in health checks and reflection.
pub const SERVICE_NAMES: &[&str] = &[
    "agentgateway.v1.Sessions",
    "agentgateway.v1.Chat",
    "agentgateway.v1.Memory",
    "agentgateway.v1.Admin",
];

/// Largest gRPC message accepted or sent (GATEWAY.md §8).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Checks `authorization: Bearer <token>` metadata. Health and reflection are not wrapped.
#[derive(Clone)]
pub struct AuthInterceptor(Auth);

impl Interceptor for AuthInterceptor {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let header = request.metadata().get("authorization").map(|v| v.as_bytes());
        self.0.check(header)?;
        Ok(request)
    }
}

pub struct Services {
    pub sessions: InterceptedService<subscribe::SessionsService, AuthInterceptor>,
    pub chat: InterceptedService<ChatServer<chat::ChatApi>, AuthInterceptor>,
    pub memory: InterceptedService<MemoryServer<memory::MemoryApi>, AuthInterceptor>,
    pub admin: InterceptedService<AdminServer<admin::AdminApi>, AuthInterceptor>,
}

pub fn services(state: &AppState) -> Services {
    let auth = AuthInterceptor(state.auth.clone());
    Services {
        sessions: InterceptedService::new(
            subscribe::SessionsService::new(
                SessionsServer::new(sessions::SessionsApi::new(state.clone()))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
                state.clone(),
                MAX_MESSAGE,
            ),
            auth.clone(),
        ),
        chat: InterceptedService::new(
            ChatServer::new(chat::ChatApi::new(state.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            auth.clone(),
        ),
        memory: InterceptedService::new(MemoryServer::new(memory::MemoryApi), auth.clone()),
        admin: InterceptedService::new(AdminServer::new(admin::AdminApi::new(state.clone())), auth),
    }
}
