//! SQLite: calista's tables in the main database, and the migration lock that is a write
//! transaction (`BEGIN IMMEDIATE`) waiting up to the busy timeout.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, SqlStr};

use super::{Backend, Bound, Held, HistoryColumn, LockScope, Queries, Scope, StateSql};
use crate::backup;
use crate::engine::plan::{DbState, HistoryRecord};
use crate::error::Error;
use crate::migration::Dialect;

/// A SQLite database: a file, or one in memory (which lives in the pool's connection).
#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    /// Every connection's options: waits up to the lock timeout for locks.
    connect: SqliteConnectOptions,
    /// `None` for a database in memory.
    file: Option<PathBuf>,
    connect_timeout: Duration,
    /// The URL, for connection errors.
    shown_url: String,
}

/// The state reads (see [`Queries`]).
static STATE: StateSql = StateSql {
    // One query: at most two version rows beside the newest history row.
    state: SqlStr::from_static(
        "SELECT v.version_num, h.* FROM (SELECT 1 AS one) AS o \
         LEFT JOIN (SELECT version_num FROM alembic_version LIMIT 2) AS v ON 1 = 1 \
         LEFT JOIN (SELECT revision, summary, direction, finished, checksum, chain, applied_at AS applied_at, \
         duration_ms, app_version, backup FROM schema_history ORDER BY id DESC LIMIT 1) AS h ON 1 = 1",
    ),
    probe_tables: SqlStr::from_static(
        "SELECT \
         EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'), \
         EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_history'), \
         (SELECT min(name) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('_sqlx_migrations', '__diesel_schema_migrations', 'refinery_schema_history'))",
    ),
    versions: SqlStr::from_static("SELECT version_num FROM alembic_version LIMIT 2"),
    last: SqlStr::from_static(
        "SELECT revision, summary, direction, finished, checksum, chain, applied_at AS applied_at, \
         duration_ms, app_version, backup FROM schema_history ORDER BY id DESC LIMIT 1",
    ),
    history: SqlStr::from_static(
        "SELECT revision, summary, direction, finished, checksum, chain, applied_at AS applied_at, \
         duration_ms, app_version, backup FROM schema_history ORDER BY id",
    ),
    history_with_kinds: SqlStr::from_static(
        "SELECT revision, summary, direction, finished, checksum, chain, applied_at AS applied_at, \
         duration_ms, app_version, backup, kind, note, replaced_checksum FROM schema_history ORDER BY id",
    ),
};

/// Both tables ([`super::create_tables_sql`]), in one batch.
static CREATE_TABLES: LazyLock<String> = LazyLock::new(|| {
    super::create_tables_sql(
        "",
        "IF NOT EXISTS ",
        "INTEGER      NOT NULL CONSTRAINT pk_schema_history PRIMARY KEY AUTOINCREMENT",
        "TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
    )
});

impl Sqlite {
    /// The database `base` opens (`file`: `None` in memory), waiting up to `lock_timeout`
    /// for locks.
    pub(crate) fn new(
        base: SqliteConnectOptions,
        file: Option<PathBuf>,
        lock_timeout: Duration,
        connect_timeout: Duration,
        shown_url: String,
    ) -> Self {
        Self {
            connect: connect_options(base, lock_timeout),
            file,
            connect_timeout,
            shown_url,
        }
    }

    /// Every connection's options, the pool's included.
    pub(crate) fn connect_options(&self) -> &SqliteConnectOptions {
        &self.connect
    }

    /// The file, if the database is not in memory.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// What a backup copies, or why there can be none.
    pub(crate) fn backup_source(&self) -> Result<backup::Source<'_>, &'static str> {
        match &self.file {
            Some(file) => Ok(backup::Source::Sqlite { file }),
            None => Err("the database is in memory"),
        }
    }

    /// "opening the database file <path><purpose>", or the database in memory.
    fn opening(&self, purpose: &str) -> String {
        match &self.file {
            Some(file) => format!("opening the database file {}{purpose}", file.display()),
            None => format!("opening the database in memory{purpose}"),
        }
    }

    /// A pool connection could not be had.
    fn acquire_error(&self, error: sqlx::Error) -> Error {
        match error {
            sqlx::Error::PoolTimedOut => Error::Timeout {
                url: self.shown_url.clone(),
                waited: self.connect_timeout,
            },
            error => describe(error, &self.opening("")),
        }
    }
}

