//! Database access, one trait for both backends: [`Backend`] is everything the engine asks
//! of a database — the reads and writes of the version and history tables, the migration
//! lock, each attempt's transaction and the check that it is still the same one, lock waits,
//! blockers and what an error means — implemented once in `postgres.rs` and once in
//! `sqlite.rs`, each with its own SQL. The engine is written once over the trait, and
//! `Database` is the one place that looks at which backend a handle is.
//!
//! The queries both backends run the same way but for their SQL text (the state reads, our
//! bound statements) are written once below, in [`Queries`].

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::convert::Infallible;
use std::marker::PhantomData;
use std::time::Duration;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::engine::plan::{DbState, HistoryKind, HistoryRecord};
use crate::error::{Blocker, Error};
use crate::migration::{Checksum, Dialect, Direction};
use crate::origin::Tool;

pub(crate) use postgres::Postgres;
pub(crate) use sqlite::Sqlite;

/// What the engine asks of a database; see the module's documentation.
///
/// Where the backends differ in kind rather than in SQL, the difference is a constant with a
/// name that says what it means ([`Backend::LOCK_SCOPE`],
/// [`Backend::MULTI_STATEMENT_QUERY_IS_ONE_TRANSACTION`]).
pub(crate) trait Backend: Sized + Send + Sync + 'static {
    /// sqlx's database type.
    type Db: sqlx::Database<Connection = Self::Conn>;
    /// A connection.
    type Conn: sqlx::Connection<Database = Self::Db> + std::fmt::Debug;
    /// What tells the transaction an attempt began from any later one: taken when the
    /// attempt begins, compared before its records are written.
    type Mark: Copy + Send + Sync;
    /// Watches who blocks a migration waiting for a lock; `Infallible` where nothing can.
    type Watcher: Watch;

    /// Which sections of a migration file run here.
    const DIALECT: Dialect;
    /// How long the migration lock is held.
    const LOCK_SCOPE: LockScope;
    /// The statement that opens a write transaction.
    const BEGIN: &'static str;
    /// Whether the server runs a query of several statements as one implicit transaction,
    /// where statements such as `CREATE INDEX CONCURRENTLY` are refused: a no-transaction
    /// migration is then sent one statement at a time.
    const MULTI_STATEMENT_QUERY_IS_ONE_TRANSACTION: bool;
    /// History rows written per multi-row `INSERT`.
    const HISTORY_ROWS_PER_INSERT: usize;
    /// Whether a statement can carry an `INSERT` in its `WITH` clause (PostgreSQL): the last
    /// history rows then go with the version row's statement, in one round trip.
    const INSERT_IN_WITH: bool;
    /// How a person runs a script of ours by hand, stopping at the first error.
    const RUN_BY_HAND: &'static str;
    /// Whether our queries may leave named prepared statements on a connection. Not on
    /// PostgreSQL: a pooler in transaction mode hands the server connection to other clients
    /// after each transaction, where a statement of ours would collide with theirs
    /// (`prepared statement "sqlx_s_1" already exists`).
    const KEEPS_PREPARED_STATEMENTS: bool;
    /// Whether the migration lock can be held, for work that spans several transactions (a
    /// no-transaction migration), by a transaction of its own on a second connection
    /// ([`Backend::hold_lock_apart`]).
    const HOLDS_LOCK_APART: bool;
    /// The savepoint an attempt's transaction begins with, where a retry rolls back to it
    /// and keeps the transaction, and the migration lock taken in it; `None`: a retry rolls
    /// back the whole transaction.
    const ATTEMPT_SAVEPOINT: Option<&'static str>;

    // Connections.

    /// Opens a connection of calista's own (the guard's reads, the lock, migrations).
    async fn connect(&self) -> Result<Self::Conn, Error>;

    /// The connection a migration session runs on: `reuse` (the guard's) when given, else
    /// one of its own, or the pool's where the database lives in it.
    async fn open_session(
        &self,
        reuse: Option<Self::Conn>,
        pool: &sqlx::Pool<Self::Db>,
    ) -> Result<Held<Self>, Error>;

    /// Whether the database does not exist yet (a SQLite file not made yet): it reads as
    /// empty, and the guard does not connect, which would create it just by looking.
    fn is_absent(&self) -> bool;

    // The state: reads.

    /// The guard's hot read, one query: the version row with the revision, completion and
    /// chained digest of the newest history row. `None` when that does not settle the state
    /// (no version row, or several): the caller reads everything.
    async fn read_state_brief(&self, conn: &mut Self::Conn) -> Result<Option<DbState>, Error>;

    /// The version rows (at most two) and the newest history row, in one query.
    async fn read_state(&self, conn: &mut Self::Conn) -> Result<DbState, Error>;

    /// [`Backend::read_state`] inside the lock's transaction, which a missing table must not
    /// abort.
    async fn read_state_in_transaction(&self, conn: &mut Self::Conn) -> Result<DbState, Error> {
        self.read_state(conn).await
    }

    /// Whether the server is a hot standby (a read-only replica in recovery), and if so how
    /// far its replay is behind its primary; one query. `None`: it takes writes.
    async fn standby(&self, conn: &mut Self::Conn) -> Result<Option<Standby>, Error>;

    /// Every history row, oldest first (none when there is no history table).
    async fn read_history(&self, conn: &mut Self::Conn) -> Result<Vec<HistoryRecord>, Error>;

    /// The columns of this build's history layout that the table lacks (it was made by an
    /// older build).
    async fn missing_history_columns(
        &self,
        conn: &mut Self::Conn,
    ) -> Result<Vec<HistoryColumn>, Error>;

    /// Whether the database holds no tables at all (PostgreSQL: in the schema).
    async fn is_empty(&self, conn: &mut Self::Conn) -> Result<bool, Error>;

    /// What another migration tool recorded as applied, from its own table (read only).
    async fn read_foreign(
        &self,
        conn: &mut Self::Conn,
        tool: Tool,
    ) -> Result<Vec<ForeignRow>, Error>;

    /// The down SQL recorded when `revision` was last applied (`None`: not recorded, e.g.
    /// applied by an older build).
    async fn read_down_sql(
        &self,
        conn: &mut Self::Conn,
        revision: &str,
    ) -> Result<Option<String>, Error>;

    // The state: our statements, run with their values bound and printed with them inlined.

    /// Creates the schema (PostgreSQL) and both tables, if missing: statements in one text.
    fn create_tables(&self) -> &str;
    /// Creates the schema (PostgreSQL) and both tables, failing with
    /// [`Backend::is_duplicate_table`] if either exists: the first upgrade of a database found
    /// empty then needs no second read of the state under the lock, since the creation itself
    /// checks it. `None` where reading the state costs no round trip (SQLite, in process).
    fn create_absent_tables(&self) -> Option<&str>;
    /// `ALTER TABLE` adding one of this build's history columns.
    fn add_history_column(&self, column: HistoryColumn) -> String;
    /// `INSERT` of `rows` history rows at once, each with [`NewRecord::values`].
    fn insert_history(&self, rows: usize) -> SqlStr;
    /// `INSERT` of the version row: the revision.
    fn insert_version(&self) -> SqlStr;
    /// `UPDATE` of the version row: the new revision, then the old one.
    fn update_version(&self) -> SqlStr;
    /// `DELETE` of the version row: the revision.
    fn delete_version(&self) -> SqlStr;
    /// Marks the newest history row finished if it is a started one: the duration in ms.
    fn finish_started(&self) -> SqlStr;
    /// Deletes the newest history row if it is a started one.
    fn delete_started(&self) -> SqlStr;

    /// What a migration needs around it, for a transaction (`SET LOCAL`) or for the
    /// session of a no-transaction migration (`SET`): how long one attempt waits for a table
    /// lock, and the application's schema first on `search_path`.
    fn migration_settings(&self, scope: Scope, lock_wait: Duration) -> Vec<String>;
    /// One attempt's wait for a lock, from here on; `None` where the backend has no such
    /// setting.
    fn lock_wait_setting(&self, scope: Scope, lock_wait: Duration) -> Option<String>;
    /// Undoes [`Backend::migration_settings`] for the session.
    fn reset_migration_settings(&self) -> &'static [&'static str];

    /// Runs one of our statements with its values bound; returns the rows it changed.
    async fn execute(&self, conn: &mut Self::Conn, statement: Bound) -> Result<u64, sqlx::Error>;

    /// Runs SQL as sent (a migration's, or statements of ours) in one round trip; on failure,
    /// also how many of its statements completed before the one that failed.
    async fn run(&self, conn: &mut Self::Conn, sql: &str) -> Result<(), (usize, sqlx::Error)>;

    // Transactions.

    /// Runs `statements` (which open the attempt's transaction, or continue the one open)
    /// and takes the attempt's [`Backend::Mark`], in one round trip. On failure, also how
    /// many of the statements completed.
    async fn begin_attempt(
        &self,
        conn: &mut Self::Conn,
        statements: &str,
    ) -> Result<Self::Mark, (usize, sqlx::Error)>;

    /// Whether the transaction an attempt began is still the one open: a migration's
    /// `COMMIT` or `ROLLBACK` would have ended it, and what followed ran in another one, or in
    /// none. An aborted transaction (after a failed statement) is still it.
    async fn same_transaction(
        &self,
        conn: &mut Self::Conn,
        mark: Self::Mark,
    ) -> Result<bool, Error>;

    /// Runs a migration's SQL as [`Backend::run`] does and, where the backend can ask in the
    /// same round trip, tells whether the transaction `mark` began is still the one open
    /// (as [`Backend::same_transaction`]); `None`: it was not asked, and the caller asks
    /// [`Backend::same_transaction`] itself.
    async fn run_and_check(
        &self,
        conn: &mut Self::Conn,
        sql: &str,
        mark: Self::Mark,
    ) -> Result<Option<bool>, (usize, sqlx::Error)> {
        let _ = mark;
        self.run(conn, sql).await.map(|()| None)
    }

    // The migration lock.

    /// Takes the migration lock, waiting at most `timeout` (polling, never blocked inside a
    /// statement where the backend allows): for the session, or, when the lock is a
    /// transaction, by opening it.
    async fn take_lock(&self, conn: &mut Self::Conn, timeout: Duration) -> Result<(), Error>;

    /// Releases a lock held by the session (nothing when the lock is a transaction).
    async fn release_lock(&self, conn: &mut Self::Conn) -> Result<(), Error>;

    /// Where [`Backend::HOLDS_LOCK_APART`]: a connection of its own that holds the migration
    /// lock in a transaction left open, so that the lock lasts across the transactions of
    /// `conn` (the session's, idle) and ends with that transaction, or with the process,
    /// whatever happens; waits at most `timeout`. Refused where `conn` goes through a
    /// pooler in transaction mode, which cannot keep work outside a transaction on one
    /// server connection.
    async fn hold_lock_apart(
        &self,
        conn: &mut Self::Conn,
        timeout: Duration,
        file: &str,
    ) -> Result<Self::Conn, Error>;

    /// Who holds the migration lock, for the message of a lock that could not be taken.
    async fn lock_holder(&self, conn: &mut Self::Conn) -> String;

    // Errors.

    /// Whether a table lock was not granted within one attempt's wait, so that the attempt
    /// can be rolled back and tried again.
    fn is_retryable_lock_wait(error: &sqlx::Error) -> bool;

    /// A table or schema of ours is missing.
    fn is_missing_table(error: &sqlx::Error) -> bool;

    /// The connection is gone: the socket closed or failed (the server stopped or
    /// restarted, the network failed), or the server ended the session.
    fn is_connection_lost(error: &sqlx::Error) -> bool;

    /// An error on which the database rolls the open transaction back on its own, so that
    /// no transaction is open after it: not the SQL ending the transaction.
    fn rolls_back_on_its_own(error: &sqlx::Error) -> bool;

    /// A table that [`Backend::create_absent_tables`] creates exists already.
    fn is_duplicate_table(error: &sqlx::Error) -> bool;

    /// Where in the text sent the server says the error is: a character position from 1.
    fn error_position(error: &sqlx::Error) -> Option<usize>;

    /// A database error with what we were doing and, for the common causes, what to do.
    fn describe(error: sqlx::Error, context: &str) -> Error;

    // Blockers.

    /// Starts watching who blocks `conn` while it waits for a table lock; `None` when the
    /// backend cannot tell, or the watching cannot start (the migration goes on).
    async fn watch_blockers(&self, conn: &mut Self::Conn) -> Option<Self::Watcher>;
}

