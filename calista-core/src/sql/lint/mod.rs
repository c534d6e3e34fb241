//! The lint: migrations that would lose data, lock production PostgreSQL tables, or not
//! run on one of the two dialects (DESIGN §4.1; each rule in `docs/LINT.md`).
//!
//! It runs inside the one parser of migration files, on the tokens of the one SQL lexer, so `migrations!()` and [`Migrations::from_dir`](crate::Migrations::from_dir)
//! report the same findings, as build errors and as run-time problems. It reads a folder in
//! revision order and remembers what earlier migrations declared (columns' types and
//! nullability, functions' volatility, `NOT NULL` checks, tables dropped), which some rules
//! need; what the folder does not show never silences a rule. A finding is
//! acknowledged, with a reason, by a directive before the first section:
//!
//! ```sql
//! -- calista:allow drop-column -- legacy_flag is unread since release 4.2
//! ```
//!
//! The same directive, as `-- calista:allow dialect-difference <table>[.<column>] -- <reason>`,
//! acknowledges a difference between the dialects' schemas ([`DialectDifference`]), which
//! `calista db verify` checks; the build checks its form only.
//!
//! squawk (a PostgreSQL linter, `squawk-linter` on crates.io) was evaluated as a
//! dependency and not taken: it reads PostgreSQL only, with its own parser (about 127,000
//! lines of Rust and 40 crates in its tree, built into every `migrations!()` build), and
//! cannot say whether a shared section also runs on SQLite. Its rule set guided which
//! rules exist here; the rules below are written on calista's lexer.

mod check;
mod read;
mod rules;
mod state;

pub use rules::{Category, Rule};

pub(crate) use check::lint;
pub(crate) use state::{Declared, RunsIn};

/// Where the rules are documented, each with why it matters and the safe way: messages link
/// it by URL (the workspace's `repository`), never by a path in a checkout.
pub const DOCS_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/LINT.md");

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

/// The word of the allow directive that acknowledges a difference between the dialects'
/// schemas, which `calista db verify` checks:
/// `-- calista:allow dialect-difference <table>[.<column>] -- <reason>`. It is not a lint
/// rule: the lint cannot see schemas, so the build checks its form but cannot know whether
/// it is used (see `calista::verify`).
pub(crate) const DIALECT_DIFFERENCE: &str = "dialect-difference";

/// One `-- calista:allow dialect-difference <table>[.<column>] -- <reason>` directive: a
/// difference between the PostgreSQL and SQLite schemas that the migration means to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectDifference<'a> {
    /// The table (or view) it names.
    pub table: &'a str,
    /// The table's column it names, if any: then only differences that involve it.
    pub column: Option<&'a str>,
    /// Why the difference is fine, as written.
    pub reason: &'a str,
    /// The directive's line in the file (1-based).
    pub line: u32,
}

/// What a well-formed allow directive acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed<'a> {
    /// A lint rule's findings, with the reason.
    Rule(Rule, &'a str),
    /// A difference between the dialects: table, column, reason.
    DialectDifference(&'a str, Option<&'a str>, &'a str),
}

/// What is wrong with an allow directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AllowError {
    /// The rule name is not one of [`Rule::ALL`], nor [`DIALECT_DIFFERENCE`].
    UnknownRule(String),
    /// No `-- <reason>` after the rule, or an empty one.
    NoReason(Rule),
    /// `dialect-difference` names no `<table>` or `<table>.<column>` (the text as written).
    DialectDifferenceTarget(String),
    /// `dialect-difference <target>` without a reason.
    DialectDifferenceNoReason(String),
}

