//! CALISTA schema migrations.
pub use calista_core::*;
pub use calista_macros::migrations;

#[doc(hidden)]
pub mod __private {
    pub use calista_core::{
        Checksum, Dialect, Direction, Migration, Migrations, Revision, Section,
    };
}