impl Backend for Sqlite {
    type Db = sqlx::Sqlite;
    type Conn = SqliteConnection;
    /// Nothing: whether the transaction is still open says it all (there is one connection
    /// writing, and it is ours).
    type Mark = ();
    /// SQLite cannot say who holds a lock.
    type Watcher = std::convert::Infallible;

    const DIALECT: Dialect = Dialect::Sqlite;
    const LOCK_SCOPE: LockScope = LockScope::Transaction;
    /// Takes the write lock at once, so that the transaction never fails half-way to get it.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const MULTI_STATEMENT_QUERY_IS_ONE_TRANSACTION: bool = false;
    /// The cost of a multi-row `VALUES` grows steeply with its size (500 rows at once cost 12
    /// times as much per row as 10), and a statement is no round trip.
    const HISTORY_ROWS_PER_INSERT: usize = 10;
    /// SQLite's `WITH` holds only queries.
    const INSERT_IN_WITH: bool = false;
    const RUN_BY_HAND: &'static str = "sqlite3 -bail <database> < <file>";
    /// A statement is prepared once per connection: nothing else can run on it.
    const KEEPS_PREPARED_STATEMENTS: bool = true;
    /// The lock is the write transaction: one connection writes at a time.
    const HOLDS_LOCK_APART: bool = false;
    /// SQLite never retries an attempt ([`Backend::is_retryable_lock_wait`]).
    const ATTEMPT_SAVEPOINT: Option<&'static str> = None;

    async fn connect(&self) -> Result<SqliteConnection, Error> {
        let opening = self.opening("");
        let failed = |e| describe(e, &opening);
        super::connect_within(&self.connect, self.connect_timeout, &self.shown_url, failed).await
    }

    /// Opens the file (creating it if needed), or takes the pool's connection to a database
    /// in memory.
    async fn open_session(
        &self,
        reuse: Option<SqliteConnection>,
        pool: &sqlx::SqlitePool,
    ) -> Result<Held<Self>, Error> {
        let Some(file) = &self.file else {
            return pool
                .acquire()
                .await
                .map(Held::Pooled)
                .map_err(|e| self.acquire_error(e));
        };
        // SQLite opens a file it may not write read-only and fails only at the first write,
        // in the middle of a migration; say it up front instead.
        // A file another process creates meanwhile is not read-only: only a file that exists
        // and refuses writing is.
        let writable = std::fs::OpenOptions::new().write(true).open(file);
        if let Some(e) = writable
            .err()
            .filter(|e| e.kind() != std::io::ErrorKind::NotFound)
        {
            return Err(Error::database(
                format!(
                    "cannot write the database file {}: it is read-only; check its permissions \
                     (and attributes, e.g. `lsattr`), or upgrade a writable copy",
                    file.display()
                ),
                sqlx::Error::Io(e),
            ));
        }
        if let Some(conn) = reuse {
            return Ok(Held::Own(conn));
        }
        let options = self.connect.clone().create_if_missing(true);
        SqliteConnection::connect_with(&options)
            .await
            .map(Held::Own)
            .map_err(|e| describe(e, &self.opening(" for migration")))
    }

    fn is_absent(&self) -> bool {
        self.file.as_ref().is_some_and(|file| !file.exists())
    }

