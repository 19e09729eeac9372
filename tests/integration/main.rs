//! The one integration test binary: every test starts a real gateway on `127.0.0.1:0` and
//! talks to it with real clients (reqwest, tonic, grpcurl, the binary itself).

mod common;

mod acknowledged;
mod admin;
mod agent;
mod auth;
mod binary;
mod commands;
mod confinement;
mod context;
mod disk_full;
mod durability;
mod edge;
mod events;
mod golden;
mod grpc_chat;
mod grpc_sessions;
mod grpcurl;
mod hostile;
mod idempotency;
mod isolation;
mod malformed;
mod memory;
mod openapi;
mod postgres;
mod providers;
mod queue;
mod rest;
mod resume;
mod sandbox;
mod sse;
mod tls;
mod tools;
mod v1;
mod vercel;
mod webhook;
