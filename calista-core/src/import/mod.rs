//! `calista db import`: calista migration files from another tool's migrations (DESIGN §12).
//!
//! Two steps. [`plan`] reads the other tool's migrations (a folder for sqlx, diesel and
//! refinery; the SQL that `alembic upgrade --sql` renders for Alembic) and returns the files
//! it would write, or every source file that cannot be imported, each with why and what to
//! do. It writes nothing. [`write()`] then writes the planned files into a migrations folder,
//! refusing to overwrite anything.
//!
//! Every planned file:
//!
//! - keeps the source's order, and its dates where it has them (sqlx and diesel
//!   timestamps, refinery versions that are timestamps): the revision id is the source's
//!   date to the minute. Two sources in one minute, or a date not after the one before, get
//!   the next free minute: ids follow the source's order, never the other way round.
//!   Migrations without a date (small integer versions, Alembic revisions) count on a
//!   minute at a time from [`ImportRequest::start`], or, when a dated migration follows,
//!   count back from it, so they sort before it.
//! - carries `-- calista:imported <tool> <version> [<checksum>] -- <source file>`
//!   ([`crate::origin`]): what it takes to find the tool's record of it in a database and
//!   compare checksums where the tool keeps one. The lint skips such files: they are
//!   history that already ran in production.
//! - puts the source's SQL in the sections of the dialect it was written for
//!   ([`SourceDialect`]). The other dialect's section, which every migration needs, is a
//!   statement that fails, with a comment saying so: a PostgreSQL project's history never
//!   runs on SQLite by accident, and never as a silent no-op.
//! - is `-- calista:irreversible` where the source has no down SQL, and
//!   `-- calista:no-transaction` where the tool ran it outside a transaction.
//!
//! Every planned file is checked with the parser `migrations!()` uses before anything is
//! written, so what [`write()`] writes is a folder [`Migrations::from_dir`](crate::Migrations::from_dir)
//! accepts.

mod alembic;
mod diesel;
mod ids;
mod refinery;
mod render;
mod sqlx;

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::format;
use crate::migration::Dialect;
use crate::naming::{self, Revision};
use crate::origin::Origin;
use crate::problem::ProblemKind;

pub use crate::origin::Tool;

/// The dialect the source's SQL was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceDialect {
    /// PostgreSQL only: the SQL goes into `-- calista:up postgres` (and `down postgres`).
    Postgres,
    /// SQLite only: the SQL goes into `-- calista:up sqlite` (and `down sqlite`).
    Sqlite,
    /// SQL that runs on both: it goes into the shared `-- calista:up` and `-- calista:down`
    /// sections. `calista db verify` then proves that both dialects build the same schema.
    Both,
}

impl SourceDialect {
    /// The one dialect, or `None` for [`SourceDialect::Both`].
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Self::Postgres => Some(Dialect::Postgres),
            Self::Sqlite => Some(Dialect::Sqlite),
            Self::Both => None,
        }
    }

    /// The lexer to read the source's SQL with.
    fn lexer(self) -> Dialect {
        self.dialect().unwrap_or(Dialect::Postgres)
    }
}

/// What to import, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportRequest {
    /// The tool that wrote the migrations.
    pub tool: Tool,
    /// The tool's migrations folder; for Alembic, the file `alembic upgrade <range> --sql`
    /// wrote.
    pub source: PathBuf,
    /// The dialect the SQL was written for.
    pub dialect: SourceDialect,
    /// The revision id of the first migration without a date of its own, when no dated
    /// one follows it to count back from; each next one is a minute later.
    pub start: Option<Revision>,
    /// Alembic only: the file `alembic downgrade <range> --sql` wrote, for the down sections
    /// (without it, every revision is imported as irreversible).
    pub alembic_downgrade: Option<PathBuf>,
}

impl ImportRequest {
    /// Imports `source`, written by `tool` for `dialect`.
    pub fn new(tool: Tool, source: impl Into<PathBuf>, dialect: SourceDialect) -> Self {
        Self {
            tool,
            source: source.into(),
            dialect,
            start: None,
            alembic_downgrade: None,
        }
    }