/// Opens a connection with `options`, waiting at most `timeout`; a failure to connect is
/// told by `failed`, a timeout names `shown_url`.
async fn connect_within<C: sqlx::Connection>(
    options: &C::Options,
    timeout: Duration,
    shown_url: &str,
    failed: impl FnOnce(sqlx::Error) -> Error,
) -> Result<C, Error> {
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(Error::Timeout {
            url: shown_url.to_owned(),
            waited: timeout,
        }),
    }
}

/// A hot standby, as [`Backend::standby`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Standby {
    /// How its replay is behind its primary, when it is: paused, or WAL received and not
    /// yet replayed.
    pub(crate) lag: Option<String>,
}

/// How long the migration lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockScope {
    /// The session holds it from when it is taken until it releases it (a session-level
    /// advisory lock): the state is read, and every transaction runs, under it. No backend
    /// takes it so now: a session lock leaks through a pooler in transaction mode.
    Session,
    /// The lock is taken by each transaction and ends with it (SQLite's `BEGIN IMMEDIATE`,
    /// PostgreSQL's `pg_try_advisory_xact_lock`): each round's transaction takes it again,
    /// and reads the state under it.
    Transaction,
}

/// Where a setting holds: the transaction, or the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Transaction,
    Session,
}

impl Scope {
    /// The command that sets a value for this scope.
    pub(crate) fn set(self) -> &'static str {
        match self {
            Self::Transaction => "SET LOCAL",
            Self::Session => "SET",
        }
    }
}

