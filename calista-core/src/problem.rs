//! What can be wrong with a migrations folder, each with the rule it breaks and the fix.

use std::fmt;

use crate::migration::Dialect;
use crate::naming::{NameError, Revision};
use crate::origin::{OriginError, Tool};
use crate::sql::lint::{DOCS_URL, Rule};

/// One violation of the migration file rules, in one file (or the folder itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user knows it, e.g. `migrations/20250826_1030_x.sql`.
    pub file: String,
    /// The line it is on (1-based), when it is about one line.
    pub line: Option<u32>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl Problem {
    pub(crate) fn new(file: impl Into<String>, line: Option<u32>, kind: ProblemKind) -> Self {
        Self {
            file: file.into(),
            line,
            kind,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.kind)?,
            None => write!(f, "{}: {}", self.file, self.kind)?,
        }
        write!(f, "\n  fix: {}", self.kind.fix())
    }
}

/// The rule a [`Problem`] breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file name breaks the naming rules.
    Name(NameError),
    /// Another file has the same revision id.
    DuplicateRevision {
        /// The revision both files claim.
        revision: Revision,
        /// The other file's name.
        other: String,
    },
    /// A `-- calista:` line that is not a known marker or directive.
    UnknownMarker {
        /// The line as written.
        text: String,
    },
    /// `-- calista:lock-timeout` with a value that is not a valid duration.
    BadLockTimeout {
        /// The value as written.
        value: String,
    },
    /// SQL before the first section marker.
    SqlBeforeFirstMarker,
    /// A directive after the first section marker.
    DirectiveAfterSection {
        /// The directive as written.
        text: String,
    },
    /// The file has no section at all.
    NoSections,
    /// A section with nothing in it.
    EmptySection,
    /// A section with comments only: no statement would run.
    NoStatement,
    /// A statement that controls the transaction (`BEGIN`, `COMMIT`, `ROLLBACK`, …),
    /// which calista owns.
    TransactionControl {
        /// The statement's first line.
        statement: String,
    },
    /// A statement the server refuses inside a transaction block, in a transactional
    /// migration.
    NotInTransactionBlock {
        /// The statement's first line.
        statement: String,
    },
    /// A statement breaks a lint rule (DESIGN §4.1) and no `-- calista:allow` line
    /// acknowledges it.
    Lint {
        /// The rule it breaks.
        rule: Rule,
        /// The statement's first line, or the construct at fault (`JSONB`).
        subject: String,
    },
    /// An allow directive names no rule.
    UnknownAllowRule {
        /// The name as written.
        name: String,
        /// The rule (or `dialect-difference`) probably meant.
        suggestion: Option<&'static str>,
    },
    /// `-- calista:allow dialect-difference` that names no `<table>` or `<table>.<column>`.
    BadDialectDifference {
        /// What it names, as written (may be empty).
        target: String,
    },
    /// `-- calista:allow dialect-difference <target>` without `-- <reason>`.
    DialectDifferenceWithoutReason {
        /// The table or column it names.
        target: String,
    },
    /// A `-- calista:imported` directive that does not read as
    /// `<tool> <version> [<checksum>] -- <source file>`.
    BadImported {
        /// The line as written.
        text: String,
        /// What is wrong with it.
        error: OriginError,
    },
    /// A `-- calista:baseline` directive that does not read as
    /// `<first>..<through> chain:<64 hex digits> [legacy:<64 hex digits>] -- <release>`, or a second one.
    BadBaseline {
        /// The line as written.
        text: String,
    },
    /// An allow directive without `-- <reason>`.
    AllowWithoutReason {
        /// The rule it names.
        rule: Rule,
    },
    /// An allow directive that no statement of the file needs.
    UnusedAllow {
        /// The rule it names.
        rule: Rule,
    },
    /// A dialect has no up SQL.
    MissingUp {
        /// The dialect with no up section.
        dialect: Dialect,
    },
    /// A dialect has no down SQL and the migration is not marked irreversible.
    MissingDown {
        /// The dialect with no down section.
        dialect: Dialect,
    },
    /// An irreversible migration has a down section.
    DownInIrreversible,
    /// The file is not UTF-8 text.
    NotUtf8,
    /// The file or folder could not be read.
    Unreadable {
        /// The operating system's reason.
        reason: String,
    },
    /// A folder inside the migrations folder.
    Subfolder,
    /// The migrations folder does not exist.
    MissingFolder,
    /// The migrations path is not a folder.
    NotAFolder,
}

