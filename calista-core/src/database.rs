//! The database handle: a connection pool for the application, the connection the guard's
//! reads reuse, and dedicated, locked connections for migrating ([`Session`]).
//!
//! This is the one place that looks at which backend a handle is ([`Kind`]); everything
//! past it is written once over [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::sync::{Mutex, OnceCell};

use crate::backend::{Backend, Held, LockScope, Postgres, Sqlite, postgres};
use crate::backup;
use crate::engine::plan::{DbState, HistoryRecord};
use crate::error::Error;
use crate::migration::Dialect;
use crate::url::{DatabaseUrl, SqliteTarget};

/// The schema of the `calista` program's tables on PostgreSQL (ADR-0004); an application
/// on its own pool uses the pool's schema unless it names one ([`DatabaseOptions::schema`]).
pub const DEFAULT_SCHEMA: &str = "calista";

/// A PostgreSQL schema name, checked once when it is made: a plain identifier
/// (`[a-z_][a-z0-9_]{0,62}`) that PostgreSQL does not keep for itself, so it can be written
/// into SQL quoted, and never needs checking again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaName(String);

impl SchemaName {
    /// A schema name, if `name` is one an application's tables can live in.
    pub fn new(name: &str) -> Result<Self, SchemaNameError> {
        if is_valid_schema_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(SchemaNameError {
                name: name.to_owned(),
                reserved: is_reserved_schema_name(name),
            })
        }
    }

    /// `calista`, the `calista` program's schema.
    pub fn calista() -> Self {
        Self(DEFAULT_SCHEMA.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SchemaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SchemaName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for SchemaName {
    type Err = SchemaNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl TryFrom<&str> for SchemaName {
    type Error = SchemaNameError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

/// A name that cannot be a [`SchemaName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the schema name `{name}` {}: use 1 to 63 lowercase letters, digits and _, such as calista or my_app",
    if *.reserved { "is reserved for PostgreSQL's system schemas (information_schema, pg_*)" } else { "is not a plain identifier" }
)]
pub struct SchemaNameError {
    name: String,
    reserved: bool,
}

/// The longest wait for a connection, by default.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait for the migration lock (and, on SQLite, for any lock), by default.
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// The PostgreSQL schema of calista's tables, first on `search_path` while migrations
    /// run. `None` (the default): the schema where the connection's queries look, its
    /// `current_schema()`, as `sqlx::migrate!().run(&pool)` does; the `calista` program
    /// names `calista` (ADR-0004).
    pub schema: Option<SchemaName>,
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
            schema: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
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

impl Pool {
    /// The PostgreSQL pool, if it is one.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            Self::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, if it is one.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(pool) => Some(pool),
            Self::Postgres(_) => None,
        }
    }
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
/// Creating one does not connect; the first use does. On PostgreSQL calista's tables are
/// in the schema the options name, else where the pool's queries look (its
/// `current_schema()`, read once, on first use: [`Database::schema`]). A pool that
/// [`Database::connect`] opens has a named schema first on `search_path`; a pool the
/// application hands over ([`Database::from_pool`]) is used as it is and never changed:
/// calista's own reads, locks and migrations run on connections of their own.
#[derive(Debug, Clone)]
pub struct Database {
    pool: Pool,
    /// Whether [`Database::close`] closes the pool: not the application's.
    owns_pool: bool,
    kind: Kind,
    shown_url: String,
    options: DatabaseOptions,
}

/// Which backend a [`Database`] is, with its side of the handle.
#[derive(Debug, Clone)]
enum Kind {
    Postgres(PgSide),
    Sqlite(Handle<Sqlite>),
}

impl Database {
    /// A handle on the database at `url`. Call it inside a Tokio runtime: the pool's
    /// housekeeping runs there.
    pub fn connect(url: &DatabaseUrl, options: DatabaseOptions) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let shown_url = url.to_string();
        let (pool, kind) = match url {
            DatabaseUrl::Postgres(pg) => {
                let base = PgConnectOptions::from_str(pg.expose_secret())
                    .map_err(|e| Error::connect(shown_url.clone(), e))?;
                let database = pg
                    .database()
                    .unwrap_or_else(|| base.get_username().to_owned());
                let pool_with = |schema| {
                    PgPoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.connect_timeout)
                        .connect_lazy_with(postgres::pool_options(base.clone(), schema))
                };
                let pool = pool_with(options.schema.as_ref());
                // The application's pool has a named schema first on `search_path` from its
                // start-up, a parameter poolers refuse; calista's own reads need none.
                let own = match options.schema {
                    Some(_) => pool_with(None),
                    None => pool.clone(),
                };
                let side = PgSide::new(PgSetup {
                    base,
                    password: pg.password(),
                    database,
                    pool: own,
                    schema: options.schema.clone(),
                    connect_timeout: options.connect_timeout,
                    lock_timeout: options.lock_timeout,
                    shown_url: shown_url.clone(),
                });
                (Pool::Postgres(pool), Kind::Postgres(side))
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
                let in_memory = file.is_none();
                let backend = Sqlite::new(
                    base,
                    file,
                    options.lock_timeout,
                    options.connect_timeout,
                    shown_url.clone(),
                );
                let mut pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.connect_timeout);
                if in_memory {
                    // An in-memory database lives while a connection to it is open: keep one.
                    pool = pool
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                let pool = pool.connect_lazy_with(backend.connect_options().clone());
                let handle = Handle::new(backend, pool.clone(), options.lock_timeout);
                (Pool::Sqlite(pool), Kind::Sqlite(handle))
            }
        };
        Ok(Self {
            pool,
            owns_pool: true,
            kind,
            shown_url,
            options,
        })
    }

    /// A handle on the application's own pool, left as it is: its connections' settings
    /// (`search_path` included) are never changed, and [`Database::close`] does not close
    /// it. The guard's reads, the migration lock and the migrations run on connections of
    /// their own, opened with the pool's connect options. On PostgreSQL calista's tables go
    /// in `options.schema`, by default the schema where the pool's queries look (its
    /// `current_schema()`, read once on first use), and each migration runs with that
    /// schema first on `search_path`, inside its transaction, so the tables it creates are
    /// where the application's queries find them.
    ///
    /// With no schema named, a database whose calista tables are in schema `calista` (one
    /// upgraded by the `calista` program or an older version) while the pool looks
    /// elsewhere is refused ([`Error::StateInOtherSchema`]), never given a second copy.
    ///
    /// PostgreSQL backups run `pg_dump` with the pool's host, port, user and database; a
    /// password comes from `PGPASSWORD` or `~/.pgpass`, as for any `pg_dump`
    /// ([`Database::with_backup_password`] hands one over).
    pub fn from_pool(pool: impl Into<Pool>, options: DatabaseOptions) -> Result<Self, Error> {
        let pool = pool.into();
        let (kind, shown_url) = match &pool {
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
                let side = PgSide::new(PgSetup {
                    base: connect,
                    password: None,
                    database,
                    pool: pool.clone(),
                    schema: options.schema.clone(),
                    connect_timeout: options.connect_timeout,
                    lock_timeout: options.lock_timeout,
                    shown_url: shown_url.clone(),
                });
                (Kind::Postgres(side), shown_url)
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
                let file = (!in_memory).then_some(name);
                let backend = Sqlite::new(
                    base,
                    file,
                    options.lock_timeout,
                    options.connect_timeout,
                    shown_url.clone(),
                );
                let handle = Handle::new(backend, pool.clone(), options.lock_timeout);
                (Kind::Sqlite(handle), shown_url)
            }
        };
        Ok(Self {
            pool,
            owns_pool: false,
            kind,
            shown_url,
            options,
        })
    }

    /// The password `pg_dump` uses for backups of a PostgreSQL pool handed over with
    /// [`Database::from_pool`] (passed through the environment, never the command line).
    pub fn with_backup_password(mut self, password: impl Into<String>) -> Self {
        if let Kind::Postgres(side) = &mut self.kind {
            side.setup.password = Some(password.into());
            // Made again on first use, with the password.
            side.handle = Arc::default();
        }
        self
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// PostgreSQL or SQLite.
    pub fn dialect(&self) -> Dialect {
        match &self.kind {
            Kind::Postgres(_) => Postgres::DIALECT,
            Kind::Sqlite(_) => Sqlite::DIALECT,
        }
    }

    /// The URL, password redacted.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// The options it was opened with.
    pub fn options(&self) -> &DatabaseOptions {
        &self.options
    }

    /// The SQLite file, if this is a SQLite file database.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Sqlite(handle) => handle.backend.file(),
            Kind::Postgres(_) => None,
        }
    }

    /// The rows of the version table as written (one revision; none at base; several only
    /// when edited by hand), whatever the guard thinks of them: one read, no lock.
    pub async fn current(&self) -> Result<Vec<String>, Error> {
        Ok(self.read_state().await?.versions.unwrap_or_default())
    }

    /// Every migration applied (and, in development, reverted), oldest first: empty when
    /// there is no history table.
    pub async fn history(&self) -> Result<Vec<HistoryRecord>, Error> {
        self.read_history().await
    }

    /// Reads the version table and the newest history row: one query, no lock.
    pub(crate) async fn read_state(&self) -> Result<DbState, Error> {
        match &self.kind {
            Kind::Postgres(side) => side.handle().await?.read_state().await,
            Kind::Sqlite(handle) => handle.read_state().await,
        }
    }

    /// Every history row, oldest first (empty when there is no history table).
    pub(crate) async fn read_history(&self) -> Result<Vec<HistoryRecord>, Error> {
        match &self.kind {
            Kind::Postgres(side) => side.handle().await?.read_history().await,
            Kind::Sqlite(handle) => handle.read_history().await,
        }
    }

    /// Closes the connection the guard's reads reuse; the next read opens a new one.
    /// Applications that check once at start-up call this after, so they do not keep an
    /// idle connection (the process-wide [`crate::App`] does).
    pub async fn close_guard_connection(&self) {
        match &self.kind {
            Kind::Postgres(side) => {
                if let Some(handle) = side.handle.get() {
                    handle.close_guard_connection().await;
                }
            }
            Kind::Sqlite(handle) => handle.close_guard_connection().await,
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
        if let Kind::Postgres(side) = &self.kind {
            side.setup.pool.close().await;
        }
    }

    /// The pool calista's own reads of the catalog use: the application's, but for a pool
    /// [`Database::connect`] opened for a named schema, whose start-up parameter
    /// (`search_path`) a pooler refuses; then one of the same URL without it.
    pub(crate) fn own_pool(&self) -> Pool {
        match &self.kind {
            Kind::Postgres(side) => Pool::Postgres(side.setup.pool.clone()),
            Kind::Sqlite(_) => self.pool.clone(),
        }
    }

    /// The PostgreSQL schema of calista's tables (`None` on SQLite): the one the options
    /// name, or where the pool's queries look, read on first use.
    pub async fn schema(&self) -> Result<Option<SchemaName>, Error> {
        match &self.kind {
            Kind::Postgres(side) => Ok(Some(side.handle().await?.backend.schema().clone())),
            Kind::Sqlite(_) => Ok(None),
        }
    }

    /// Runs `work` on this database's backend.
    pub(crate) async fn on_backend<W: OnBackend>(&self, work: W) -> Result<W::Output, Error> {
        match &self.kind {
            Kind::Postgres(side) => work.on(side.handle().await?).await,
            Kind::Sqlite(handle) => work.on(handle).await,
        }
    }

    /// What a backup of this database reads, or why there can be none. On PostgreSQL the
    /// schema must be known: inside [`Database::on_backend`], or after [`Database::schema`].
    pub(crate) fn backup_source(&self) -> Result<backup::Source<'_>, &'static str> {
        match &self.kind {
            Kind::Postgres(side) => side
                .handle
                .get()
                .map(|handle| handle.backend.backup_source())
                .ok_or("the schema of calista's tables is not known yet"),
            Kind::Sqlite(handle) => handle.backend.backup_source(),
        }
    }
}