    /// One row that counts the version rows: a second row would make the driver wake once
    /// more to find that none follows, which costs as much as the query. The newest history
    /// row by `max(id)` spares materialising an ordered subquery.
    async fn read_state_brief(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<Option<DbState>, Error> {
        let rows = sqlx::query(
            "SELECT v.n, v.version_num, h.revision, h.finished, h.chain \
             FROM (SELECT count(*) AS n, min(version_num) AS version_num FROM alembic_version) AS v \
             LEFT JOIN schema_history AS h ON h.id = (SELECT max(id) FROM schema_history)",
        )
        .fetch_optional(&mut *conn)
        .await
        .map(Vec::from_iter);
        Queries::<Self>::read_state_brief(conn, &STATE, rows).await
    }

    async fn read_state(&self, conn: &mut SqliteConnection) -> Result<DbState, Error> {
        Queries::<Self>::read_state(conn, &STATE).await
    }

    async fn read_history(&self, conn: &mut SqliteConnection) -> Result<Vec<HistoryRecord>, Error> {
        let with_kinds = !self
            .missing_history_columns(conn)
            .await?
            .contains(&HistoryColumn::Kind);
        Queries::<Self>::read_history(conn, &STATE, with_kinds).await
    }

    async fn missing_history_columns(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<Vec<HistoryColumn>, Error> {
        let present = SqlStr::from_static(
            "SELECT name FROM pragma_table_info('schema_history') WHERE name IN ('down_sql', 'attempts', 'kind', 'note', 'replaced_checksum')",
        );
        Queries::<Self>::missing_history_columns(conn, present).await
    }

    async fn is_empty(&self, conn: &mut SqliteConnection) -> Result<bool, Error> {
        let any_table =
            SqlStr::from_static("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')");
        Queries::<Self>::is_empty(conn, any_table, Vec::new()).await
    }

    async fn read_foreign(
        &self,
        conn: &mut SqliteConnection,
        tool: crate::origin::Tool,
    ) -> Result<Vec<super::ForeignRow>, Error> {
        Queries::<Self>::read_foreign(conn, tool).await
    }

    async fn read_down_sql(
        &self,
        conn: &mut SqliteConnection,
        revision: &str,
    ) -> Result<Option<String>, Error> {
        let sql = SqlStr::from_static(
            "SELECT down_sql FROM schema_history WHERE revision = ?1 AND direction = 'up' \
             ORDER BY id DESC LIMIT 1",
        );
        Queries::<Self>::read_down_sql(conn, sql, revision).await
    }

    fn create_tables(&self) -> &str {
        &CREATE_TABLES
    }

    /// Reading the state is no round trip here: nothing to spare.
    fn create_absent_tables(&self) -> Option<&str> {
        None
    }

    fn add_history_column(&self, column: HistoryColumn) -> String {
        format!(
            "ALTER TABLE schema_history ADD COLUMN {} {}",
            column.name(),
            column.definition()
        )
    }

    fn insert_history(&self, rows: usize) -> SqlStr {
        super::insert_history_sql("schema_history", rows, |n| format!("?{n}"))
    }

    fn insert_version(&self) -> SqlStr {
        SqlStr::from_static("INSERT INTO alembic_version (version_num) VALUES (?1)")
    }

    fn update_version(&self) -> SqlStr {
        SqlStr::from_static("UPDATE alembic_version SET version_num = ?1 WHERE version_num = ?2")
    }

    fn delete_version(&self) -> SqlStr {
        SqlStr::from_static("DELETE FROM alembic_version WHERE version_num = ?1")
    }

    fn finish_started(&self) -> SqlStr {
        SqlStr::from_static(
            "UPDATE schema_history SET finished = TRUE, duration_ms = ?1 \
             WHERE id = (SELECT max(id) FROM schema_history) AND NOT finished",
        )
    }

    fn delete_started(&self) -> SqlStr {
        SqlStr::from_static(
            "DELETE FROM schema_history WHERE id = (SELECT max(id) FROM schema_history) AND NOT finished",
        )
    }

    /// None: there are no schemas, and locks are waited for in the busy handler.
    fn migration_settings(&self, _: Scope, _: Duration) -> Vec<String> {
        Vec::new()
    }

    /// None: SQLite waits for a lock in its busy handler, up to the lock timeout.
    fn lock_wait_setting(&self, _: Scope, _: Duration) -> Option<String> {
        None
    }

    fn reset_migration_settings(&self) -> &'static [&'static str] {
        &[]
    }

    async fn execute(
        &self,
        conn: &mut SqliteConnection,
        statement: Bound,
    ) -> Result<u64, sqlx::Error> {
        let query = Queries::<Self>::bind(sqlx::query(statement.sql), statement.values);
        Ok(query.execute(conn).await?.rows_affected())
    }

    async fn run(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
    ) -> Result<(), (usize, sqlx::Error)> {
        Queries::<Self>::run(conn, sql).await
    }

    async fn begin_attempt(
        &self,
        conn: &mut SqliteConnection,
        statements: &str,
    ) -> Result<(), (usize, sqlx::Error)> {
        if statements.is_empty() {
            return Ok(());
        }
        self.run(conn, statements).await
    }

    /// `BEGIN` fails inside a transaction; when it succeeds, the transaction it opened is
    /// rolled back at once.
    async fn same_transaction(&self, conn: &mut SqliteConnection, (): ()) -> Result<bool, Error> {
        match sqlx::raw_sql("BEGIN").execute(&mut *conn).await {
            Ok(_) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| describe(e, "ending the probe transaction"))?;
                Ok(false)
            }
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.message().contains("within a transaction")) =>
            {
                Ok(true)
            }
            Err(e) => Err(describe(
                e,
                "checking that the migration transaction is still open",
            )),
        }
    }

    /// `BEGIN IMMEDIATE`, which waits up to the busy timeout (the lock timeout).
    async fn take_lock(&self, conn: &mut SqliteConnection, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        match sqlx::raw_sql(Self::BEGIN).execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) if is_busy(&e) => Err(Error::LockTimeout {
                holder: self.lock_holder(conn).await,
                waited: started.elapsed().max(timeout),
            }),
            Err(e) => Err(describe(e, "taking the migration lock (BEGIN IMMEDIATE)")),
        }
    }

    /// The lock is the transaction, released by its end.
    async fn release_lock(&self, _: &mut SqliteConnection) -> Result<(), Error> {
        Ok(())
    }

    /// A SQLite file has no replicas of its own.
    async fn standby(&self, _: &mut SqliteConnection) -> Result<Option<super::Standby>, Error> {
        Ok(None)
    }

    /// Never asked ([`Backend::HOLDS_LOCK_APART`] is false): a second connection's write
    /// transaction would lock this one out of the file.
    async fn hold_lock_apart(
        &self,
        _: &mut SqliteConnection,
        _: Duration,
        _: &str,
    ) -> Result<SqliteConnection, Error> {
        Err(Error::Internal(
            "SQLite's migration lock is the write transaction: it cannot be held apart",
        ))
    }

    async fn lock_holder(&self, _: &mut SqliteConnection) -> String {
        "another connection to this SQLite file".to_owned()
    }

    /// Never: SQLite waits for a lock in its busy handler for the whole lock timeout, so
    /// there is no time left to try again in.
    fn is_retryable_lock_wait(_: &sqlx::Error) -> bool {
        false
    }

    /// A file has no connection to lose.
    fn is_connection_lost(_error: &sqlx::Error) -> bool {
        false
    }

    /// SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY and SQLITE_NOMEM may roll the transaction
    /// back (SQLite's "Response To Errors Within A Transaction"): a disk that fills up during
    /// a migration does.
    fn rolls_back_on_its_own(error: &sqlx::Error) -> bool {
        matches!(primary_code(error), Some(13 | 10 | 5 | 7))
    }

    /// Never asked: [`Backend::create_absent_tables`] is `None` here.
    fn is_duplicate_table(_error: &sqlx::Error) -> bool {
        false
    }

    fn is_missing_table(error: &sqlx::Error) -> bool {
        error
            .as_database_error()
            .is_some_and(|e| e.message().starts_with("no such table"))
    }

    fn error_position(_: &sqlx::Error) -> Option<usize> {
        None
    }

    fn describe(error: sqlx::Error, context: &str) -> Error {
        describe(error, context)
    }

    async fn watch_blockers(&self, _: &mut SqliteConnection) -> Option<Self::Watcher> {
        None
    }
}

