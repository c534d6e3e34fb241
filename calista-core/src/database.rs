//! The database handle: a connection pool for the application, and dedicated, locked
//! connections for migrating.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::backend::{NewRecord, postgres, sqlite};
use crate::backup;
use crate::error::Error;
use crate::migration::Dialect;
use crate::plan::{DbState, HistoryRecord};
use crate::store::{self, Store};
use crate::url::{DatabaseUrl, SqliteTarget};

/// How to reach a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// The PostgreSQL schema of the application's tables (default `calista`).
    pub schema: String,
    /// The longest wait for a connection.
    pub connect_timeout: Duration,
    /// The longest wait for the migration lock (and, on SQLite, for any lock).
    pub lock_timeout: Duration,
    /// Connections in the application's pool.
    pub max_connections: u32,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            schema: store::DEFAULT_SCHEMA.to_owned(),
            connect_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(60),
            max_connections: 5,
        }
    }
}

/// A connection pool of either backend: the application's, handed over with
/// [`Database::from_pool`] (or `MIGRATIONS.upgrade(&pool)`), or the one
/// [`Database::connect`] opens.
///
/// Exhaustive on purpose: a `match` on it needs no arm for a backend that cannot be.
#[derive(Debug, Clone)]
pub enum Pool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

impl From<&Pool> for Pool {
    fn from(pool: &Pool) -> Self {
        pool.clone()
    }
}

impl From<PgPool> for Pool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

impl From<&PgPool> for Pool {
    fn from(pool: &PgPool) -> Self {
        Self::Postgres(pool.clone())
    }
}

impl From<SqlitePool> for Pool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

impl From<&SqlitePool> for Pool {
    fn from(pool: &SqlitePool) -> Self {
        Self::Sqlite(pool.clone())
    }
}

/// A database: PostgreSQL or SQLite, with a connection pool.
///
/// Creating one does not connect; the first use does. A pool that [`Database::connect`]
/// opens has the schema first on `search_path` on PostgreSQL; a pool the application hands
/// over ([`Database::from_pool`]) is used as it is and never changed: calista's own reads,
/// locks and migrations run on connections of their own.
#[derive(Debug, Clone)]
pub struct Database {
    pool: Pool,
    /// Whether [`Database::close`] closes the pool: not the application's.
    owns_pool: bool,
    inner: Inner,
    /// The connection the guard's reads reuse (see `open_guard_connection`).
    guard: Arc<tokio::sync::Mutex<Option<GuardConnection>>>,
    store: Arc<Store>,
    shown_url: String,
    options: DatabaseOptions,
}

#[derive(Debug, Clone)]
enum Inner {
    Postgres {
        connect: PgConnectOptions,
        password: Option<String>,
        database: String,
    },
    Sqlite {
        connect: SqliteConnectOptions,
        /// `None` for an in-memory database.
        file: Option<PathBuf>,
    },
}