impl ProblemKind {
    /// What to do about it, with an example where one helps.
    pub fn fix(&self) -> String {
        match self {
            Self::Name(name) => name.fix(),
            Self::DuplicateRevision { .. } => {
                "give one of them a new, later timestamp: the current UTC time, as `YYYYMMDD_HHMM`".to_owned()
            }
            Self::UnknownMarker { .. } => "use one of `-- calista:up`, `-- calista:up postgres`, `-- calista:up sqlite`, \
                 `-- calista:down` (optionally with a dialect), `-- calista:no-transaction`, `-- calista:irreversible`, \
                 `-- calista:lock-timeout <duration>`, `-- calista:allow <rule> -- <reason>`, \
                 `-- calista:imported <tool> <version> [<checksum>] -- <source file>`"
                .to_owned(),
            Self::BadLockTimeout { .. } => "write a whole number of milliseconds, seconds or minutes, more than zero \
                 and at most 60m, e.g. `-- calista:lock-timeout 30s` (or `500ms`, `2m`)"
                .to_owned(),
            Self::SqlBeforeFirstMarker => {
                "put `-- calista:up` (or `-- calista:up postgres` / `-- calista:up sqlite`) above the SQL".to_owned()
            }
            Self::DirectiveAfterSection { .. } => "move the directive above the first `-- calista:` section".to_owned(),
            Self::NoSections => "start the SQL with `-- calista:up` and the reverse with `-- calista:down`".to_owned(),
            Self::EmptySection | Self::NoStatement => "write the SQL; if a dialect really needs none, write a statement that \
                 does nothing and say why, e.g. `SELECT 1; -- nothing to undo on SQLite`"
                .to_owned(),
            Self::TransactionControl { .. } => "remove it: calista runs each migration in one transaction and commits it \
                 together with its record (a `-- calista:no-transaction` migration runs each statement on its own)"
                .to_owned(),
            Self::NotInTransactionBlock { .. } => "mark the file `-- calista:no-transaction` (it then runs alone, one \
                 statement at a time), and move the statements that belong in a transaction to a migration of their own"
                .to_owned(),
            Self::Lint { rule, .. } => format!(
                "{}; or, if it is meant, acknowledge it before the first section: \
                 `-- calista:allow {rule} -- <why it is safe here>`",
                rule.safe_way()
            ),
            Self::UnknownAllowRule { suggestion, .. } => match suggestion {
                Some(rule) => format!("did you mean `{rule}`? The rules are listed at {DOCS_URL}"),
                None => format!(
                    "name one of the rules listed at {DOCS_URL}, e.g. `-- calista:allow drop-column -- <reason>`"
                ),
            },
            Self::AllowWithoutReason { rule } => {
                format!("say why it is safe: `-- calista:allow {rule} -- <reason>`")
            }
            Self::BadDialectDifference { .. } | Self::DialectDifferenceWithoutReason { .. } => {
                "write `-- calista:allow dialect-difference <table>[.<column>] -- <reason>`, e.g. \
                 `-- calista:allow dialect-difference documents.body -- the full-text index is PostgreSQL's alone`"
                    .to_owned()
            }
            Self::UnusedAllow { .. } => "remove the line: no statement of this file breaks that rule".to_owned(),
            Self::BadImported { error, .. } => match error {
                OriginError::Repeated => "keep the one line that names where the migration came from".to_owned(),
                _ => {
                    let example = match error.tool() {
                        Some(tool) => format!("`{}`", tool.example()),
                        None => Tool::ALL.map(|tool| format!("`{}`", tool.example())).join(", "),
                    };
                    format!(
                        "write `-- calista:imported <tool> <version> [<checksum>] -- <source file>` as \
                         `calista db import` does, e.g. {example}"
                    )
                }
            },
            Self::BadBaseline { .. } => "keep the one line `calista db squash` wrote: \
                 `-- calista:baseline <first>..<through> chain:<64 hex digits> [legacy:<64 hex digits>] -- <release>`"
                .to_owned(),
            Self::MissingUp { dialect } => format!(
                "add `-- calista:up` for every dialect, or `-- calista:up {}` for {dialect}",
                dialect.marker_word()
            ),
            Self::MissingDown { dialect } => format!(
                "add `-- calista:down` (or `-- calista:down {}`) with the reverse SQL, \
                 or mark the migration `-- calista:irreversible`",
                dialect.marker_word()
            ),
            Self::DownInIrreversible => {
                "remove the down sections, or remove `-- calista:irreversible` if it can be reverted".to_owned()
            }
            Self::NotUtf8 => "save the file as UTF-8".to_owned(),
            Self::Unreadable { .. } => "check the file's permissions and that any symlink points to a file".to_owned(),
            Self::Subfolder => "move it out of the migrations folder: files in subfolders would never run".to_owned(),
            Self::MissingFolder => "create the folder, or pass the right one, e.g. `migrations!(\"db/migrations\")` \
                 or `--migrations db/migrations`"
                .to_owned(),
            Self::NotAFolder => "pass the folder that holds the migration files".to_owned(),
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => write!(f, "{name}"),
            Self::DuplicateRevision { revision, other } => {
                write!(
                    f,
                    "revision {revision} is also used by `{other}`; revision ids must be unique"
                )
            }
            Self::UnknownMarker { text } => write!(f, "unknown marker `{text}`"),
            Self::BadLockTimeout { value } => {
                write!(
                    f,
                    "`-- calista:lock-timeout` needs a duration, not `{value}`"
                )
            }
            Self::SqlBeforeFirstMarker => {
                write!(
                    f,
                    "SQL before the first section marker; only comments and directives may come first"
                )
            }
            Self::DirectiveAfterSection { text } => {
                write!(
                    f,
                    "directive `{text}` after the first section; directives must come before it"
                )
            }
            Self::NoSections => write!(f, "the file has no `-- calista:` sections"),
            Self::EmptySection => write!(f, "the section is empty"),
            Self::NoStatement => write!(
                f,
                "the section holds only comments; it would apply as a migration that does nothing"
            ),
            Self::TransactionControl { statement } => write!(
                f,
                "`{statement}` controls the transaction; a migration's statements and its record must commit together"
            ),
            Self::NotInTransactionBlock { statement } => write!(
                f,
                "`{statement}` cannot run inside a transaction block, and this migration runs in one"
            ),
            Self::Lint { rule, subject } => write!(f, "lint {rule}: `{subject}` {}", rule.why()),
            Self::UnknownAllowRule { name, .. } => {
                write!(f, "`-- calista:allow {name}` names no lint rule")
            }
            Self::AllowWithoutReason { rule } => write!(
                f,
                "`-- calista:allow {rule}` gives no reason; an acknowledged finding must say why it is safe"
            ),
            Self::BadDialectDifference { target } if target.is_empty() => write!(
                f,
                "`-- calista:allow dialect-difference` names no table or column"
            ),
            Self::BadDialectDifference { target } => write!(
                f,
                "`-- calista:allow dialect-difference {target}` names no table or column: \
                 a table is a plain name, a column `<table>.<column>`"
            ),
            Self::DialectDifferenceWithoutReason { target } => write!(
                f,
                "`-- calista:allow dialect-difference {target}` gives no reason; an acknowledged \
                 difference must say why the dialects may differ"
            ),
            Self::UnusedAllow { rule } => write!(
                f,
                "`-- calista:allow {rule}` acknowledges nothing: no statement of this file breaks {rule}"
            ),
            Self::BadImported { text, error } => write!(f, "`{text}` {error}"),
            Self::BadBaseline { text } => write!(f, "`{text}` is not a baseline directive"),
            Self::MissingUp { dialect } => write!(f, "no up SQL for {dialect}"),
            Self::MissingDown { dialect } => {
                write!(
                    f,
                    "no down SQL for {dialect}, and the migration is not marked irreversible"
                )
            }
            Self::DownInIrreversible => write!(
                f,
                "the migration is marked irreversible but has down sections"
            ),
            Self::NotUtf8 => write!(f, "the file is not valid UTF-8"),
            Self::Unreadable { reason } => write!(f, "cannot be read: {reason}"),
            Self::Subfolder => write!(
                f,
                "is a folder; the migrations folder must hold only migration files"
            ),
            Self::MissingFolder => write!(f, "the migrations folder does not exist"),
            Self::NotAFolder => write!(f, "is not a folder"),
        }
    }
}

/// A migrations folder that breaks the rules: every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The problems, in file-name order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid migration: {one}"),
            many => {
                write!(f, "{} problems in the migrations:", many.len())?;
                many.iter().try_for_each(|p| write!(f, "\n{p}"))
            }
        }
    }
}

impl std::error::Error for SourceError {}

/// Levenshtein distance, for "did you mean" among a few short names (lint rules, settings
/// keys).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("drop-tabel", "drop-table"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("lock_timeout", "lock_timeout"), 0);
        assert_eq!(edit_distance("café", "cafe"), 1);
    }
}