/// A database error with what we were doing and, for the common causes, what to do.
pub(crate) fn describe(error: sqlx::Error, context: &str) -> Error {
    let advice = match primary_code(&error) {
        Some(5 | 6) => {
            "; another connection holds a lock on the file (a transaction left open?) and did \
             not release it within the lock timeout: end it, or raise [db] lock_timeout"
        }
        Some(8) => "; the database file (or its folder) is read-only: check its permissions",
        Some(13) => "; the disk is full",
        Some(14) => "; the file cannot be opened: check that its folder exists and is accessible",
        Some(26) => "; the file is not a SQLite database: check the database URL",
        _ => "",
    };
    Error::database(format!("SQLite error while {context}{advice}"), error)
}

/// The primary result code of a SQLite error (its extended code's low byte).
fn primary_code(error: &sqlx::Error) -> Option<i32> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .map(|code| code & 0xff)
}

/// SQLITE_BUSY: another connection holds the write lock.
pub(crate) fn is_busy(error: &sqlx::Error) -> bool {
    primary_code(error) == Some(5)
}

/// Whether a SQLite error is a lock wait that ran out (SQLITE_BUSY or SQLITE_LOCKED).
pub(crate) fn is_lock_wait(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::sqlite::SqliteError>())
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// Options for every connection to a file: wait up to `busy` for locks.
fn connect_options(base: SqliteConnectOptions, busy: Duration) -> SqliteConnectOptions {
    base.busy_timeout(busy)
        .log_statements(tracing::log::LevelFilter::Trace)
}
