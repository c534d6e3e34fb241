//! The migration file format: directives, then sections opened by `-- calista:` markers.
//!
//! ```sql
//! -- Comments and directives may come first.
//! -- calista:no-transaction
//!
//! -- calista:up postgres
//! CREATE INDEX CONCURRENTLY ix_events_type ON event_store (event_type);
//! -- calista:up sqlite
//! CREATE INDEX ix_events_type ON event_store (event_type);
//! -- calista:down
//! DROP INDEX ix_events_type;
//! ```

use std::time::Duration;

use crate::migration::{Baseline, Checksum, Dialect, Direction, Migration, Span, span_kind};
use crate::naming::{self, Revision};
use crate::origin::{Imported, OriginError};
use crate::problem::{Problem, ProblemKind};
use crate::sql::lint;

/// Parses one migration file: its name and its contents.
///
/// Every problem in the file is reported, including one with the name and others in
/// the body. `file` is how the file is shown in problems (e.g. `migrations/<name>`).
pub(crate) fn parse_file(
    file: &str,
    name: &str,
    contents: &[u8],
) -> Result<Migration, Vec<Problem>> {
    parse_file_in(&mut lint::Declared::default(), file, name, contents)
}

/// [`parse_file`] for the next file of a folder, read in revision order: `declared` holds
/// what the folder's earlier files declared, which some lint rules need (see
/// [`lint`]), and learns what this one declares.
pub(crate) fn parse_file_in(
    declared: &mut lint::Declared,
    file: &str,
    name: &str,
    contents: &[u8],
) -> Result<Migration, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut report = |line: Option<u32>, kind| problems.push(Problem::new(file, line, kind));

    let parsed_name = match naming::parse_file_name(name) {
        Ok(parsed) => Some(parsed),
        // Not meant to be a migration at all: what it holds is beside the point.
        Err(e @ naming::NameError::WrongExtension { .. }) => {
            return Err(vec![Problem::new(file, None, ProblemKind::Name(e))]);
        }
        Err(e) => {
            report(None, ProblemKind::Name(e));
            None
        }
    };
    let text = std::str::from_utf8(contents)
        .map_err(|_| report(None, ProblemKind::NotUtf8))
        .ok();
    let body = text.and_then(|text| parse_body(text, declared, &mut report));
    match (parsed_name, body, text) {
        (Some(name), Some(body), Some(text)) if problems.is_empty() => {
            let migration = Migration::new(
                name.revision,
                name.summary.to_owned(),
                text.to_owned(),
                body.spans,
                body.no_transaction,
                body.irreversible,
                Checksum::of_file(contents),
            );
            Ok(match body.lock_timeout {
                Some(timeout) => migration.with_lock_timeout(timeout),
                None => migration,
            })
        }
        _ => Err(problems),
    }
}

/// The parsed body, before it becomes a [`Migration`].
struct Body {
    spans: Vec<Span>,
    no_transaction: bool,
    irreversible: bool,
    lock_timeout: Option<Duration>,
    /// `(line, rule)` of each valid lint allow directive.
    allows: Vec<(u32, lint::Rule)>,
    /// Whether a `-- calista:imported` line says the file is another tool's history.
    imported: bool,
    /// Whether a `-- calista:baseline` line says the file stands for squashed history.
    baseline: bool,
}

/// What a `-- calista:` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Section(Direction, Option<Dialect>),
    NoTransaction,
    Irreversible,
    LockTimeout(Duration),
    /// `-- calista:allow <rule> -- <reason>`, read by [`allow_text`].
    Allow,
    /// `-- calista:imported <tool> <version> [<checksum>] -- <source file>`, read by
    /// [`directive_text`].
    Imported,
    /// `-- calista:baseline <first>..<through> chain:<hex> [legacy:<hex>] -- <release>`, read by
    /// [`Baseline::parse`].
    Baseline,
}

/// Reads a line that looks like a marker: `Some(Ok)` for a known one, `Some(Err)` for a
/// `-- calista:` line that is not (any case, so `-- Calista:UP` is caught, not ignored) or
/// a directive with a value that is not valid, `None` for every other line.
fn classify(line: &str) -> Option<Result<Marker, ProblemKind>> {
    let comment = line.trim().strip_prefix("--")?.trim_start();
    let prefix = comment.get(..8)?;
    if !prefix.eq_ignore_ascii_case("calista:") {
        return None;
    }
    let unknown = || ProblemKind::UnknownMarker {
        text: line.trim().to_owned(),
    };
    if prefix != "calista:" {
        return Some(Err(unknown()));
    }
    let words: Vec<&str> = comment[8..].split_whitespace().collect();
    let dialect = |word: &str| match word {
        "postgres" => Ok(Some(Dialect::Postgres)),
        "sqlite" => Ok(Some(Dialect::Sqlite)),
        _ => Err(unknown()),
    };
    Some(match words.as_slice() {
        ["up"] => Ok(Marker::Section(Direction::Up, None)),
        ["down"] => Ok(Marker::Section(Direction::Down, None)),
        ["up", d] => dialect(d).map(|d| Marker::Section(Direction::Up, d)),
        ["down", d] => dialect(d).map(|d| Marker::Section(Direction::Down, d)),
        ["no-transaction"] => Ok(Marker::NoTransaction),
        ["irreversible"] => Ok(Marker::Irreversible),
        ["lock-timeout", value] => parse_lock_timeout(value)
            .map(Marker::LockTimeout)
            .ok_or_else(|| ProblemKind::BadLockTimeout {
                value: (*value).to_owned(),
            }),
        ["lock-timeout", ..] => Err(ProblemKind::BadLockTimeout {
            value: words[1..].join(" "),
        }),
        ["allow", ..] => Ok(Marker::Allow),
        ["imported", ..] => Ok(Marker::Imported),
        ["baseline", ..] => Ok(Marker::Baseline),
        _ => Err(unknown()),
    })
}