    /// The revision id of the first migration without a date (see [`ImportRequest::start`]).
    #[must_use]
    pub fn start(mut self, revision: Revision) -> Self {
        self.start = Some(revision);
        self
    }

    /// Alembic's rendered downgrade SQL (see [`ImportRequest::alembic_downgrade`]).
    #[must_use]
    pub fn alembic_downgrade(mut self, path: impl Into<PathBuf>) -> Self {
        self.alembic_downgrade = Some(path.into());
        self
    }
}

/// The files an import would write, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportPlan {
    /// The tool the migrations came from.
    pub tool: Tool,
    /// One calista file per source migration, in the source's order.
    pub files: Vec<PlannedFile>,
    /// Files in the source that the tool itself ignores, so they are not history either.
    pub skipped: Vec<Skipped>,
}

/// One calista migration file an import writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedFile {
    /// The source files it comes from (e.g. an up and a down file), relative to the source.
    pub sources: Vec<String>,
    /// Its revision id.
    pub revision: Revision,
    /// Its file name, `YYYYMMDD_HHMM_<summary>.sql`.
    pub file_name: String,
    /// Its text.
    pub contents: String,
    /// What the import decided for it that the source did not say.
    pub notes: Vec<Note>,
}

/// Something an import decided for one migration that its source did not say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// Its own date was taken (or not after the one before): it got the next free minute.
    Moved {
        /// The revision id its date gives.
        dated: Revision,
    },
    /// The up SQL holds no statement: the file says so with a `SELECT 1`, since a
    /// section that does nothing must say why.
    EmptyUp,
    /// The down SQL holds no statement: reverting it never undid anything, so it is
    /// imported as irreversible.
    EmptyDown,
    /// The tool's down file for it is missing (where the tool has one for the others): it
    /// is imported as irreversible.
    NoDown,
    /// The tool ran it outside a transaction, so calista runs it alone, one statement at
    /// a time (`-- calista:no-transaction`).
    NoTransaction,
    /// diesel ran it outside a transaction because its `metadata.toml` does not set
    /// `run_in_transaction` (diesel reads a missing key as `false`).
    DieselMetadataDefault,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Moved { dated } => write!(
                f,
                "its date gives {dated}, which is not after the migration before it: moved to the next free minute"
            ),
            Self::EmptyUp => f.write_str(
                "its up SQL holds no statement: written as `SELECT 1` with a comment saying so",
            ),
            Self::EmptyDown => {
                f.write_str("its down SQL holds no statement: imported as irreversible")
            }
            Self::NoDown => f.write_str("it has no down file: imported as irreversible"),
            Self::NoTransaction => {
                f.write_str("it ran outside a transaction: imported as `-- calista:no-transaction`")
            }
            Self::DieselMetadataDefault => f.write_str(
                "its metadata.toml does not set run_in_transaction, which diesel reads as false: \
                 imported as `-- calista:no-transaction`",
            ),
        }
    }
}

/// A file in the source that the tool ignores, and so does the import.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// The file, relative to the source.
    pub file: String,
    /// Why the tool ignores it.
    pub reason: &'static str,
}

/// A source file that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportProblem {
    /// The file, relative to the source (for Alembic: the rendered SQL file).
    pub file: String,
    /// The line in that file, when it is about one line.
    pub line: Option<u32>,
    /// What is wrong.
    pub kind: ImportProblemKind,
}

impl ImportProblem {
    fn new(file: impl Into<String>, line: Option<u32>, kind: ImportProblemKind) -> Self {
        Self {
            file: file.into(),
            line,
            kind,
        }
    }
}

impl fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.kind)?,
            None => write!(f, "{}: {}", self.file, self.kind)?,
        }
        write!(f, "\n  fix: {}", self.kind.fix())
    }
}

