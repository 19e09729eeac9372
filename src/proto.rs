//! The generated `agentgateway.v1` types, clients and servers, and the descriptor set that
//! gRPC reflection serves.

#![allow(clippy::all, clippy::pedantic)]

tonic::include_proto!("agentgateway.v1");

/// Encoded `FileDescriptorSet` of `proto/agentgateway/v1/*.proto` (with imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/agentgateway_descriptor.bin"));