/// The longest per-attempt lock wait a migration may ask for.
pub(crate) const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Reads a lock wait as written in `-- calista:lock-timeout` and the lock attempt setting:
/// a whole number followed by `ms`, `s` or `m` (`500ms`, `2s`, `1m`), more than zero and
/// at most [`MAX_LOCK_TIMEOUT`]. Zero is refused because PostgreSQL reads it as "wait for ever".
pub(crate) fn parse_lock_timeout(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let timeout = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        _ => return None,
    };
    (!timeout.is_zero() && timeout <= MAX_LOCK_TIMEOUT).then_some(timeout)
}

/// What follows `calista:allow` on an allow line: `<rule> -- <reason>`.
fn allow_text(line: &str) -> &str {
    directive_text(line, "allow")
}

/// What follows `calista:<word>` on a directive line.
fn directive_text<'a>(line: &'a str, word: &str) -> &'a str {
    let comment = line
        .trim()
        .strip_prefix("--")
        .unwrap_or_default()
        .trim_start();
    let words = comment.get(8..).unwrap_or_default().trim_start();
    words.strip_prefix(word).unwrap_or_default()
}

/// The `-- calista:imported` directive of a file that [`parse_file`] accepted (see
/// [`Migration::imported`]).
pub(crate) fn imported(text: &str) -> Option<Imported<'_>> {
    text.lines()
        .map(|line| (line, classify(line)))
        .take_while(|(_, marker)| !matches!(marker, Some(Ok(Marker::Section(..)))))
        .find(|(_, marker)| matches!(marker, Some(Ok(Marker::Imported))))
        .and_then(|(line, _)| Imported::parse(directive_text(line, "imported")).ok())
}

/// The `-- calista:baseline` directive of a file that [`parse_file`] accepted (see
/// [`Migration::baseline`]).
pub(crate) fn baseline(text: &str) -> Option<Baseline<'_>> {
    text.lines()
        .map(|line| (line, classify(line)))
        .take_while(|(_, marker)| !matches!(marker, Some(Ok(Marker::Section(..)))))
        .find(|(_, marker)| matches!(marker, Some(Ok(Marker::Baseline))))
        .and_then(|(line, _)| Baseline::parse(directive_text(line, "baseline")))
}

/// The well-formed allow directives of a file, with their lines, up to the first section.
fn allowed(text: &str) -> impl Iterator<Item = (u32, lint::Allowed<'_>)> {
    text.lines()
        .map(|line| (line, classify(line)))
        .take_while(|(_, marker)| !matches!(marker, Some(Ok(Marker::Section(..)))))
        .enumerate()
        .filter(|(_, (_, marker))| matches!(marker, Some(Ok(Marker::Allow))))
        .filter_map(|(index, (line, _))| {
            let allowed = lint::parse_allow(allow_text(line)).ok()?;
            Some((u32::try_from(index + 1).unwrap_or(u32::MAX), allowed))
        })
}

/// The lint allow directives of a file that [`parse_file`] accepted (see
/// [`Migration::allows`]).
pub(crate) fn allows(text: &str) -> Vec<lint::Allow<'_>> {
    allowed(text)
        .filter_map(|(line, allowed)| match allowed {
            lint::Allowed::Rule(rule, reason) => Some(lint::Allow { rule, reason, line }),
            lint::Allowed::DialectDifference(..) => None,
        })
        .collect()
}

/// The `dialect-difference` allow directives of a file that [`parse_file`] accepted (see
/// [`Migration::dialect_differences`]).
pub(crate) fn dialect_differences(text: &str) -> Vec<lint::DialectDifference<'_>> {
    allowed(text)
        .filter_map(|(line, allowed)| match allowed {
            lint::Allowed::DialectDifference(table, column, reason) => {
                Some(lint::DialectDifference {
                    table,
                    column,
                    reason,
                    line,
                })
            }
            lint::Allowed::Rule(..) => None,
        })
        .collect()
}

fn is_comment_or_blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with("--")
}

/// The section being read: its marker, the marker's line, and where its text starts.
struct OpenSection {
    direction: Direction,
    dialect: Option<Dialect>,
    line: u32,
    start: usize,
}

/// Ends a section at byte `end`; `false` when it is empty (which is reported).
fn close_section(
    open: Option<OpenSection>,
    end: usize,
    text: &str,
    spans: &mut Vec<Span>,
    report: &mut impl FnMut(Option<u32>, ProblemKind),
) -> bool {
    let Some(OpenSection {
        direction,
        dialect,
        line,
        start,
    }) = open
    else {
        return true;
    };
    let raw = &text[start..end];
    let sql_start = start + (raw.len() - raw.trim_start().len());
    let sql_end = start + raw.trim_end().len();
    let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
    spans.push((
        span_kind(direction, dialect),
        line,
        offset(sql_start),
        offset(sql_end.max(sql_start)),
    ));
    let empty = sql_end <= sql_start;
    if empty {
        report(Some(line), ProblemKind::EmptySection);
    }
    !empty
}

/// A UTF-8 byte-order mark, which some editors put at the start of a file.
const BYTE_ORDER_MARK: &str = "\u{feff}";

