//! agent-gateway hosts long-lived AI agent sessions and serves them gRPC-first.
//!
//! One port carries native gRPC, grpc-web, reflection, health and an HTTP bridge (REST, SSE,
//! webhooks). Every transport is a thin adapter over one [`session::SessionManager`], which
//! owns each session's history, FIFO queue, event log and run driver; runs go through the
//! [`agent`] loop (providers and tools behind traits) and are kept in the [`store`]. Data flows
//! one way: transport → session manager → agent / store; events flow back on channels.
//!
//! # Layout
//! Lowest layer first; a module imports only from the layers above it in this list (the test
//! command checks it with `layers.py --order`):
//! - [`error`]: the one error type and its gRPC/HTTP status table.
//! - [`proto`]: generated types and the reflection descriptor set; [`allocator`] the allocator
//!   statistics of `jemalloc` builds; [`telemetry`]: tracing, the log ring, request ids and
//!   Prometheus metrics.
//! - [`domain`]: the vocabulary every layer shares (messages, snapshots, sending calls and
//!   outcomes, events, memory records, run ends, the caller and its scopes, tool names).
//! - [`config`]: defaults < TOML file < environment < command line, validated once; live patches.
//! - [`auth`]: the token table and the operation → scope table.
//! - [`store`]: the `Store` trait, its batches of `Op`s, and its two backends, `sqlite/` and
//!   `postgres/` (each: one ordered queue with group commit, writes, reads, full-text search,
//!   versioned migrations), held to one test suite (`suite/`).
//! - [`memory`]: long-term memory rules (namespaces, remember, forget, ranked search).
//! - [`agent`]: the agent loop, providers (`echo`, OpenAI-compatible, Anthropic), confined tools
//!   and the sandbox of the processes they start.
//! - [`session`]: the session manager, per-session state, run driver, event log and streams.
//! - [`service`]: what both transports call: chat and slash commands, memory, admin.
//! - [`tls`] and [`app`]: the TLS acceptor; `AppState`, the wiring.
//! - [`grpc`]: one adapter per proto service, plus the auth guard; [`http`]: REST routes, SSE,
//!   v1, Vercel, socket.io, webhooks.
//! - [`server`]: `run(listener, state, shutdown)`, the one-port router and accept loop.
#![forbid(unsafe_code)]

pub mod agent;
pub mod allocator;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod memory;
pub mod proto;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tls;
