//! The SQL Alembic renders offline (`alembic upgrade base:head --sql`): every revision in
//! one file, each after a `-- Running upgrade <from> -> <to>` line, with Alembic's own
//! bookkeeping (`alembic_version` statements, `BEGIN`/`COMMIT` around the run or each
//! revision) between them. The bookkeeping is dropped: calista keeps its own. A revision
//! whose SQL comes after a `COMMIT` (Alembic's `autocommit_block()`, for example around
//! `CREATE INDEX CONCURRENTLY`) ran outside a transaction. `alembic downgrade head:base
//! --sql` renders the downs the same way, `-- Running downgrade <revision> -> <to>`.
//!
//! The rendered SQL carries no dates, so revision ids come from the start date, in the
//! order Alembic ran the revisions (the down_revision chain).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use super::{Found, ImportProblem, ImportProblemKind, Key, Note, SourceMigration, Sql};
use crate::migration::Dialect;
use crate::sql::{self, Statement, TokenKind};

/// Alembic's version table, which it creates and updates in the rendered SQL.
const VERSION_TABLE: &str = "alembic_version";

/// One revision's part of a rendered file.
struct Revision {
    /// For an upgrade, the revision it reaches; for a downgrade, the revision it undoes.
    id: String,
    /// The SQL of its statements, bookkeeping left out.
    sql: String,
    /// Whether any of its statements ran outside a transaction.
    no_transaction: bool,
}

pub(super) fn read(
    upgrade: &Path,
    downgrade: Option<&Path>,
    dialect: Dialect,
) -> std::io::Result<Found> {
    let mut found = Found::default();
    let upgrade_name = file_name(upgrade);
    let Some(ups) = revisions(
        upgrade,
        &upgrade_name,
        "upgrade",
        dialect,
        &mut found.problems,
    )?
    else {
        return Ok(found);
    };
    let mut downs: HashMap<String, Revision> = HashMap::new();
    let mut files = vec![upgrade_name.clone()];
    if let Some(path) = downgrade {
        let name = file_name(path);
        if let Some(list) = revisions(path, &name, "downgrade", dialect, &mut found.problems)? {
            downs = list
                .into_iter()
                .map(|down| (down.id.clone(), down))
                .collect();
        }
        files.push(name);
    }
    for up in ups {
        let down = downs.remove(&up.id);
        // Without a downgrade file every revision is irreversible, which needs no note.
        let notes = match (&down, downgrade) {
            (None, Some(_)) => vec![Note::NoDown],
            _ => Vec::new(),
        };
        let no_transaction = up.no_transaction || down.as_ref().is_some_and(|d| d.no_transaction);
        found.migrations.push(SourceMigration {
            key: Key::Alembic(up.id.clone()),
            source: upgrade_name.clone(),
            files: files
                .iter()
                .map(|file| format!("{file} ({})", up.id))
                .collect(),
            description: String::new(),
            date: None,
            up: Sql {
                text: up.sql,
                at: None,
            },
            down: down.map(|down| Sql {
                text: down.sql,
                at: None,
            }),
            no_transaction,
            notes,
        });
    }
    let mut unknown: Vec<_> = downs.into_keys().collect();
    unknown.sort();
    for revision in unknown {
        let file = files.last().cloned().unwrap_or_default();
        found.problems.push(ImportProblem::new(
            file,
            None,
            ImportProblemKind::UnknownDowngrade { revision },
        ));
    }
    Ok(found)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// The revisions of a rendered file, in its order; `None` (with the problems recorded)
/// when it cannot be read as one. `way` is `upgrade` or `downgrade`.
fn revisions(
    path: &Path,
    shown: &str,
    way: &str,
    dialect: Dialect,
    problems: &mut Vec<ImportProblem>,
) -> std::io::Result<Option<Vec<Revision>>> {
    let bytes = fs::read(path)?;
    let Ok(text) = String::from_utf8(bytes) else {
        problems.push(ImportProblem::new(shown, None, ImportProblemKind::NotUtf8));
        return Ok(None);
    };
    let marker = format!("-- Running {way} ");
    let before = problems.len();
    // Where each revision's text starts and ends, and its id.
    let mut parts: Vec<(usize, usize, String)> = Vec::new();
    let mut preamble_end = text.len();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        let Some(arrow) = line.trim().strip_prefix(marker.as_str()) else {
            continue;
        };
        let id = match arrow.split_once("->") {
            Some((_, to)) if way == "upgrade" => to.trim(),
            Some((from, _)) => from.trim(),
            None => "",
        };
        if id.is_empty() || id.contains(',') || id.contains(char::is_whitespace) {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            problems.push(ImportProblem::new(
                shown,
                Some(line),
                ImportProblemKind::BadRevisionLine,
            ));
            continue;
        }
        if let Some(last) = parts.last_mut() {
            last.1 = start;
        } else {
            preamble_end = start;
        }
        parts.push((offset, text.len(), id.to_owned()));
    }
    if parts.is_empty() && problems.len() == before {
        if way == "upgrade" {
            problems.push(ImportProblem::new(
                shown,
                None,
                ImportProblemKind::NoRevisions,
            ));
        }
        return Ok(None);
    }

    // Alembic opens its transaction before the first revision; a `COMMIT` inside a
    // revision followed by its own SQL is an autocommit block.
    let mut in_transaction = true;
    for statement in sql::statements(&text[..preamble_end], dialect) {
        match kind(&statement) {
            Kind::Begin => in_transaction = true,
            Kind::Commit => in_transaction = false,
            Kind::Bookkeeping => {}
            Kind::Sql => {
                let (line, _) = sql::line_col(&text, statement.offset);
                problems.push(ImportProblem::new(
                    shown,
                    Some(line),
                    ImportProblemKind::OutsideRevision {
                        statement: statement.shown(),
                    },
                ));
            }
        }
    }
    let mut revisions = Vec::new();
    for (start, end, id) in parts {
        let mut sql = String::new();
        let mut no_transaction = false;
        for statement in sql::statements(&text[start..end], dialect) {
            match kind(&statement) {
                Kind::Begin => in_transaction = true,
                Kind::Commit => in_transaction = false,
                Kind::Bookkeeping => {}
                Kind::Sql => {
                    no_transaction |= !in_transaction;
                    if !sql.is_empty() {
                        sql.push('\n');
                    }
                    sql.push_str(statement.text);
                    sql.push_str(";\n");
                }
            }
        }
        revisions.push(Revision {
            id,
            sql,
            no_transaction,
        });
    }
    Ok((problems.len() == before).then_some(revisions))
}

