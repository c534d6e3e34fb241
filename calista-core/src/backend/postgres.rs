//! PostgreSQL: calista's tables in a schema of their own, connections that say who they
//! are (and send no startup parameter a pooler refuses), the advisory migration lock taken
//! in each transaction (or held apart, by a transaction of its own, across a no-transaction
//! migration), each attempt's transaction opened with its settings and recognised by its
//! transaction id, and the watcher that sees who blocks an attempt waiting for a table lock.
//!
//! Everything here works through a connection pooler in transaction mode (PgBouncer's
//! `pool_mode = transaction`), which hands the server connection to another client after
//! each transaction: nothing is left on a session that outlives its transaction (no
//! session setting, no session lock, no named prepared statement), and a statement with
//! parameters runs only inside a transaction, so that its prepare and its execution meet
//! on one server connection. The one exception is the guard's read, kept prepared on a
//! connection shown to reach the server itself ([`Route`]).

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgErrorPosition, PgRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqlSafeStr, SqlStr};

use super::{
    Backend, Bound, Held, HistoryColumn, LockScope, Queries, Scope, Standby, StateSql, Watch,
};
use crate::backup;
use crate::database::SchemaName;
use crate::engine::plan::{DbState, HistoryRecord};
use crate::error::{Blocker, Error};
use crate::migration::Dialect;

/// A PostgreSQL database, calista's tables in `schema`.
#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    /// calista's own connections: the application's options, with an application name that
    /// lock messages show. No `search_path` startup parameter (`options`), which poolers
    /// refuse: our statements name the schema, and migrations set it with `SET LOCAL`.
    connect: PgConnectOptions,
    /// The application's options (its URL's, or its pool's), which backups follow.
    base: PgConnectOptions,
    /// The password backups pass to `pg_dump` through the environment.
    password: Option<String>,
    /// The database's name.
    database: String,
    schema: SchemaName,
    connect_timeout: Duration,
    /// The URL, password redacted, for connection errors.
    shown_url: String,
    sql: Sql,
    /// Where calista's newest connection leads, as the guard's first read on it found out.
    route: RouteCell,
}

/// The statements on our tables, with the schema written in (a validated identifier, quoted).
#[derive(Debug, Clone)]
struct Sql {
    state: StateSql,
    brief: SqlStr,
    /// The guard's read, then the server's end of the connection ([`Route`]): one message.
    brief_and_route: String,
    create_tables: String,
    create_absent_tables: String,
    history_table: String,
    insert_version: SqlStr,
    update_version: SqlStr,
    delete_version: SqlStr,
    finish_started: SqlStr,
    delete_started: SqlStr,
    read_down_sql: SqlStr,
    present_columns: SqlStr,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let p = format!("\"{schema}\".");
        let sql = |text: String| AssertSqlSafe(text).into_sql_str();
        let history_columns = "revision, summary, direction, finished, checksum, chain, \
             to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS applied_at, \
             duration_ms, app_version, backup";
        let versions = format!("SELECT version_num FROM {p}alembic_version LIMIT 2");
        let last =
            format!("SELECT {history_columns} FROM {p}schema_history ORDER BY id DESC LIMIT 1");
        // A row per version row, at most two: PostgreSQL sends a second row for nothing
        // but runs an aggregate slower, and the ordered subquery is one backward index scan.
        let brief = format!(
            "SELECT 1::BIGINT, v.version_num, h.revision, h.finished, h.chain \
             FROM {p}alembic_version AS v LEFT JOIN (SELECT revision, finished, chain \
             FROM {p}schema_history ORDER BY id DESC LIMIT 1) AS h ON 1 = 1 LIMIT 2"
        );
        Self {
            state: StateSql {
                // One query: at most two version rows beside the newest history row.
                state: sql(format!(
                    "SELECT v.version_num, h.* FROM (SELECT 1 AS one) AS o \
                     LEFT JOIN ({versions}) AS v ON 1 = 1 \
                     LEFT JOIN ({last}) AS h ON 1 = 1"
                )),
                // The tables of `pg_tables` (kinds r and p), looked up by name in
                // `pg_class`'s index: the view scans every relation, which took 0.2-0.5 ms
                // more of a first install's time.
                probe_tables: sql(format!(
                    "SELECT to_regclass('{p}alembic_version') IS NOT NULL, \
                     to_regclass('{p}schema_history') IS NOT NULL, \
                     (SELECT min(c.relname::text) FROM pg_catalog.pg_class AS c \
                     JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace \
                     WHERE c.relname IN ('_sqlx_migrations', '__diesel_schema_migrations', \
                     'refinery_schema_history', 'alembic_version') \
                     AND c.relkind IN ('r', 'p') \
                     AND n.nspname = ANY (current_schemas(false)) \
                     AND NOT (c.relname = 'alembic_version' AND n.nspname = '{schema}'))"
                )),
                versions: sql(versions),
                last: sql(last),
                history: sql(format!(
                    "SELECT {history_columns} FROM {p}schema_history ORDER BY id"
                )),
                history_with_kinds: sql(format!(
                    "SELECT {history_columns}, kind, note, replaced_checksum FROM {p}schema_history ORDER BY id"
                )),
            },
            brief: sql(brief.clone()),
            brief_and_route: format!("{brief}; {ROUTE}"),
            // The schema and both tables, in one round trip.
            create_tables: create_tables_sql(schema, "IF NOT EXISTS "),
            create_absent_tables: create_tables_sql(schema, ""),
            history_table: format!("{p}schema_history"),
            insert_version: sql(format!(
                "INSERT INTO {p}alembic_version (version_num) VALUES ($1)"
            )),
            update_version: sql(format!(
                "UPDATE {p}alembic_version SET version_num = $1 WHERE version_num = $2"
            )),
            delete_version: sql(format!(
                "DELETE FROM {p}alembic_version WHERE version_num = $1"
            )),
            finish_started: sql(format!(
                "UPDATE {p}schema_history SET finished = TRUE, duration_ms = $1 \
                 WHERE id = (SELECT max(id) FROM {p}schema_history) AND NOT finished"
            )),
            delete_started: sql(format!(
                "DELETE FROM {p}schema_history WHERE id = (SELECT max(id) FROM {p}schema_history) AND NOT finished"
            )),
            // The schema as a literal, like `to_regclass` above: a statement with parameters
            // outside a transaction could be prepared on one pooled server connection and run
            // on another.
            present_columns: sql(format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = '{schema}' AND table_name = 'schema_history' \
                 AND column_name IN ('down_sql', 'attempts', 'kind', 'note', 'replaced_checksum')"
            )),
            read_down_sql: sql(format!(
                "SELECT down_sql FROM {p}schema_history WHERE revision = $1 AND direction = 'up' \
                 ORDER BY id DESC LIMIT 1"
            )),
        }
    }
}