/// Watches, from a connection of its own, which sessions block a migration while it waits
/// for a lock, so that giving up can name them.
pub(crate) trait Watch: Send {
    /// Looks for as long as it is polled; never returns.
    async fn watch(&mut self) -> Infallible;
    /// The blockers last seen.
    fn seen(&self) -> Vec<Blocker>;
    /// Closes its connection.
    async fn close(self);
}

/// Nothing to watch.
impl Watch for Infallible {
    async fn watch(&mut self) -> Infallible {
        *self
    }

    fn seen(&self) -> Vec<Blocker> {
        match *self {}
    }

    async fn close(self) {}
}

/// The connection of a migration session: one of its own, or one of the pool's (a SQLite
/// database in memory lives in the pool's connection).
pub(crate) enum Held<B: Backend> {
    Own(B::Conn),
    Pooled(sqlx::pool::PoolConnection<B::Db>),
}

impl<B: Backend> Held<B> {
    pub(crate) fn conn(&mut self) -> &mut B::Conn {
        match self {
            Self::Own(conn) => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

/// A column `schema_history` gained after the first release: a database made by an older
/// build gets it in place, once, under the migration lock. Older builds name the columns
/// they read and write, so they keep working with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistoryColumn {
    /// The down SQL of the dialect, as it was when the migration was applied: what
    /// `db redo` and the downgrade of an edited migration run.
    DownSql,
    /// How many attempts the migration's transaction took (lock-wait retries).
    Attempts,
    /// How the row came to be ([`HistoryKind`]); older builds' rows default to `applied`.
    Kind,
    /// Why a row was written without running its migration (a repair's reason).
    Note,
    /// For a repair: the checksum the migration was applied with.
    ReplacedChecksum,
}

impl HistoryColumn {
    /// Every column added since the first release, in the order they were added.
    pub(crate) const ALL: [Self; 5] = [
        Self::DownSql,
        Self::Attempts,
        Self::Kind,
        Self::Note,
        Self::ReplacedChecksum,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::DownSql => "down_sql",
            Self::Attempts => "attempts",
            Self::Kind => "kind",
            Self::Note => "note",
            Self::ReplacedChecksum => "replaced_checksum",
        }
    }

    /// Its definition, as `CREATE TABLE` has it on both backends.
    pub(crate) fn definition(self) -> &'static str {
        match self {
            Self::DownSql => "TEXT NULL",
            Self::Attempts => "INTEGER NOT NULL DEFAULT 1",
            Self::Kind => "VARCHAR(16) NOT NULL DEFAULT 'applied'",
            Self::Note => "TEXT NULL",
            Self::ReplacedChecksum => "CHAR(64) NULL",
        }
    }

