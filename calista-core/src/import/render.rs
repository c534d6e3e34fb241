//! The text of an imported migration file.

use std::fmt::Write as _;

use super::{
    ImportProblem, ImportProblemKind, Note, SourceDialect, SourceLine, SourceMigration, Sql, Tool,
};
use crate::migration::{Dialect, Direction};
use crate::origin::Imported;
use crate::problem::Problem;
use crate::sql;

/// A rendered file, and where each copied SQL text lies in it.
pub(super) struct Rendered {
    pub(super) text: String,
    pub(super) notes: Vec<Note>,
    /// Each copied text.
    copies: Vec<Copied>,
}

/// The lines of the file that SQL copied from a source fills, and where it came from.
struct Copied {
    first: u32,
    last: u32,
    from: Option<SourceLine>,
}

impl Rendered {
    /// The problem found in the rendered file, placed in its source file where the line
    /// is in SQL copied from one.
    pub(super) fn locate(&self, source: &str, problem: Problem) -> ImportProblem {
        let copied = problem.line.and_then(|line| {
            let copy = self
                .copies
                .iter()
                .find(|copy| (copy.first..=copy.last).contains(&line))?;
            let from = copy.from.as_ref()?;
            Some((from.file.clone(), from.line + (line - copy.first)))
        });
        let (file, line) = match copied {
            Some((file, line)) => (file, Some(line)),
            None => (source.to_owned(), None),
        };
        ImportProblem::new(file, line, ImportProblemKind::Format(problem.kind))
    }
}

/// The calista file for one source migration.
pub(super) fn file(tool: Tool, migration: &SourceMigration, dialect: SourceDialect) -> Rendered {
    let mut notes = migration.notes.clone();
    let lexer = dialect.lexer();
    let up_is_empty = is_empty(&migration.up.text, lexer);
    let down = match &migration.down {
        Some(down) if is_empty(&down.text, lexer) => {
            notes.push(Note::EmptyDown);
            None
        }
        Some(down) => Some(down),
        None => None,
    };
    if up_is_empty {
        notes.push(Note::EmptyUp);
    }
    if migration.no_transaction && !notes.contains(&Note::DieselMetadataDefault) {
        notes.push(Note::NoTransaction);
    }

    let mut out = Writer::default();
    out.line(&format!(
        "-- Imported from {tool}: {}.",
        migration.files.join(", ")
    ));
    out.line(
        &Imported {
            origin: migration.key.origin(),
            source: &migration.source,
        }
        .directive(),
    );
    if migration.no_transaction {
        out.line("-- calista:no-transaction");
    }
    if down.is_none() {
        out.line("-- calista:irreversible");
    }
    let mut copies = Vec::new();
    let mut section = |out: &mut Writer, direction: Direction, sql: &Sql, empty: bool| {
        out.line("");
        out.line(&marker(direction, dialect.dialect()));
        let first = out.next_line();
        out.text(&sql.text);
        copies.push(Copied {
            first,
            last: out.next_line() - 1,
            from: sql.at.clone(),
        });
        if empty {
            out.line(&format!(
                "SELECT 1; -- the {tool} migration holds no statement"
            ));
        }
        if let Some(only) = dialect.dialect() {
            let other = other(only);
            out.line("");
            out.line(&marker(direction, Some(other)));
            out.line(&format!(
                "-- {tool} ran this migration on {only} only, so it has no {other} SQL. Running it on"
            ));
            out.line(&format!(
                "-- {other} fails here, on purpose: write its {other} SQL in place of this statement."
            ));
            out.line(&format!(
                "SELECT calista_imported_for_{}_only();",
                only.marker_word()
            ));
        }
    };
    section(&mut out, Direction::Up, &migration.up, up_is_empty);
    if let Some(down) = down {
        section(&mut out, Direction::Down, down, false);
    }
    Rendered {
        text: out.text,
        notes,
        copies,
    }
}

fn marker(direction: Direction, dialect: Option<Dialect>) -> String {
    match dialect {
        Some(dialect) => format!("-- calista:{direction} {}", dialect.marker_word()),
        None => format!("-- calista:{direction}"),
    }
}

fn other(dialect: Dialect) -> Dialect {
    match dialect {
        Dialect::Postgres => Dialect::Sqlite,
        Dialect::Sqlite => Dialect::Postgres,
    }
}

/// Whether the SQL holds no statement (empty, or comments only).
fn is_empty(text: &str, dialect: Dialect) -> bool {
    sql::statements(text, dialect).is_empty()
}

/// Text written line by line, counting lines.
#[derive(Default)]
struct Writer {
    text: String,
    lines: u32,
}

impl Writer {
    fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{line}");
        self.lines += 1;
    }

    /// SQL copied from a source: line endings made LF, the end trimmed, a final newline.
    fn text(&mut self, sql: &str) {
        let sql = sql.replace("\r\n", "\n");
        for line in sql.trim_end().split('\n') {
            self.line(line);
        }
    }

    /// The number of the line written next (1-based).
    fn next_line(&self) -> u32 {
        self.lines + 1
    }
}