/// Why a source file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportProblemKind {
    /// A refinery `U<n>__` (unversioned) migration.
    Unversioned,
    /// A refinery `.rs` migration.
    RustMigration,
    /// The version in the name is not one the tool accepts.
    BadVersion {
        /// The version as written.
        found: String,
    },
    /// Another file has the same version.
    DuplicateVersion {
        /// The other file.
        other: String,
    },
    /// A sqlx `.down.sql` without its `.up.sql`.
    DownWithoutUp,
    /// A diesel migration folder without `up.sql`.
    NoUpFile,
    /// A diesel `metadata.toml` that diesel cannot read (diesel then silently runs the
    /// migration in a transaction).
    BadMetadata {
        /// The TOML error.
        reason: String,
    },
    /// An Alembic downgrade for a revision the upgrade SQL does not hold.
    UnknownDowngrade {
        /// The revision.
        revision: String,
    },
    /// A `-- Running upgrade` (or `downgrade`) line without a revision.
    BadRevisionLine,
    /// SQL in the Alembic file outside every revision.
    OutsideRevision {
        /// The statement, as messages show it.
        statement: String,
    },
    /// The Alembic file holds no `-- Running upgrade` line.
    NoRevisions,
    /// The file is not UTF-8 text.
    NotUtf8,
    /// The file cannot be read.
    Unreadable {
        /// The operating system's reason.
        reason: String,
    },
    /// The SQL breaks a rule of calista's file format (DESIGN §3), e.g. a `COMMIT` of its own.
    Format(ProblemKind),
}

impl ImportProblemKind {
    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::Unversioned => "refinery applies unversioned migrations in whatever order each database met them, \
                 so they have no one place in a linear history: once every database has applied it, rename it \
                 `V<n>__<name>.sql` with the version it has in refinery_schema_history, or move it out of the \
                 folder and write its SQL as a new calista migration after importing"
                .to_owned(),
            Self::RustMigration => "calista migrations are SQL: write the SQL its `migration()` function returns into \
                 `V<n>__<name>.sql` (same version and name, so refinery's checksum stays the same) in its place, \
                 and import again"
                .to_owned(),
            Self::BadVersion { .. } => "name it as the tool requires (the tool would refuse it too), or move it \
                 out of the folder if it never ran"
                .to_owned(),
            Self::DuplicateVersion { .. } => "the tool refuses two migrations with one version: keep the one that \
                 ran (see the tool's history table) and move the other out of the folder"
                .to_owned(),
            Self::DownWithoutUp => "a down file reverts nothing without its up file: move it out of the folder, \
                 or restore the up file"
                .to_owned(),
            Self::NoUpFile => "diesel refuses a migration folder without up.sql too: restore it, or move the \
                 folder out"
                .to_owned(),
            Self::BadMetadata { .. } => "make it valid TOML, e.g. `run_in_transaction = false`, or delete it if \
                 the migration ran in a transaction"
                .to_owned(),
            Self::UnknownDowngrade { .. } => "render both files from the same Alembic project and range, e.g. \
                 `alembic upgrade base:head --sql` and `alembic downgrade head:base --sql`"
                .to_owned(),
            Self::BadRevisionLine | Self::NoRevisions => "pass the file `alembic upgrade base:head --sql > upgrade.sql` \
                 writes, unedited"
                .to_owned(),
            Self::OutsideRevision { .. } => "it belongs to no revision, so it has no place in the history: \
                 remove it from the rendered file (it comes from env.py, not from a revision)"
                .to_owned(),
            Self::NotUtf8 => "save it as UTF-8 (the tool reads it as UTF-8 text too)".to_owned(),
            Self::Unreadable { .. } => "check the file's permissions".to_owned(),
            Self::Format(kind) => format!(
                "{}; then import again (the migration already ran, so change nothing it does)",
                kind.fix()
            ),
        }
    }
}

