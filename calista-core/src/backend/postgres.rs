//! PostgreSQL: connections with the schema on `search_path`, the advisory migration lock,
//! each attempt's transaction (opened with its settings, checked before it is recorded), and
//! the watcher that sees who blocks an attempt waiting for a table lock.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{ConnectOptions, Connection};

type DB = sqlx::Postgres;

super::state_queries!(PgConnection, PgRow);

/// Undefined table, or undefined schema.
fn is_missing_table(error: &sqlx::Error) -> bool {
    matches!(sql_state(error).as_deref(), Some("42P01" | "3F000"))
}

fn sql_state(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// A database error with what we were doing and, for the common causes, what to do.
pub(crate) fn describe(error: sqlx::Error, context: &str) -> Error {
    let advice = match sql_state(&error).as_deref() {
        Some("42501") => {
            "; the database role lacks a privilege: grant it CREATE on the database (for the schema) \
             or create the schema and grant the role its ownership"
        }
        Some("25006") => "; the server is read-only (a standby?): connect to the primary",
        Some("53100") => "; the server's disk is full",
        _ => "",
    };
    Error::database(format!("PostgreSQL error while {context}{advice}"), error)
}

/// Options for calista's own connection (the guard's reads and upgrades): the application
/// name that lock-timeout messages show, with the process id, and the schema first on
/// `search_path`, so migrations create their tables there.
pub(crate) fn connect_options(base: PgConnectOptions, schema: &str) -> PgConnectOptions {
    with_schema(base, schema)
        .application_name(&format!("calista migrate (pid {})", std::process::id()))
}

/// Options for the application's pool.
pub(crate) fn pool_options(base: PgConnectOptions, schema: &str) -> PgConnectOptions {
    with_schema(base, schema).application_name(&format!("calista app (pid {})", std::process::id()))
}

fn with_schema(base: PgConnectOptions, schema: &str) -> PgConnectOptions {
    base.options([("search_path", format!("\"{schema}\", public"))])
        .log_statements(tracing::log::LevelFilter::Trace)
}

/// Opens a connection, waiting at most `timeout`.
pub(crate) async fn connect(
    options: &PgConnectOptions,
    timeout: Duration,
    shown_url: &str,
) -> Result<PgConnection, Error> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(Error::connect(shown_url, source)),
        Err(_) => Err(Error::Timeout {
            url: shown_url.to_owned(),
            waited: timeout,
        }),
    }
}

/// Opens a migration transaction with `statements` (`BEGIN` and its settings) and returns
/// the transaction's id, which [`transaction_check`] compares later: one round trip.
pub(crate) async fn begin_attempt(
    conn: &mut PgConnection,
    statements: &[String],
) -> Result<i64, Error> {
    let context = "starting the migration transaction";
    let mut text = statements.join(";\n");
    text.push_str(";\nSELECT txid_current()");
    let rows = sqlx::raw_sql(AssertSqlSafe(text))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| describe(e, context))?;
    let id = rows.last().map(|row| row.try_get::<i64, _>(0));
    match id {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => Err(describe(e, context)),
        None => Err(describe(sqlx::Error::RowNotFound, context)),
    }
}

/// Whether the transaction `begun` (from [`begin_attempt`]) is still the one open: a
/// migration's `COMMIT` or `ROLLBACK` would have ended it, and what follows would run in a
/// new one, or in none. An aborted transaction (after a failed statement) is still it.
pub(crate) async fn transaction_check(conn: &mut PgConnection, begun: i64) -> Result<bool, Error> {
    match sqlx::query_scalar::<_, i64>("SELECT txid_current()")
        .fetch_one(&mut *conn)
        .await
    {
        Ok(id) => Ok(id == begun),
        // in_failed_sql_transaction: our transaction, aborted by the failed statement.
        Err(e) if sql_state(&e).as_deref() == Some("25P02") => Ok(true),
        Err(e) => Err(describe(
            e,
            "checking that the migration transaction is still open",
        )),
    }
}

/// A lock was not granted within `lock_timeout` (lock_not_available).
pub(crate) fn is_lock_wait(error: &sqlx::Error) -> bool {
    sql_state(error).as_deref() == Some("55P03")
}

/// This connection's server process id.
pub(crate) async fn backend_pid(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
}

/// Watches, from a second connection, which sessions block a migration's connection while
/// it waits for a lock, so that giving up can name them.
pub(crate) struct Watcher {
    conn: PgConnection,
    /// The migration connection's server process id.
    pid: i32,
    /// The blockers last seen.
    pub(crate) seen: Vec<crate::error::Blocker>,
}

impl Watcher {
    pub(crate) fn new(conn: PgConnection, pid: i32) -> Self {
        Self {
            conn,
            pid,
            seen: Vec::new(),
        }
    }