/// The schema and both tables ([`super::create_tables_sql`]), in one text; `if_not_exists`
/// is `"IF NOT EXISTS "` or empty (the creation then fails if either table exists).
fn create_tables_sql(schema: &str, if_not_exists: &str) -> String {
    let tables = super::create_tables_sql(
        &format!("\"{schema}\"."),
        if_not_exists,
        "BIGINT GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_schema_history PRIMARY KEY",
        "TIMESTAMPTZ  NOT NULL DEFAULT clock_timestamp()",
    );
    format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n{tables}")
}

impl Postgres {
    /// The database `base` connects to, calista's tables in `schema` (a valid schema name).
    pub(crate) fn new(
        base: PgConnectOptions,
        password: Option<String>,
        database: String,
        schema: SchemaName,
        connect_timeout: Duration,
        shown_url: String,
    ) -> Self {
        let connect = base
            .clone()
            .log_statements(tracing::log::LevelFilter::Trace)
            .application_name(&format!("calista migrate (pid {})", std::process::id()));
        Self {
            connect,
            base,
            password,
            database,
            sql: Sql::new(schema.as_str()),
            schema,
            connect_timeout,
            shown_url,
            route: RouteCell::default(),
        }
    }

    /// The schema of calista's tables.
    pub(crate) fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// What a backup of the schema reads: the application's connection, as `pg_dump`'s
    /// arguments (no password) and environment (the password, the TLS settings).
    pub(crate) fn backup_source(&self) -> backup::Source<'_> {
        let base = &self.base;
        let host = match base.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => base.get_host().to_owned(),
        };
        let port = base.get_port();
        let database = &self.database;
        let connection_args = vec![
            format!("--host={host}"),
            format!("--port={port}"),
            format!("--username={}", base.get_username()),
            format!("--dbname={database}"),
        ];
        let mut env = Vec::new();
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD", password.clone()));
        }
        env.extend(client_tls(base));
        backup::Source::Postgres {
            connection_args,
            env,
            database: database.clone(),
            server: format!("{host}:{port}/{database}"),
            schema: self.schema.as_str(),
        }
    }
}

impl Backend for Postgres {
    type Db = sqlx::Postgres;
    type Conn = PgConnection;
    /// The transaction's id (`txid_current()`).
    type Mark = i64;
    type Watcher = Watcher;

    const DIALECT: Dialect = Dialect::Postgres;
    /// A transaction-level advisory lock: it cannot outlive its transaction, so it cannot
    /// leak to a pooled server connection, and it is taken before anything else the
    /// transaction does (creating the schema included).
    const LOCK_SCOPE: LockScope = LockScope::Transaction;
    const BEGIN: &'static str = "BEGIN";
    const MULTI_STATEMENT_QUERY_IS_ONE_TRANSACTION: bool = true;
    /// Each statement is a round trip (two for one the connection has not prepared yet):
    /// many rows each, 11 000 parameters of the 65 535 a statement may bind.
    const HISTORY_ROWS_PER_INSERT: usize = 1000;
    const INSERT_IN_WITH: bool = true;
    const RUN_BY_HAND: &'static str = "psql -v ON_ERROR_STOP=1 -f <file>";
    const KEEPS_PREPARED_STATEMENTS: bool = false;
    const HOLDS_LOCK_APART: bool = true;
    const ATTEMPT_SAVEPOINT: Option<&'static str> = Some("calista_attempt");

    /// A new connection is asked where it leads before the guard keeps a statement on it.
    async fn connect(&self) -> Result<PgConnection, Error> {
        let url = &self.shown_url;
        let failed = |source| Error::connect(url.clone(), source);
        self.route.set(Route::Unknown);
        super::connect_within(&self.connect, self.connect_timeout, url, failed).await
    }

