//! CALISTA schema migrations: migrations checked by the compiler, a schema guard that runs
//! once per process in one or two indexed reads, and upgrades that lock, back up, and
//! apply everything in one transaction, on PostgreSQL and SQLite.
//!
//! ```
//! // In the application crate, with its migration files in `migrations/`:
//! static MIGRATIONS: calista::Migrations = calista::migrations!();
//!
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! /// A handler that needs the database: the guard runs before its body, once per process.
//! #[calista::requires_db]
//! async fn count_events() -> Result<i64, Error> {
//!     let calista::Pool::Sqlite(pool) = calista::db().await?.pool() else {
//!         return Err("this example uses SQLite".into());
//!     };
//!     Ok(calista::sqlx::query_scalar("SELECT count(*) FROM event_store").fetch_one(pool).await?)
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Error> {
//!     let url = calista::url::DatabaseUrl::parse("sqlite:///:memory:", std::path::Path::new("."))?;
//!
//!     // An explicit check at start-up. Explicit by default: a database that is behind is
//!     // refused with the command to run; this application opts in to upgrading instead.
//!     let policy = calista::Policy { auto_upgrade: true, ..calista::Policy::default() };
//!     let db = calista::Database::connect(&url, calista::DatabaseOptions::default())?;
//!     let ensured = calista::Migrator::new(&MIGRATIONS, &db).with_policy(policy.clone()).ensure_schema().await?;
//!     assert!(matches!(ensured, calista::Ensured::Upgraded(_)));
//!     db.close().await;
//!
//!     // Handlers acquire the database through #[requires_db], with the installed policy.
//!     // (A new in-memory database: the guard upgrades it before the handler runs.)
//!     calista::App::new(&MIGRATIONS, url).policy(policy).install()?;
//!     assert_eq!(count_events().await?, 0);
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
//! Debug builds also warn at run time when the folder holds migrations the binary lacks.

extern crate self as calista;

// What an embedder needs, and nothing that only the runtime's own parts use: the
// planner, the state reads, the SQL splitter and the file format stay internal.
pub use calista_core::{
    App, Checksum, DEFAULT_SCHEMA, Database, DatabaseOptions, Dialect, Direction, DowngradeTarget,
    Downgrades, Ensured, Error, ErrorKind, Hints, Migration, Migrations, Migrator, NameError,
    Notice, Policy, Pool, Problem, ProblemKind, Recovery, Report, Revision, SchemaState, Section,
    SourceError, Step, TransactionMode, UpgradeTarget, db, postgres_lock_key, sqlx, startup,
};
pub use calista_core::{backup, settings, url};
pub use calista_macros::{migrations, requires_db};

#[cfg(feature = "cli")]
pub mod cli;

/// Used by code that the macros generate; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use calista_core::{
        Checksum, Dialect, Direction, Migration, Migrations, Revision, Section,
    };
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