    /// Looks every 200 ms for as long as it is polled; never returns. A failed look stops
    /// the watching (the migration goes on; the message will say less).
    pub(crate) async fn watch(&mut self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // (pid, application name, seconds its transaction has been open); never the query.
            type Seen = (i32, Option<String>, Option<f64>);
            let seen: Result<Vec<Seen>, _> = sqlx::query_as(
                "SELECT pid, application_name, EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 \
                 FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids($1)) ORDER BY pid",
            )
            .bind(self.pid)
            .fetch_all(&mut self.conn)
            .await;
            match seen {
                Ok(rows) if rows.is_empty() => {}
                Ok(rows) => {
                    self.seen = rows
                        .into_iter()
                        .map(|(pid, application, age)| crate::error::Blocker {
                            pid,
                            application,
                            transaction_age: age
                                .filter(|s| s.is_finite() && *s >= 0.0)
                                .map(Duration::from_secs_f64),
                        })
                        .collect();
                }
                Err(e) => {
                    tracing::debug!(error = %crate::error::ServerMessage::of(&e), "cannot watch for blocking sessions");
                    return std::future::pending().await;
                }
            }
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// The advisory lock key of a schema's migrations (FNV-1a of a fixed prefix and the name).
pub(crate) fn lock_key(schema: &str) -> i64 {
    let hash = format!("calista-migrations/{schema}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A dedicated connection that holds the migration lock.
pub(crate) struct Session {
    pub(crate) conn: PgConnection,
    key: i64,
}

impl Session {
    /// Connects and takes the lock, polling `pg_try_advisory_lock` so that a waiting
    /// process never sits inside a statement: a blocked `pg_advisory_lock` would make the
    /// holder's `CREATE INDEX CONCURRENTLY` wait for it, and it for the holder.
    pub(crate) async fn lock(
        mut conn: PgConnection,
        schema: &str,
        lock_timeout: Duration,
    ) -> Result<Self, Error> {
        let key = lock_key(schema);
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            let taken: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut conn)
                .await;
            match taken {
                Ok(true) => return Ok(Self { conn, key }),
                Ok(false) => {}
                Err(e) => return Err(describe(e, "taking the migration lock")),
            }
            let waited = started.elapsed();
            if waited >= lock_timeout {
                let holder = lock_holder(&mut conn, key).await;
                let _ = conn.close().await;
                return Err(Error::LockTimeout { holder, waited });
            }
            tracing::debug!(
                waited_ms = waited.as_millis() as u64,
                "waiting for the migration lock"
            );
            tokio::time::sleep(pause.min(lock_timeout - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Releases the lock and gives the connection back for reuse. Closing the connection
    /// would release the lock too (the server drops a session's advisory locks when it
    /// ends), which is what happens if the session is dropped without this call.
    pub(crate) async fn release(mut self) -> Option<PgConnection> {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.conn)
            .await;
        match unlocked {
            Ok(_) => Some(self.conn),
            Err(e) => {
                tracing::warn!(error = %crate::error::ServerMessage::of(&e), "could not release the migration lock; closing the connection releases it");
                let _ = self.conn.close().await;
                None
            }
        }
    }

    /// Releases the lock by closing the connection: after a failure it may be in any state.
    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// Who holds the advisory lock, for the timeout message.
async fn lock_holder(conn: &mut PgConnection, key: i64) -> String {
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let (high, low) = (
        i64::try_from(bits >> 32).unwrap_or(0),
        i64::try_from(bits & 0xffff_ffff).unwrap_or(0),
    );
    // (pid, application name, client address)
    type Holder = (i32, Option<String>, Option<String>);
    let holder: Result<Option<Holder>, _> = sqlx::query_as(
        "SELECT l.pid, a.application_name, a.client_addr::text FROM pg_locks l \
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
         AND l.objsubid = 1 AND l.granted \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
    )
    .bind(high)
    .bind(low)
    .fetch_optional(conn)
    .await;
    match holder {
        Ok(Some((pid, app, addr))) => {
            let app = app
                .filter(|a| !a.is_empty())
                .map_or_else(String::new, |a| format!(", application '{a}'"));
            let addr =
                addr.map_or_else(|| " on a local socket".to_owned(), |a| format!(" from {a}"));
            format!("PostgreSQL backend pid {pid}{app}{addr}")
        }
        Ok(None) => "another session (it released the lock just now)".to_owned(),
        Err(_) => "another session (pg_locks could not be read)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    /// Every build and every release must take the same lock for a schema, or two of them
    /// could upgrade one database at once: the key is pinned (FNV-1a of
    /// `calista-migrations/<schema>`), and schemas do not share one.
    #[test]
    fn lock_key_is_the_same_in_every_build_and_differs_between_schemas() {
        assert_eq!(lock_key("calista"), 851_367_371_330_938_666);
        let keys: std::collections::HashSet<i64> =
            ["calista", "other", "calista2", "my_app", "a", "b"]
                .into_iter()
                .map(lock_key)
                .collect();
        assert_eq!(keys.len(), 6);
    }
}