/// Work written once over [`Backend`], which [`Database::on_backend`] runs on the
/// database's.
pub(crate) trait OnBackend {
    type Output;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error>;
}

/// PostgreSQL's side of a [`Database`]: its handle, made on first use, once the schema of
/// calista's tables is known (named in the options, or the pool's `current_schema()`,
/// which takes a query).
#[derive(Debug, Clone)]
struct PgSide {
    setup: Box<PgSetup>,
    handle: Arc<OnceCell<Handle<Postgres>>>,
}

/// What a PostgreSQL handle is made from.
#[derive(Debug, Clone)]
struct PgSetup {
    /// The application's connect options (its URL's, or its pool's).
    base: PgConnectOptions,
    /// The password backups pass to `pg_dump`.
    password: Option<String>,
    database: String,
    pool: PgPool,
    schema: Option<SchemaName>,
    connect_timeout: Duration,
    lock_timeout: Duration,
    shown_url: String,
}

impl PgSide {
    fn new(setup: PgSetup) -> Self {
        Self {
            setup: Box::new(setup),
            handle: Arc::default(),
        }
    }

    async fn handle(&self) -> Result<&Handle<Postgres>, Error> {
        self.handle
            .get_or_try_init(|| async {
                let setup = &self.setup;
                let schema = match &setup.schema {
                    Some(schema) => schema.clone(),
                    None => postgres::pool_schema(&setup.pool, &setup.shown_url).await?,
                };
                let backend = Postgres::new(
                    setup.base.clone(),
                    setup.password.clone(),
                    setup.database.clone(),
                    schema,
                    setup.connect_timeout,
                    setup.shown_url.clone(),
                );
                Ok(Handle::new(backend, setup.pool.clone(), setup.lock_timeout))
            })
            .await
    }
}