/// Reads the body in place: sections are spans of the text, which keeps its line endings
/// (and its byte-order mark, if any: it is skipped, not removed, so that the spans still
/// index the text `migrations!()` embeds).
fn parse_body(
    text: &str,
    declared: &mut lint::Declared,
    report: &mut impl FnMut(Option<u32>, ProblemKind),
) -> Option<Body> {
    let mut body = Body {
        spans: Vec::new(),
        no_transaction: false,
        irreversible: false,
        lock_timeout: None,
        allows: Vec::new(),
        imported: false,
        baseline: false,
    };
    let mut open: Option<OpenSection> = None;
    let mut sql_before_marker_reported = false;
    let mut ok = true;
    let mut offset = if text.starts_with(BYTE_ORDER_MARK) {
        BYTE_ORDER_MARK.len()
    } else {
        0
    };

    for (index, raw_line) in text[offset..].split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.strip_suffix('\n').unwrap_or(raw_line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        match classify(line) {
            Some(Err(problem)) => {
                report(Some(number), problem);
                ok = false;
            }
            Some(Ok(Marker::Section(direction, dialect))) => {
                ok &= close_section(open.take(), line_start, text, &mut body.spans, report);
                open = Some(OpenSection {
                    direction,
                    dialect,
                    line: number,
                    start: offset,
                });
            }
            Some(Ok(_)) if open.is_some() => {
                report(
                    Some(number),
                    ProblemKind::DirectiveAfterSection {
                        text: line.trim().to_owned(),
                    },
                );
                ok = false;
            }
            Some(Ok(Marker::NoTransaction)) => body.no_transaction = true,
            Some(Ok(Marker::Irreversible)) => body.irreversible = true,
            Some(Ok(Marker::LockTimeout(timeout))) => body.lock_timeout = Some(timeout),
            Some(Ok(Marker::Allow)) => match lint::parse_allow(allow_text(line)) {
                Ok(lint::Allowed::Rule(rule, _)) => body.allows.push((number, rule)),
                // Whether it is used is known only when `calista db verify` compares schemas.
                Ok(lint::Allowed::DialectDifference(..)) => {}
                Err(error) => {
                    report(Some(number), allow_problem(error));
                    ok = false;
                }
            },
            Some(Ok(Marker::Imported)) => {
                let parsed = Imported::parse(directive_text(line, "imported"));
                let error = match parsed {
                    Ok(_) if body.imported => Some(OriginError::Repeated),
                    Ok(_) => None,
                    Err(error) => Some(error),
                };
                body.imported = true;
                if let Some(error) = error {
                    let text = line.trim().to_owned();
                    report(Some(number), ProblemKind::BadImported { text, error });
                    ok = false;
                }
            }
            Some(Ok(Marker::Baseline)) => {
                let parsed = Baseline::parse(directive_text(line, "baseline"));
                if parsed.is_none() || body.baseline {
                    let text = line.trim().to_owned();
                    report(Some(number), ProblemKind::BadBaseline { text });
                    ok = false;
                }
                body.baseline = true;
            }
            None if open.is_some() || is_comment_or_blank(line) => {}
            None => {
                if !sql_before_marker_reported {
                    report(Some(number), ProblemKind::SqlBeforeFirstMarker);
                    sql_before_marker_reported = true;
                }
                ok = false;
            }
        }
    }
    ok &= close_section(open.take(), text.len(), text, &mut body.spans, report);

    if body.spans.is_empty() {
        if !sql_before_marker_reported {
            report(None, ProblemKind::NoSections);
        }
        return None;
    }
    let sections: Vec<_> = body
        .spans
        .iter()
        .map(|&span| crate::migration::section_view(text, span))
        .collect();
    for dialect in Dialect::ALL {
        let covers = |direction| sections.iter().any(|s| s.applies_to(direction, dialect));
        if !covers(Direction::Up) {
            report(None, ProblemKind::MissingUp { dialect });
            ok = false;
        }
        if !body.irreversible && !covers(Direction::Down) {
            report(None, ProblemKind::MissingDown { dialect });
            ok = false;
        }
    }
    let first_down = sections.iter().find(|s| s.direction() == Direction::Down);
    if let Some(down) = first_down.filter(|_| body.irreversible) {
        report(Some(down.line()), ProblemKind::DownInIrreversible);
        ok = false;
    }
    ok &= check_statements(text, &body, report);
    ok &= check_lint(text, &body, declared, report);
    ok.then_some(body)
}

fn allow_problem(error: lint::AllowError) -> ProblemKind {
    match error {
        lint::AllowError::UnknownRule(name) => ProblemKind::UnknownAllowRule {
            suggestion: lint::suggest_allow(&name),
            name,
        },
        lint::AllowError::NoReason(rule) => ProblemKind::AllowWithoutReason { rule },
        lint::AllowError::DialectDifferenceTarget(target) => {
            ProblemKind::BadDialectDifference { target }
        }
        lint::AllowError::DialectDifferenceNoReason(target) => {
            ProblemKind::DialectDifferenceWithoutReason { target }
        }
    }
}