    async fn open_session(
        &self,
        reuse: Option<PgConnection>,
        _pool: &sqlx::PgPool,
    ) -> Result<Held<Self>, Error> {
        match reuse {
            Some(conn) => Ok(Held::Own(conn)),
            None => self.connect().await.map(Held::Own),
        }
    }

    fn is_absent(&self) -> bool {
        false
    }

    /// Prepared once and kept where the connection reaches the server itself: the server
    /// then plans the read once, where a simple query is parsed and planned on every call,
    /// which costs more than the read. Elsewhere a simple query, the first time with the
    /// question of where the connection leads, answered at the second read ([`Route`]): a
    /// process that checks once resolves no host name.
    async fn read_state_brief(&self, conn: &mut PgConnection) -> Result<Option<DbState>, Error> {
        let mut route = self.route.get();
        if let Route::Seen { address, port } = route {
            route = if reaches(&self.connect, address, port).await {
                Route::Direct
            } else {
                Route::Indirect
            };
            self.route.set(route);
        }
        let brief = self.sql.brief.clone();
        let rows = match route {
            Route::Direct => {
                let rows = sqlx::query(brief)
                    .persistent(true)
                    .fetch_all(&mut *conn)
                    .await;
                // Options without a statement cache would prepare a new statement each call
                // and leave them all on the connection.
                if conn.cached_statements_size() == 0 {
                    self.route.set(Route::Indirect);
                }
                rows
            }
            Route::Indirect | Route::Seen { .. } => Queries::<Self>::fetch_rows(conn, brief).await,
            Route::Unknown => self.read_brief_and_route(conn).await,
        };
        Queries::<Self>::read_state_brief(conn, &self.sql.state, rows).await
    }

    async fn read_state(&self, conn: &mut PgConnection) -> Result<DbState, Error> {
        Queries::<Self>::read_state(conn, &self.sql.state).await
    }

    /// Looks for the tables first: a query on a missing one would abort the transaction.
    async fn read_state_in_transaction(&self, conn: &mut PgConnection) -> Result<DbState, Error> {
        let probe = Queries::<Self>::fetch_rows(conn, self.sql.state.probe_tables.clone())
            .await
            .map_err(|e| describe(e, "checking which migration tables exist"))?;
        let present = |column| {
            probe
                .first()
                .and_then(|row| row.try_get::<bool, _>(column).ok())
                .unwrap_or(false)
        };
        if present(0) && present(1) {
            self.read_state(conn).await
        } else {
            Queries::<Self>::read_partial_state(conn, &self.sql.state).await
        }
    }