impl fmt::Display for ImportProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unversioned => {
                f.write_str("an unversioned (`U`) refinery migration cannot be imported")
            }
            Self::RustMigration => {
                f.write_str("a Rust migration cannot be imported: its SQL is made at run time")
            }
            Self::BadVersion { found } => write!(f, "`{found}` is not a version the tool accepts"),
            Self::DuplicateVersion { other } => write!(f, "has the same version as `{other}`"),
            Self::DownWithoutUp => f.write_str("a down migration without its up migration"),
            Self::NoUpFile => f.write_str("a diesel migration folder without up.sql"),
            Self::BadMetadata { reason } => write!(f, "metadata.toml cannot be read: {reason}"),
            Self::UnknownDowngrade { revision } => write!(
                f,
                "downgrades revision {revision}, which the upgrade SQL does not hold"
            ),
            Self::BadRevisionLine => f.write_str("a `-- Running` line without `<from> -> <to>`"),
            Self::OutsideRevision { statement } => {
                write!(
                    f,
                    "`{statement}` comes before every `-- Running upgrade` line"
                )
            }
            Self::NoRevisions => f.write_str(
                "holds no `-- Running upgrade` line: it is not what `alembic upgrade --sql` writes",
            ),
            Self::NotUtf8 => f.write_str("is not valid UTF-8"),
            Self::Unreadable { reason } => write!(f, "cannot be read: {reason}"),
            Self::Format(kind) => write!(f, "{kind}"),
        }
    }
}

/// Why an import cannot go ahead. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Source files that cannot be imported: all of them, each with what to do.
    #[error("{} cannot be imported; nothing was written:{}", plural(problems.len(), "source file"), list(problems))]
    Source {
        /// The problems, in the source's order.
        problems: Vec<ImportProblem>,
    },
    /// The source holds no migration of the tool's.
    #[error("{path} holds no {tool} migrations{}", skipped_hint(skipped))]
    Empty {
        /// The tool.
        tool: Tool,
        /// The source, as given.
        path: String,
        /// What it holds that the tool ignores.
        skipped: Vec<Skipped>,
    },
    /// The source's first migrations carry no date and none follows to count back from.
    #[error(
        "{tool} migrations here carry no date, so the imported files need one to start from: \
         pass the revision id the first file gets, e.g. `--start 20200101_0000` (each next file is a \
         minute later; choose a date before any calista migration of the project)"
    )]
    NeedsStart {
        /// The tool.
        tool: Tool,
    },
    /// A start was given, but every migration has a date of its own, or a dated one
    /// follows to count back from.
    #[error(
        "the start {start} is not used: the first {tool} migration is dated, or one that follows is; \
         leave the start out"
    )]
    StartUnused {
        /// The tool.
        tool: Tool,
        /// The start given.
        start: Revision,
    },
    /// Ids counted from the start or a date fall outside the calendar calista names files with.
    #[error("the revision ids would fall outside the years 0001 to 9999: pass another start")]
    OutOfRange,
    /// The source cannot be read at all.
    #[error("cannot read {path}: check that it exists and is the tool's migrations {}", if *tool == Tool::Alembic { "SQL file" } else { "folder" })]
    Unreadable {
        /// The tool.
        tool: Tool,
        /// The source, as given.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Files of the target folder stand in the way.
    #[error(
        "{} in {into} would be overwritten or share a revision id with an imported file; nothing was written: \
         import into an empty folder (`--into DIR`), or move them away:\n  {}",
        plural(existing.len(), "file"),
        existing.join("\n  ")
    )]
    Exists {
        /// The target folder.
        into: String,
        /// The files in the way.
        existing: Vec<String>,
    },
    /// Writing failed; the files this import had written were removed again.
    #[error("cannot write {path}; the files written before it were removed again")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn list(problems: &[ImportProblem]) -> String {
    problems.iter().map(|p| format!("\n{p}")).collect()
}

fn skipped_hint(skipped: &[Skipped]) -> String {
    match skipped.first() {
        None => " (it is empty)".to_owned(),
        Some(first) => format!(
            " ({} the tool ignores, e.g. `{}`: {}); is it the right folder and tool?",
            plural(skipped.len(), "file"),
            first.file,
            first.reason
        ),
    }
}

/// One migration as the other tool knows it, before it becomes a calista file.
#[derive(Debug, Clone)]
struct SourceMigration {
    /// What the tool records for it.
    key: Key,
    /// The file the directive names (the up file).
    source: String,
    /// Every source file it comes from, for the listing.
    files: Vec<String>,
    /// Free text for the summary (a description, a folder's name).
    description: String,
    /// The date the tool's version gives, if it is one.
    date: Option<Revision>,
    up: Sql,
    down: Option<Sql>,
    no_transaction: bool,
    notes: Vec<Note>,
}

