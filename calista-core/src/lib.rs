//! The runtime of CALISTA schema migrations: file rules, migration model, the schema
//! guard, the migrator, the PostgreSQL and SQLite backends, backups and settings.
//!
//! Applications use it through the `calista` crate, which adds the `migrations!()` and
//! `#[requires_db]` macros. Without the default `runtime` feature this crate is only the
//! migration file rules and model (`std` and `sha2`), which is all `migrations!()` needs
//! at build time: the macro and [`Migrations::from_dir`] share one implementation.
//!
//! # Where state lives
//!
//! On PostgreSQL, in the schema where the connection's queries look (its
//! `current_schema()`), unless the application names one ([`DatabaseOptions::schema`]; the
//! `calista` program names `calista`), which calista's own connections then put first on
//! `search_path` (and the pool that [`Database::connect`] opens; a pool the application
//! hands over is left as it was); on SQLite, in the main database:
//!
//! - `alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc
//!   PRIMARY KEY (version_num))`, exactly as Alembic creates it;
//! - `schema_history`: every migration applied (and, in development, reverted) with its
//!   checksum, UTC time, duration, application version and backup, written in the same
//!   transaction as the migration. Each row also carries the *chained digest* of every
//!   migration applied up to it.
//!
//! # The guard
//!
//! [`Migrator::check`] reads the version row and the newest history row in one query (no
//! lock) and compares them with the embedded migrations; comparing the chained digest with
//! the embedded chain at that revision detects an edited migration without reading the rest
//! of the history. Only when something differs is the whole history read, to say what.
//! The states ([`SchemaState`]) and what [`Migrator::ensure_schema`] does with them:
//!
//! | state | meaning | guard |
//! |---|---|---|
//! | up to date | at the newest embedded revision | the command runs |
//! | behind | migrations pending (an empty database too) | upgrades if the policy allows, else refuses (exit 3) |
//! | ahead | at a revision this build does not know | refuses, naming the app version that applied it (exit 4) |
//! | modified | an applied migration's file changed | refuses, naming the file (exit 4) |
//! | out of order | an older migration was never applied | refuses, naming it (exit 4) |
//! | interrupted | a no-transaction migration did not finish | refuses, explaining recovery (exit 4) |
//! | corrupt | `alembic_version` has no row or several | refuses, explaining the fix (exit 4) |
//!
//! # Upgrades
//!
//! [`Migrator::upgrade`]: (0) the check, without a lock: nothing to do means no lock and no
//! wait; (0b) on PostgreSQL, a hot standby is refused ([`Error::Standby`]) before any lock
//! or backup; (1) the migration lock — a PostgreSQL transaction-level advisory lock, taken
//! first in the transaction it protects and polled with `pg_try_advisory_xact_lock` so a
//! waiter never blocks the holder's `CREATE INDEX CONCURRENTLY`, with a timeout that names
//! the holder (it ends with its transaction, so it cannot leak to a pooled server
//! connection; across a no-transaction migration a second connection holds it in a
//! transaction of its own, and through a pooler in transaction mode such a migration is
//! refused, [`Error::TransactionPooler`]); on SQLite an immediate transaction with a busy
//! timeout; (2) the state read again under the lock;
//! (3) nothing pending: done; (4) the backup ([`backup`]), unless disabled or the database
//! is empty — a failure stops here; (5) all pending transactional migrations in one
//! transaction (or one each, [`TransactionMode::Each`]); a no-transaction migration runs
//! alone, recorded as started before it runs and finished after; (6) `alembic_version`
//! and `schema_history` in the same transaction; (7) a [`Report`] with each migration's
//! duration. The lock is released on every path, errors included.
//!
//! On PostgreSQL each attempt runs with a short `lock_timeout` ([`Policy::lock_attempt_timeout`],
//! or the migration's `-- calista:lock-timeout`) and the application's schema first on
//! `search_path` (`SET LOCAL`, so the application's own connections are left as they are);
//! an attempt whose table lock is not granted in time is rolled back (to the savepoint it
//! began with, keeping the migration lock) and retried after a
//! jittered pause until the database's lock timeout is spent ([`Error::TableLockTimeout`],
//! naming the [`Blocker`]s). A migration whose SQL ends the transaction itself is detected
//! before anything is recorded ([`Error::TransactionEnded`]); a failed statement is located
//! in its file ([`StatementError`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use calista_core::{Database, DatabaseOptions, Migrations, Migrator, Policy, UpgradeTarget};
//! use calista_core::url::DatabaseUrl;
//!
//! let migrations = Migrations::from_dir("migrations")?;
//! let url = DatabaseUrl::parse("postgresql://app@db.internal/app", std::path::Path::new("."))?;
//! let db = Database::connect(&url, DatabaseOptions::default())?;
//! let migrator = Migrator::new(&migrations, &db).with_policy(Policy::default());
//! let report = migrator.upgrade(UpgradeTarget::Head).await?;
//! for step in &report.steps {
//!     println!("applied {} in {:?}", step.file, step.duration);
//! }
//! # Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]
// Without the runtime, this crate is the file rules `migrations!()` uses at build time; the
// planner and the model's runtime parts are then unused, not dead.
#![cfg_attr(not(feature = "runtime"), allow(dead_code))]