impl Database {
    /// A handle on the database at `url`. Call it inside a Tokio runtime: the pool's
    /// housekeeping runs there.
    pub fn connect(url: &DatabaseUrl, options: DatabaseOptions) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Setup(
                "calista::Database::connect must be called inside a Tokio runtime (e.g. under #[tokio::main])"
                    .into(),
            ));
        }
        check_schema_name(&options.schema)?;
        let shown_url = url.to_string();
        let (pool, inner) = match url {
            DatabaseUrl::Postgres(pg) => {
                let base = PgConnectOptions::from_str(pg.expose_secret())
                    .map_err(|e| Error::connect(shown_url.clone(), e))?;
                let database = pg
                    .database()
                    .unwrap_or_else(|| base.get_username().to_owned());
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.connect_timeout)
                    .connect_lazy_with(postgres::pool_options(base.clone(), &options.schema));
                (
                    Pool::Postgres(pool),
                    Inner::Postgres {
                        connect: base,
                        password: pg.password(),
                        database,
                    },
                )
            }
            DatabaseUrl::Sqlite(target) => {
                let (base, file) = match target {
                    SqliteTarget::File(path) => (
                        SqliteConnectOptions::new().filename(path),
                        Some(path.clone()),
                    ),
                    SqliteTarget::Memory => {
                        let memory = SqliteConnectOptions::from_str("sqlite::memory:")
                            .map_err(|e| Error::connect(shown_url.clone(), e))?;
                        (memory, None)
                    }
                };
                let connect = sqlite::connect_options(base, options.lock_timeout);
                let mut pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.connect_timeout);
                if file.is_none() {
                    // An in-memory database lives while a connection to it is open: keep one.
                    pool = pool
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                (
                    Pool::Sqlite(pool.connect_lazy_with(connect.clone())),
                    Inner::Sqlite { connect, file },
                )
            }
        };
        Ok(Self {
            pool,
            owns_pool: true,
            inner,
            guard: Arc::default(),
            store: Arc::new(Store::new(dialect_of(url), &options.schema)),
            shown_url,
            options,
        })
    }

    /// A handle on the application's own pool, left as it is: its connections' settings
    /// (`search_path` included) are never changed, and [`Database::close`] does not close
    /// it. The guard's reads, the migration lock and the migrations run on connections of
    /// their own, opened with the pool's connect options; on PostgreSQL calista's tables go
    /// in `options.schema` (default `calista`), and each migration runs with that schema
    /// first on `search_path`, inside its transaction.
    ///
    /// PostgreSQL backups run `pg_dump` with the pool's host, port, user and database; a
    /// password comes from `PGPASSWORD` or `~/.pgpass`, as for any `pg_dump`
    /// ([`Database::with_backup_password`] hands one over).
    pub fn from_pool(pool: impl Into<Pool>, options: DatabaseOptions) -> Result<Self, Error> {
        check_schema_name(&options.schema)?;
        let pool = pool.into();
        let (inner, dialect, shown_url) = match &pool {
            Pool::Postgres(pool) => {
                let connect = (*pool.connect_options()).clone();
                let database = connect
                    .get_database()
                    .unwrap_or_else(|| connect.get_username())
                    .to_owned();
                let shown_url = format!(
                    "postgresql://{}@{}:{}/{database}",
                    connect.get_username(),
                    connect.get_host(),
                    connect.get_port()
                );
                let inner = Inner::Postgres {
                    connect,
                    password: None,
                    database,
                };
                (inner, Dialect::Postgres, shown_url)
            }
            Pool::Sqlite(pool) => {
                let base = (*pool.connect_options()).clone();
                let name = base.get_filename().to_owned();
                let shown = name.to_string_lossy();
                // sqlx names a `sqlite::memory:` database `file:sqlx-in-memory-N`.
                let in_memory = shown == ":memory:" || shown.starts_with("file:");
                let shown_url = if in_memory {
                    "sqlite::memory:".to_owned()
                } else {
                    format!("sqlite://{}", name.display())
                };
                let connect = sqlite::connect_options(base, options.lock_timeout);
                let file = (!in_memory).then_some(name);
                (Inner::Sqlite { connect, file }, Dialect::Sqlite, shown_url)
            }
        };
        Ok(Self {
            pool,
            owns_pool: false,
            inner,
            guard: Arc::default(),
            store: Arc::new(Store::new(dialect, &options.schema)),
            shown_url,
            options,
        })
    }

    /// The password `pg_dump` uses for backups of a PostgreSQL pool handed over with
    /// [`Database::from_pool`] (passed through the environment, never the command line).
    pub fn with_backup_password(mut self, password: impl Into<String>) -> Self {
        if let Inner::Postgres { password: slot, .. } = &mut self.inner {
            *slot = Some(password.into());
        }
        self
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// PostgreSQL or SQLite.
    pub fn dialect(&self) -> Dialect {
        self.store.dialect
    }

    /// The URL, password redacted.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// The options it was opened with.
    pub fn options(&self) -> &DatabaseOptions {
        &self.options
    }

    /// The PostgreSQL pool, if it is one. Prefer [`Database::pool`].
    #[doc(hidden)]
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, if it is one. Prefer [`Database::pool`].
    #[doc(hidden)]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// The SQLite file, if this is a SQLite file database.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Sqlite { file, .. } => file.as_deref(),
            Inner::Postgres { .. } => None,
        }
    }

    /// Reads the version table and the newest history row: one query, no lock. For the
    /// `db` commands and benchmarks; not a stable API (use [`crate::Migrator::check`]).
    #[doc(hidden)]
    pub async fn read_state(&self) -> Result<DbState, Error> {
        self.on_guard_connection(DbState::empty, async |conn, store| {
            conn.read_state(store).await
        })
        .await
    }

    /// The guard's hot read: like [`Database::read_state`], with only the revision,
    /// completion and chained digest of the newest history row; `None` when that cannot
    /// settle the state.
    pub(crate) async fn read_state_brief(&self) -> Result<Option<DbState>, Error> {
        self.on_guard_connection(
            || Some(DbState::empty()),
            async |conn, store| conn.read_state_brief(store).await,
        )
        .await
    }

    /// Every history row, oldest first (empty when there is no history table). For the
    /// `db` commands and tests; not a stable API.
    #[doc(hidden)]
    pub async fn read_history(&self) -> Result<Vec<HistoryRecord>, Error> {
        self.on_guard_connection(Vec::new, async |conn, store| conn.read_history(store).await)
            .await
    }

    /// The history columns of this build that an existing `schema_history` lacks (made by
    /// an older build); the upgrade adds them, and so does the `--sql` script.
    pub(crate) async fn missing_history_columns(
        &self,
    ) -> Result<Vec<(&'static str, &'static str)>, Error> {
        self.on_guard_connection(Vec::new, async |conn, store| {
            conn.missing_history_columns(store).await
        })
        .await
    }

    /// Runs a read on the guard's connection, opening it if needed. After an error the
    /// connection may be broken: it is dropped, and the next read opens a new one.
    ///
    /// A SQLite file that does not exist yet is an empty database: opening a connection
    /// would create it just by looking, so the read answers `when_no_file()` instead. The
    /// file is only looked for when no connection is open, which spares a held connection's
    /// reads a system call each.
    async fn on_guard_connection<T>(
        &self,
        when_no_file: impl FnOnce() -> T,
        read: impl AsyncFnOnce(&mut GuardConnection, &Store) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut slot = self.guard.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None if self.sqlite_file_missing() => return Ok(when_no_file()),
            None => self.open_guard_connection().await?,
        };
        let result = read(&mut conn, &self.store).await;
        if result.is_ok() {
            *slot = Some(conn);
        }
        result
    }

    /// Closes the connection the guard's reads reuse; the next read opens a new one.
    /// Applications that check once at start-up call this after, so they do not keep an
    /// idle connection (the process-wide [`crate::App`] does).
    pub async fn close_guard_connection(&self) {
        let conn = self.guard.lock().await.take();
        match conn {
            Some(GuardConnection::Postgres(c)) => {
                let _ = sqlx::Connection::close(c).await;
            }
            Some(GuardConnection::Sqlite(c)) => {
                let _ = sqlx::Connection::close(c).await;
            }
            None => {}
        }
    }

    fn sqlite_file_missing(&self) -> bool {
        matches!(&self.inner, Inner::Sqlite { file: Some(file), .. } if !file.exists())
    }

    /// The guard reads on a connection of its own, kept between reads: a pooled connection
    /// is pinged on its way back to the pool, which would double the cost of a check.
    async fn open_guard_connection(&self) -> Result<GuardConnection, Error> {
        match &self.inner {
            Inner::Postgres { connect, .. } => {
                let options = postgres::connect_options(connect.clone(), &self.options.schema);
                let conn =
                    postgres::connect(&options, self.options.connect_timeout, &self.shown_url)
                        .await?;
                Ok(GuardConnection::Postgres(conn))
            }
            Inner::Sqlite { connect, .. } => {
                let opening = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(connect);
                match tokio::time::timeout(self.options.connect_timeout, opening).await {
                    Ok(Ok(conn)) => Ok(GuardConnection::Sqlite(conn)),
                    Ok(Err(e)) => Err(sqlite::describe(e, "opening the database")),
                    Err(_) => Err(Error::Timeout {
                        url: self.shown_url.clone(),
                        waited: self.options.connect_timeout,
                    }),
                }
            }
        }
    }

    /// Closes the guard's connection and the pool, unless the pool is the application's.
    pub async fn close(&self) {
        self.close_guard_connection().await;
        if !self.owns_pool {
            return;
        }
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// A dedicated connection holding the migration lock (SQLite: opened; the lock is
    /// taken by each batch's `BEGIN IMMEDIATE`).
    pub(crate) async fn session(&self) -> Result<Session, Error> {
        // The guard's connection, when open, becomes the session's: no second connection.
        let reuse = self.guard.lock().await.take();
        match &self.inner {
            Inner::Postgres { connect, .. } => {
                let conn = match reuse {
                    Some(GuardConnection::Postgres(conn)) => conn,
                    _ => {
                        let options =
                            postgres::connect_options(connect.clone(), &self.options.schema);
                        postgres::connect(&options, self.options.connect_timeout, &self.shown_url)
                            .await?
                    }
                };
                let session =
                    postgres::Session::lock(conn, &self.options.schema, self.options.lock_timeout)
                        .await?;
                Ok(Session::Postgres(session))
            }
            Inner::Sqlite { file: None, .. } => {
                // In memory: the pool's connection is the database.
                let Pool::Sqlite(pool) = &self.pool else {
                    return Err(Error::Setup(
                        "a SQLite database without a SQLite pool".into(),
                    ));
                };
                let conn = pool.acquire().await.map_err(|e| self.acquire_error(e))?;
                Ok(Session::SqliteMemory(conn))
            }
            Inner::Sqlite { connect, .. } => {
                let reuse = match reuse {
                    Some(GuardConnection::Sqlite(conn)) => Some(conn),
                    _ => None,
                };
                Ok(Session::Sqlite(
                    sqlite::Session::open(connect, self.options.lock_timeout, reuse).await?,
                ))
            }
        }
    }

    /// Ends a session. After success its connection (lock released) serves the guard's
    /// reads again; after a failure it is closed, whatever state it was left in.
    pub(crate) async fn end_session(&self, session: Session, succeeded: bool) {
        let back = if succeeded {
            session.release().await
        } else {
            session.close().await
        };
        if let Some(conn) = back {
            let mut slot = self.guard.lock().await;
            if slot.is_none() {
                *slot = Some(conn);
            }
        }
    }

    /// A second connection that watches who blocks `session` while it waits for a table
    /// lock (PostgreSQL); `None` on SQLite, or when it cannot be opened (the upgrade goes on).
    pub(crate) async fn lock_watcher(&self, session: &mut Session) -> Option<postgres::Watcher> {
        let (Inner::Postgres { connect, .. }, Session::Postgres(s)) = (&self.inner, session) else {
            return None;
        };
        let pid = postgres::backend_pid(&mut s.conn).await.ok()?;
        let options = postgres::connect_options(connect.clone(), &self.options.schema);
        let conn = postgres::connect(&options, self.options.connect_timeout, &self.shown_url)
            .await
            .ok()?;
        Some(postgres::Watcher::new(conn, pid))
    }

    /// What a backup of this database reads, or why there can be none.
    pub(crate) fn backup_source(&self) -> Result<backup::Source<'_>, &'static str> {
        match &self.inner {
            Inner::Sqlite {
                file: Some(file), ..
            } => Ok(backup::Source::Sqlite { file }),
            Inner::Sqlite { file: None, .. } => Err("the database is in memory"),
            Inner::Postgres {
                connect,
                password,
                database,
                ..
            } => {
                let host = match connect.get_socket() {
                    Some(socket) => socket.display().to_string(),
                    None => connect.get_host().to_owned(),
                };
                let port = connect.get_port();
                let connection_args = vec![
                    format!("--host={host}"),
                    format!("--port={port}"),
                    format!("--username={}", connect.get_username()),
                    format!("--dbname={database}"),
                ];
                let mut env = Vec::new();
                if let Some(password) = password {
                    env.push(("PGPASSWORD", password.clone()));
                }
                env.extend(postgres_client_tls(connect));
                Ok(backup::Source::Postgres {
                    connection_args,
                    env,
                    database: database.clone(),
                    server: format!("{host}:{port}/{database}"),
                    schema: &self.options.schema,
                })
            }
        }
    }

    fn acquire_error(&self, error: sqlx::Error) -> Error {
        match error {
            sqlx::Error::PoolTimedOut => Error::Timeout {
                url: self.shown_url.clone(),
                waited: self.options.connect_timeout,
            },
            source if self.dialect() == Dialect::Sqlite => {
                sqlite::describe(source, "opening the database")
            }
            source => Error::connect(self.shown_url.clone(), source),
        }
    }
}

