//! Build-time checks of a section's statements: what would break the runner's transaction.
//!
//! calista owns the transactions: a transactional migration's statements and its record
//! commit together, and a no-transaction migration runs each statement on its own. So
//! transaction control is refused in both kinds, and statements that the server refuses
//! inside a transaction block are refused in transactional migrations.

use super::Keywords;
use super::statements::{Statement, statements};
use crate::migration::Dialect;
use crate::problem::ProblemKind;

/// What the checks found in one section: problems with their line in the file.
pub(crate) struct SectionFindings {
    /// The section holds no statement (comments and blank lines only).
    pub(crate) no_statement: bool,
    /// `(line, problem)`, in file order, each statement reported once.
    pub(crate) problems: Vec<(u32, ProblemKind)>,
}

/// Checks the section whose SQL is `file[start..end]`, for `dialect` or, for a shared
/// section (`None`), for each dialect it runs on.
pub(crate) fn check_section(
    file: &str,
    start: usize,
    end: usize,
    dialect: Option<Dialect>,
    no_transaction: bool,
) -> SectionFindings {
    use Dialect::{Postgres, Sqlite};
    let sql = file.get(start..end).unwrap_or_default();
    if !CHECKED_KEYWORDS.in_text(sql) {
        // Nothing to split: only whether a statement exists, which the first token tells.
        let has_statement = |d| super::tokens(sql, d).any(|t| !t.is_trivia() && t.text != ";");
        let no_statement = match dialect {
            Some(one) => !has_statement(one),
            None => !Dialect::ALL.into_iter().all(has_statement),
        };
        return SectionFindings {
            no_statement,
            problems: Vec::new(),
        };
    }
    // Each lexing of the text, with the dialects whose rules apply to its statements: a
    // shared section is lexed once when both dialects read it alike (the common case,
    // which keeps `migrations!()` fast on a thousand files).
    let readings: &[(Dialect, &[Dialect])] = match dialect {
        Some(Postgres) => &[(Postgres, &[Postgres])],
        Some(Sqlite) => &[(Sqlite, &[Sqlite])],
        None if reads_alike(sql) => &[(Postgres, &[Postgres, Sqlite])],
        None => &[(Postgres, &[Postgres]), (Sqlite, &[Sqlite])],
    };
    let mut findings = SectionFindings {
        no_statement: false,
        problems: Vec::new(),
    };
    for &(lexed_as, rules) in readings {
        let found = statements(sql, lexed_as);
        findings.no_statement |= found.is_empty();
        for statement in &found {
            for &dialect in rules {
                let Some(kind) = problem(statement, dialect, no_transaction) else {
                    continue;
                };
                let (line, _) = super::line_col(file, start + statement.offset);
                if !findings.problems.contains(&(line, kind.clone())) {
                    findings.problems.push((line, kind));
                }
            }
        }
    }
    findings.problems.sort_by_key(|(line, _)| *line);
    findings
}

/// The words the rules below look for; a section without any of them (as a run of letters,
/// anywhere, even in a string or comment) cannot break them, and is not split at all.
const CHECKED_KEYWORDS: Keywords = Keywords::new(&[
    "ABORT",
    "BEGIN",
    "CLUSTER",
    "COMMIT",
    "CONCURRENTLY",
    "DATABASE",
    "DISCARD",
    "END",
    "PREPARE",
    "REINDEX",
    "ROLLBACK",
    "START",
    "SUBSCRIPTION",
    "SYSTEM",
    "TABLESPACE",
    "VACUUM",
]);

/// Whether both dialects split `sql` into the same statements with the same words: none
/// of the characters whose meaning differs (`$`, `` ` ``, `[`, `]`, `\\`, `?`, `:`, `@`,
/// nested `/*`), and no `BEGIN ATOMIC` or trigger body.
fn reads_alike(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    !bytes
        .iter()
        .any(|b| matches!(b, b'$' | b'`' | b'[' | b']' | b'\\' | b'?' | b':' | b'@'))
        && !sql.contains("/*")
        && !contains_word_ignoring_case(bytes, b"atomic")
        && !contains_word_ignoring_case(bytes, b"trigger")
}