mod engine;
mod format;
mod migration;
mod naming;
pub mod origin;
mod problem;
mod source;
mod sql;
mod utc;

// Properties of the file rules over generated input (a unit test: it reads the rules'
// internals).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.
mod properties;

#[cfg(feature = "runtime")]
mod app;
#[cfg(feature = "runtime")]
mod backend;
#[cfg(feature = "runtime")]
pub mod backup;
#[cfg(feature = "runtime")]
mod database;
#[cfg(feature = "runtime")]
mod error;
#[cfg(feature = "runtime")]
pub mod fleet;
#[cfg(feature = "runtime")]
pub mod import;
#[cfg(feature = "runtime")]
mod new_file;
#[cfg(feature = "runtime")]
pub mod schema;
#[cfg(feature = "runtime")]
mod scratch;
#[cfg(feature = "runtime")]
pub mod settings;
#[cfg(feature = "runtime")]
pub mod squash;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "runtime")]
pub mod url;
#[cfg(feature = "runtime")]
pub mod verify;

#[cfg(feature = "runtime")]
pub use engine::history;
pub use engine::plan::{
    Corruption, DowngradeTarget, HistoryRecord, PlanRefusal, SchemaState, TransactionMode,
    UpgradeTarget,
};
pub use migration::{Checksum, Dialect, Direction, Migration, Migrations, Section};
pub use naming::{NameError, Revision};
pub use problem::{Problem, ProblemKind, SourceError};
pub use sql::lint;

#[cfg(feature = "runtime")]
pub use app::{App, db, require_db, require_db_blocking, startup};
#[cfg(feature = "runtime")]
pub use database::{
    DEFAULT_SCHEMA, Database, DatabaseOptions, Pool, SchemaName, SchemaNameError, postgres_lock_key,
};
#[cfg(feature = "runtime")]
pub use engine::migrator::{
    Downgrades, Ensured, Environment, Migrator, Notice, Policy, Recovery, Report, Step,
};
#[cfg(feature = "runtime")]
pub use error::{
    AfterLoss, Blocker, DriverError, Error, ErrorKind, Hints, StatementError, StatementLocation,
};
#[cfg(feature = "runtime")]
pub use new_file::{NewFileError, new_migration_file};

/// What `migrations!()` needs at build time (the one implementation of the file rules it
/// shares with [`Migrations::from_dir`]) and what the code it generates calls (through the
/// `calista` crate's `__private`), and what tests of the SQL splitter reach; not part of
/// the public API.
#[doc(hidden)]
pub mod __private {
    use std::time::Duration;

    use crate::migration::Span;
    use crate::{Checksum, Migration, Migrations, Revision};

    /// Reading a migrations folder.
    pub mod source {
        pub use crate::source::*;
    }
    /// The chained digests of a set of migrations.
    pub use crate::migration::chain_digests;
    /// The SQL splitter.
    pub use crate::sql::{Statement, statements};

    /// A set of migrations from data checked at build time.
    pub const fn migrations(
        migrations: &'static [Migration],
        chains: &'static [Checksum],
        source_dir: Option<&'static str>,
        app_version: Option<&'static str>,
    ) -> Migrations {
        Migrations::from_static(migrations, chains, source_dir, app_version)
    }

    /// A migration from data checked at build time; `text` comes through `include_str!`,
    /// so that editing the file rebuilds the crate.
    pub const fn migration(
        revision: Revision,
        summary: &'static str,
        text: &'static str,
        spans: &'static [Span],
        no_transaction: bool,
        irreversible: bool,
        checksum: Checksum,
    ) -> Migration {
        Migration::from_static(
            revision,
            summary,
            text,
            spans,
            no_transaction,
            irreversible,
            checksum,
        )
    }

    /// The migration with its `-- calista:lock-timeout`.
    pub const fn with_lock_timeout(migration: Migration, timeout: Duration) -> Migration {
        migration.with_lock_timeout(timeout)
    }

    /// A revision from its packed parts `(YYYYMMDD, HHMM)`, checked at build time.
    pub const fn revision(date: u32, time: u16) -> Revision {
        Revision::from_packed_unchecked(date, time)
    }

    /// A checksum from its bytes.
    pub const fn checksum(bytes: [u8; 32]) -> Checksum {
        Checksum::from_bytes(bytes)
    }

    /// A revision's packed parts `(YYYYMMDD, HHMM)`, for the generated code.
    pub const fn revision_parts(revision: Revision) -> (u32, u16) {
        revision.packed()
    }

    /// Where a migration's sections lie in its file, for the generated code.
    pub fn spans(migration: &Migration) -> &[Span] {
        migration.spans()
    }

    /// What `#[calista::test]` runs.
    #[cfg(feature = "testing")]
    pub use crate::testing::run::{run_test, run_test_postgres_pool, run_test_sqlite_pool};
}

/// The semver this crate uses, for the application's version ([`Policy::app_version`]).
#[cfg(feature = "runtime")]
pub use semver;

/// The sqlx this crate uses, for the application's own queries on [`Database`]'s pools.
#[cfg(feature = "runtime")]
pub use sqlx;
