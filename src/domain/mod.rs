//! The vocabulary every layer shares: history messages and their parts, sessions as clients see
//! them, sending calls and their outcomes, events, memory records, how a run ended, and who is
//! calling. It depends on nothing of the gateway but [`crate::error`]; everything else builds
//! on it.

pub mod caller;
pub mod event;
pub mod memory;
pub mod message;
pub mod run;
pub mod send;
pub mod session;
pub mod tools;

pub use caller::{Caller, RunPermit, Scope};
pub use event::{Event, EventKind};
pub use memory::{
    HitSource, MemoryBucket, MemoryCounts, MemoryKind, MemoryRecord, MemorySource, NewMemory,
    SearchHit,
};
pub use message::{HistoryMessage, Image, Part, Role, ToolState};
pub use run::{ABORTED, FailureCode, Interruption, RunEnd, RunStatus};
pub use send::{
    Accepted, CreateRequest, RunOutcome, SendMode, SendRequest, Source, StreamingBehavior,
};
pub use session::{
    ModelRef, Page, QueueView, QueuedMessage, SessionMeta, SessionStateView, Snapshot,
    SnapshotCounts, ThinkingLevel, Usage, now_ms,
};
pub use tools::ToolSet;
