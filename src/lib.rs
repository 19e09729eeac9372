//! agent-gateway hosts long-lived AI agent sessions and serves them gRPC-first.
//!
//! One port carries native gRPC, grpc-web, reflection, health and an HTTP bridge (REST, SSE,
//! webhooks). Every transport is a thin adapter over one [`session::SessionManager`], which
//! owns each session's history, FIFO queue, event log and run driver; runs go through the
//! [`agent`] loop (providers and tools behind traits) and are kept in the [`store`]. Data flows
//! one way: transport → session manager → agent / store; events flow back on channels.
//!
//! # Layout
//! - [`config`]: defaults < TOML file < environment < command line, validated once.
//! - [`error`]: the one error type and its gRPC/HTTP status table.
//! - [`server`]: `run(listener, state, shutdown)`, the one-port router and the accept loop with
//!   its connection, header and body limits; [`tls`] for TLS on it.
//! - [`session`]: the session manager, queue, run driver, event log and streams.
//! - [`store`]: the `Store` trait and its SQLite implementation (sessions, history, the
//!   message queue with each message's state, seqs), with versioned migrations.
//! - [`agent`]: the agent loop, providers (`echo`, OpenAI-compatible, Anthropic), tools.
//! - [`memory`]: long-term memory (namespaces, remember, forget, ranked search) and the
//!   memory API both transports call.
//! - [`auth`]: callers, tokens and scopes.
//! - [`commands`]: slash commands, and the sending API that runs them for every transport.
//! - [`admin`]: public config, live patches, channels, logs and metrics for operators.
//! - [`telemetry`]: tracing, the log ring, request ids and Prometheus metrics; [`allocator`]
//!   the allocator statistics of `jemalloc` builds.
//! - [`grpc`]: one adapter per proto service, plus the auth guard.
//! - [`http`]: REST routes, SSE, webhook, request extraction.
//! - [`proto`]: generated types and the reflection descriptor set.
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
