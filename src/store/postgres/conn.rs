//! The one connection: connecting (with the advisory lock that keeps a second gateway off the
//! same schema), prepared statements cached per connection, transactions as plain `BEGIN` /
//! `SAVEPOINT` / `COMMIT` on it, and driver errors turned into [`StoreError`]s that say what
//! the server said (never the password: the driver's errors do not carry the URL).

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};
use tracing::warn;

use crate::store::{StoreError, StoreResult};

/// Params of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// How long a connection attempt may take (the URL's `connect_timeout` wins).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening waits for another gateway's lock to go (a process killed a moment ago
/// still holds it until its server process notices).
const LOCK_WAIT: Duration = Duration::from_secs(5);

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::new(describe_error(&error))
    }
}

/// The server's own message when there is one ("ERROR: duplicate key value ..."), else the
/// driver's kind and cause ("error connecting to server: Connection refused").
pub(super) fn describe_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// A column of a row, or a [`StoreError`] naming the column (never a panic).
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(|e| StoreError::new(format!("stored column {index}: {e}")))
}

/// A live connection with its statement cache.
pub(super) struct Db {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// The server ended this connection (an admin command, a restart, a lost socket): the
    /// next request connects again.
    broken: bool,
}

impl Db {
    /// Connects and takes the schema's lock. `config` has no TLS: `sslmode` is `disable` or
    /// `prefer` (checked when the URL is parsed).
    pub(super) async fn connect(config: &Config) -> StoreResult<Self> {
        let mut config = config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %describe_error(&e), "postgres connection ended");
            }
        });
        let db = Self { client, statements: HashMap::new(), broken: false };
        db.lock().await?;
        Ok(db)
    }

    /// The session-level advisory lock of this schema, held as long as the connection is: one
    /// gateway per schema, as SQLite's exclusive lock is one gateway per file.
    async fn lock(&self) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let row = self
                .client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtext('agent-gateway '
                         || COALESCE(current_schema()::TEXT, '')))",
                    &[],
                )
                .await?;
            if get::<bool>(&row, 0)? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::new(
                    "the database is in use by another agent-gateway (its advisory lock is held)",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether this connection is gone and must be made again.
    pub(super) fn is_lost(&self) -> bool {
        self.broken || self.client.is_closed()
    }

    /// The error as a [`StoreError`], noting when it means the connection is gone: anything
    /// but the server's answer (closed, I/O, protocol), or the server's "connection exception"
    /// and "operator intervention" classes (08, 57P: shutdown, terminated backend).
    fn check(&mut self, error: tokio_postgres::Error) -> StoreError {
        match error.code().map(|c| c.code()) {
            None => self.broken = true,
            Some(code) if code.starts_with("08") || code.starts_with("57P") => self.broken = true,
            Some(_) => {}
        }
        StoreError::from(error)
    }

    async fn statement(&mut self, sql: &'static str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let prepared = self.client.prepare(sql).await;
        let statement = prepared.map_err(|e| self.check(e))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs a cached statement; how many rows it changed.
    pub(super) async fn execute(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<u64> {
        let statement = self.statement(sql).await?;
        let result = self.client.execute(&statement, params).await;
        result.map_err(|e| self.check(e))
    }

    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Vec<Row>> {
        let statement = self.statement(sql).await?;
        let result = self.client.query(&statement, params).await;
        result.map_err(|e| self.check(e))
    }

    pub(super) async fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Option<Row>> {
        let statement = self.statement(sql).await?;
        let result = self.client.query_opt(&statement, params).await;
        result.map_err(|e| self.check(e))
    }

    pub(super) async fn query_one(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Row> {
        let statement = self.statement(sql).await?;
        let result = self.client.query_one(&statement, params).await;
        result.map_err(|e| self.check(e))
    }

    /// Statements without parameters or results (`BEGIN`, `SAVEPOINT`, DDL), as one simple
    /// query.
    pub(super) async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        let result = self.client.batch_execute(sql).await;
        result.map_err(|e| self.check(e))
    }

    /// Ends the transaction `BEGIN` opened: commits after `Ok`, rolls back after an error
    /// (which is then what the caller gets).
    pub(super) async fn finish<T>(&mut self, result: StoreResult<T>) -> StoreResult<T> {
        match result {
            Ok(value) => {
                self.batch("COMMIT").await?;
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = self.batch("ROLLBACK").await {
                    warn!(error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }
}
