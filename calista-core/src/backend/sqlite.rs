//! SQLite: the migration lock is an immediate write transaction with a busy timeout.

use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection};

type DB = sqlx::Sqlite;

super::state_queries!(SqliteConnection, SqliteRow);

fn is_missing_table(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.message().starts_with("no such table"))
}

/// SQLITE_BUSY (5) and its extended codes: another connection holds the write lock.
pub(crate) fn is_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
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

/// A database error with what we were doing and, for the common causes, what to do.
pub(crate) fn describe(error: sqlx::Error, context: &str) -> Error {
    let primary = error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    let advice = match primary {
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

/// Options for every connection to a file: wait up to `busy` for locks.
pub(crate) fn connect_options(base: SqliteConnectOptions, busy: Duration) -> SqliteConnectOptions {
    base.busy_timeout(busy)
        .log_statements(tracing::log::LevelFilter::Trace)
}

/// Whether a transaction is still open on the connection: `BEGIN` fails inside one. When
/// it succeeds, the transaction it opened is rolled back at once.
pub(crate) async fn transaction_open(conn: &mut SqliteConnection) -> Result<bool, Error> {
    match sqlx::raw_sql("BEGIN").execute(&mut *conn).await {
        Ok(_) => {
            run_control(conn, "ROLLBACK", "ending the probe transaction").await?;
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

/// A dedicated connection for migrating; the lock is taken by [`Session::begin`].
pub(crate) struct Session {
    pub(crate) conn: SqliteConnection,
    lock_timeout: Duration,
}

impl Session {
    /// Opens the connection (creating the file if needed).
    /// Uses `reuse` if given (the guard's connection), else opens a connection.
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        lock_timeout: Duration,
        reuse: Option<SqliteConnection>,
    ) -> Result<Self, Error> {
        // SQLite opens a file it may not write read-only and fails only at the first
        // write, in the middle of a migration; say it up front instead.
        let file = options.get_filename();
        let writable = std::fs::OpenOptions::new().write(true).open(file);
        if let (true, Err(e)) = (file.exists(), writable) {
            return Err(Error::database(
                format!(
                    "cannot write the database file {}: it is read-only ({e}); check its permissions \
                     (and attributes, e.g. `lsattr`), or upgrade a writable copy",
                    file.display()
                ),
                sqlx::Error::Io(e),
            ));
        }
        if let Some(conn) = reuse {
            return Ok(Self { conn, lock_timeout });
        }
        let options = options.clone().create_if_missing(true);
        let conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| describe(e, "opening the database for migration"))?;
        Ok(Self { conn, lock_timeout })
    }

    /// Takes the write lock: `BEGIN IMMEDIATE`, which waits up to the busy timeout.
    pub(crate) async fn begin(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        match sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_busy(&e) => Err(Error::LockTimeout {
                holder: "another connection to this SQLite file".to_owned(),
                waited: started.elapsed().max(self.lock_timeout),
            }),
            Err(e) => Err(describe(e, "taking the migration lock (BEGIN IMMEDIATE)")),
        }
    }

    /// Gives the connection back for reuse; nothing is left open on it.
    pub(crate) fn release(self) -> SqliteConnection {
        self.conn
    }

    /// Closes the connection, which also ends any transaction still open.
    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}
