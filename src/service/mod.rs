//! What both transports call above the session manager: the sending API and the slash
//! commands ([`chat`]), the memory API ([`memory`]) and the operators' API ([`admin`]). The
//! gRPC and HTTP adapters hold these and translate; no rule is written in an adapter.

pub mod admin;
pub mod chat;
pub mod memory;

pub use admin::{AdminService, ChannelStatus, Channels};
pub use chat::ChatService;
pub use memory::MemoryService;
