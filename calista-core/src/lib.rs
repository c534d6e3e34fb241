//! The runtime of CALISTA schema migrations.
//!
//! Most applications use the `calista` facade crate, which re-exports this crate together
//! with the `migrations!()` and `#[requires_db]` macros. Without the default `runtime`
//! feature this crate is only the migration file rules and model, which is all the
//! `migrations!()` macro needs at build time.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod format;
pub mod migration;
pub mod naming;
pub mod plan;
pub mod problem;
pub mod source;
pub mod sql_split;
pub mod utc;

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
mod migrator;
#[cfg(feature = "runtime")]
mod script;
#[cfg(feature = "runtime")]
pub mod settings;
#[cfg(feature = "runtime")]
mod store;
#[cfg(feature = "runtime")]
pub mod url;

pub use migration::{Checksum, Dialect, Direction, Migration, Migrations, Section};
pub use naming::{NameError, Revision};
pub use plan::{DowngradeTarget, SchemaState, TransactionMode, UpgradeTarget};
pub use problem::{Problem, ProblemKind, SourceError};

#[cfg(feature = "runtime")]
pub use app::{App, db, require_db, require_db_blocking, startup};
#[cfg(feature = "runtime")]
pub use database::{Database, DatabaseOptions, postgres_lock_key};
#[cfg(feature = "runtime")]
pub use error::{DEFAULT_UPGRADE_HINT, Error, ErrorKind};
#[cfg(feature = "runtime")]
pub use migrator::{Downgrades, Ensured, Migrator, Policy, Recovery, Report, Step};
#[cfg(feature = "runtime")]
pub use store::{DEFAULT_SCHEMA, is_valid_schema_name};

/// The sqlx this crate uses, for the application's own queries on [`Database`]'s pools.
#[cfg(feature = "runtime")]
pub use sqlx;