/// One backend's side of a [`Database`]: the backend, the pool, and the connection the
/// guard's reads reuse.
#[derive(Debug)]
pub(crate) struct Handle<B: Backend> {
    pub(crate) backend: Arc<B>,
    pool: sqlx::Pool<B::Db>,
    /// The connection the guard's reads reuse: a pooled connection is pinged on its way
    /// back to the pool, which would double the cost of a check.
    guard: Arc<Mutex<Option<B::Conn>>>,
    /// The longest wait for the migration lock.
    lock_timeout: Duration,
}

impl<B: Backend> Clone for Handle<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            pool: self.pool.clone(),
            guard: Arc::clone(&self.guard),
            lock_timeout: self.lock_timeout,
        }
    }
}

impl<B: Backend> Handle<B> {
    fn new(backend: B, pool: sqlx::Pool<B::Db>, lock_timeout: Duration) -> Self {
        Self {
            backend: Arc::new(backend),
            pool,
            guard: Arc::default(),
            lock_timeout,
        }
    }

    /// [`Database::read_state`].
    pub(crate) async fn read_state(&self) -> Result<DbState, Error> {
        self.on_guard_connection(DbState::empty, async |conn| {
            self.backend.read_state(conn).await
        })
        .await
    }

    /// The guard's hot read ([`Backend::read_state_brief`]).
    pub(crate) async fn read_state_brief(&self) -> Result<Option<DbState>, Error> {
        self.on_guard_connection(
            || Some(DbState::empty()),
            async |conn| self.backend.read_state_brief(conn).await,
        )
        .await
    }