    /// The columns of [`HistoryColumn::ALL`] whose names are not in `present`.
    fn missing_from(present: &[String]) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|column| !present.iter().any(|name| name == column.name()))
            .collect()
    }
}

/// Our two tables, in one batch, each table named `{prefix}<name>` and created with
/// `if_not_exists` (`"IF NOT EXISTS "` or empty); the history's dialect-specific columns
/// given whole. The version table is exactly the one Alembic creates, so tools that read it
/// keep working; the history's later columns are [`HistoryColumn::ALL`], as an older layout
/// gains them.
pub(crate) fn create_tables_sql(
    prefix: &str,
    if_not_exists: &str,
    id: &str,
    applied_at: &str,
) -> String {
    let added: String = HistoryColumn::ALL
        .iter()
        .map(|column| format!(",\n    {:<11} {}", column.name(), column.definition()))
        .collect();
    format!(
        "CREATE TABLE {if_not_exists}{prefix}alembic_version (version_num VARCHAR(32) NOT NULL, \
CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
CREATE TABLE {if_not_exists}{prefix}schema_history (
    id          {id},
    revision    VARCHAR(32)  NOT NULL,
    summary     VARCHAR(200) NOT NULL,
    direction   VARCHAR(4)   NOT NULL CONSTRAINT ck_schema_history_direction CHECK (direction IN ('up', 'down')),
    finished    BOOLEAN      NOT NULL,
    checksum    CHAR(64)     NOT NULL,
    chain       CHAR(64)     NULL,
    applied_at  {applied_at},
    duration_ms BIGINT       NOT NULL,
    app_version VARCHAR(64)  NOT NULL,
    backup      TEXT         NULL{added}
)"
    )
}

/// A row of another tool's history table, as read: its version as text, its name where it
/// keeps one, whether it succeeded, and its checksum as text (sqlx: hex of the SHA-384;
/// refinery: the decimal number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignRow {
    pub(crate) version: String,
    pub(crate) name: Option<String>,
    pub(crate) succeeded: bool,
    pub(crate) checksum: Option<String>,
}

/// A history row about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewRecord {
    pub(crate) revision: String,
    pub(crate) summary: String,
    pub(crate) direction: Direction,
    pub(crate) finished: bool,
    pub(crate) checksum: Checksum,
    pub(crate) chain: Option<Checksum>,
    pub(crate) duration_ms: i64,
    pub(crate) app_version: String,
    pub(crate) backup: Option<String>,
    /// The down SQL of the dialect, recorded with an applied migration.
    pub(crate) down_sql: Option<String>,
    /// How many attempts the migration's transaction took; 1 unless it was retried.
    pub(crate) attempts: i64,
    /// How the row came to be.
    pub(crate) kind: HistoryKind,
    /// Why, for a row written without running its migration.
    pub(crate) note: Option<String>,
    /// For a repair: the checksum it replaces.
    pub(crate) replaced_checksum: Option<Checksum>,
}

impl NewRecord {
    /// The values of [`Backend::insert_history`]'s columns, in order.
    fn values(&self) -> [Value; HISTORY_INSERT_WIDTH] {
        let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::Text);
        [
            Value::Text(self.revision.clone()),
            Value::Text(self.summary.clone()),
            Value::Text(self.direction.as_str().to_owned()),
            Value::Bool(self.finished),
            Value::Text(self.checksum.to_string()),
            text(&self.chain.map(|c| c.to_string())),
            Value::Int(self.duration_ms),
            Value::Text(self.app_version.clone()),
            text(&self.backup),
            text(&self.down_sql),
            Value::Int(self.attempts),
            Value::Text(self.kind.as_str().to_owned()),
            text(&self.note),
            text(&self.replaced_checksum.map(|c| c.to_string())),
        ]
    }
}

/// The history columns [`Backend::insert_history`] writes, in the order of
/// [`NewRecord::values`].
const HISTORY_INSERT_COLUMNS: &str = "revision, summary, direction, finished, checksum, chain, duration_ms, app_version, backup, \
     down_sql, attempts, kind, note, replaced_checksum";

/// How many values a history row binds.
const HISTORY_INSERT_WIDTH: usize = 14;

/// `INSERT` of `rows` history rows into `table`, with parameters written by `placeholder`
/// (`$n` or `?n`) from 1.
fn insert_history_sql(table: &str, rows: usize, placeholder: fn(usize) -> String) -> SqlStr {
    let width = HISTORY_INSERT_WIDTH;
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let columns: Vec<String> = (1..=width).map(|n| placeholder(row * width + n)).collect();
            format!("({})", columns.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({HISTORY_INSERT_COLUMNS}) VALUES {}",
        values.join(", ")
    );
    AssertSqlSafe(sql).into_sql_str()
}

/// A value one of our statements binds, or the script writes as a literal: both run the
/// same statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Null,
    Bool(bool),
    Int(i64),
}