/// What a statement of the rendered file is to the import.
enum Kind {
    Begin,
    Commit,
    /// A statement on Alembic's version table.
    Bookkeeping,
    /// The revision's own SQL.
    Sql,
}

fn kind(statement: &Statement<'_>) -> Kind {
    if statement.starts_with(&["BEGIN"]) || statement.starts_with(&["START", "TRANSACTION"]) {
        return Kind::Begin;
    }
    if statement.starts_with(&["COMMIT"]) {
        return Kind::Commit;
    }
    let prefixes: [&[&str]; 5] = [
        &["INSERT", "INTO"],
        &["UPDATE"],
        &["DELETE", "FROM"],
        &["CREATE", "TABLE"],
        &["DROP", "TABLE"],
    ];
    let on_version_table = prefixes.iter().any(|prefix| {
        statement.starts_with(prefix)
            && table_after(statement, prefix.len())
                .is_some_and(|table| table.eq_ignore_ascii_case(VERSION_TABLE))
    });
    if on_version_table {
        Kind::Bookkeeping
    } else {
        Kind::Sql
    }
}

/// The table a statement names after its first `skip` keywords: the last part of a
/// (possibly schema-qualified, possibly quoted) name, unquoted.
fn table_after<'a>(statement: &Statement<'a>, skip: usize) -> Option<&'a str> {
    let mut last = None;
    let mut expect_name = true;
    for token in statement.significant().skip(skip) {
        match token.kind {
            TokenKind::Word | TokenKind::QuotedIdent if expect_name => {
                last = Some(token.text.trim_matches('"'));
                expect_name = false;
            }
            TokenKind::Punct if token.text == "." && !expect_name => expect_name = true,
            _ => break,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(script: &str) -> Vec<&'static str> {
        sql::statements(script, Dialect::Postgres)
            .iter()
            .map(|s| match kind(s) {
                Kind::Begin => "begin",
                Kind::Commit => "commit",
                Kind::Bookkeeping => "bookkeeping",
                Kind::Sql => "sql",
            })
            .collect()
    }

    #[test]
    fn alembic_bookkeeping_is_told_from_a_revisions_own_sql() {
        assert_eq!(
            kinds(
                "BEGIN;\nINSERT INTO alembic_version (version_num) VALUES ('a') RETURNING alembic_version.version_num;\n\
                 UPDATE app.alembic_version SET version_num='b' WHERE alembic_version.version_num = 'a';\n\
                 DELETE FROM \"alembic_version\" WHERE alembic_version.version_num = 'b';\n\
                 CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n\
                 UPDATE alembic_versions SET x = 1;\nINSERT INTO orders SELECT * FROM alembic_version;\nCOMMIT;"
            ),
            [
                "begin",
                "bookkeeping",
                "bookkeeping",
                "bookkeeping",
                "bookkeeping",
                "sql",
                "sql",
                "commit"
            ]
        );
    }
}
