//! The lint: migrations that would lose data, lock production PostgreSQL tables, or not
//! run on one of the two dialects (DESIGN §4.1; each rule in `docs/LINT.md`).
//!
//! It runs inside the one parser ([`crate::format::parse_file`]), on the tokens of the one
//! lexer ([`crate::sql`]), so `migrations!()` and [`Migrations::from_dir`](crate::Migrations::from_dir)
//! report the same findings, as build errors and as run-time problems. A finding is
//! acknowledged, with a reason, by a directive before the first section:
//!
//! ```sql
//! -- calista:allow drop-column -- legacy_flag is unread since release 4.2
//! ```
//!
//! squawk (a PostgreSQL linter, `squawk-linter` on crates.io) was evaluated as a
//! dependency and not taken: it reads PostgreSQL only, with its own parser (about 127,000
//! lines of Rust and 40 crates in its tree, built into every `migrations!()` build), and
//! cannot say whether a shared section also runs on SQLite. Its rule set guided which
//! rules exist here; the rules below are written on calista's lexer.

mod check;
mod rules;

pub use rules::{Category, Rule};

pub(crate) use check::lint;

/// One `-- calista:allow <rule> -- <reason>` directive: a finding acknowledged, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow<'a> {
    /// The rule it acknowledges.
    pub rule: Rule,
    /// Why the finding is fine here, as written.
    pub reason: &'a str,
    /// The directive's line in the file (1-based).
    pub line: u32,
}

/// What is wrong with an allow directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AllowError {
    /// The rule name is not one of [`Rule::ALL`].
    UnknownRule(String),
    /// No `-- <reason>` after the rule, or an empty one.
    NoReason(Rule),
}

/// Reads the words after `calista:allow` (`<rule> -- <reason>`).
pub(crate) fn parse_allow(rest: &str) -> Result<(Rule, &str), AllowError> {
    let rest = rest.trim();
    let (name, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let rule = Rule::from_name(name).ok_or_else(|| AllowError::UnknownRule(name.to_owned()))?;
    let reason = after.trim_start().strip_prefix("--").map(str::trim);
    match reason {
        Some(reason) if !reason.is_empty() => Ok((rule, reason)),
        _ => Err(AllowError::NoReason(rule)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lines_need_a_known_rule_and_a_reason() {
        assert_eq!(
            parse_allow(" drop-table -- the table was never used "),
            Ok((Rule::DropTable, "the table was never used"))
        );
        assert_eq!(
            parse_allow("drop-tabel -- x"),
            Err(AllowError::UnknownRule("drop-tabel".into()))
        );
        assert_eq!(
            parse_allow("drop-table"),
            Err(AllowError::NoReason(Rule::DropTable))
        );
        assert_eq!(
            parse_allow("drop-table --   "),
            Err(AllowError::NoReason(Rule::DropTable))
        );
        assert_eq!(
            parse_allow("drop-table because"),
            Err(AllowError::NoReason(Rule::DropTable))
        );
    }
}