impl Value {
    /// The value as a SQL literal.
    fn literal(&self) -> String {
        match self {
            Self::Text(text) => format!("'{}'", text.replace('\'', "''")),
            Self::Null => "NULL".to_owned(),
            Self::Bool(true) => "TRUE".to_owned(),
            Self::Bool(false) => "FALSE".to_owned(),
            Self::Int(n) => n.to_string(),
        }
    }
}

/// One of our statements with the values it binds.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) sql: SqlStr,
    pub(crate) values: Vec<Value>,
}

impl Bound {
    pub(crate) fn new(sql: SqlStr, values: Vec<Value>) -> Self {
        Self { sql, values }
    }

    /// The statement with its values written as literals, for the script. Our SQL holds no
    /// string literal, so every `$n` / `?n` in it is a parameter.
    pub(crate) fn inlined(&self) -> String {
        let mut out = self.sql.as_str().to_owned();
        // The highest first, so that `$1` does not eat the start of `$10`.
        for (index, value) in self.values.iter().enumerate().rev() {
            for marker in ["$", "?"] {
                out = out.replace(&format!("{marker}{}", index + 1), &value.literal());
            }
        }
        out
    }

    /// The `INSERT`s of history rows, many per statement.
    pub(crate) fn history<B: Backend>(backend: &B, records: &[NewRecord]) -> Vec<Self> {
        records
            .chunks(B::HISTORY_ROWS_PER_INSERT)
            .map(|chunk| {
                let values = chunk.iter().flat_map(NewRecord::values).collect();
                Self::new(backend.insert_history(chunk.len()), values)
            })
            .collect()
    }

    /// `self` (an `INSERT`) and then `next`, as one statement where the backend allows it
    /// ([`Backend::INSERT_IN_WITH`]): `WITH history AS (<self>) <next>`, whose rows changed
    /// are `next`'s; else `Err` with both, to run one after the other.
    pub(crate) fn then<B: Backend>(self, next: Self) -> Result<Self, (Self, Self)> {
        if !B::INSERT_IN_WITH {
            return Err((self, next));
        }
        let shifted = shift_parameters(next.sql.as_str(), self.values.len());
        let sql = format!("WITH history AS ({}) {shifted}", self.sql.as_str());
        let mut values = self.values;
        values.extend(next.values);
        Ok(Self::new(AssertSqlSafe(sql).into_sql_str(), values))
    }

    /// Marks the newest history row, a started one, finished after `duration_ms`.
    pub(crate) fn finish_started<B: Backend>(backend: &B, duration_ms: i64) -> Self {
        Self::new(backend.finish_started(), vec![Value::Int(duration_ms)])
    }

    /// Deletes the newest history row if it is a started one.
    pub(crate) fn delete_started<B: Backend>(backend: &B) -> Self {
        Self::new(backend.delete_started(), Vec::new())
    }

    /// The statement that moves the version row from one revision to another (`None`: no
    /// row); nothing when both are `None`.
    pub(crate) fn version<B: Backend>(
        backend: &B,
        from: Option<String>,
        to: Option<String>,
    ) -> Option<Self> {
        Some(match (from, to) {
            (None, None) => return None,
            (None, Some(to)) => Self::new(backend.insert_version(), vec![Value::Text(to)]),
            (Some(from), Some(to)) => Self::new(
                backend.update_version(),
                vec![Value::Text(to), Value::Text(from)],
            ),
            (Some(from), None) => Self::new(backend.delete_version(), vec![Value::Text(from)]),
        })
    }
}

