//! SQL text as both servers read it: tokens, statements, and where they are in a file.
//!
//! One lexer (std only, also built without the `runtime` feature) serves the
//! no-transaction splitter, the build-time checks of `migrations!()` and
//! [`Migrations::from_dir`](crate::Migrations::from_dir), and the [`lint`].
//!
//! - [`tokens`] reads text into [`Token`]s: words, numbers, strings (`'…'`, PostgreSQL's
//!   `E'…'`), dollar-quoted strings (PostgreSQL), quoted identifiers (`"…"`, and SQLite's
//!   `` `…` `` and `[…]`), parameters, comments (`--`, `/* */`, nested on PostgreSQL),
//!   whitespace and punctuation. The tokens cover the text exactly and carry byte offsets.
//! - [`statements`] splits a script into [`Statement`]s where the server ends them,
//!   keeping PostgreSQL's `BEGIN ATOMIC … END` and SQLite's trigger bodies whole.
//! - [`line_col`] turns a byte offset into the 1-based line and column a person reads.

mod lexer;
mod statements;

pub(crate) mod checks;
pub mod lint;

pub(crate) use lexer::Keywords;
pub(crate) use lexer::{Token, TokenKind, tokens};
pub use statements::{Statement, statements};

/// The 1-based line and column of byte `offset` in `text`; the column counts characters,
/// as PostgreSQL's error positions do. An offset past the end (or inside a character)
/// is taken as the nearest character boundary before it.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before[line_start..].chars().count() + 1;
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (to_u32(line), to_u32(column))
}

#[cfg(test)]
mod examples {
    #[test]
    fn a_statements_offset_gives_its_line_and_column_in_the_file() {
        use crate::Dialect;
        use crate::sql::{line_col, statements};

        let file = "-- calista:up\nCREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n";
        let section_start = 14; // where the section's SQL starts in the file
        let found = statements(&file[section_start..], Dialect::Sqlite);
        assert_eq!(found[1].first_keywords(2), ["INSERT", "INTO"]);
        assert_eq!(line_col(file, section_start + found[1].offset), (3, 1));
    }
    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(crate::sql::line_col("ab\ncdé f", 8), (2, 5));
    }
}
