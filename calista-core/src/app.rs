//! The application's database, process-wide: installed once at start-up, guarded once,
//! when the first handle is acquired (by `#[requires_db]` or [`db`]).

use std::sync::OnceLock;

use crate::database::{Database, DatabaseOptions};
use crate::engine::migrator::{Ensured, Migrator, Policy};
use crate::error::Error;
use crate::migration::Migrations;
use crate::url::DatabaseUrl;

/// What the guard needs: the migrations, where the database is, and the policy.
#[derive(Debug, Clone)]
pub struct App {
    migrations: &'static Migrations,
    url: DatabaseUrl,
    options: DatabaseOptions,
    policy: Policy,
}

static APP: OnceLock<App> = OnceLock::new();
static DATABASE: OnceLock<Database> = OnceLock::new();
static GUARD: tokio::sync::OnceCell<Ensured> = tokio::sync::OnceCell::const_new();

impl App {
    /// An application with production defaults.
    pub fn new(migrations: &'static Migrations, url: DatabaseUrl) -> Self {
        Self {
            migrations,
            url,
            options: DatabaseOptions::default(),
            policy: Policy::default(),
        }
    }

    /// Sets how the database is reached.
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
        APP.set(self).map_err(|_| {
            Error::Setup(
                "calista::App::install was called twice; install the application once, at start-up"
                    .into(),
            )
        })
    }
}

fn app() -> Result<&'static App, Error> {
    APP.get().ok_or_else(|| {
        Error::Setup(
            "no application installed: call calista::App::new(&MIGRATIONS, url).install() at start-up, \
             before the first #[requires_db] handler runs"
                .into(),
        )
    })
}

/// The database, after the guard has passed. The first call in a process runs the guard
/// (and, when the policy allows, the automatic upgrade); later calls cost nothing.
pub async fn db() -> Result<&'static Database, Error> {
    let app = app()?;
    let database = match DATABASE.get() {
        Some(database) => database,
        None => {
            let database = Database::connect(&app.url, app.options.clone())?;
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
                    .map_err(|e| {
                        Error::Setup(format!("cannot start a runtime for the schema guard: {e}"))
                    })?;
                runtime.block_on(async {
                    // A database of this runtime only: connections die with the runtime.
                    let database = Database::connect(&app.url, app.options.clone())?;
                    let ensured = Migrator::new(app.migrations, &database)
                        .with_policy(app.policy.clone())
                        .ensure_schema()
                        .await;
                    database.close().await;
                    ensured
                })
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Setup("the schema guard's thread panicked".into())))
    })?;
    let _ = GUARD.set(ensured);
    Ok(())
}

/// Async handlers' entry: acquires the handle.
pub async fn require_db() -> Result<(), Error> {
    db().await.map(drop)
}