/// `sql` with each parameter `$n` renumbered `$(n + by)`. Our SQL holds no string literal,
/// so every `$` followed by digits is a parameter.
fn shift_parameters(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// The SQL of the state reads, which both backends run the same way (see [`Queries`]).
#[derive(Debug, Clone)]
pub(crate) struct StateSql {
    /// The version rows (at most two) beside the newest history row, in one row each.
    pub(crate) state: SqlStr,
    /// Whether `alembic_version` and `schema_history` exist: two booleans; then the name of
    /// another tool's history table, if there is one, on the path outside ours.
    pub(crate) probe_tables: SqlStr,
    /// At most two version rows.
    pub(crate) versions: SqlStr,
    /// The newest history row.
    pub(crate) last: SqlStr,
    /// Every history row, oldest first, as a table of the released layout has them.
    pub(crate) history: SqlStr,
    /// Every history row, oldest first, with the columns [`HistoryColumn::Kind`] brought.
    pub(crate) history_with_kinds: SqlStr,
}

/// The queries both backends run the same way but for their SQL text, written once over
/// sqlx's traits; each backend's [`Backend`] methods call them with its own SQL.
pub(crate) struct Queries<B>(PhantomData<B>);

impl<B: Backend> Queries<B>
where
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    for<'c> &'c mut B::Conn: sqlx::Executor<'c, Database = B::Db>,
    usize: sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'r> Option<String>: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'r> Option<bool>: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'r> Option<i64>: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'r> bool: sqlx::Decode<'r, B::Db> + sqlx::Encode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'r> i64: sqlx::Decode<'r, B::Db> + sqlx::Encode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'r> String: sqlx::Decode<'r, B::Db> + sqlx::Encode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'r> Option<String>: sqlx::Encode<'r, B::Db>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    B::Db: sqlx::database::HasStatementCache,
{
    /// [`Backend::read_foreign`]: the same SQL on both backends, the table found on the
    /// connection's path.
    pub(crate) async fn read_foreign(
        conn: &mut B::Conn,
        tool: Tool,
    ) -> Result<Vec<ForeignRow>, Error> {
        use sqlx::Row;
        let sql = match tool {
            Tool::Sqlx => {
                "SELECT CAST(version AS TEXT), description, success, checksum FROM _sqlx_migrations ORDER BY version"
            }
            Tool::Diesel => {
                "SELECT version, NULL, TRUE, NULL FROM __diesel_schema_migrations ORDER BY version"
            }
            Tool::Refinery => {
                "SELECT CAST(version AS TEXT), name, TRUE, checksum FROM refinery_schema_history ORDER BY version"
            }
            Tool::Alembic => "SELECT version_num, NULL, TRUE, NULL FROM alembic_version",
        };
        let context = format!("reading {}", tool.history_table());
        let rows = Self::fetch_rows(conn, SqlStr::from_static(sql))
            .await
            .map_err(|e| B::describe(e, &context))?;
        rows.iter()
            .map(|row| {
                let checksum = match tool {
                    Tool::Sqlx => row
                        .try_get::<Option<Vec<u8>>, _>(3)?
                        .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect()),
                    Tool::Refinery => row.try_get::<Option<String>, _>(3)?,
                    Tool::Diesel | Tool::Alembic => None,
                };
                Ok(ForeignRow {
                    version: row.try_get(0)?,
                    name: row.try_get(1)?,
                    succeeded: row.try_get::<Option<bool>, _>(2)?.unwrap_or(true),
                    checksum,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| B::describe(e, &context))
    }

    /// The columns of a history row, from column `first`, before they are checked.
    fn raw_record(
        row: &<B::Db as sqlx::Database>::Row,
        first: usize,
    ) -> Result<RawRecord, sqlx::Error> {
        use sqlx::Row;
        Ok(RawRecord {
            revision: row.try_get(first)?,
            summary: row.try_get(first + 1)?,
            direction: row.try_get(first + 2)?,
            finished: row.try_get(first + 3)?,
            checksum: row.try_get(first + 4)?,
            chain: row.try_get(first + 5)?,
            applied_at: row.try_get(first + 6)?,
            duration_ms: row.try_get(first + 7)?,
            app_version: row.try_get(first + 8)?,
            backup: row.try_get(first + 9)?,
            ..RawRecord::default()
        })
    }

    /// [`Backend::read_state`].
    pub(crate) async fn read_state(conn: &mut B::Conn, sql: &StateSql) -> Result<DbState, Error> {
        use sqlx::Row;
        let context = "reading the migration state";
        match Self::fetch_rows(conn, sql.state.clone()).await {
            Ok(rows) => {
                let mut versions = Vec::new();
                let mut last = None;
                for row in &rows {
                    let version: Option<String> =
                        row.try_get(0).map_err(|e| B::describe(e, context))?;
                    let raw = Self::raw_record(row, 1).map_err(|e| B::describe(e, context))?;
                    versions.extend(version);
                    last = raw.into_record();
                }
                Ok(DbState {
                    versions: Some(versions),
                    last,
                    tables_present: true,
                    managed_by: None,
                })
            }
            Err(e) if B::is_missing_table(&e) => Self::read_partial_state(conn, sql).await,
            Err(e) => Err(B::describe(e, context)),
        }
    }

    /// The guard's hot read from `rows` of (version rows counted, the version, and the
    /// revision, completion and chained digest of the newest history row); see
    /// [`Backend::read_state_brief`]. A missing table is what the full read would find out,
    /// found out now.
    pub(crate) async fn read_state_brief(
        conn: &mut B::Conn,
        sql: &StateSql,
        rows: Result<Vec<<B::Db as sqlx::Database>::Row>, sqlx::Error>,
    ) -> Result<Option<DbState>, Error> {
        use sqlx::Row;
        let context = "reading the migration state";
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if B::is_missing_table(&e) => {
                return Self::read_partial_state(conn, sql).await.map(Some);
            }
            Err(e) => return Err(B::describe(e, context)),
        };
        let [row] = rows.as_slice() else {
            return Ok(None);
        };
        let decoded = (|| {
            let version_rows: i64 = row.try_get(0)?;
            let version: Option<String> = row.try_get(1)?;
            let raw = RawRecord {
                revision: row.try_get(2)?,
                finished: row.try_get(3)?,
                chain: row.try_get(4)?,
                ..RawRecord::default()
            };
            Ok::<_, sqlx::Error>((version_rows, version, raw))
        })();
        Ok(match decoded.map_err(|e| B::describe(e, context))? {
            (1, Some(version), raw) => Some(DbState {
                versions: Some(vec![version]),
                last: raw.into_record(),
                tables_present: true,
                managed_by: None,
            }),
            _ => None,
        })
    }

    /// The state when one table or both are missing: an empty database, or one made by
    /// another tool (Alembic creates only `alembic_version`).
    pub(crate) async fn read_partial_state(
        conn: &mut B::Conn,
        sql: &StateSql,
    ) -> Result<DbState, Error> {
        use sqlx::Row;
        let context = "checking which migration tables exist";
        let describe = |e| B::describe(e, context);
        let probe = Self::fetch_rows(conn, sql.probe_tables.clone())
            .await
            .and_then(|rows| rows.into_iter().next().ok_or(sqlx::Error::RowNotFound))
            .map_err(describe)?;
        let has_versions: bool = probe.try_get(0).map_err(describe)?;
        let has_history: bool = probe.try_get(1).map_err(describe)?;
        let foreign: Option<String> = probe.try_get(2).map_err(describe)?;
        let versions = if has_versions {
            let rows = Self::fetch_rows(conn, sql.versions.clone())
                .await
                .map_err(describe)?;
            let versions: Result<Vec<String>, _> = rows.iter().map(|row| row.try_get(0)).collect();
            Some(versions.map_err(describe)?)
        } else {
            None
        };
        let last = if has_history {
            let row = Self::fetch_rows(conn, sql.last.clone())
                .await
                .map_err(describe)?
                .into_iter()
                .next();
            match row {
                Some(row) => Self::raw_record(&row, 0).map_err(describe)?.into_record(),
                None => None,
            }
        } else {
            None
        };
        Ok(DbState {
            versions,
            last,
            tables_present: has_versions && has_history,
            managed_by: foreign.as_deref().and_then(Tool::from_history_table),
        })
    }

    /// [`Backend::read_history`]; `with_kinds`: the table has the columns of
    /// [`HistoryColumn::Kind`] and after (an older build's table is read without them).
    pub(crate) async fn read_history(
        conn: &mut B::Conn,
        sql: &StateSql,
        with_kinds: bool,
    ) -> Result<Vec<HistoryRecord>, Error> {
        use sqlx::Row;
        let context = "reading schema_history";
        let query = if with_kinds {
            sql.history_with_kinds.clone()
        } else {
            sql.history.clone()
        };
        let read = |row: &<B::Db as sqlx::Database>::Row| {
            let mut raw = Self::raw_record(row, 0)?;
            if with_kinds {
                raw.kind = row.try_get(10)?;
                raw.note = row.try_get(11)?;
                raw.replaced_checksum = row.try_get(12)?;
            }
            Ok::<_, sqlx::Error>(raw.into_record())
        };
        match Self::fetch_rows(conn, query).await {
            Ok(rows) => rows
                .iter()
                .map(read)
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()
                .map_err(|e| B::describe(e, context)),
            Err(e) if B::is_missing_table(&e) => Ok(Vec::new()),
            Err(e) => Err(B::describe(e, context)),
        }
    }

    /// [`Backend::missing_history_columns`], from a query of the names of the table's
    /// columns among [`HistoryColumn::ALL`].
    pub(crate) async fn missing_history_columns(
        conn: &mut B::Conn,
        present_columns: SqlStr,
    ) -> Result<Vec<HistoryColumn>, Error> {
        use sqlx::Row;
        let describe = |e| B::describe(e, "reading the layout of schema_history");
        let rows = Self::fetch_rows(conn, present_columns)
            .await
            .map_err(describe)?;
        let present: Result<Vec<String>, _> = rows.iter().map(|row| row.try_get(0)).collect();
        Ok(HistoryColumn::missing_from(&present.map_err(describe)?))
    }

    /// [`Backend::is_empty`], from a query of whether any table exists (binding `values`).
    pub(crate) async fn is_empty(
        conn: &mut B::Conn,
        any_table: SqlStr,
        values: Vec<Value>,
    ) -> Result<bool, Error> {
        let any = Self::fetch_value::<bool>(conn, any_table, values)
            .await
            .map_err(|e| B::describe(e, "checking whether the database is empty"))?;
        Ok(any == Some(false))
    }

    /// [`Backend::read_down_sql`], from a query binding the revision.
    pub(crate) async fn read_down_sql(
        conn: &mut B::Conn,
        sql: SqlStr,
        revision: &str,
    ) -> Result<Option<String>, Error> {
        let values = vec![Value::Text(revision.to_owned())];
        Self::fetch_value::<Option<String>>(conn, sql, values)
            .await
            .map(Option::flatten)
            .map_err(|e| B::describe(e, "reading the recorded down SQL from schema_history"))
    }

    /// One row's first column, from a query binding `values`.
    async fn fetch_value<T>(
        conn: &mut B::Conn,
        sql: SqlStr,
        values: Vec<Value>,
    ) -> Result<Option<T>, sqlx::Error>
    where
        for<'r> T: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    {
        use sqlx::Row;
        let row = Self::bind(sqlx::query(sql), values)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| row.try_get(0)).transpose()
    }

    /// The query of one of our statements, its values bound.
    pub(crate) fn bind(
        query: sqlx::query::Query<'static, B::Db, <B::Db as sqlx::Database>::Arguments>,
        values: Vec<Value>,
    ) -> sqlx::query::Query<'static, B::Db, <B::Db as sqlx::Database>::Arguments> {
        let query = query.persistent(B::KEEPS_PREPARED_STATEMENTS);
        values.into_iter().fold(query, |query, value| match value {
            Value::Text(text) => query.bind(text),
            Value::Null => query.bind(None::<String>),
            Value::Bool(on) => query.bind(on),
            Value::Int(n) => query.bind(n),
        })
    }

    /// The rows of a query without parameters. Where statements are not kept, it goes as a
    /// simple query: one message, no statement prepared, which a pooler in transaction mode
    /// cannot split between two server connections as it can a prepare and its execution.
    pub(crate) async fn fetch_rows(
        conn: &mut B::Conn,
        sql: SqlStr,
    ) -> Result<Vec<<B::Db as sqlx::Database>::Row>, sqlx::Error> {
        if B::KEEPS_PREPARED_STATEMENTS {
            sqlx::query(sql).fetch_all(&mut *conn).await
        } else {
            sqlx::raw_sql(sql).fetch_all(&mut *conn).await
        }
    }

    /// [`Backend::run`]: SQL as sent; on failure, also how many of its statements completed
    /// before the one that failed (the driver reports each one's end). Rows are not kept.
    pub(crate) async fn run(conn: &mut B::Conn, sql: &str) -> Result<(), (usize, sqlx::Error)> {
        let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).execute_many(&mut *conn);
        let mut done = 0;
        while let Some(result) = std::future::poll_fn(|cx| results.as_mut().poll_next(cx)).await {
            match result {
                Ok(_) => done += 1,
                Err(error) => return Err((done, error)),
            }
        }
        Ok(())
    }

    /// Like [`Queries::run`], keeping the rows the statements give.
    pub(crate) async fn fetch(
        conn: &mut B::Conn,
        sql: &str,
    ) -> Result<Vec<<B::Db as sqlx::Database>::Row>, (usize, sqlx::Error)> {
        let mut rows = Vec::new();
        Self::each_row(conn, sql, |_, row| rows.push(row)).await?;
        Ok(rows)
    }

    /// Like [`Queries::run`], keeping only the last row the statements give: how many of
    /// them completed, and that row.
    pub(crate) async fn fetch_last(
        conn: &mut B::Conn,
        sql: &str,
    ) -> Result<(usize, Option<<B::Db as sqlx::Database>::Row>), (usize, sqlx::Error)> {
        let mut last = None;
        let done = Self::each_row(conn, sql, |_, row| last = Some(row)).await?;
        Ok((done, last))
    }

    /// Runs SQL as sent, handing each row it gives to `keep` with the index of the statement
    /// that gave it; how many of its statements completed, or, with the failure, how many
    /// did before it.
    pub(crate) async fn each_row(
        conn: &mut B::Conn,
        sql: &str,
        mut keep: impl FnMut(usize, <B::Db as sqlx::Database>::Row),
    ) -> Result<usize, (usize, sqlx::Error)> {
        use sqlx::Either;
        let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_many(&mut *conn);
        let mut done = 0;
        while let Some(result) = std::future::poll_fn(|cx| results.as_mut().poll_next(cx)).await {
            match result {
                Ok(Either::Left(_)) => done += 1,
                Ok(Either::Right(row)) => keep(done, row),
                Err(error) => return Err((done, error)),
            }
        }
        Ok(done)
    }
}