    /// [`Database::read_history`].
    pub(crate) async fn read_history(&self) -> Result<Vec<HistoryRecord>, Error> {
        self.on_guard_connection(Vec::new, async |conn| self.backend.read_history(conn).await)
            .await
    }

    /// What another migration tool recorded as applied (read only).
    pub(crate) async fn read_foreign(
        &self,
        tool: crate::origin::Tool,
    ) -> Result<Vec<crate::backend::ForeignRow>, Error> {
        self.on_guard_connection(Vec::new, async |conn| {
            self.backend.read_foreign(conn, tool).await
        })
        .await
    }

    /// Whether the server is a hot standby ([`Backend::standby`]); a database not made yet
    /// is not one.
    pub(crate) async fn standby(&self) -> Result<Option<crate::backend::Standby>, Error> {
        self.on_guard_connection(|| None, async |conn| self.backend.standby(conn).await)
            .await
    }

    /// The history columns of this build that an existing `schema_history` lacks (made by
    /// an older build); the upgrade adds them, and so does the `--sql` script.
    pub(crate) async fn missing_history_columns(
        &self,
    ) -> Result<Vec<crate::backend::HistoryColumn>, Error> {
        self.on_guard_connection(Vec::new, async |conn| {
            self.backend.missing_history_columns(conn).await
        })
        .await
    }