fn contains_word_ignoring_case(haystack: &[u8], word: &[u8]) -> bool {
    haystack
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// The problem with one statement, if any.
fn problem(
    statement: &Statement<'_>,
    dialect: Dialect,
    no_transaction: bool,
) -> Option<ProblemKind> {
    if is_transaction_control(statement) {
        return Some(ProblemKind::TransactionControl {
            statement: statement.shown(),
        });
    }
    if !no_transaction && cannot_run_in_transaction(statement, dialect) {
        return Some(ProblemKind::NotInTransactionBlock {
            statement: statement.shown(),
        });
    }
    None
}

/// `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK` (but not `ROLLBACK TO` a
/// savepoint), `ABORT`, `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
pub(crate) fn is_transaction_control(statement: &Statement<'_>) -> bool {
    let words = statement.first_keywords(4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["BEGIN" | "COMMIT" | "END" | "ABORT", ..] | ["START", "TRANSACTION", ..] => true,
        ["PREPARE", "TRANSACTION", ..] => true,
        ["ROLLBACK", "TO", ..] | ["ROLLBACK", "WORK" | "TRANSACTION", "TO", ..] => false,
        ["ROLLBACK", ..] => true,
        _ => false,
    }
}

/// The statements each server refuses inside a transaction block (PostgreSQL's
/// documentation says so on each command's page; SQLite's only such statement is `VACUUM`).
fn cannot_run_in_transaction(statement: &Statement<'_>, dialect: Dialect) -> bool {
    let words = statement.first_keywords(3);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let concurrently = statement.has_keyword("CONCURRENTLY");
    match dialect {
        Dialect::Sqlite => matches!(words.as_slice(), ["VACUUM", ..]),
        Dialect::Postgres => match words.as_slice() {
            ["VACUUM", ..] | ["ALTER", "SYSTEM", ..] => true,
            [
                "CREATE" | "DROP",
                "DATABASE" | "TABLESPACE" | "SUBSCRIPTION",
                ..,
            ] => true,
            ["CREATE", "INDEX" | "UNIQUE", ..] | ["DROP", "INDEX", ..] => concurrently,
            ["REINDEX", "SYSTEM" | "DATABASE", ..] => true,
            ["REINDEX", ..] => concurrently,
            // ALTER TABLE … DETACH PARTITION … CONCURRENTLY
            ["ALTER", "TABLE", ..] => concurrently && statement.has_keyword("DETACH"),
            ["ALTER", "DATABASE", ..] => statement.has_keyword("TABLESPACE"),
            ["ALTER", "SUBSCRIPTION", ..] => statement.has_keyword("REFRESH"),
            ["DISCARD", "ALL", ..] => true,
            // CLUSTER with no table re-clusters every table, one transaction each.
            ["CLUSTER", ..] => statement
                .significant()
                .all(|t| t.is_keyword("CLUSTER") || t.is_keyword("VERBOSE")),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str, dialect: Option<Dialect>, no_transaction: bool) -> Vec<(u32, ProblemKind)> {
        check_section(sql, 0, sql.len(), dialect, no_transaction).problems
    }

    fn control(statement: &str) -> ProblemKind {
        ProblemKind::TransactionControl {
            statement: statement.to_owned(),
        }
    }

    fn not_in_block(statement: &str) -> ProblemKind {
        ProblemKind::NotInTransactionBlock {
            statement: statement.to_owned(),
        }
    }

    #[test]
    fn every_form_of_transaction_control_is_found_in_both_kinds_of_migration() {
        let forms = [
            "BEGIN",
            "begin transaction",
            "BEGIN IMMEDIATE",
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "COMMIT",
            "commit work",
            "END",
            "END TRANSACTION",
            "ROLLBACK",
            "ROLLBACK WORK",
            "ABORT",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
            "ROLLBACK PREPARED 'x'",
        ];
        for form in forms {
            for no_transaction in [false, true] {
                let sql = format!("CREATE TABLE t (a int);\n{form};\nSELECT 1;");
                assert_eq!(
                    kinds(&sql, None, no_transaction),
                    [(2, control(form))],
                    "{form}"
                );
            }
        }
    }

    #[test]
    fn savepoints_and_quoted_or_commented_keywords_are_fine() {
        let sql = "SAVEPOINT s;\nROLLBACK TO s;\nROLLBACK TO SAVEPOINT s;\nROLLBACK TRANSACTION TO s;\n\
                   RELEASE s;\nSELECT 'COMMIT';\n-- COMMIT;\n/* ROLLBACK; */\nSELECT \"end\" FROM t;";
        assert_eq!(kinds(sql, None, false), []);
        let function = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;\n\
                        CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;";
        assert_eq!(kinds(function, Some(Dialect::Postgres), false), []);
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = CASE WHEN a THEN 1 END;\nEND;";
        assert_eq!(kinds(trigger, Some(Dialect::Sqlite), false), []);
    }

    #[test]
    fn statements_refused_in_a_transaction_block_are_found_in_transactional_migrations_only() {
        let postgres = [
            "CREATE INDEX CONCURRENTLY ix ON t (a)",
            "create unique index concurrently ix ON t (a)",
            "DROP INDEX CONCURRENTLY ix",
            "REINDEX INDEX CONCURRENTLY ix",
            "REINDEX DATABASE app",
            "VACUUM t",
            "VACUUM (ANALYZE) t",
            "CREATE DATABASE other",
            "DROP DATABASE other",
            "ALTER DATABASE other SET TABLESPACE fast",
            "ALTER SYSTEM SET work_mem = '64MB'",
            "CREATE TABLESPACE fast LOCATION '/x'",
            "DROP TABLESPACE fast",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p",
            "DISCARD ALL",
            "CLUSTER",
        ];
        for statement in postgres {
            let sql = format!("{statement};");
            let dialect = Some(Dialect::Postgres);
            assert_eq!(
                kinds(&sql, dialect, false),
                [(1, not_in_block(statement))],
                "{statement}"
            );
            assert_eq!(kinds(&sql, dialect, true), [], "{statement}");
        }
        for fine in [
            "CREATE INDEX ix ON t (a)",
            "REINDEX INDEX ix",
            "CLUSTER t USING ix",
            "ALTER TABLE t ADD b int",
        ] {
            assert_eq!(
                kinds(&format!("{fine};"), Some(Dialect::Postgres), false),
                [],
                "{fine}"
            );
        }
        assert_eq!(
            kinds("VACUUM;", Some(Dialect::Sqlite), false),
            [(1, not_in_block("VACUUM"))]
        );
        assert_eq!(kinds("REINDEX t;", Some(Dialect::Sqlite), false), []);
    }

    #[test]
    fn shared_sections_report_each_statement_once_at_its_line_in_the_file() {
        let file = "-- calista:up\nCREATE TABLE t (a int);\nVACUUM;\n";
        let start = file.find("CREATE").unwrap_or_default();
        let found = check_section(file, start, file.len(), None, false);
        assert_eq!(found.problems, [(3, not_in_block("VACUUM"))]);
        assert!(!found.no_statement);
    }

    #[test]
    fn shared_sections_are_lexed_per_dialect_where_the_dialects_differ() {
        // SQLite reads `[a;b]` as one identifier, PostgreSQL as a subscript and a `;`.
        let sql = "SELECT [a;\nVACUUM;b];";
        assert_eq!(kinds(sql, None, false), [(2, not_in_block("VACUUM"))]);
        assert!(!reads_alike(sql));
        assert!(!reads_alike("CREATE TRIGGER x"));
        assert!(reads_alike("CREATE TABLE t (a int); -- plain\nVACUUM;"));
        assert_eq!(
            kinds("CREATE TABLE t (a int);\nVACUUM;", None, false),
            [(2, not_in_block("VACUUM"))]
        );
    }

    #[test]
    fn sections_without_a_checked_keyword_are_not_split() {
        assert!(!CHECKED_KEYWORDS.in_text("CREATE TABLE t (a int); INSERT INTO t VALUES (1);"));
        assert!(CHECKED_KEYWORDS.in_text("SELECT $1end"));
        assert!(CHECKED_KEYWORDS.in_text("x;\nvacuum"));
        let found = check_section("-- c\n;", 0, 6, None, false);
        assert!(found.no_statement);
        assert!(!check_section("SELECT 1", 0, 8, None, false).no_statement);
    }

    #[test]
    fn comment_only_sections_have_no_statement() {
        let file = "-- nothing yet\n/* still nothing; */\n";
        assert!(check_section(file, 0, file.len(), None, false).no_statement);
        // On PostgreSQL comments nest; on SQLite the same text holds a statement.
        let nested = "/* a /* b */ c */";
        assert!(
            check_section(nested, 0, nested.len(), Some(Dialect::Postgres), false).no_statement
        );
        assert!(!check_section(nested, 0, nested.len(), Some(Dialect::Sqlite), false).no_statement);
    }

    #[test]
    fn long_statements_are_shown_by_their_first_line_shortened() {
        let long = format!("BEGIN {}\nmore", "x".repeat(100));
        let found = kinds(&long, None, false);
        let ProblemKind::TransactionControl { statement } = &found[0].1 else {
            panic!("{found:?}");
        };
        assert_eq!(statement.chars().count(), 81);
        assert!(statement.ends_with('…'));
    }
}