/// SQL for one direction, and where it starts in its source file, to place a problem.
#[derive(Debug, Clone)]
struct Sql {
    text: String,
    /// Where the text's first line is, when the text is copied verbatim from one file.
    at: Option<SourceLine>,
}

/// A line of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceLine {
    file: String,
    line: u32,
}

impl SourceLine {
    fn first(file: &str) -> Option<Self> {
        Self::at(file, 1)
    }

    fn at(file: &str, line: u32) -> Option<Self> {
        Some(Self {
            file: file.to_owned(),
            line,
        })
    }
}

/// What the tool records for a migration, owned ([`Origin`] borrows).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Sqlx(i64, [u8; 48]),
    Diesel(String),
    Refinery(i64, u64),
    Alembic(String),
}

impl Key {
    fn origin(&self) -> Origin<'_> {
        match self {
            Self::Sqlx(version, checksum) => Origin::Sqlx {
                version: *version,
                checksum: *checksum,
            },
            Self::Diesel(version) => Origin::Diesel { version },
            Self::Refinery(version, checksum) => Origin::Refinery {
                version: *version,
                checksum: *checksum,
            },
            Self::Alembic(revision) => Origin::Alembic { revision },
        }
    }

    /// The version as the tool writes it, for names that have nothing better.
    fn version_text(&self) -> String {
        match self {
            Self::Sqlx(version, _) | Self::Refinery(version, _) => version.to_string(),
            Self::Diesel(version) | Self::Alembic(version) => version.clone(),
        }
    }
}

/// What a reader found in the source.
#[derive(Debug, Default)]
struct Found {
    migrations: Vec<SourceMigration>,
    skipped: Vec<Skipped>,
    problems: Vec<ImportProblem>,
}

/// Reads the source and plans the files, writing nothing.
pub fn plan(request: &ImportRequest) -> Result<ImportPlan, ImportError> {
    let found = match request.tool {
        Tool::Sqlx => sqlx::read(&request.source),
        Tool::Diesel => diesel::read(&request.source),
        Tool::Refinery => refinery::read(&request.source),
        Tool::Alembic => alembic::read(
            &request.source,
            request.alembic_downgrade.as_deref(),
            request.dialect.lexer(),
        ),
    }
    .map_err(|source| ImportError::Unreadable {
        tool: request.tool,
        path: request.source.display().to_string(),
        source,
    })?;
    if !found.problems.is_empty() {
        return Err(ImportError::Source {
            problems: found.problems,
        });
    }
    if found.migrations.is_empty() {
        return Err(ImportError::Empty {
            tool: request.tool,
            path: request.source.display().to_string(),
            skipped: found.skipped,
        });
    }
    let dates: Vec<_> = found.migrations.iter().map(|m| m.date).collect();
    let revisions = ids::assign(&dates, request.start, request.tool)?;

    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (mut migration, revision) in found.migrations.into_iter().zip(revisions) {
        if let Some(dated) = migration.date.filter(|&dated| dated != revision) {
            migration.notes.insert(0, Note::Moved { dated });
        }
        let summary = summary(request.tool, &migration);
        let file_name = naming::file_name(revision, &summary);
        let rendered = render::file(request.tool, &migration, request.dialect);
        match format::parse_file(&file_name, &file_name, rendered.text.as_bytes()) {
            Ok(_) => files.push(PlannedFile {
                sources: migration.files,
                revision,
                file_name,
                contents: rendered.text,
                notes: rendered.notes,
            }),
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .map(|problem| rendered.locate(&migration.source, problem)),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Source { problems });
    }
    Ok(ImportPlan {
        tool: request.tool,
        files,
        skipped: found.skipped,
    })
}

/// The summary of the file name: the source's description in calista's form, or the tool
/// and version when it has none in ASCII.
fn summary(tool: Tool, migration: &SourceMigration) -> String {
    let from_description = naming::suggest_summary(&migration.description);
    if from_description.is_empty() {
        naming::suggest_summary(&format!("{tool}_{}", migration.key.version_text()))
    } else {
        from_description
    }
}

