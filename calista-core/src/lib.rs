//! The runtime of CALISTA schema migrations.
//!
//! Most applications use the `calista` facade crate, which re-exports this crate together
//! with the `migrations!()` macro. Without the default `runtime` feature this crate is only
//! the migration file rules and model, which is what the macro needs at build time.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod format;
pub mod migration;
pub mod naming;
pub mod problem;
pub mod source;

pub use migration::{Checksum, Dialect, Direction, Migration, Migrations, Section};
pub use naming::{NameError, Revision};
pub use problem::{Problem, ProblemKind, SourceError};

#[cfg(feature = "runtime")]
pub mod settings;
#[cfg(feature = "runtime")]
pub mod url;