    /// Runs a read on the guard's connection, opening it if needed. After an error the
    /// connection may be broken: it is dropped, and the next read opens a new one.
    ///
    /// A database that does not exist yet reads as `when_absent()`: opening a connection
    /// would create it just by looking. It is only looked for when no connection is open,
    /// which spares a held connection's reads a system call each.
    async fn on_guard_connection<T>(
        &self,
        when_absent: impl FnOnce() -> T,
        read: impl AsyncFnOnce(&mut B::Conn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut slot = self.guard.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None if self.backend.is_absent() => return Ok(when_absent()),
            None => self.backend.connect().await?,
        };
        let result = read(&mut conn).await;
        if result.is_ok() {
            *slot = Some(conn);
        }
        result
    }

    /// [`Database::close_guard_connection`].
    async fn close_guard_connection(&self) {
        let conn = self.guard.lock().await.take();
        if let Some(conn) = conn {
            let _ = sqlx::Connection::close(conn).await;
        }
    }

    /// A dedicated connection for migrating, holding the migration lock where the session
    /// holds it (where the lock is a transaction, each round takes it:
    /// [`Session::begin_round`]). The guard's connection, when open, becomes the session's:
    /// no second connection.
    pub(crate) async fn session(&self) -> Result<Session<'_, B>, Error> {
        let reuse = self.guard.lock().await.take();
        let mut held = self.backend.open_session(reuse, &self.pool).await?;
        if B::LOCK_SCOPE == LockScope::Session
            && let Err(e) = self.backend.take_lock(held.conn(), self.lock_timeout).await
        {
            self.close(held).await;
            return Err(e);
        }
        Ok(Session {
            backend: &self.backend,
            held,
            apart: None,
            in_transaction: false,
            lock_timeout: self.lock_timeout,
        })
    }

    /// Ends a session. After success its lock is released and its connection serves the
    /// guard's reads again; after a failure it is closed, whatever state it was left in,
    /// which ends its transaction and its lock.
    pub(crate) async fn end_session(&self, session: Session<'_, B>, succeeded: bool) {
        if let Some(apart) = session.apart {
            // Its transaction wrote nothing: closing the connection ends it, and the lock.
            let _ = sqlx::Connection::close(apart).await;
        }
        let mut held = session.held;
        if !succeeded {
            return self.close(held).await;
        }
        if let Err(e) = self.backend.release_lock(held.conn()).await {
            tracing::warn!(error = %crate::error::with_causes(&e), "could not release the migration lock; closing the connection releases it");
            return self.close(held).await;
        }
        match held {
            Held::Own(conn) => {
                let mut slot = self.guard.lock().await;
                if slot.is_none() {
                    *slot = Some(conn);
                }
            }
            // Back to the pool: with no transaction left open on it.
            pooled @ Held::Pooled(_) => self.close(pooled).await,
        }
    }

    /// Closes a session's connection; one of the pool's goes back to it, rolled back.
    async fn close(&self, held: Held<B>) {
        match held {
            Held::Own(conn) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Held::Pooled(mut conn) => {
                let _ = self.backend.run(&mut conn, "ROLLBACK").await;
            }
        }
    }
}

/// A connection reserved for migrating: it holds the migration lock, or, where the lock is
/// a transaction, takes it with each transaction.
pub(crate) struct Session<'h, B: Backend> {
    pub(crate) backend: &'h B,
    held: Held<B>,
    /// The connection holding the migration lock apart, across transactions
    /// ([`Backend::hold_lock_apart`]), once a no-transaction migration needed it.
    apart: Option<B::Conn>,
    /// Whether a transaction is open on it.
    in_transaction: bool,
    lock_timeout: Duration,
}