    /// A primary answers one function call; how far a standby's replay lags is asked only
    /// of a standby (the lag's functions cost a first install 0.2 ms more on a new
    /// connection, which looks them up).
    async fn standby(&self, conn: &mut PgConnection) -> Result<Option<Standby>, Error> {
        let context = "checking whether the server is a standby";
        let in_recovery = simple_value::<bool>(conn, "SELECT pg_is_in_recovery()")
            .await
            .map_err(|e| describe(e, context))?;
        if !in_recovery {
            return Ok(None);
        }
        // `pg_is_wal_replay_paused()` fails on a primary: a standby promoted meanwhile is one.
        let sql = SqlStr::from_static(
            "SELECT pg_is_in_recovery(), \
             CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, \
             pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8, \
             EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8",
        );
        let rows = Queries::<Self>::fetch_rows(conn, sql)
            .await
            .map_err(|e| describe(e, context))?;
        let row = rows
            .first()
            .ok_or_else(|| describe(sqlx::Error::RowNotFound, context))?;
        type Found = (bool, Option<bool>, Option<f64>, Option<f64>);
        let found: Result<Found, sqlx::Error> = (|| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })();
        let (in_recovery, paused, unreplayed, replay_age) =
            found.map_err(|e| describe(e, context))?;
        if !in_recovery {
            return Ok(None);
        }
        let since = replay_age
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or_else(String::new, |s| {
                format!("; it last replayed a transaction {s:.0}s ago")
            });
        let unreplayed = unreplayed.filter(|bytes| *bytes > 0.0);
        let lag = match (paused == Some(true), unreplayed) {
            (true, Some(bytes)) => Some(format!(
                "replay is paused, with {bytes:.0} bytes of WAL received and not yet replayed{since}"
            )),
            (true, None) => Some(format!("replay is paused{since}")),
            (false, Some(bytes)) => Some(format!(
                "{bytes:.0} bytes of WAL received and not yet replayed{since}"
            )),
            (false, None) => None,
        };
        Ok(Some(Standby { lag }))
    }

    async fn read_history(&self, conn: &mut PgConnection) -> Result<Vec<HistoryRecord>, Error> {
        let with_kinds = !self
            .missing_history_columns(conn)
            .await?
            .contains(&HistoryColumn::Kind);
        Queries::<Self>::read_history(conn, &self.sql.state, with_kinds).await
    }

    async fn missing_history_columns(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<HistoryColumn>, Error> {
        Queries::<Self>::missing_history_columns(conn, self.sql.present_columns.clone()).await
    }

    /// A simple query (the schema name is a validated identifier): asked once, before the
    /// first upgrade's backup.
    async fn is_empty(&self, conn: &mut PgConnection) -> Result<bool, Error> {
        let schema = &self.schema;
        let any_table =
            format!("SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = '{schema}')");
        simple_value::<bool>(conn, &any_table)
            .await
            .map(|any| !any)
            .map_err(|e| describe(e, "checking whether the database is empty"))
    }

    async fn read_foreign(
        &self,
        conn: &mut PgConnection,
        tool: crate::origin::Tool,
    ) -> Result<Vec<super::ForeignRow>, Error> {
        Queries::<Self>::read_foreign(conn, tool).await
    }

    async fn read_down_sql(
        &self,
        conn: &mut PgConnection,
        revision: &str,
    ) -> Result<Option<String>, Error> {
        Queries::<Self>::read_down_sql(conn, self.sql.read_down_sql.clone(), revision).await
    }

    fn create_tables(&self) -> &str {
        &self.sql.create_tables
    }

    fn create_absent_tables(&self) -> Option<&str> {
        Some(&self.sql.create_absent_tables)
    }

    fn add_history_column(&self, column: HistoryColumn) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.sql.history_table,
            column.name(),
            column.definition()
        )
    }

    fn insert_history(&self, rows: usize) -> SqlStr {
        super::insert_history_sql(&self.sql.history_table, rows, |n| format!("${n}"))
    }

    fn insert_version(&self) -> SqlStr {
        self.sql.insert_version.clone()
    }

    fn update_version(&self) -> SqlStr {
        self.sql.update_version.clone()
    }

    fn delete_version(&self) -> SqlStr {
        self.sql.delete_version.clone()
    }

    fn finish_started(&self) -> SqlStr {
        self.sql.finish_started.clone()
    }

    fn delete_started(&self) -> SqlStr {
        self.sql.delete_started.clone()
    }

    /// `SET LOCAL` inside the transaction (never a startup parameter, which poolers refuse),
    /// so the application's own connections are left as they are.
    fn migration_settings(&self, scope: Scope, lock_wait: Duration) -> Vec<String> {
        vec![
            lock_wait_setting(scope, lock_wait),
            format!("{} search_path = \"{}\", public", scope.set(), self.schema),
        ]
    }

    fn lock_wait_setting(&self, scope: Scope, lock_wait: Duration) -> Option<String> {
        Some(lock_wait_setting(scope, lock_wait))
    }

    fn reset_migration_settings(&self) -> &'static [&'static str] {
        &["RESET lock_timeout", "RESET search_path"]
    }

    async fn execute(&self, conn: &mut PgConnection, statement: Bound) -> Result<u64, sqlx::Error> {
        let query = Queries::<Self>::bind(sqlx::query(statement.sql), statement.values);
        Ok(query.execute(conn).await?.rows_affected())
    }

    async fn run(&self, conn: &mut PgConnection, sql: &str) -> Result<(), (usize, sqlx::Error)> {
        Queries::<Self>::run(conn, sql).await
    }

    async fn begin_attempt(
        &self,
        conn: &mut PgConnection,
        statements: &str,
    ) -> Result<i64, (usize, sqlx::Error)> {
        let sql = if statements.is_empty() {
            "SELECT txid_current()".to_owned()
        } else {
            format!("{statements};\nSELECT txid_current()")
        };
        let rows = Queries::<Self>::fetch(conn, &sql).await?;
        match rows.last() {
            Some(row) => row.try_get(0).map_err(|e| (0, e)),
            None => Err((0, sqlx::Error::RowNotFound)),
        }
    }

    /// The SQL, then `SELECT txid_current()`, in one message: after a `COMMIT` or `ROLLBACK`
    /// in the SQL the rest of the message runs in a transaction of its own, whose id differs.
    /// The query goes on lines of its own, since the SQL may end in a line comment.
    async fn run_and_check(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        begun: i64,
    ) -> Result<Option<bool>, (usize, sqlx::Error)> {
        let sql = format!("{sql}\n;\nSELECT txid_current()");
        let (done, last) = Queries::<Self>::fetch_last(conn, &sql).await?;
        let id: i64 = last
            .ok_or(sqlx::Error::RowNotFound)
            .and_then(|row| row.try_get(0))
            .map_err(|e| (done, e))?;
        Ok(Some(id == begun))
    }

    async fn same_transaction(&self, conn: &mut PgConnection, begun: i64) -> Result<bool, Error> {
        match simple_value::<i64>(conn, "SELECT txid_current()").await {
            Ok(id) => Ok(id == begun),
            // in_failed_sql_transaction: our transaction, aborted by the failed statement.
            Err(e) if sql_state(&e).as_deref() == Some("25P02") => Ok(true),
            Err(e) => Err(describe(
                e,
                "checking that the migration transaction is still open",
            )),
        }
    }

    /// Polls `pg_try_advisory_xact_lock` in a transaction it opens (a transaction that does
    /// not get the lock is rolled back before the next try), so that a waiting process never
    /// sits inside a statement: a blocked lock request would make the holder's
    /// `CREATE INDEX CONCURRENTLY` wait for it, and it for the holder.
    async fn take_lock(&self, conn: &mut PgConnection, timeout: Duration) -> Result<(), Error> {
        let take = self.try_lock_sql("");
        let mut poll = LockPoll::new(timeout);
        loop {
            let (taken, _) = try_lock(conn, &take).await?;
            if taken {
                return Ok(());
            }
            end_transaction(conn).await?;
            if let Err(waited) = poll.wait().await {
                return Err(Error::LockTimeout {
                    holder: self.lock_holder(conn).await,
                    waited,
                });
            }
        }
    }

    /// Nothing: the lock ends with the transaction that took it.
    async fn release_lock(&self, _: &mut PgConnection) -> Result<(), Error> {
        Ok(())
    }

    /// The lock is taken as in [`Backend::take_lock`], by a connection of its own whose
    /// transaction stays open (and never times out idle). Two client connections of one
    /// process never share a server connection unless a pooler hands them around between
    /// transactions: the holder's server connection being the one `conn` just used, or
    /// `conn`'s changing meanwhile, tells a pooler in transaction mode.
    async fn hold_lock_apart(
        &self,
        conn: &mut PgConnection,
        timeout: Duration,
        file: &str,
    ) -> Result<PgConnection, Error> {
        let before = backend_pid(conn).await?;
        let mut holder = self.connect().await?;
        match self
            .take_lock_apart(conn, &mut holder, timeout, before, file)
            .await
        {
            Ok(()) => Ok(holder),
            Err(e) => {
                let _ = holder.close().await;
                Err(e)
            }
        }
    }

    async fn lock_holder(&self, conn: &mut PgConnection) -> String {
        let bits = u64::from_ne_bytes(lock_key(self.schema.as_str()).to_ne_bytes());
        let (high, low) = (
            i64::try_from(bits >> 32).unwrap_or(0),
            i64::try_from(bits & 0xffff_ffff).unwrap_or(0),
        );
        // (pid, application name, client address)
        type Holder = (i32, Option<String>, Option<String>);
        // Numbers of ours, written in: a statement with parameters outside a transaction
        // could be prepared on one pooled server connection and run on another.
        let query = format!(
            "SELECT l.pid, a.application_name, a.client_addr::text FROM pg_locks l \
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.classid::bigint = {high} AND l.objid::bigint = {low} \
             AND l.objsubid = 1 AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"
        );
        let holder: Result<Option<Holder>, sqlx::Error> =
            Queries::<Self>::fetch_rows(conn, AssertSqlSafe(query).into_sql_str())
                .await
                .and_then(|rows| {
                    rows.first()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                        .transpose()
                });
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

    /// lock_not_available: `lock_timeout` ran out.
    fn is_retryable_lock_wait(error: &sqlx::Error) -> bool {
        sql_state(error).as_deref() == Some("55P03")
    }

    /// An error aborts the transaction, which stays open until it is rolled back.
    fn rolls_back_on_its_own(_error: &sqlx::Error) -> bool {
        false
    }

    /// A socket that failed or closed, or the server ending the session: class 08
    /// (connection exception), admin_shutdown (a fast shutdown, `pg_terminate_backend`),
    /// crash_shutdown, cannot_connect_now.
    fn is_connection_lost(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
            _ => sql_state(error).is_some_and(|code| {
                code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
            }),
        }
    }

    /// duplicate_table.
    fn is_duplicate_table(error: &sqlx::Error) -> bool {
        sql_state(error).as_deref() == Some("42P07")
    }

    /// Undefined table, or undefined schema.
    fn is_missing_table(error: &sqlx::Error) -> bool {
        matches!(sql_state(error).as_deref(), Some("42P01" | "3F000"))
    }

    fn error_position(error: &sqlx::Error) -> Option<usize> {
        let error = error
            .as_database_error()?
            .try_downcast_ref::<PgDatabaseError>()?;
        match error.position() {
            Some(PgErrorPosition::Original(position)) => Some(position),
            _ => None,
        }
    }

    fn describe(error: sqlx::Error, context: &str) -> Error {
        describe(error, context)
    }

    async fn watch_blockers(&self, conn: &mut PgConnection) -> Option<Watcher> {
        let pid = backend_pid(conn).await.ok()?;
        let conn = self.connect().await.ok()?;
        Some(Watcher {
            conn,
            pid,
            seen: Vec::new(),
        })
    }
}