/// The columns of a history row as read, before they are checked.
#[derive(Default)]
struct RawRecord {
    revision: Option<String>,
    summary: Option<String>,
    direction: Option<String>,
    finished: Option<bool>,
    checksum: Option<String>,
    chain: Option<String>,
    applied_at: Option<String>,
    duration_ms: Option<i64>,
    app_version: Option<String>,
    backup: Option<String>,
    kind: Option<String>,
    note: Option<String>,
    replaced_checksum: Option<String>,
}

impl RawRecord {
    /// The record, or `None` when the row is the empty side of an outer join.
    fn into_record(self) -> Option<HistoryRecord> {
        Some(HistoryRecord {
            revision: self.revision?,
            summary: self.summary.unwrap_or_default(),
            direction: if self.direction.as_deref() == Some("down") {
                Direction::Down
            } else {
                Direction::Up
            },
            finished: self.finished.unwrap_or(true),
            checksum: self.checksum.as_deref().and_then(Checksum::from_hex),
            chain: self.chain.as_deref().and_then(Checksum::from_hex),
            applied_at: self.applied_at.unwrap_or_default(),
            duration_ms: self.duration_ms.unwrap_or_default(),
            app_version: self.app_version.unwrap_or_default(),
            backup: self.backup,
            kind: self
                .kind
                .as_deref()
                .and_then(HistoryKind::from_word)
                .unwrap_or_default(),
            note: self.note,
            replaced_checksum: self
                .replaced_checksum
                .as_deref()
                .and_then(Checksum::from_hex),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlined_statements_quote_every_value() {
        let statement = Bound::new(
            SqlStr::from_static(
                "INSERT INTO t (a, b, c, d, e, f, g, h, i, j, k, l, m, n) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            ),
            (1..=14)
                .map(|n| {
                    if n == 1 {
                        Value::Text("it's".into())
                    } else {
                        Value::Int(n)
                    }
                })
                .collect(),
        );
        assert!(
            statement
                .inlined()
                .ends_with("VALUES ('it''s', 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)"),
            "{}",
            statement.inlined()
        );
        let update = Bound::new(
            SqlStr::from_static(
                "UPDATE alembic_version SET version_num = ?1 WHERE version_num = ?2",
            ),
            vec![Value::Text("b".into()), Value::Null],
        );
        assert_eq!(
            update.inlined(),
            "UPDATE alembic_version SET version_num = 'b' WHERE version_num = NULL"
        );
    }

    #[test]
    fn a_statement_after_history_rows_numbers_its_parameters_after_theirs() {
        assert_eq!(
            shift_parameters("UPDATE v SET n = $1 WHERE n = $2", 11),
            "UPDATE v SET n = $12 WHERE n = $13"
        );
        assert_eq!(shift_parameters("SELECT $ 1, $10", 2), "SELECT $ 1, $12");
    }

    #[test]
    fn multi_row_insert_numbers_every_parameter() {
        let sql = insert_history_sql("\"app\".schema_history", 2, |n| format!("${n}"));
        assert!(
            sql.as_str()
                .starts_with("INSERT INTO \"app\".schema_history (revision, ")
        );
        assert!(
            sql.as_str().ends_with(
                "($15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
            )
        );
        assert!(
            insert_history_sql("schema_history", 1, |n| format!("?{n}"))
                .as_str()
                .contains("(?1, ?2")
        );
    }
}