impl<B: Backend> Session<'_, B> {
    pub(crate) fn conn(&mut self) -> &mut B::Conn {
        self.held.conn()
    }

    /// Whether a transaction is open on it.
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Notes that a transaction was opened, or ended, by statements sent on it.
    pub(crate) fn set_in_transaction(&mut self, open: bool) {
        self.in_transaction = open;
    }

    /// Starts a round of work under the lock, before the state is read. Where the lock is
    /// a transaction, takes it: the round's write transaction. Where the session holds it,
    /// nothing: the state is read outside a transaction, so a missing table cannot abort one.
    pub(crate) async fn begin_round(&mut self) -> Result<(), Error> {
        match B::LOCK_SCOPE {
            LockScope::Transaction => self.take_lock().await,
            LockScope::Session => Ok(()),
        }
    }

    /// Takes the lock that is a transaction, opening it; while the lock is held apart, only
    /// opens the transaction.
    pub(crate) async fn take_lock(&mut self) -> Result<(), Error> {
        if self.apart.is_some() {
            self.backend
                .run(self.held.conn(), B::BEGIN)
                .await
                .map_err(|(_, e)| B::describe(e, "starting a transaction"))?;
        } else {
            self.backend
                .take_lock(self.held.conn(), self.lock_timeout)
                .await?;
        }
        self.in_transaction = true;
        Ok(())
    }

    /// Whether the migration lock is held apart, across this session's transactions.
    pub(crate) fn holds_lock_apart(&self) -> bool {
        self.apart.is_some()
    }

    /// Holds the migration lock apart, for the no-transaction migration `file`, from when
    /// this session's round has ended (its transaction, and the lock in it, are over): the
    /// state must be read again under it.
    pub(crate) async fn hold_lock_apart(&mut self, file: &str) -> Result<(), Error> {
        let apart = self
            .backend
            .hold_lock_apart(self.held.conn(), self.lock_timeout, file)
            .await?;
        self.apart = Some(apart);
        Ok(())
    }

    /// Rolls back a failed attempt: to its savepoint where the backend has one, which keeps
    /// the transaction and the migration lock taken in it; else the whole transaction.
    pub(crate) async fn rollback_attempt(&mut self) -> Result<(), Error> {
        match B::ATTEMPT_SAVEPOINT {
            Some(savepoint) if self.in_transaction => self
                .backend
                .run(
                    self.held.conn(),
                    &format!("ROLLBACK TO SAVEPOINT {savepoint}"),
                )
                .await
                .map_err(|(_, e)| B::describe(e, "rolling back a migration attempt")),
            _ => {
                self.rollback().await;
                Ok(())
            }
        }
    }

    /// Ends a round that wrote nothing: rolls back the round's transaction, if it has one.
    pub(crate) async fn end_read_round(&mut self) {
        if self.in_transaction {
            self.rollback().await;
        }
    }

    /// Rolls back whatever is open; errors are only logged (there may be nothing open).
    pub(crate) async fn rollback(&mut self) {
        if let Err((_, e)) = self.backend.run(self.held.conn(), "ROLLBACK").await {
            tracing::debug!(error = %crate::error::ServerMessage::of(&e), "rollback");
        }
        self.in_transaction = false;
    }
}

/// Whether a schema name can hold an application's tables: a plain identifier
/// (`[a-z_][a-z0-9_]{0,62}`) that is not one PostgreSQL reserves (see
/// [`is_reserved_schema_name`]).
pub(crate) fn is_valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && name.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !is_reserved_schema_name(name)
}

/// Whether PostgreSQL keeps a schema name for itself: `information_schema`, and every
/// name starting with `pg_` (`pg_catalog`, `pg_toast`, `pg_temp_3`, …), which
/// `CREATE SCHEMA` refuses or, worse, which already hold the system's tables.
pub(crate) fn is_reserved_schema_name(name: &str) -> bool {
    name == "information_schema" || name.starts_with("pg_")
}

/// The PostgreSQL advisory lock key that upgrades of `schema` hold, for operators who
/// want to see who holds it: `SELECT * FROM pg_locks WHERE locktype = 'advisory'`.
pub fn postgres_lock_key(schema: &SchemaName) -> i64 {
    postgres::lock_key(schema.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_valid_schema_name("calista"));
        assert!(is_valid_schema_name("_app_2"));
        for bad in [
            "",
            "Calista",
            "2app",
            "a-b",
            "a\"b",
            "a;drop",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_schema_name(bad), "{bad}");
        }
    }
}