impl Postgres {
    /// The guard's read and the server's end of the connection, in one simple query; what
    /// the server said is kept for the guard's next read on this connection.
    async fn read_brief_and_route(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let (mut brief, mut server) = (Vec::new(), None);
        Queries::<Self>::each_row(conn, &self.sql.brief_and_route, |statement, row| {
            if statement == 0 {
                brief.push(row);
            } else {
                server = Some(row);
            }
        })
        .await
        .map_err(|(_, error)| error)?;
        let seen = server.and_then(|row| {
            let address: Option<String> = row.try_get(0).ok()?;
            let port: Option<i32> = row.try_get(1).ok()?;
            Some(Route::Seen {
                address: address?.parse().ok()?,
                port: port?,
            })
        });
        self.route.set(seen.unwrap_or(Route::Indirect));
        Ok(brief)
    }
}

/// Asks the server for its end of the connection: its address and port (none on a Unix
/// socket).
const ROUTE: &str = "SELECT host(inet_server_addr()), inet_server_port()";

/// Where a connection of calista's leads, which decides whether the guard's read may stay
/// prepared on it.
///
/// A named prepared statement outlives its transaction: through a pooler in transaction
/// mode it would stay on a server connection another client gets next (`prepared statement
/// "sqlx_s_1" already exists`), and ours would be missing from the server connection we
/// get. It is kept only where the connection is shown to reach the server itself: the
/// server's end of it has the address and port calista dialled. A pooler or proxy ends the
/// client's TCP connection at a socket of its own and opens another to the server, whose
/// end of it has the server's address and port, not the pooler's: PgBouncer on port 6432
/// of the database's host, or on port 5432 of another host, does not pass. What cannot be
/// shown is taken as indirect: a Unix socket (the server reports no address for it), an
/// address translated on the way (a container's published port, a cloud load balancer),
/// a host name that no longer resolves to the server's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Route {
    /// Not asked yet on this connection.
    #[default]
    Unknown,
    /// The server's end of the connection, as it told: not compared yet with what calista
    /// dialled, which may take a name lookup.
    Seen { address: IpAddr, port: i32 },
    /// The server's end of the connection is what calista dialled.
    Direct,
    /// Perhaps a pooler: nothing is left on the connection beyond its transaction.
    Indirect,
}

