//! The store: sessions, history, the message queue with each message's state, the last `seq`
//! per key, and idempotency records, kept across restarts (GATEWAY.md §2 "accepted means
//! durable", "crash semantics").
//!
//! The session manager talks to a [`Store`] trait, implemented by SQLite ([`sqlite`], the
//! default) and PostgreSQL ([`postgres`], `store_url`), both held to one test suite (`suite`).
//! Writes are *batches* of [`Op`]s, applied in the order they were submitted, each batch
//! atomically: a session's critical section becomes one batch, so a failure never leaves half
//! of it on disk. Submitting never blocks; the returned [`Ticket`] resolves once the batch is
//! durable, and callers that promised durability (an accepted message, a started run) wait on
//! it. Reads go through the same ordered queue, so they always see every write submitted
//! before them.

mod images;
pub mod memory;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod suite;

use std::fmt;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::domain::{HistoryMessage, Image, SessionMeta, Source};
use crate::error::GatewayError;

pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A failed store operation. The message is SQLite's (or the driver's), e.g. "database or disk
/// is full", so operators can act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    pub message: String,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    fn closed() -> Self {
        Self::new("the store is closed")
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for GatewayError {
    /// Nothing was accepted: the caller may retry once the store recovers.
    fn from(error: StoreError) -> Self {
        GatewayError::unavailable(format!("Store unavailable: {error}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Resolves when a submitted batch is durable (or failed, with nothing of it written).
#[must_use = "dropping a ticket is fine only when nobody promised durability"]
pub struct Ticket(oneshot::Receiver<StoreResult<()>>);

impl Ticket {
    pub fn new() -> (oneshot::Sender<StoreResult<()>>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self(rx))
    }

    /// A ticket that is already resolved (nothing to write).
    pub fn done() -> Self {
        let (tx, ticket) = Self::new();
        let _ = tx.send(Ok(()));
        ticket
    }

    pub async fn wait(self) -> StoreResult<()> {
        self.0.await.unwrap_or_else(|_| Err(StoreError::closed()))
    }
}

/// A session's metadata row.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    pub key: String,
    pub meta: SessionMeta,
    /// Position of the first history message still kept (history cursors are positions).
    pub history_base: u64,
    pub message_count: u64,
    pub preview: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageState {
    /// Accepted, waiting for its run.
    Queued,
    /// Its run has begun (recorded before the first model call).
    Started,
    /// Its run ended, or it was cancelled, cleared or rejected.
    Done,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Started => "started",
            MessageState::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(MessageState::Queued),
            "started" => Some(MessageState::Started),
            "done" => Some(MessageState::Done),
            _ => None,
        }
    }
}

/// An accepted message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    pub message_id: String,
    pub session_key: String,
    /// Steering text: the message id of the run it joined.
    pub joined: Option<String>,
    pub text: String,
    pub images: Vec<Image>,
    pub state: MessageState,
    /// The transport it came by.
    pub source: Source,
    pub created_at: i64,
    /// The in-flight part of a started run, so a crash keeps its partial text.
    pub checkpoint: Option<Checkpoint>,
}

/// What a running run has produced that is not in history yet: the assistant draft and the
/// results of tools that finished in the current turn.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub draft: Option<HistoryMessage>,
    pub pending_tools: Vec<HistoryMessage>,
}

/// The outcome recorded for an idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyRecord {
    /// Who may replay it (the token's name; empty for the shared bearer token).
    pub scope: String,
    pub key: String,
    pub session_key: String,
    pub message_id: String,
    /// The first call's outcome as JSON, once known.
    pub outcome: Option<String>,
    pub created_at: i64,
}

/// One change. Batches of these are applied in order, each batch atomically.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Inserts or replaces the session's metadata row.
    PutSession(SessionRecord),
    /// The highest `seq` the key may have used (kept when the session is deleted).
    Seq {
        key: String,
        seq: u64,
    },
    AppendHistory {
        key: String,
        position: u64,
        message: HistoryMessage,
    },
    ClearHistory {
        key: String,
    },
    /// Removes the session, its history and its messages; its `seq` stays.
    DeleteSession {
        key: String,
    },
    /// Records an accepted message (queued, or started when it steers into a run).
    Accept(MessageRecord),
    /// Queued → started. Fails unless the message is queued, so a message is started once.
    Start {
        message_id: String,
    },
    Checkpoint {
        message_id: String,
        checkpoint: Checkpoint,
    },
    /// → done, with the error its callers got, if any; the checkpoint is dropped.
    Finish {
        message_id: String,
        error: Option<String>,
    },
    PutIdempotency(IdempotencyRecord),
    /// Forgets finished messages and idempotency records created before `before` (Unix ms).
    Prune {
        before: i64,
    },
    /// The live config patches (`PATCH /config`, a JSON object of dotted keys), replacing
    /// the ones stored before.
    PutLiveConfig(String),
}

/// A key as the store knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    /// The highest `seq` the key may have used; a new event log continues above it.
    pub seq: u64,
    pub session: Option<StoredSession>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    /// The row, its `message_count` as the history table has it.
    pub record: SessionRecord,
    /// History from the user message of a run a crash left started to the end, for closing
    /// it; empty otherwise. A load never reads the rest of history (it stays in the store).
    pub open_tail: Vec<HistoryMessage>,
    /// Queued and started messages, in the order they were accepted.
    pub messages: Vec<MessageRecord>,
    /// Idempotency records of this session's messages whose outcome is not known yet.
    pub idempotency: Vec<IdempotencyRecord>,
}

/// Where sessions live. Implementations apply batches in submission order, each atomically,
/// and answer reads after every write submitted before them.
pub trait Store: memory::MemoryStore + Send + Sync + 'static {
    /// Submits a batch; never blocks. The ticket resolves when it is durable.
    fn write(&self, batch: Vec<Op>) -> Ticket;
    /// The key's row, seq, unfinished messages and their idempotency records, and the open
    /// tail of history ([`StoredSession::open_tail`]): never the whole history.
    fn load(&self, key: &str) -> BoxFuture<'_, StoreResult<Stored>>;
    /// History messages at positions `from..to` (positions count from the session's first
    /// message ever; cleared ones are gone), in order.
    fn history(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<HistoryMessage>>>;
    /// Sessions, newest activity first, strictly after `(last_active_at, key)` in that order.
    /// Newest activity first, after the `(last_active_at, key)` cursor; with `owner`, only the
    /// sessions that token created.
    fn list(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
        owner: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>>;
    /// How many sessions are stored.
    fn count_sessions(&self) -> BoxFuture<'_, StoreResult<u64>>;
    /// Keys with queued or started messages: the work a restart must pick up.
    fn pending_sessions(&self) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> BoxFuture<'_, StoreResult<Option<IdempotencyRecord>>>;
    /// Whether `key` is stored, and then the token that created it: `Some(owner)`.
    fn owner(&self, key: &str) -> BoxFuture<'_, StoreResult<Option<Option<String>>>>;
    /// The live config patches stored by [`Op::PutLiveConfig`], if any.
    fn live_config(&self) -> BoxFuture<'_, StoreResult<Option<String>>>;
    /// Applies everything submitted so far and closes; later writes fail.
    fn close(&self) -> BoxFuture<'_, StoreResult<()>>;
    /// For logs: where the data lives.
    fn describe(&self) -> String;
}
