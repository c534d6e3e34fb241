//! The engine: what the guard, upgrades and downgrades do, written once for every backend.
//!
//! - [`plan`] is pure: `(migrations, database state) -> plan or refusal`.
//! - `migrator` runs plans against a database under the migration lock.
//! - `redo` is the development edit loop.
//! - `script` prints an upgrade as `db upgrade --sql` shows it.

pub mod plan;

#[cfg(feature = "runtime")]
pub(crate) mod migrator;
#[cfg(feature = "runtime")]
mod redo;
#[cfg(feature = "runtime")]
pub(crate) mod script;