/// A [`Route`] shared by the guard's reads; a clone starts over at [`Route::Unknown`].
#[derive(Debug, Default)]
struct RouteCell(Mutex<Route>);

impl RouteCell {
    fn get(&self) -> Route {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, route: Route) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = route;
    }
}

impl Clone for RouteCell {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Whether `server:port` (the server's end of a connection made with `connect`) is the
/// address and port calista dialled: its host, resolved, and port. Never on a Unix socket.
async fn reaches(connect: &PgConnectOptions, server: IpAddr, port: i32) -> bool {
    if connect.get_socket().is_some() {
        return false;
    }
    let dialled = connect.get_port();
    match tokio::net::lookup_host((connect.get_host(), dialled)).await {
        Ok(addresses) => is_dialled(addresses.map(|a| a.ip()), dialled, server, port),
        Err(_) => false,
    }
}

/// Whether the server's end of a connection, `server:port`, is one of the `dialled`
/// addresses at the dialled port (an IPv4 address the server shows as IPv6 counts as itself).
fn is_dialled(
    mut dialled: impl Iterator<Item = IpAddr>,
    dialled_port: u16,
    server: IpAddr,
    port: i32,
) -> bool {
    i32::from(dialled_port) == port
        && dialled.any(|address| address.to_canonical() == server.to_canonical())
}

/// The first column of the one row a statement of ours without parameters returns, sent
/// as a simple query: one round trip, where a prepared statement new to the connection
/// takes two (sqlx prepares, then binds). For the statements a migration sends once per
/// connection: the lock, the transaction's id.
async fn simple_value<T>(conn: &mut PgConnection, sql: &str) -> Result<T, sqlx::Error>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let row = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await?;
    row.try_get(0)
}

/// The waits between tries of the migration lock: from 10 ms, doubling, up to 250 ms,
/// until the timeout runs out.
struct LockPoll {
    started: Instant,
    timeout: Duration,
    pause: Duration,
}

impl LockPoll {
    fn new(timeout: Duration) -> Self {
        Self {
            started: Instant::now(),
            timeout,
            pause: Duration::from_millis(10),
        }
    }

    /// Waits before the next try; `Err`: the timeout ran out, after waiting this long.
    async fn wait(&mut self) -> Result<(), Duration> {
        let waited = self.started.elapsed();
        if waited >= self.timeout {
            return Err(waited);
        }
        tracing::debug!(
            waited_ms = waited.as_millis() as u64,
            "waiting for the migration lock"
        );
        tokio::time::sleep(self.pause.min(self.timeout - waited)).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(250));
        Ok(())
    }
}

/// Runs `take` (which opens a transaction and tries the lock), in one round trip: whether
/// the lock was taken, and by which server process.
async fn try_lock(conn: &mut PgConnection, take: &str) -> Result<(bool, i32), Error> {
    let context = "taking the migration lock";
    let rows = Queries::<Postgres>::fetch(conn, take)
        .await
        .map_err(|(_, e)| describe(e, context))?;
    let row = rows
        .last()
        .ok_or_else(|| describe(sqlx::Error::RowNotFound, context))?;
    let taken = row.try_get(0).map_err(|e| describe(e, context))?;
    let pid = row.try_get(1).map_err(|e| describe(e, context))?;
    Ok((taken, pid))
}

/// Rolls back a transaction that did not get the lock.
async fn end_transaction(conn: &mut PgConnection) -> Result<(), Error> {
    Queries::<Postgres>::run(conn, "ROLLBACK")
        .await
        .map_err(|(_, e)| {
            describe(
                e,
                "taking the migration lock (ending a try that found it held)",
            )
        })
}

/// The server process a connection's statement runs on.
async fn backend_pid(conn: &mut PgConnection) -> Result<i32, Error> {
    let context = "reading the server process id";
    let rows =
        Queries::<Postgres>::fetch_rows(conn, SqlStr::from_static("SELECT pg_backend_pid()"))
            .await
            .map_err(|e| describe(e, context))?;
    rows.first()
        .ok_or(sqlx::Error::RowNotFound)
        .and_then(|row| row.try_get(0))
        .map_err(|e| describe(e, context))
}

impl Postgres {
    /// Opens a transaction, runs `settings` in it, and tries the migration lock: one text,
    /// one round trip, giving whether the lock was taken and by which server process.
    fn try_lock_sql(&self, settings: &str) -> String {
        format!(
            "BEGIN;\n{settings}SELECT pg_try_advisory_xact_lock({}), pg_backend_pid()",
            lock_key(self.schema.as_str())
        )
    }

