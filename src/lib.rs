//! CALISTA schema migrations: migrations checked by the compiler, a schema guard that runs
//! once per process in one or two indexed reads, and upgrades that lock, back up, and
//! apply everything in one transaction, on PostgreSQL and SQLite.
//!
//! On the pool the application already has, one line each:
//!
//! ```no_run
//! // In the application crate, with its migration files in `migrations/`:
//! static MIGRATIONS: calista::Migrations = calista::migrations!();
//!
//! # async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let pool = calista::sqlx::PgPool::connect(url).await?; // or a SqlitePool
//! MIGRATIONS.ensure_schema(&pool).await?; // the guard: an error when the schema is behind
//! MIGRATIONS.upgrade(&pool).await?;       // or apply what is pending: lock, backup, history
//! # Ok(()) }
//! ```
//!
//! **Where the tables go.** Where the pool's queries look, as with
//! `sqlx::migrate!().run(&pool)`: on PostgreSQL calista's own tables (`alembic_version`,
//! `schema_history`) and the migrations' objects go in the pool's `current_schema()`, so the
//! application's queries find them without naming a schema. An application that names a
//! schema ([`DatabaseOptions::schema`], with [`Database::from_pool`]) gets its tables there
//! instead, each migration running with that schema first on `search_path`; the `calista`
//! program names `calista`. A database whose calista tables are in schema `calista` while
//! the pool looks elsewhere is refused ([`Error::StateInOtherSchema`]), never given a
//! second copy. The application's pool is left as it was (its `search_path` too). SQLite
//! has no schemas: everything is in the database file.
//!
//! Errors say what to do in the application's words ([`Policy::hints`], neutral by
//! default); [`settings`] resolves an application's own `MYAPP_*` variables and `myapp.toml`
//! into a [`Policy`] and [`DatabaseOptions`]; with the `cli` feature, [`cli`] is the `db`
//! command group for the application's own clap parser (`myapp db upgrade`); [`fleet`] checks
//! or upgrades many databases (or a schema per tenant) in one call, each with its own lock.
//!
//! Command handlers can instead be marked `#[requires_db]`: the guard runs before the
//! body, once per process, on the pool the application handed over at start-up, and a
//! refusal returns through the handler's own error type:
//!
//! ```
//! use calista::sqlx::{self, SqlitePool};
//!
//! static MIGRATIONS: calista::Migrations = calista::migrations!();
//!
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! /// A handler that needs the database: the guard runs before its body, once per process.
//! #[calista::requires_db]
//! async fn count_events(pool: &SqlitePool) -> Result<i64, Error> {
//!     Ok(sqlx::query_scalar("SELECT count(*) FROM event_store").fetch_one(pool).await?)
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Error> {
//!     let pool = SqlitePool::connect("sqlite::memory:").await?; // the application's one pool
//!
//!     // Explicit by default: a database that is behind is refused with what to do; this
//!     // application opts in to upgrading instead.
//!     let policy = calista::Policy { auto_upgrade: true, ..calista::Policy::default() };
//!     calista::App::from_pool(&MIGRATIONS, &pool).policy(policy).install()?;
//!     assert_eq!(count_events(&pool).await?, 0);
//!     assert!(matches!(calista::startup(), Some(calista::Ensured::Upgraded(_))));
//!     Ok(())
//! }
//! ```
//!
//! Cargo rebuilds a crate when an embedded migration file changes, but not when a file is
//! added to the folder. Add a `build.rs` to the crate that embeds migrations:
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     println!("cargo::rerun-if-changed=migrations");
//! }
//! ```
//!
//! Debug builds also notice, at run time, files in the folder that the binary lacks: the
//! guard's result carries them ([`Ensured::notices`]) and they are emitted as `tracing`
//! events.

extern crate self as calista;

// What an embedder needs, and nothing that only the runtime's own parts use: the
// planner, the state reads, the SQL splitter and the file format stay internal.
pub use calista_core::{
    AfterLoss, Blocker, DriverError, StatementError, StatementLocation, backup, fleet, history,
    import, lint, origin, schema, settings, squash, url, verify,
};
pub use calista_core::{
    App, Checksum, Corruption, DEFAULT_SCHEMA, Database, DatabaseOptions, Dialect, Direction,
    DowngradeTarget, Downgrades, Ensured, Environment, Error, ErrorKind, Hints, HistoryRecord,
    Migration, Migrations, Migrator, NameError, NewFileError, Notice, PlanRefusal, Policy, Pool,
    Problem, ProblemKind, Recovery, Report, Revision, SchemaName, SchemaNameError, SchemaState,
    Section, SourceError, Step, TransactionMode, UpgradeTarget, db, new_migration_file,
    postgres_lock_key, semver, sqlx, startup,
};

/// A fresh database per test, at head of the application's migrations (feature `testing`).
#[cfg(feature = "testing")]
pub use calista_core::testing;

pub use calista_macros::{migrations, requires_db};

/// An async test that takes a fresh database at head of the application's migrations
/// (feature `testing`).
///
/// The argument's type chooses the backend: `sqlx::PgPool` (PostgreSQL, on the crate's
/// test server: `MYAPP_TEST_PG_URL` for the crate `myapp`, else `CALISTA_TEST_PG_URL`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`), `sqlx::SqlitePool` (a file in the
/// temporary folder), or [`&TestDatabase`] for both: two tests, `<name>::postgres` and
/// `<name>::sqlite`, in a module of the function's name, where
/// [`any_pool()`](testing::TestDatabase::any_pool) runs one SQL text on either.
/// `revision = "YYYYMMDD_HHMM"` stops the database at that revision; `prefix = "myapp"`
/// starts the names of its databases and files, and of its server variable (default: the
/// crate's name). The function returns `()` or `Result<(), E>` with `E: Debug`.
///
/// Each test runs on a multi-thread tokio runtime of its own. A passing test's database is
/// dropped; when the body panics or returns `Err`, the test fails (its panic pointing at
/// the test) and the database is kept, its URL printed. Mistakes in its use are build
/// errors that say what to write.
///
/// ```
/// use calista::sqlx;
///
/// static MIGRATIONS: calista::Migrations = calista::migrations!();
///
/// #[calista::test(MIGRATIONS)]
/// async fn events_start_empty(pool: sqlx::SqlitePool) -> Result<(), sqlx::Error> {
///     let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store").fetch_one(&pool).await?;
///     assert_eq!(n, 0);
///     Ok(())
/// }
///
/// #[calista::test(MIGRATIONS, revision = "20250826_1030")]
/// async fn before_the_stream_index(db: &calista::testing::TestDatabase) {
///     let state = calista::Migrator::new(&MIGRATIONS, db.database()).check().await.unwrap();
///     assert!(matches!(state, calista::SchemaState::Behind { pending: 1, .. }));
/// }
/// # fn main() {}
/// ```
///
/// [`&TestDatabase`]: testing::TestDatabase
#[cfg(feature = "testing")]
pub use calista_macros::test;

#[cfg(feature = "cli")]
pub mod cli;

/// Used by code that the macros generate; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use calista_core::__private::{
        checksum, migration, migrations, revision, with_lock_timeout,
    };
    #[cfg(feature = "testing")]
    pub use calista_core::__private::{run_test, run_test_postgres_pool, run_test_sqlite_pool};
    #[cfg(feature = "testing")]
    pub use calista_core::testing::{Backend as TestBackend, TestDatabase};
    pub use calista_core::{require_db, require_db_blocking};

    use calista_core::Error;

    /// The return type of a `#[requires_db]` handler: a `Result` whose error can hold
    /// the guard's error.
    #[diagnostic::on_unimplemented(
        message = "`#[requires_db]` handlers must return `Result<_, E>`, not `{Self}`",
        label = "not a `Result`",
        note = "return `Result<T, E>` where `E: From<calista::Error>`, so that a guard error can be returned"
    )]
    pub trait HandlerResult {
        /// The handler's return value for a guard error.
        fn from_db_error(error: Error) -> Self;
    }

    impl<T, E: DbErrorTarget> HandlerResult for Result<T, E> {
        fn from_db_error(error: Error) -> Self {
            Err(E::from_db_error(error))
        }
    }

    /// The handler's return value for a guard error, its type inferred from the return
    /// position (which may hold an `impl Trait` that no path can name).
    pub fn from_db_error<R: HandlerResult>(error: Error) -> R {
        R::from_db_error(error)
    }

    /// An error type that can hold the guard's error.
    #[diagnostic::on_unimplemented(
        message = "the error type `{Self}` of this `#[requires_db]` handler cannot hold calista's error",
        label = "`{Self}` needs `impl From<calista::Error>`",
        note = "add `impl From<calista::Error> for {Self}` (with thiserror: a `#[from] calista::Error` variant), \
                or return an error type that has it, such as `Box<dyn std::error::Error + Send + Sync>` or `anyhow::Error`"
    )]
    pub trait DbErrorTarget {
        /// Converts the guard's error.
        fn from_db_error(error: Error) -> Self;
    }

    #[diagnostic::do_not_recommend]
    impl<E: From<Error>> DbErrorTarget for E {
        fn from_db_error(error: Error) -> Self {
            E::from(error)
        }
    }
}
