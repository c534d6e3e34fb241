//! The application's database, process-wide: installed once at start-up, guarded once,
//! when the first handle is acquired (by `#[requires_db]` or [`db`]).

use std::sync::OnceLock;

use crate::database::{Database, DatabaseOptions, Pool};
use crate::engine::migrator::{Ensured, Migrator, Policy};
use crate::error::Error;
use crate::migration::Migrations;
use crate::url::DatabaseUrl;

/// What the guard needs: the migrations, the database, and the policy.
///
/// An application hands over the pool it already has ([`App::from_pool`]), so that its
/// handlers and the guard share one pool; a program without a pool of its own names the
/// database by URL ([`App::new`]) and calista opens one.
#[derive(Debug, Clone)]
pub struct App {
    migrations: &'static Migrations,
    database: Source,
    options: DatabaseOptions,
    policy: Policy,
}

/// Where the process's database handle comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The application's pool, used as it is and never closed by calista.
    Pool(Pool),
    /// A URL, for which calista opens a pool of its own.
    Url(DatabaseUrl),
}

static APP: OnceLock<App> = OnceLock::new();
static DATABASE: OnceLock<Database> = OnceLock::new();
static GUARD: tokio::sync::OnceCell<Ensured> = tokio::sync::OnceCell::const_new();

impl App {
    /// An application on the pool it already has (`&PgPool` or `&SqlitePool`), with
    /// production defaults. The guard runs once per process on that pool, with the same
    /// lock, backups and history as `MIGRATIONS.ensure_schema(&pool)`; the pool is left as
    /// it was (calista reads, locks and migrates on connections of its own), and
    /// [`db`]`().pool()` is that same pool.
    pub fn from_pool(migrations: &'static Migrations, pool: impl Into<Pool>) -> Self {
        Self::with(migrations, Source::Pool(pool.into()))
    }

    /// A program without a pool of its own (the `calista` program): calista opens one on
    /// `url` when the first handle is acquired, with production defaults.
    pub fn new(migrations: &'static Migrations, url: DatabaseUrl) -> Self {
        Self::with(migrations, Source::Url(url))
    }

    fn with(migrations: &'static Migrations, database: Source) -> Self {
        Self {
            migrations,
            database,
            options: DatabaseOptions::default(),
            policy: Policy::default(),
        }
    }

    /// Sets how the database is reached (the schema of calista's tables; for a URL, the
    /// timeouts and pool size).
    pub fn options(mut self, options: DatabaseOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the guard's policy (auto-upgrade, backups, ...).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Makes this the process's application; once per process.
    pub fn install(self) -> Result<(), Error> {
        APP.set(self).map_err(|_| Error::InstalledTwice)
    }

    /// A handle on the database: around the application's pool, or on a pool of its own.
    fn open(&self) -> Result<Database, Error> {
        match &self.database {
            Source::Pool(pool) => Database::from_pool(pool, self.options.clone()),
            Source::Url(url) => Database::connect(url, self.options.clone()),
        }
    }
}

fn app() -> Result<&'static App, Error> {
    APP.get().ok_or(Error::NotInstalled)
}

/// The database, after the guard has passed. The first call in a process runs the guard
/// (and, when the policy allows, the automatic upgrade); later calls cost nothing.
pub async fn db() -> Result<&'static Database, Error> {
    let app = app()?;
    let database = match DATABASE.get() {
        Some(database) => database,
        None => {
            let database = app.open()?;
            DATABASE.get_or_init(|| database)
        }
    };
    GUARD
        .get_or_try_init(|| async {
            let ensured = Migrator::new(app.migrations, database)
                .with_policy(app.policy.clone())
                .ensure_schema()
                .await;
            // The guard runs once per process: do not keep its connection open.
            database.close_guard_connection().await;
            ensured
        })
        .await?;
    Ok(database)
}

/// What the guard found or did at start-up, once it has run: up to date, or the report of
/// the automatic upgrade.
pub fn startup() -> Option<&'static Ensured> {
    GUARD.get()
}

/// For synchronous handlers: runs the guard, once, on a thread of its own with its own
/// runtime, so it works inside and outside an async runtime.
pub fn require_db_blocking() -> Result<(), Error> {
    if GUARD.initialized() {
        return Ok(());
    }
    let app = app()?;
    let ensured = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::GuardRuntime)?;
                runtime.block_on(async {
                    // A handle of this runtime only: the connections calista opens die with
                    // the runtime (an application's pool stays open).
                    let database = app.open()?;
                    let ensured = Migrator::new(app.migrations, &database)
                        .with_policy(app.policy.clone())
                        .ensure_schema()
                        .await;
                    database.close().await;
                    ensured
                })
            })
            .join()
            .unwrap_or(Err(Error::GuardPanicked))
    })?;
    let _ = GUARD.set(ensured);
    Ok(())
}

/// Async handlers' entry: acquires the handle.
pub async fn require_db() -> Result<(), Error> {
    db().await.map(drop)
}