    /// [`Backend::hold_lock_apart`] on `holder`, `conn` having run on server process
    /// `before`.
    async fn take_lock_apart(
        &self,
        conn: &mut PgConnection,
        holder: &mut PgConnection,
        timeout: Duration,
        before: i32,
        file: &str,
    ) -> Result<(), Error> {
        let take = self.try_lock_sql("SET LOCAL idle_in_transaction_session_timeout = 0;\n");
        let pooler = || Error::TransactionPooler {
            file: file.to_owned(),
            url: self.shown_url.clone(),
        };
        let mut poll = LockPoll::new(timeout);
        loop {
            let (taken, pid) = try_lock(holder, &take).await?;
            if pid == before {
                return Err(pooler());
            }
            if taken {
                break;
            }
            end_transaction(holder).await?;
            if let Err(waited) = poll.wait().await {
                return Err(Error::LockTimeout {
                    holder: self.lock_holder(conn).await,
                    waited,
                });
            }
        }
        if backend_pid(conn).await? != before {
            return Err(pooler());
        }
        Ok(())
    }
}

/// A database error with what we were doing and, for the common causes, what to do; a lost
/// connection is said as such, the driver's words only logged. `describe` is called where
/// nothing is being changed (reads, the lock, ending a transaction): a migration run turns
/// the loss into what its database holds.
pub(crate) fn describe(error: sqlx::Error, context: &str) -> Error {
    if <Postgres as Backend>::is_connection_lost(&error) {
        tracing::debug!(error = %crate::error::ServerMessage::of(&error), context, "the connection to the database was lost");
        return Error::ConnectionLost {
            doing: context.to_owned(),
            file: None,
            after: crate::error::AfterLoss::Unchanged,
        };
    }
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

fn sql_state(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// `SET [LOCAL] lock_timeout = '2000ms'`: one attempt's wait for a lock.
fn lock_wait_setting(scope: Scope, lock_wait: Duration) -> String {
    format!(
        "{} lock_timeout = '{}ms'",
        scope.set(),
        lock_wait.as_millis().max(1)
    )
}

/// Options for the pool [`crate::Database::connect`] opens for the application: the
/// schema first on `search_path` when one is named, and an application name.
pub(crate) fn pool_options(
    base: PgConnectOptions,
    schema: Option<&SchemaName>,
) -> PgConnectOptions {
    with_schema(base, schema).application_name(&format!("calista app (pid {})", std::process::id()))
}

fn with_schema(base: PgConnectOptions, schema: Option<&SchemaName>) -> PgConnectOptions {
    let base = match schema {
        Some(schema) => base.options([("search_path", format!("\"{schema}\", public"))]),
        None => base,
    };
    base.log_statements(tracing::log::LevelFilter::Trace)
}

/// The schema where `pool`'s queries look (its `current_schema()`), for calista's tables
/// when the application names none: read through the pool itself, so that whatever sets
/// its `search_path` (the URL, the connect options, a hook on each connection) counts.
///
/// A database whose calista tables are in schema `calista` while the pool looks elsewhere
/// (upgraded by the `calista` program, or by a version that always used `calista`) is
/// refused, naming both schemas: a second copy would start the history afresh.
pub(crate) async fn pool_schema(pool: &sqlx::PgPool, shown_url: &str) -> Result<SchemaName, Error> {
    // A simple query, which a pooler in transaction mode passes as it is.
    let read = async {
        let row = sqlx::raw_sql(
            "SELECT current_schema()::text, \
                    to_regclass(quote_ident(current_schema()) || '.alembic_version') IS NOT NULL, \
                    to_regclass('\"calista\".alembic_version') IS NOT NULL",
        )
        .fetch_one(pool)
        .await?;
        Ok::<_, sqlx::Error>((
            row.try_get::<Option<String>, _>(0)?,
            row.try_get::<bool, _>(1)?,
            row.try_get::<bool, _>(2)?,
        ))
    }
    .await;
    let (current, ours_here, ours_in_calista) = read.map_err(|e| match e {
        sqlx::Error::Database(_) => Error::database(
            "cannot read the schema where the pool's queries look (current_schema())",
            e,
        ),
        other => Error::connect(shown_url.to_owned(), other),
    })?;
    let Some(current) = current else {
        return Err(Error::NoCurrentSchema {
            url: shown_url.to_owned(),
            found: None,
        });
    };
    let Ok(schema) = SchemaName::new(&current) else {
        return Err(Error::NoCurrentSchema {
            url: shown_url.to_owned(),
            found: Some(current),
        });
    };
    if !ours_here && ours_in_calista {
        return Err(Error::StateInOtherSchema {
            current: schema,
            found: SchemaName::calista(),
        });
    }
    Ok(schema)
}

/// The TLS settings sqlx connects with (from the URL, or from the PG* variables it read
/// itself), as the environment of `pg_dump`, `pg_restore` and `psql`: they then connect as
/// the application does. Certificates given inline (not as files) cannot be passed on.
fn client_tls(connect: &PgConnectOptions) -> Vec<(&'static str, String)> {
    use sqlx::postgres::PgSslMode;
    let mode = match connect.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    };
    let mut env = vec![("PGSSLMODE", mode.to_owned())];
    // sqlx shows its certificate files as `file: PATH` in the URL it rebuilds.
    let rebuilt = connect.to_url_lossy();
    for (key, value) in rebuilt.query_pairs() {
        let variable = match &*key {
            "sslrootcert" => "PGSSLROOTCERT",
            "sslcert" => "PGSSLCERT",
            "sslkey" => "PGSSLKEY",
            _ => continue,
        };
        if let Some(path) = value.strip_prefix("file: ") {
            env.push((variable, path.to_owned()));
        }
    }
    if let Some(name) = connect.get_application_name() {
        env.push(("PGAPPNAME", name.to_owned()));
    }
    if let Some(options) = connect.get_options() {
        env.push(("PGOPTIONS", options.to_owned()));
    }
    env
}

/// Watches, from a second connection, which sessions block a migration's connection while
/// it waits for a lock.
#[derive(Debug)]
pub(crate) struct Watcher {
    conn: PgConnection,
    /// The migration connection's server process id.
    pid: i32,
    /// The blockers last seen.
    seen: Vec<Blocker>,
}

impl Watch for Watcher {
    /// Looks every 200 ms. A failed look stops the watching (the migration goes on; the
    /// message will say less).
    async fn watch(&mut self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // (pid, application name, seconds its transaction has been open); never the query.
            type Seen = (i32, Option<String>, Option<f64>);
            let query = format!(
                "SELECT pid, application_name, EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 \
                 FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids({})) ORDER BY pid",
                self.pid
            );
            let seen: Result<Vec<Seen>, sqlx::Error> = Queries::<Postgres>::fetch_rows(
                &mut self.conn,
                AssertSqlSafe(query).into_sql_str(),
            )
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                    .collect()
            });
            match seen {
                Ok(rows) if rows.is_empty() => {}
                Ok(rows) => {
                    self.seen = rows
                        .into_iter()
                        .map(|(pid, application, age)| Blocker {
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

    fn seen(&self) -> Vec<Blocker> {
        self.seen.clone()
    }

    async fn close(self) {
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::{is_dialled, lock_key};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

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

    /// The guard keeps its read prepared only where the server's end of the connection is
    /// the address and port calista dialled: a pooler's port, another host, or no match
    /// among the host's addresses is not direct.
    #[test]
    fn a_connection_is_direct_only_where_the_server_has_the_dialled_address_and_port() {
        let localhost = || [ip("::1"), ip("127.0.0.1")].into_iter();
        assert!(is_dialled(localhost(), 5432, ip("127.0.0.1"), 5432));
        assert!(is_dialled(localhost(), 5432, ip("::1"), 5432));
        assert!(is_dialled(localhost(), 5432, ip("::ffff:127.0.0.1"), 5432));
        // PgBouncer on port 6432 of the database's host, on 5432 of another host.
        assert!(!is_dialled(localhost(), 6432, ip("127.0.0.1"), 5432));
        assert!(!is_dialled(
            [ip("10.0.0.7")].into_iter(),
            5432,
            ip("10.0.0.8"),
            5432
        ));
        assert!(!is_dialled(std::iter::empty(), 5432, ip("127.0.0.1"), 5432));
    }

    /// On a connection made straight to the test server, the guard's read is prepared once
    /// and kept from its third call: the first asks where the connection leads, the
    /// second compares, and a simple query runs until then. Where the connection's options
    /// keep no statement cache, it goes back to simple queries, leaving one statement.
    #[tokio::test]
    async fn the_guard_keeps_its_read_prepared_on_a_direct_connection() {
        use sqlx::{ConnectOptions, Connection};

        use super::{Backend, Postgres, Queries, Route};
        use crate::database::SchemaName;

        // The test server, as the integration tests find it (testing::DEFAULT_PG_URL).
        let url = std::env::var("CALISTA_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let name = format!("calista_route_{}", std::process::id());
        let mut server = admin.connect().await.unwrap();
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            Queries::<Postgres>::run(&mut server, &statement)
                .await
                .unwrap();
        }
        let mut found = Vec::new();
        for capacity in [100, 0] {
            let options = admin
                .clone()
                .database(&name)
                .statement_cache_capacity(capacity);
            let schema = SchemaName::calista();
            let timeout = Duration::from_secs(10);
            let backend = Postgres::new(options, None, name.clone(), schema, timeout, name.clone());
            let mut conn = backend.connect().await.unwrap();
            let tables = format!(
                "{}; INSERT INTO calista.alembic_version VALUES ('a') ON CONFLICT DO NOTHING",
                backend.create_tables()
            );
            Queries::<Postgres>::run(&mut conn, &tables).await.unwrap();
            let mut routes = Vec::new();
            for _ in 0..5 {
                backend.read_state_brief(&mut conn).await.unwrap();
                routes.push(backend.route.get());
            }
            let kept: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%alembic_version%'",
            )
            .persistent(false)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
            found.push((routes, kept));
        }
        let drop = format!("DROP DATABASE {name} WITH (FORCE)");
        Queries::<Postgres>::run(&mut server, &drop).await.unwrap();
        let (cached, uncached) = (&found[0], &found[1]);
        assert!(matches!(cached.0[0], Route::Seen { .. }), "{found:?}");
        assert_eq!(cached.0[1..], [Route::Direct; 4], "{found:?}");
        assert_eq!(cached.1, 1, "{found:?}");
        assert_eq!(uncached.0[1..], [Route::Indirect; 4], "{found:?}");
        assert_eq!(uncached.1, 1, "{found:?}");
    }
}