/// Applies the lint (see [`crate::sql::lint`]): each finding no allow directive acknowledges is
/// reported, and so is each allow directive that acknowledges nothing. `false` when
/// anything was reported.
///
/// A file that another tool already ran (`-- calista:imported`) is not linted: it is
/// history, applied in production before calista knew it, and no finding could change it.
/// The structural rules of the format still apply to it, and the lint still reads it, for
/// what it declares (tables, columns, functions) that later migrations' rules need.
fn check_lint(
    text: &str,
    body: &Body,
    declared: &mut lint::Declared,
    report: &mut impl FnMut(Option<u32>, ProblemKind),
) -> bool {
    let runs_in = if body.no_transaction {
        lint::RunsIn::Statements
    } else {
        lint::RunsIn::Transaction
    };
    let findings = lint::lint(text, &body.spans, runs_in, declared);
    // A baseline is squashed history: its files were linted when they were written.
    if body.imported || body.baseline {
        return true;
    }
    let mut ok = true;
    for finding in &findings {
        if !body.allows.iter().any(|&(_, rule)| rule == finding.rule) {
            report(
                Some(finding.line),
                ProblemKind::Lint {
                    rule: finding.rule,
                    subject: finding.subject.clone(),
                },
            );
            ok = false;
        }
    }
    for &(line, rule) in &body.allows {
        if !findings.iter().any(|f| f.rule == rule) {
            report(Some(line), ProblemKind::UnusedAllow { rule });
            ok = false;
        }
    }
    ok
}

/// Checks every section's statements with the SQL lexer (see [`crate::sql`]): a section
/// of comments only, transaction control, and statements that cannot run in the
/// migration's transaction. `false` when anything was reported.
fn check_statements(
    text: &str,
    body: &Body,
    report: &mut impl FnMut(Option<u32>, ProblemKind),
) -> bool {
    let mut ok = true;
    for &(kind, line, start, end) in &body.spans {
        if end <= start {
            continue; // already reported as empty
        }
        let dialect = crate::migration::section_view(text, (kind, line, start, end)).dialect();
        let findings = crate::sql::checks::check_section(
            text,
            start as usize,
            end as usize,
            dialect,
            body.no_transaction,
        );
        if findings.no_statement {
            report(Some(line), ProblemKind::NoStatement);
            ok = false;
        }
        for (line, problem) in findings.problems {
            report(Some(line), problem);
            ok = false;
        }
    }
    ok
}