/// The TLS settings sqlx connects with (from the URL, or from the PG* variables it read
/// itself), as the environment of `pg_dump`, `pg_restore` and `psql`: they then connect as
/// the application does. Certificates given inline (not as files) cannot be passed on.
fn postgres_client_tls(connect: &PgConnectOptions) -> Vec<(&'static str, String)> {
    use sqlx::ConnectOptions;
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

fn check_schema_name(schema: &str) -> Result<(), Error> {
    if store::is_valid_schema_name(schema) {
        return Ok(());
    }
    let why = if store::is_reserved_schema_name(schema) {
        "is reserved for PostgreSQL's system schemas (information_schema, pg_*)"
    } else {
        "is not a plain identifier"
    };
    Err(Error::Setup(format!(
        "the schema name `{schema}` {why}: use 1 to 63 lowercase letters, digits and _, \
         such as calista or my_app"
    )))
}

fn dialect_of(url: &DatabaseUrl) -> Dialect {
    match url {
        DatabaseUrl::Postgres(_) => Dialect::Postgres,
        DatabaseUrl::Sqlite(_) => Dialect::Sqlite,
    }
}

/// The guard's own connection.
#[derive(Debug)]
enum GuardConnection {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl GuardConnection {
    async fn read_state(&mut self, store: &Store) -> Result<DbState, Error> {
        match self {
            Self::Postgres(c) => postgres::read_state(c, store).await,
            Self::Sqlite(c) => sqlite::read_state(c, store).await,
        }
    }

    async fn read_state_brief(&mut self, store: &Store) -> Result<Option<DbState>, Error> {
        match self {
            Self::Postgres(c) => postgres::read_state_brief(c, store).await,
            Self::Sqlite(c) => sqlite::read_state_brief(c, store).await,
        }
    }

    async fn read_history(&mut self, store: &Store) -> Result<Vec<HistoryRecord>, Error> {
        match self {
            Self::Postgres(c) => postgres::read_history(c, store).await,
            Self::Sqlite(c) => sqlite::read_history(c, store).await,
        }
    }

    async fn missing_history_columns(
        &mut self,
        store: &Store,
    ) -> Result<Vec<(&'static str, &'static str)>, Error> {
        match self {
            Self::Postgres(c) => postgres::missing_history_columns(c, store).await,
            Self::Sqlite(c) => sqlite::missing_history_columns(c, store).await,
        }
    }
}

/// A connection reserved for migrating, holding (PostgreSQL) or able to take (SQLite)
/// the migration lock.
pub(crate) enum Session {
    Postgres(postgres::Session),
    Sqlite(sqlite::Session),
    SqliteMemory(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

/// Runs the same call on whichever backend a session is: `each!(session, conn, db => db::f(conn, …))`.
macro_rules! each {
    ($session:expr, $conn:ident, $db:ident => $call:expr) => {
        match $session {
            Session::Postgres(s) => {
                use postgres as $db;
                let $conn = &mut s.conn;
                $call
            }
            Session::Sqlite(s) => {
                use sqlite as $db;
                let $conn = &mut s.conn;
                $call
            }
            Session::SqliteMemory(c) => {
                use sqlite as $db;
                let $conn = &mut **c;
                $call
            }
        }
    };
}

impl Session {
    /// Starts a round of work under the lock, before the state is read. SQLite: takes the
    /// write lock (`BEGIN IMMEDIATE`). PostgreSQL: nothing, the advisory lock is held and
    /// the state is read outside a transaction, so a missing table cannot abort one.
    pub(crate) async fn lock_round(&mut self) -> Result<(), Error> {
        match self {
            Self::Postgres(_) => Ok(()),
            Self::Sqlite(_) | Self::SqliteMemory(_) => self.begin().await,
        }
    }

    /// After the state is read: opens the write transaction (PostgreSQL; SQLite has it).
    pub(crate) async fn begin_write(&mut self) -> Result<(), Error> {
        match self {
            Self::Postgres(_) => self.begin().await,
            Self::Sqlite(_) | Self::SqliteMemory(_) => Ok(()),
        }
    }

    /// Starts a transaction; on SQLite this takes the write lock (`BEGIN IMMEDIATE`).
    pub(crate) async fn begin(&mut self) -> Result<(), Error> {
        match self {
            Self::Postgres(s) => {
                postgres::run_control(&mut s.conn, "BEGIN", "starting a transaction").await
            }
            Self::Sqlite(s) => s.begin().await,
            Self::SqliteMemory(c) => {
                sqlite::run_control(c, "BEGIN IMMEDIATE", "starting a transaction").await
            }
        }
    }

    pub(crate) async fn commit(&mut self) -> Result<(), Error> {
        each!(self, conn, db => db::run_control(conn, "COMMIT", "committing the migration transaction").await)
    }

    /// Ends a round that wrote nothing: SQLite's round holds a transaction (its lock),
    /// PostgreSQL's none.
    pub(crate) async fn end_read_round(&mut self) {
        if !matches!(self, Self::Postgres(_)) {
            self.rollback().await;
        }
    }

    /// Rolls back whatever is open; errors are only logged (there may be nothing open).
    pub(crate) async fn rollback(&mut self) {
        if let Err(e) =
            each!(self, conn, db => db::run_control(conn, "ROLLBACK", "rolling back").await)
        {
            tracing::debug!(error = %crate::error::with_causes(&e), "rollback");
        }
    }

    pub(crate) async fn read_state(&mut self, store: &Store) -> Result<DbState, Error> {
        each!(self, conn, db => db::read_state(conn, store).await)
    }

    pub(crate) async fn read_history(
        &mut self,
        store: &Store,
    ) -> Result<Vec<HistoryRecord>, Error> {
        each!(self, conn, db => db::read_history(conn, store).await)
    }

    pub(crate) async fn is_empty(&mut self, store: &Store) -> Result<bool, Error> {
        each!(self, conn, db => db::is_empty(conn, store).await)
    }

    pub(crate) async fn create_tables(&mut self, store: &Store) -> Result<(), Error> {
        each!(self, conn, db => db::create_tables(conn, store).await)
    }

    pub(crate) async fn upgrade_layout(
        &mut self,
        store: &Store,
    ) -> Result<Vec<&'static str>, Error> {
        each!(self, conn, db => db::upgrade_layout(conn, store).await)
    }

    pub(crate) async fn read_down_sql(
        &mut self,
        store: &Store,
        revision: &str,
    ) -> Result<Option<String>, Error> {
        each!(self, conn, db => db::read_down_sql(conn, store, revision).await)
    }

    pub(crate) async fn insert_history(
        &mut self,
        store: &Store,
        records: &[NewRecord],
    ) -> Result<(), Error> {
        each!(self, conn, db => db::insert_history(conn, store, records).await)
    }

    pub(crate) async fn finish_started(
        &mut self,
        store: &Store,
        duration_ms: i64,
    ) -> Result<bool, Error> {
        each!(self, conn, db => db::finish_started(conn, store, duration_ms).await)
    }

    pub(crate) async fn delete_started(&mut self, store: &Store) -> Result<bool, Error> {
        each!(self, conn, db => db::delete_started(conn, store).await)
    }

    pub(crate) async fn set_version(
        &mut self,
        store: &Store,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(), Error> {
        each!(self, conn, db => db::set_version(conn, store, from, to).await)
    }

    /// Runs a migration's SQL as sent; on failure, also how many statements completed.
    pub(crate) async fn run_migration(&mut self, script: &str) -> Result<(), (usize, sqlx::Error)> {
        each!(self, conn, db => db::run_counted(conn, script).await)
    }

    /// Runs statements of calista's own in one round trip.
    pub(crate) async fn run_own(
        &mut self,
        statements: &[String],
        context: &str,
    ) -> Result<(), Error> {
        each!(self, conn, db => db::run_own(conn, statements, context).await)
    }

    /// Opens an attempt's migration transaction (PostgreSQL: `BEGIN` and `statements`, the
    /// transaction's settings; SQLite: the round's transaction is open already) and returns
    /// what [`Session::transaction_intact`] compares.
    pub(crate) async fn begin_attempt(
        &mut self,
        statements: &[String],
    ) -> Result<Option<i64>, Error> {
        match self {
            Self::Postgres(s) => postgres::begin_attempt(&mut s.conn, statements)
                .await
                .map(Some),
            Self::Sqlite(_) | Self::SqliteMemory(_) => Ok(None),
        }
    }

    /// Whether the transaction begun by [`Session::begin_attempt`] is still open, or the
    /// migration's SQL ended it.
    pub(crate) async fn transaction_intact(&mut self, begun: Option<i64>) -> Result<bool, Error> {
        match (self, begun) {
            (Self::Postgres(s), Some(begun)) => {
                postgres::transaction_check(&mut s.conn, begun).await
            }
            (Self::Postgres(_), None) => Ok(true),
            (Self::Sqlite(s), _) => sqlite::transaction_open(&mut s.conn).await,
            (Self::SqliteMemory(c), _) => sqlite::transaction_open(c).await,
        }
    }

    /// Releases the lock; returns the connection when it can serve again.
    async fn release(self) -> Option<GuardConnection> {
        match self {
            Self::Postgres(s) => s.release().await.map(GuardConnection::Postgres),
            Self::Sqlite(s) => Some(GuardConnection::Sqlite(s.release())),
            Self::SqliteMemory(mut c) => {
                // Back to the pool: make sure no transaction is left open on it.
                let _ = sqlite::run_control(&mut c, "ROLLBACK", "rolling back").await;
                None
            }
        }
    }

    /// Closes the connection, which ends its transaction and lock.
    async fn close(self) -> Option<GuardConnection> {
        match self {
            Self::Postgres(s) => s.close().await,
            Self::Sqlite(s) => s.close().await,
            Self::SqliteMemory(mut c) => {
                let _ = sqlite::run_control(&mut c, "ROLLBACK", "rolling back").await;
            }
        }
        None
    }
}

/// The PostgreSQL advisory lock key that upgrades of `schema` hold, for operators who
/// want to see who holds it: `SELECT * FROM pg_locks WHERE locktype = 'advisory'`.
pub fn postgres_lock_key(schema: &str) -> i64 {
    postgres::lock_key(schema)
}
