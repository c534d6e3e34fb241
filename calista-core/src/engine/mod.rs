//! The engine: what the guard, upgrades and downgrades do, written once over
//! [`Backend`](crate::backend::Backend).
//!
//! - [`plan`] is pure: `(migrations, database state) -> plan or refusal`.
//! - `program` compiles a plan into the steps the database sees: one list, which `run`
//!   executes (with its retries, checks and records) and `script` prints (`db upgrade --sql`).
//! - `migrator` is the public [`Migrator`](crate::Migrator): the guard, the lock, the rounds
//!   of an upgrade or downgrade, backups, recovery.
//! - `redo` is the development edit loop.

pub(crate) mod plan;

#[cfg(feature = "runtime")]
pub mod history;
#[cfg(feature = "runtime")]
pub(crate) mod migrator;
#[cfg(feature = "runtime")]
mod program;
#[cfg(feature = "runtime")]
mod redo;
#[cfg(feature = "runtime")]
mod run;
#[cfg(feature = "runtime")]
mod script;
#[cfg(feature = "runtime")]
mod stamp;