/// The template `calista db new` writes: it fails the build until the SQL is written, so
/// that it never ships as a migration that does nothing.
pub(crate) fn template(revision: Revision, summary: &str) -> String {
    format!(
        "-- {revision} {summary}\n\
         --\n\
         -- Directives, if needed, go here, before the first section:\n\
         --   -- calista:no-transaction   (e.g. for CREATE INDEX CONCURRENTLY; the migration runs alone)\n\
         --   -- calista:irreversible     (then write no down sections)\n\
         --   -- calista:lock-timeout 30s (PostgreSQL: wait up to 30s per attempt for table locks)\n\
         \n\
         -- calista:up\n\
         -- SQL for every dialect. Use `-- calista:up postgres` / `-- calista:up sqlite` for dialect-only parts.\n\
         -- The build fails until each section holds at least one statement.\n\
         \n\
         -- calista:down\n\
         -- The reverse of the up SQL, for development and CI downgrades.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "20250826_1030_demo.sql";

    fn parse(body: &str) -> Result<Migration, Vec<ProblemKind>> {
        parse_file(NAME, NAME, body.as_bytes())
            .map_err(|ps| ps.into_iter().map(|p| p.kind).collect())
    }

    fn problems(body: &str) -> Vec<ProblemKind> {
        match parse(body) {
            Ok(m) => panic!("expected problems, parsed {m:?}"),
            Err(problems) => problems,
        }
    }

    #[test]
    fn shared_sections_cover_both_dialects() {
        let m = parse("-- a comment\n\n-- calista:up\nCREATE TABLE t (id INT);\n-- calista:down\nDROP TABLE t;\n").unwrap();
        assert_eq!(
            m.script(Direction::Up, Dialect::Postgres),
            "CREATE TABLE t (id INT);"
        );
        assert_eq!(
            m.script(Direction::Up, Dialect::Sqlite),
            "CREATE TABLE t (id INT);"
        );
        assert_eq!(m.script(Direction::Down, Dialect::Sqlite), "DROP TABLE t;");
        assert!(!m.no_transaction() && !m.irreversible());
        assert_eq!(m.sections().next().map(|s| s.line()), Some(3));
    }

    #[test]
    fn dialect_sections_run_in_file_order_and_skip_the_other_dialect() {
        let m = parse(
            "-- calista:up\nA;\n-- calista:up postgres\nP;\n-- calista:up sqlite\nS;\n-- calista:up\nB;\n\
             -- calista:down\nD;\n",
        )
        .unwrap();
        assert_eq!(m.script(Direction::Up, Dialect::Postgres), "A;\nP;\nB;");
        assert_eq!(m.script(Direction::Up, Dialect::Sqlite), "A;\nS;\nB;");
    }

    #[test]
    fn lock_timeout_directive_is_read_and_checked() {
        let m =
            parse("-- calista:lock-timeout 30s\n-- calista:up\nX;\n-- calista:down\nY;\n").unwrap();
        assert_eq!(m.lock_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(
            parse("-- calista:up\nX;\n-- calista:down\nY;\n")
                .unwrap()
                .lock_timeout(),
            None
        );
        for bad in ["30", "0s", "2h", "1.5s", "-1s", "30 s", ""] {
            let body =
                format!("-- calista:lock-timeout {bad}\n-- calista:up\nX;\n-- calista:down\nY;\n");
            assert!(
                matches!(
                    problems(&body).as_slice(),
                    [ProblemKind::BadLockTimeout { .. }]
                ),
                "{bad:?}: {:?}",
                problems(&body)
            );
        }
        assert_eq!(
            parse_lock_timeout("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_lock_timeout("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_lock_timeout("60m"), Some(MAX_LOCK_TIMEOUT));
        assert_eq!(parse_lock_timeout("61m"), None);
    }

    #[test]
    fn directives_are_read() {
        let m = parse("-- calista:no-transaction\n-- calista:irreversible\n-- calista:up\nX;\n")
            .unwrap();
        assert!(m.no_transaction());
        assert!(m.irreversible());
    }

    #[test]
    fn crlf_files_parse_like_lf_files_and_have_the_same_checksum() {
        let lf = parse("-- calista:up\nX;\n-- calista:down\nY;\n").unwrap();
        let crlf = parse("-- calista:up\r\nX;\r\n-- calista:down\r\nY;\r\n").unwrap();
        assert_eq!(lf.checksum(), crlf.checksum());
        let view = |m: &Migration| -> Vec<_> {
            m.sections()
                .map(|s| (s.direction(), s.dialect(), s.line(), s.sql().to_owned()))
                .collect()
        };
        assert_eq!(view(&lf), view(&crlf));
    }

    #[test]
    fn unknown_and_miscased_markers_are_errors() {
        assert_eq!(
            problems("-- calista:up\nX;\n-- calista:dwon\nY;\n"),
            vec![
                ProblemKind::UnknownMarker {
                    text: "-- calista:dwon".into()
                },
                ProblemKind::MissingDown {
                    dialect: Dialect::Postgres
                },
                ProblemKind::MissingDown {
                    dialect: Dialect::Sqlite
                },
            ]
        );
        assert!(
            problems("-- Calista:up\nX;\n").contains(&ProblemKind::UnknownMarker {
                text: "-- Calista:up".into()
            })
        );
        assert!(
            problems("-- calista:up postgresql\nX;\n").contains(&ProblemKind::UnknownMarker {
                text: "-- calista:up postgresql".into()
            })
        );
    }

    #[test]
    fn sql_before_the_first_marker_is_an_error() {
        assert_eq!(
            problems("CREATE TABLE t (id INT);\n-- calista:up\nX;\n-- calista:down\nY;\n"),
            vec![ProblemKind::SqlBeforeFirstMarker]
        );
    }

    #[test]
    fn a_dialect_without_up_sql_is_an_error() {
        assert_eq!(
            problems("-- calista:up postgres\nX;\n-- calista:down\nY;\n"),
            vec![ProblemKind::MissingUp {
                dialect: Dialect::Sqlite
            }]
        );
    }

    #[test]
    fn down_is_required_unless_irreversible_and_forbidden_if_irreversible() {
        assert_eq!(
            problems("-- calista:up\nX;\n-- calista:down sqlite\nY;\n"),
            vec![ProblemKind::MissingDown {
                dialect: Dialect::Postgres
            }]
        );
        assert_eq!(
            problems("-- calista:irreversible\n-- calista:up\nX;\n-- calista:down\nY;\n"),
            vec![ProblemKind::DownInIrreversible]
        );
    }

    #[test]
    fn directive_after_a_section_is_an_error() {
        assert_eq!(
            problems("-- calista:up\nX;\n-- calista:no-transaction\n-- calista:down\nY;\n"),
            vec![ProblemKind::DirectiveAfterSection {
                text: "-- calista:no-transaction".into()
            }]
        );
    }

    #[test]
    fn empty_sections_and_empty_files_are_errors() {
        assert_eq!(
            problems("-- calista:up\n\n-- calista:down\nY;\n"),
            vec![ProblemKind::EmptySection]
        );
        assert_eq!(problems(""), vec![ProblemKind::NoSections]);
    }

    #[test]
    fn a_section_of_comments_only_is_an_error_at_its_marker() {
        let all = parse_file(
            NAME,
            NAME,
            b"-- calista:up\nX;\n-- calista:down\n-- nothing to undo\n/* really; */\n",
        )
        .unwrap_err();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            (all[0].line, &all[0].kind),
            (Some(3), &ProblemKind::NoStatement)
        );
        // A statement that does nothing, saying why, is the way to say "nothing to do".
        assert!(
            parse("-- calista:up\nX;\n-- calista:down\nSELECT 1; -- nothing to undo\n").is_ok()
        );
    }

    #[test]
    fn transaction_control_is_an_error_naming_the_line_and_the_statement() {
        let text = "-- calista:up\nCREATE TABLE a (id INT);\nCOMMIT;\nCREATE TABLE b (id INT);\n\
                    -- calista:down\nDROP TABLE b;\nrollback;\nDROP TABLE a;\n";
        let all = parse_file(NAME, NAME, text.as_bytes()).unwrap_err();
        let found: Vec<_> = all.iter().map(|p| (p.line, p.kind.clone())).collect();
        assert_eq!(
            found,
            [
                (
                    Some(3),
                    ProblemKind::TransactionControl {
                        statement: "COMMIT".into()
                    }
                ),
                (
                    Some(7),
                    ProblemKind::TransactionControl {
                        statement: "rollback".into()
                    }
                ),
            ]
        );
        let shown = all[0].to_string();
        assert!(
            shown.starts_with(&format!("{NAME}:3: `COMMIT` controls the transaction")),
            "{shown}"
        );
        assert!(shown.contains("fix: remove it"), "{shown}");
    }

    #[test]
    fn transaction_control_is_an_error_in_no_transaction_migrations_too() {
        assert_eq!(
            problems(
                "-- calista:no-transaction\n-- calista:up\nBEGIN;\nX;\nEND;\n-- calista:down\nY;\n"
            ),
            [
                ProblemKind::TransactionControl {
                    statement: "BEGIN".into()
                },
                ProblemKind::TransactionControl {
                    statement: "END".into()
                },
            ]
        );
    }

    #[test]
    fn statements_refused_in_a_transaction_need_no_transaction() {
        let body = "-- calista:up postgres\nCREATE INDEX CONCURRENTLY ix ON t (a);\n\
                    -- calista:up sqlite\nCREATE INDEX ix ON t (a);\n-- calista:down\nDROP INDEX ix;\n";
        assert_eq!(
            problems(body),
            [ProblemKind::NotInTransactionBlock {
                statement: "CREATE INDEX CONCURRENTLY ix ON t (a)".into()
            }]
        );
        assert!(parse(&format!("-- calista:no-transaction\n{body}")).is_ok());
    }

    #[test]
    fn statement_checks_are_reported_with_the_other_problems() {
        let found = problems("-- calista:up\nVACUUM;\n-- calista:up postgres\n-- later\n");
        assert_eq!(
            found,
            [
                ProblemKind::MissingDown {
                    dialect: Dialect::Postgres
                },
                ProblemKind::MissingDown {
                    dialect: Dialect::Sqlite
                },
                ProblemKind::NotInTransactionBlock {
                    statement: "VACUUM".into()
                },
                ProblemKind::NoStatement,
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_left_out_of_the_checksum() {
        let plain = "-- a comment\n-- calista:up\nX;\n-- calista:down\nY;\n";
        let marked = format!("\u{feff}{plain}");
        let without = parse(plain).unwrap();
        let with = parse(&marked).unwrap();
        assert_eq!(with.checksum(), without.checksum());
        assert_eq!(with.script(Direction::Up, Dialect::Sqlite), "X;");
        assert_eq!(with.sections().next().map(|s| s.line()), Some(2));
        // Even when the mark comes right before a marker.
        let tight = parse("\u{feff}-- calista:up\nX;\n-- calista:down\nY;\n").unwrap();
        assert_eq!(tight.script(Direction::Down, Dialect::Postgres), "Y;");
    }

    #[test]
    fn checksums_of_files_without_a_byte_order_mark_are_unchanged() {
        // The SHA-256 of these bytes, as every earlier release computed it.
        let sum = Checksum::of_file(b"-- calista:up\nX;\n");
        assert_eq!(
            sum.to_string(),
            "88eaa67a90025189e20cb6904b015b9b3dbb974cbbdbd92220a33193f4a7456a"
        );
    }

    #[test]
    fn trailing_whitespace_blank_lines_at_the_end_and_the_final_newline_leave_the_checksum_alone() {
        let tidy = Checksum::of_file(b"-- calista:up\nX;\n\n-- calista:down\nY;\n");
        for untidy in [
            &b"-- calista:up \t\nX;   \n\n-- calista:down\nY;"[..],
            b"-- calista:up\r\nX;\r\n  \r\n-- calista:down\r\nY;\r\n\r\n\n",
            b"\xef\xbb\xbf-- calista:up\nX;\n\n-- calista:down\nY;\n  \n",
        ] {
            assert_eq!(
                Checksum::of_file(untidy),
                tidy,
                "{}",
                String::from_utf8_lossy(untidy)
            );
        }
        // Text, leading whitespace and blank lines between statements still count.
        for edited in [
            &b"-- calista:up\nX;\n-- calista:down\nY;\n"[..],
            b"-- calista:up\n X;\n\n-- calista:down\nY;\n",
            b"-- calista:up\nX ;\n\n-- calista:down\nY;\n",
        ] {
            assert_ne!(
                Checksum::of_file(edited),
                tidy,
                "{}",
                String::from_utf8_lossy(edited)
            );
        }
    }

    #[test]
    fn a_tidy_file_has_the_same_checksum_under_both_rules() {
        let tidy = b"-- calista:up\nX;\n";
        assert_eq!(
            Checksum::of_file(tidy),
            Checksum::of_file_before_whitespace_rule(tidy)
        );
        let untidy = b"-- calista:up\nX; \n-- calista:down\nY;\n";
        assert_ne!(
            Checksum::of_file(untidy),
            Checksum::of_file_before_whitespace_rule(untidy)
        );
        let migration = parse(std::str::from_utf8(untidy).unwrap()).unwrap();
        assert!(migration.matches_checksum(Checksum::of_file_before_whitespace_rule(untidy)));
        assert!(migration.matches_checksum(Checksum::of_file(untidy)));
    }

    #[test]
    fn name_and_body_problems_are_reported_together() {
        let all = parse_file("m/x.sql", "2025_1030_Bad.sql", b"SELECT 1;\n").unwrap_err();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(matches!(all[0].kind, ProblemKind::Name(_)));
        assert_eq!(all[1].kind, ProblemKind::SqlBeforeFirstMarker);
        assert_eq!(all[1].file, "m/x.sql");
        assert_eq!(all[1].line, Some(1));
    }

    #[test]
    fn non_utf8_is_an_error() {
        assert_eq!(
            parse_file(NAME, NAME, b"-- calista:up\n\xff\n").unwrap_err()[0].kind,
            ProblemKind::NotUtf8
        );
    }

    const DROPS_A_COLUMN: &str =
        "-- calista:up\nALTER TABLE t DROP COLUMN c;\n-- calista:down\nSELECT 1;\n";

    #[test]
    fn a_lint_finding_is_an_error_naming_line_rule_why_fix_and_the_allow_line() {
        let all = parse_file(NAME, NAME, DROPS_A_COLUMN.as_bytes()).unwrap_err();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            (all[0].line, &all[0].kind),
            (
                Some(2),
                &ProblemKind::Lint {
                    rule: lint::Rule::DropColumn,
                    subject: "ALTER TABLE t DROP COLUMN c".into()
                }
            )
        );
        let shown = all[0].to_string();
        assert!(
            shown.starts_with(&format!(
                "{NAME}:2: lint drop-column: `ALTER TABLE t DROP COLUMN c` drops a column"
            )),
            "{shown}"
        );
        assert!(
            shown.contains("`-- calista:allow drop-column -- <why it is safe here>`"),
            "{shown}"
        );
    }

    #[test]
    fn an_allow_line_acknowledges_the_rule_and_keeps_its_reason() {
        let text =
            format!("-- calista:allow drop-column -- c is unread since 4.2\n{DROPS_A_COLUMN}");
        let m = parse(&text).unwrap();
        let allows = m.allows();
        assert_eq!(
            allows,
            [lint::Allow {
                rule: lint::Rule::DropColumn,
                reason: "c is unread since 4.2",
                line: 1
            }]
        );
    }

    #[test]
    fn allow_lines_that_are_wrong_or_unused_are_errors() {
        let with = |allow: &str| problems(&format!("{allow}\n{DROPS_A_COLUMN}"));
        assert_eq!(
            with("-- calista:allow drop-colum -- typo"),
            [
                ProblemKind::UnknownAllowRule {
                    name: "drop-colum".into(),
                    suggestion: Some("drop-column")
                },
                ProblemKind::Lint {
                    rule: lint::Rule::DropColumn,
                    subject: "ALTER TABLE t DROP COLUMN c".into()
                },
            ]
        );
        assert_eq!(
            with("-- calista:allow drop-column"),
            [
                ProblemKind::AllowWithoutReason {
                    rule: lint::Rule::DropColumn
                },
                ProblemKind::Lint {
                    rule: lint::Rule::DropColumn,
                    subject: "ALTER TABLE t DROP COLUMN c".into()
                },
            ]
        );
        let unused = parse_file(
            NAME,
            NAME,
            format!("-- calista:allow drop-column -- x\n-- calista:allow drop-table -- y\n{DROPS_A_COLUMN}")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(unused.len(), 1, "{unused:?}");
        assert_eq!(
            (unused[0].line, &unused[0].kind),
            (
                Some(2),
                &ProblemKind::UnusedAllow {
                    rule: lint::Rule::DropTable
                }
            )
        );
    }

    #[test]
    fn a_dialect_difference_is_read_apart_from_the_lint_allows_and_never_unused_at_build() {
        let text = format!(
            "-- calista:allow dialect-difference t.c -- SQLite keeps it as text\n\
             -- calista:allow drop-column -- c is unread\n\
             -- calista:allow dialect-difference t -- also the table\n{DROPS_A_COLUMN}"
        );
        let m = parse(&text).unwrap();
        assert_eq!(
            m.dialect_differences(),
            [
                lint::DialectDifference {
                    table: "t",
                    column: Some("c"),
                    reason: "SQLite keeps it as text",
                    line: 1
                },
                lint::DialectDifference {
                    table: "t",
                    column: None,
                    reason: "also the table",
                    line: 3
                },
            ]
        );
        assert_eq!(
            m.allows()
                .iter()
                .map(|a| (a.rule, a.line))
                .collect::<Vec<_>>(),
            [(lint::Rule::DropColumn, 2)]
        );
        // After the first section it is a directive out of place, like any other.
        assert!(matches!(
            problems(&format!(
                "{DROPS_A_COLUMN}-- calista:allow dialect-difference t -- late\n"
            ))
            .first(),
            Some(ProblemKind::DirectiveAfterSection { .. })
        ));
    }

    #[test]
    fn a_malformed_dialect_difference_is_an_error_at_its_line_saying_the_form() {
        let file = |allow: &str| {
            format!(
                "-- a comment\n{allow}\n-- calista:up\nCREATE TABLE t (id INT);\n-- calista:down\nDROP TABLE t;\n"
            )
        };
        let cases = [
            (
                "-- calista:allow dialect-difference -- why",
                ProblemKind::BadDialectDifference { target: "".into() },
                "`-- calista:allow dialect-difference` names no table or column",
            ),
            (
                "-- calista:allow dialect-difference a.b.c -- why",
                ProblemKind::BadDialectDifference {
                    target: "a.b.c".into(),
                },
                "`-- calista:allow dialect-difference a.b.c` names no table or column",
            ),
            (
                "-- calista:allow dialect-difference t.c",
                ProblemKind::DialectDifferenceWithoutReason {
                    target: "t.c".into(),
                },
                "`-- calista:allow dialect-difference t.c` gives no reason",
            ),
        ];
        for (allow, kind, message) in cases {
            let all = parse_file(NAME, NAME, file(allow).as_bytes()).unwrap_err();
            assert_eq!(all.len(), 1, "{all:?}");
            assert_eq!((all[0].line, &all[0].kind), (Some(2), &kind));
            let shown = all[0].to_string();
            assert!(
                shown.starts_with(&format!("{NAME}:2: {message}")),
                "{shown}"
            );
            assert!(
                shown.contains(
                    "fix: write `-- calista:allow dialect-difference <table>[.<column>] -- <reason>`"
                ),
                "{shown}"
            );
        }
        let typo = problems(&file("-- calista:allow dialect-diference t -- why"));
        assert_eq!(
            typo,
            [ProblemKind::UnknownAllowRule {
                name: "dialect-diference".into(),
                suggestion: Some("dialect-difference")
            }]
        );
    }

    #[test]
    fn an_allow_after_the_first_section_is_an_error() {
        assert_eq!(
            problems(&format!(
                "{DROPS_A_COLUMN}-- calista:allow drop-column -- late\n"
            )),
            [
                ProblemKind::DirectiveAfterSection {
                    text: "-- calista:allow drop-column -- late".into()
                },
                ProblemKind::Lint {
                    rule: lint::Rule::DropColumn,
                    subject: "ALTER TABLE t DROP COLUMN c".into()
                },
            ]
        );
    }

    const IMPORTED: &str =
        "-- calista:imported refinery 11 siphash13:42 -- later/V11__drop memo.sql";

    #[test]
    fn an_imported_file_is_not_linted_and_says_where_it_came_from() {
        assert!(parse(DROPS_A_COLUMN).is_err());
        let m = parse(&format!("{IMPORTED}\n{DROPS_A_COLUMN}")).unwrap();
        assert_eq!(
            m.imported().map(|i| (i.origin, i.source.to_owned())),
            Some((
                crate::origin::Origin::Refinery {
                    version: 11,
                    checksum: 42
                },
                "later/V11__drop memo.sql".to_owned()
            ))
        );
        assert_eq!(
            parse(
                DROPS_A_COLUMN
                    .replace("DROP COLUMN c", "ADD COLUMN c INT")
                    .as_str()
            )
            .unwrap()
            .imported(),
            None
        );
    }

    #[test]
    fn an_imported_file_still_follows_every_structural_rule() {
        assert_eq!(
            problems(&format!(
                "{IMPORTED}\n-- calista:up postgres\nCOMMIT;\n-- calista:down\nSELECT 1;\n"
            )),
            [
                ProblemKind::MissingUp {
                    dialect: Dialect::Sqlite
                },
                ProblemKind::TransactionControl {
                    statement: "COMMIT".into()
                },
            ]
        );
    }

    #[test]
    fn a_baseline_directive_reads_back_and_its_file_is_not_linted() {
        let chain = Checksum::of_file(b"x");
        let baseline = Baseline {
            first: Revision::parse("20250101_0000").unwrap(),
            through: Revision::parse("20250301_0000").unwrap(),
            chain,
            chain_before_whitespace_rule: Some(Checksum::of_file(b"y")),
            release: "1.4.0",
        };
        let text = format!("{}\n{DROPS_A_COLUMN}", baseline.directive());
        let migration = parse_file(NAME, NAME, text.as_bytes()).unwrap();
        assert_eq!(migration.baseline(), Some(baseline));
        assert!(
            migration
                .baseline()
                .unwrap()
                .covers(Revision::parse("20250201_0000").unwrap())
        );
    }

    #[test]
    fn a_malformed_baseline_directive_is_an_error_at_its_line() {
        let text =
            format!("-- a comment\n-- calista:baseline 20250101_0000 -- 1.4.0\n{DROPS_A_COLUMN}");
        let all = parse_file(NAME, NAME, text.as_bytes()).unwrap_err();
        assert!(
            all.iter().any(|p| p.line == Some(2)
                && p.kind
                    == ProblemKind::BadBaseline {
                        text: "-- calista:baseline 20250101_0000 -- 1.4.0".into()
                    }),
            "{all:?}"
        );
    }

    #[test]
    fn a_malformed_imported_directive_is_an_error_at_its_line_saying_the_form() {
        let text = format!(
            "-- a comment\n-- calista:imported sqlx 20230101120000 -- a.sql\n{DROPS_A_COLUMN}"
        );
        let all = parse_file(NAME, NAME, text.as_bytes()).unwrap_err();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            (all[0].line, &all[0].kind),
            (
                Some(2),
                &ProblemKind::BadImported {
                    text: "-- calista:imported sqlx 20230101120000 -- a.sql".into(),
                    error: OriginError::NoChecksum(crate::origin::Tool::Sqlx)
                }
            )
        );
        let shown = all[0].to_string();
        assert!(
            shown.starts_with(&format!(
                "{NAME}:2: `-- calista:imported sqlx 20230101120000 -- a.sql` gives no checksum"
            )),
            "{shown}"
        );
        assert!(
            shown.contains(
                "fix: write `-- calista:imported <tool> <version> [<checksum>] -- <source file>`"
            ),
            "{shown}"
        );
        // A second one, or one after the first section, is an error too.
        assert_eq!(
            problems(&format!("{IMPORTED}\n{IMPORTED}\n{DROPS_A_COLUMN}")),
            [ProblemKind::BadImported {
                text: IMPORTED.into(),
                error: OriginError::Repeated
            }]
        );
        assert!(matches!(
            problems(&format!("{DROPS_A_COLUMN}{IMPORTED}\n")).first(),
            Some(ProblemKind::DirectiveAfterSection { .. })
        ));
    }

    #[test]
    fn template_fails_until_the_sql_is_written() {
        let revision = Revision::parse("20261124_0405").unwrap();
        let text = template(revision, "add_things");
        let name = "20261124_0405_add_things.sql";
        let all = parse_file("t", name, text.as_bytes()).unwrap_err();
        let kinds: Vec<_> = all.iter().map(|p| &p.kind).collect();
        assert_eq!(
            kinds,
            [&ProblemKind::NoStatement, &ProblemKind::NoStatement]
        );
        assert!(text.contains("The build fails until each section holds at least one statement"));
        let written = text
            .replace(
                "-- calista:up\n",
                "-- calista:up\nCREATE TABLE things (id INT);\n",
            )
            .replace("-- calista:down\n", "-- calista:down\nDROP TABLE things;\n");
        let m = parse_file("t", name, written.as_bytes()).unwrap();
        assert_eq!(m.revision(), revision);
    }
}