/// Reads the words after `calista:allow` (`<rule> -- <reason>`, or
/// `dialect-difference <table>[.<column>] -- <reason>`).
pub(crate) fn parse_allow(rest: &str) -> Result<Allowed<'_>, AllowError> {
    let rest = rest.trim();
    let (name, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if name == DIALECT_DIFFERENCE {
        return parse_dialect_difference(after.trim());
    }
    let rule = Rule::from_name(name).ok_or_else(|| AllowError::UnknownRule(name.to_owned()))?;
    match reason(after) {
        Some(reason) => Ok(Allowed::Rule(rule, reason)),
        None => Err(AllowError::NoReason(rule)),
    }
}

/// The non-empty reason after `--`, if `text` starts with one.
fn reason(text: &str) -> Option<&str> {
    let reason = text.trim_start().strip_prefix("--")?.trim();
    (!reason.is_empty()).then_some(reason)
}

/// Reads `<table>[.<column>] -- <reason>`.
fn parse_dialect_difference(text: &str) -> Result<Allowed<'_>, AllowError> {
    let (target, rest) = match text.find("--") {
        Some(at) => text.split_at(at),
        // No reason: the target is the first word, if it is one.
        None => text.split_once(char::is_whitespace).unwrap_or((text, "")),
    };
    let target = target.trim();
    let name = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    };
    let parsed = match target.split_once('.') {
        Some((table, column)) if name(table) && name(column) => Some((table, Some(column))),
        None if name(target) => Some((target, None)),
        _ => None,
    };
    let Some((table, column)) = parsed else {
        return Err(AllowError::DialectDifferenceTarget(target.to_owned()));
    };
    match reason(rest) {
        Some(reason) => Ok(Allowed::DialectDifference(table, column, reason)),
        None => Err(AllowError::DialectDifferenceNoReason(target.to_owned())),
    }
}

/// The allow word closest to `name`, for "did you mean": a rule's name or
/// [`DIALECT_DIFFERENCE`].
pub(crate) fn suggest_allow(name: &str) -> Option<&'static str> {
    let mut candidates = [DIALECT_DIFFERENCE; Rule::ALL.len() + 1];
    for (slot, rule) in candidates.iter_mut().zip(Rule::ALL) {
        *slot = rule.name();
    }
    rules::closest(name, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lines_need_a_known_rule_and_a_reason() {
        assert_eq!(
            parse_allow(" drop-table -- the table was never used "),
            Ok(Allowed::Rule(Rule::DropTable, "the table was never used"))
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

    #[test]
    fn dialect_differences_name_a_table_or_a_column_and_a_reason() {
        assert_eq!(
            parse_allow("dialect-difference docs.body -- GIN is PostgreSQL's -- only"),
            Ok(Allowed::DialectDifference(
                "docs",
                Some("body"),
                "GIN is PostgreSQL's -- only"
            ))
        );
        assert_eq!(
            parse_allow("dialect-difference docs--no space needed"),
            Ok(Allowed::DialectDifference("docs", None, "no space needed"))
        );
        for bad in [
            "",
            "-- why",
            "a.b.c -- why",
            "a. -- why",
            ".b -- why",
            "a b -- why",
            "\"a\" -- why",
        ] {
            let target = bad.split("--").next().unwrap().trim().to_owned();
            assert_eq!(
                parse_allow(&format!("dialect-difference {bad}")),
                Err(AllowError::DialectDifferenceTarget(target)),
                "{bad:?}"
            );
        }
        for bad in ["t", "t.c --", "t.c because", "t --  "] {
            let target = bad.split_whitespace().next().unwrap().to_owned();
            assert_eq!(
                parse_allow(&format!("dialect-difference {bad}")),
                Err(AllowError::DialectDifferenceNoReason(target)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn typos_of_dialect_difference_are_suggested_too() {
        assert_eq!(suggest_allow("dialect-diference"), Some(DIALECT_DIFFERENCE));
        assert_eq!(suggest_allow("dialect"), Some(DIALECT_DIFFERENCE));
        assert_eq!(suggest_allow("drop-tabel"), Some("drop-table"));
        assert_eq!(suggest_allow("jsonb-is-fine"), None);
    }
}