/// Writes the planned files into `into` (created if missing), oldest first, and returns
/// their paths. Refuses, writing nothing, when a planned file exists or an existing
/// migration has one of the planned revision ids; if a write fails, the files written
/// before it are removed again.
pub fn write(plan: &ImportPlan, into: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let shown = into.display().to_string();
    let write_error = |path: &Path, source| ImportError::Write {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(into).map_err(|e| write_error(into, e))?;
    let entries = fs::read_dir(into).map_err(|e| write_error(into, e))?;
    let mut existing: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            let same_revision = naming::parse_file_name(name)
                .is_ok_and(|parsed| plan.files.iter().any(|f| f.revision == parsed.revision));
            same_revision || plan.files.iter().any(|f| &f.file_name == name)
        })
        .collect();
    if !existing.is_empty() {
        existing.sort();
        return Err(ImportError::Exists {
            into: shown,
            existing,
        });
    }
    let mut written = Vec::new();
    for file in &plan.files {
        let path = into.join(&file.file_name);
        let result = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut out| out.write_all(file.contents.as_bytes()));
        match result {
            Ok(()) => written.push(path),
            Err(error) => {
                // Only files this call created: `create_new` never opened anything else.
                if path.exists() && !written.contains(&path) {
                    let _ = fs::remove_file(&path);
                }
                for done in &written {
                    let _ = fs::remove_file(done);
                }
                return Err(write_error(&path, error));
            }
        }
    }
    Ok(written)
}

/// Reads a source file as text: its problem when it is not UTF-8; the UTF-8 byte-order
/// mark is left in (a tool that reads the file as a string keeps it too).
fn read_text(
    path: &Path,
    shown: &str,
    problems: &mut Vec<ImportProblem>,
) -> Option<(Vec<u8>, String)> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            problems.push(ImportProblem::new(
                shown,
                None,
                ImportProblemKind::Unreadable {
                    reason: error.to_string(),
                },
            ));
            return None;
        }
    };
    match String::from_utf8(bytes.clone()) {
        Ok(text) => Some((bytes, text)),
        Err(_) => {
            problems.push(ImportProblem::new(shown, None, ImportProblemKind::NotUtf8));
            None
        }
    }
}

/// The date a version made of 14 digits gives, `YYYYMMDDHHMMSS` (UTC), to the minute.
fn timestamp(version: &str) -> Option<Revision> {
    let digits = version.as_bytes();
    if digits.len() != 14 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    if number(12..14) > 59 {
        return None;
    }
    Revision::new(
        number(0..4),
        number(4..6),
        number(6..8),
        number(8..10),
        number(10..12),
    )
    .ok()
}

/// Files of a folder, sorted by name, as `(name, path)`; dotfiles left out, as every tool
/// does.
fn folder(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push((name, entry.path()));
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourteen_digit_versions_are_dates_to_the_minute() {
        assert_eq!(
            timestamp("20230101120059"),
            Some(Revision::parse("20230101_1200").unwrap())
        );
        for not_a_date in [
            "1",
            "2023010112000",
            "20231301120000",
            "20230101120060",
            "2023010112000x",
        ] {
            assert_eq!(timestamp(not_a_date), None, "{not_a_date}");
        }
    }

    #[test]
    fn names_fall_back_to_the_tool_and_version() {
        let migration = SourceMigration {
            key: Key::Alembic("1975EA83b712".into()),
            source: "upgrade.sql".into(),
            files: vec![],
            description: "—".into(),
            date: None,
            up: Sql {
                text: "SELECT 1;".into(),
                at: None,
            },
            down: None,
            no_transaction: false,
            notes: vec![],
        };
        assert_eq!(summary(Tool::Alembic, &migration), "alembic_1975ea83b712");
        let described = SourceMigration {
            description: "Create Users-Table".into(),
            ..migration
        };
        assert_eq!(summary(Tool::Alembic, &described), "create_users_table");
    }
}
