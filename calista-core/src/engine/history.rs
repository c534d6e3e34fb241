//! History written without running migrations (DESIGN §12): accepting an intended edit of
//! an applied migration (`repair`), recording what another tool applied (`adopt`), and
//! marking a database whose schema was compared as at a revision (`stamp`).
//!
//! Each decides from the state and the whole history read under the migration lock (pure
//! functions, table-tested), then writes its rows, and moves the version row where it
//! must, in one transaction: the same steps an upgrade records with.

pub use super::plan::{HistoryKind, HistoryRecord};
pub use super::stamp::Stamped;

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use super::migrator::{Engine, Migrator, Report};
use super::plan::{self, Assessment, Corruption, DbState, SchemaState};
use super::program::{Begin, Op, Program};
use super::run::Runner;
use crate::backend::ForeignRow;
use crate::backend::{Backend, NewRecord};
use crate::database::{Handle, OnBackend, Session};
use crate::error::Error;
use crate::migration::{Checksum, Direction, Migration, Migrations};
use crate::naming::Revision;
use crate::origin::{Origin, Tool};

/// Why history cannot be written as asked. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryRefusal {
    /// The revision is not one of this build's migrations.
    UnknownRevision(Revision),
    /// The migration to repair is not applied: there is no record to accept an edit of.
    NotApplied {
        /// Its file.
        file: String,
    },
    /// The migration to repair is applied as its file is now: nothing to accept.
    Unmodified {
        /// Its file.
        file: String,
    },
    /// Accepting the edit would still leave applied migrations that differ from their
    /// files, or are missing: each needs its own decision.
    OtherChanges {
        /// Other applied migrations whose files changed.
        changed: Vec<String>,
        /// Applied revisions this build does not have.
        missing: Vec<String>,
    },
    /// The database is in a state where history must not be written: the guard's verdict.
    Unsafe(Box<SchemaState>),
    /// The live schema differs from what the migrations up to the revision build.
    SchemaDiffers {
        /// The revision to stamp.
        revision: Revision,
        /// What differs: `-` only what the migrations build, `+` only the live database.
        differences: crate::schema::SchemaDiff,
    },
    /// The database is already at or past the revision to stamp.
    AlreadyAt {
        /// Where it is.
        current: Revision,
        /// The revision to stamp.
        revision: Revision,
    },
    /// No other tool's history table is there to adopt from.
    NotManaged,
    /// calista already records this database's migrations: there is nothing to adopt.
    AlreadyRecorded,
    /// The other tool recorded a migration as failed: its changes may be half made.
    ForeignFailed {
        /// The tool.
        tool: Tool,
        /// The version it recorded.
        version: String,
        /// The name it recorded, where it keeps one.
        name: Option<String>,
    },
    /// The other tool applied a migration that no file here imports.
    ForeignMissingHere {
        /// The tool.
        tool: Tool,
        /// The version it recorded.
        version: String,
        /// The name it recorded, where it keeps one.
        name: Option<String>,
    },
    /// The file that imports a migration differs from what the other tool applied: the
    /// checksums it kept differ.
    ForeignDiffers {
        /// The tool.
        tool: Tool,
        /// The version it recorded.
        version: String,
        /// The calista file.
        file: String,
    },
    /// A migration here sorts before one the other tool applied, but that tool did not
    /// apply it: recording the later ones would skip it.
    ForeignGap {
        /// The tool.
        tool: Tool,
        /// The file that was not applied there.
        file: String,
    },
}

impl fmt::Display for HistoryRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRevision(revision) => write!(
                f,
                "revision {revision} is not one of this build's migrations; the migration history lists them"
            ),
            Self::NotApplied { file } => write!(
                f,
                "{file} is not applied to this database, so there is no edit to accept: an upgrade applies it as it is"
            ),
            Self::Unmodified { file } => write!(
                f,
                "{file} is applied exactly as its file is now (formatting aside): nothing to repair"
            ),
            Self::OtherChanges { changed, missing } => {
                write!(
                    f,
                    "accepting this edit would still leave the database modified:"
                )?;
                if !changed.is_empty() {
                    write!(f, " changed since applied: {};", changed.join(", "))?;
                }
                if !missing.is_empty() {
                    write!(
                        f,
                        " applied but missing from this build: {};",
                        missing.join(", ")
                    )?;
                }
                write!(
                    f,
                    " accept each intended edit with its own repair (restore missing files first); nothing was changed"
                )
            }
            Self::SchemaDiffers {
                revision,
                differences,
            } => write!(
                f,
                "the live schema differs from what the migrations up to {revision} build \
                 (- only what they build, + only the database):\n{differences}\n\
                 Nothing was recorded: bring the schema in line, stamp an earlier revision, or force the stamp"
            ),
            Self::AlreadyAt { current, revision } => write!(
                f,
                "the database is already at {current}, at or past {revision}: nothing to stamp"
            ),
            Self::NotManaged => write!(
                f,
                "no other migration tool's history table (_sqlx_migrations, __diesel_schema_migrations, \
                 refinery_schema_history, alembic_version) is on the database's search path beside none of \
                 calista's: there is nothing to adopt"
            ),
            Self::AlreadyRecorded => write!(
                f,
                "calista already records this database's migrations: there is nothing to adopt; the history lists them"
            ),
            Self::ForeignFailed {
                tool,
                version,
                name,
            } => write!(
                f,
                "{tool} recorded migration {version}{} as failed: its changes may be half made. Finish or undo \
                 it with {tool} (or by hand, then mark it in {}), then adopt; nothing was changed",
                shown_name(name.as_deref()),
                tool.history_table()
            ),
            Self::ForeignMissingHere {
                tool,
                version,
                name,
            } => write!(
                f,
                "{tool} applied migration {version}{} but no file in the migrations imports it: import the \
                 complete folder (`db import --from {tool}`) and adopt again; nothing was changed",
                shown_name(name.as_deref())
            ),
            Self::ForeignDiffers {
                tool,
                version,
                file,
            } => write!(
                f,
                "{file} differs from the migration {version} that {tool} applied (the checksums differ): import \
                 it again from the files {tool} ran; nothing was changed"
            ),
            Self::ForeignGap { tool, file } => write!(
                f,
                "{tool} did not apply {file}, yet it applied later ones: adopting would skip it. Apply it with \
                 {tool} first, or give it a revision after the last one {tool} applied; nothing was changed"
            ),
            Self::Unsafe(state) => write!(
                f,
                "the database is {}: resolve that first (the guard says how); nothing was changed",
                state.name()
            ),
        }
    }
}

/// ` (name)`, or nothing.
fn shown_name(name: Option<&str>) -> String {
    name.map_or_else(String::new, |name| format!(" ({name})"))
}

/// What [`Migrator::adopt`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Adopted {
    /// The tool the migrations were adopted from.
    pub tool: Tool,
    /// Each migration recorded as applied, oldest first: its revision, its file, and the
    /// version the tool recorded it under.
    pub recorded: Vec<(Revision, String, String)>,
    /// The revision the database is at now (`None`: the tool had applied nothing).
    pub current: Option<Revision>,
    /// Where the tool's version table is calista's (Alembic's `alembic_version` on SQLite,
    /// or in the schema calista uses): the tool's revision its row held before it moved to
    /// calista's. `None`: the tool's table was only read.
    pub replaced_version: Option<String>,
}

/// What [`Migrator::repair`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repaired {
    /// The migration whose edit was accepted.
    pub revision: Revision,
    /// Its file.
    pub file: String,
    /// The checksum it was applied with.
    pub replaced: Checksum,
    /// Its file's checksum now, which the history holds from here on.
    pub checksum: Checksum,
}

/// Rows to write without running anything, and the version row's move (from, to), if any.
pub(crate) struct Entries {
    pub(crate) records: Vec<NewRecord>,
    pub(crate) version: Option<(Option<String>, Option<String>)>,
}

/// The migrations applied now by a replay of `history`: each revision with the checksum
/// its newest record holds.
fn applied(history: &[HistoryRecord]) -> HashMap<&str, Option<Checksum>> {
    let mut applied = HashMap::new();
    for record in history.iter().filter(|r| r.finished) {
        match record.direction {
            Direction::Up => {
                applied.insert(record.revision.as_str(), record.checksum);
            }
            Direction::Down => {
                applied.remove(record.revision.as_str());
            }
        }
    }
    applied
}

/// The guard's verdict from the state and the whole history.
fn verdict(migrations: &Migrations, state: &DbState, history: &[HistoryRecord]) -> SchemaState {
    match plan::assess(migrations, state) {
        Assessment::Decided(verdict) => verdict,
        Assessment::NeedsHistory => {
            plan::diagnose(migrations, super::migrator::current_of(state), history)
        }
    }
}

/// Decides a repair of `revision`: the position of the current revision and the checksum
/// the edit replaces. Pure: see the module's documentation.
pub(crate) fn plan_repair(
    migrations: &Migrations,
    state: &DbState,
    history: &[HistoryRecord],
    revision: Revision,
) -> Result<(usize, Checksum), HistoryRefusal> {
    let index = migrations
        .position(revision)
        .ok_or(HistoryRefusal::UnknownRevision(revision))?;
    let migration = &migrations.as_slice()[index];
    let file = || migration.file_name();
    let current = match verdict(migrations, state, history) {
        SchemaState::Modified { .. } | SchemaState::Corrupt(Corruption::HistoryMismatch { .. }) => {
            super::migrator::current_of(state).to_owned()
        }
        SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => match current {
            Some(current) => current.to_string(),
            None => return Err(HistoryRefusal::NotApplied { file: file() }),
        },
        other => return Err(HistoryRefusal::Unsafe(Box::new(other))),
    };
    let Some(current_index) = Revision::parse(&current)
        .ok()
        .and_then(|r| migrations.position(r))
    else {
        return Err(HistoryRefusal::Unsafe(Box::new(verdict(
            migrations, state, history,
        ))));
    };
    let replaced = match applied(history).get(revision.to_string().as_str()) {
        Some(Some(sum)) if index <= current_index => *sum,
        _ => return Err(HistoryRefusal::NotApplied { file: file() }),
    };
    if migration.matches_checksum(replaced) {
        return Err(HistoryRefusal::Unmodified { file: file() });
    }
    // What the guard would find with the edit accepted: nothing else may be wrong.
    let mut after = history.to_vec();
    after.push(HistoryRecord {
        checksum: Some(migration.checksum()),
        ..history_record(migration, HistoryKind::Repaired)
    });
    match plan::diagnose(migrations, &current, &after) {
        SchemaState::Corrupt(Corruption::HistoryMismatch { .. }) => Ok((current_index, replaced)),
        SchemaState::Modified { changed, missing } => Err(HistoryRefusal::OtherChanges {
            changed: changed.into_iter().map(|(_, file)| file).collect(),
            missing,
        }),
        other => Err(HistoryRefusal::Unsafe(Box::new(other))),
    }
}

/// The tool a database is adopted from: the guard's "managed by", read from the state.
pub(crate) fn adopted_tool(
    migrations: &Migrations,
    state: &DbState,
) -> Result<Tool, HistoryRefusal> {
    match plan::assess(migrations, state) {
        Assessment::Decided(SchemaState::Managed { tool }) => Ok(tool),
        _ if state.last.is_some() || !state.versions.as_deref().unwrap_or_default().is_empty() => {
            Err(HistoryRefusal::AlreadyRecorded)
        }
        _ => Err(HistoryRefusal::NotManaged),
    }
}

/// The version and checksum a file's `calista:imported` directive carries, as text, the
/// way [`ForeignRow`] holds them.
fn imported_as_text(origin: Origin<'_>) -> (String, Option<String>) {
    match origin {
        Origin::Sqlx { version, checksum } => (
            version.to_string(),
            Some(checksum.iter().map(|b| format!("{b:02x}")).collect()),
        ),
        Origin::Diesel { version } => (version.to_owned(), None),
        Origin::Refinery { version, checksum } => (version.to_string(), Some(checksum.to_string())),
        Origin::Alembic { revision } => (revision.to_owned(), None),
    }
}

/// Decides an adoption from `tool`'s `rows`: the positions of the migrations to record as
/// applied, oldest first, each with the version the tool recorded. Every row must have
/// succeeded and match a file that imports it (checksums compared where the tool kept one),
/// and the files they match must be the first ones of the set, without a gap. Alembic keeps
/// only its head revision: everything up to it is applied. Pure.
pub(crate) fn plan_adopt(
    migrations: &Migrations,
    tool: Tool,
    rows: &[ForeignRow],
) -> Result<Vec<(usize, String)>, HistoryRefusal> {
    let imported: HashMap<String, (usize, Option<String>)> = migrations
        .iter()
        .enumerate()
        .filter_map(|(index, migration)| {
            let origin = migration.imported()?.origin;
            (origin.tool() == tool).then(|| {
                let (version, checksum) = imported_as_text(origin);
                (version, (index, checksum))
            })
        })
        .collect();
    let mut applied = Vec::new();
    for row in rows {
        if !row.succeeded {
            return Err(HistoryRefusal::ForeignFailed {
                tool,
                version: row.version.clone(),
                name: row.name.clone(),
            });
        }
        let Some((index, checksum)) = imported.get(row.version.trim()) else {
            return Err(HistoryRefusal::ForeignMissingHere {
                tool,
                version: row.version.clone(),
                name: row.name.clone(),
            });
        };
        if let (Some(theirs), Some(ours)) = (&row.checksum, checksum)
            && theirs.trim() != ours
        {
            return Err(HistoryRefusal::ForeignDiffers {
                tool,
                version: row.version.clone(),
                file: migrations.as_slice()[*index].file_name(),
            });
        }
        applied.push((*index, row.version.trim().to_owned()));
    }
    applied.sort();
    if tool == Tool::Alembic
        && let Some(&(head, _)) = applied.last()
    {
        // Alembic keeps its head only; the imported revisions before it ran before it.
        let versions: HashMap<usize, &str> = imported
            .iter()
            .map(|(version, (index, _))| (*index, version.as_str()))
            .collect();
        applied = (0..=head)
            .filter_map(|i| versions.get(&i).map(|v| (i, (*v).to_owned())))
            .collect();
    }
    for (position, (index, _)) in applied.iter().enumerate() {
        if position != *index {
            return Err(HistoryRefusal::ForeignGap {
                tool,
                file: migrations.as_slice()[position].file_name(),
            });
        }
    }
    Ok(applied)
}

/// A finished `up` record of `migration`, for replaying a history with it added.
fn history_record(migration: &Migration, kind: HistoryKind) -> HistoryRecord {
    HistoryRecord {
        revision: migration.revision().to_string(),
        summary: migration.summary().to_owned(),
        direction: Direction::Up,
        finished: true,
        checksum: Some(migration.checksum()),
        chain: None,
        applied_at: String::new(),
        duration_ms: 0,
        app_version: String::new(),
        backup: None,
        kind,
        note: None,
        replaced_checksum: None,
    }
}

impl Migrator<'_> {
    /// Accepts an intended edit of the applied migration `revision`: records its file's
    /// checksum now beside the one it was applied with, when, and `reason`, so the guard
    /// passes again. Runs no migration. Refused when the migration is not applied, is
    /// unchanged, or other applied migrations differ too (each edit is accepted on its own).
    pub async fn repair(&self, revision: Revision, reason: &str) -> Result<Repaired, Error> {
        self.db
            .on_backend(Repair {
                migrator: self,
                revision,
                reason,
            })
            .await
    }
}

impl Migrator<'_> {
    /// Adopts a database another migration tool manages (sqlx, diesel, refinery, Alembic):
    /// records the imported migrations that tool applied as applied, comparing checksums
    /// where it kept them, and runs none of their SQL. The tool's own table is only read, so
    /// going back to it stays possible (except where its table is calista's version table:
    /// Alembic's `alembic_version` on SQLite, whose row moves to calista's revision; the
    /// Alembic revision is kept in the history's note). Refused, naming the migration, when
    /// the tool recorded one as failed, one differs from its file, or one has no file here.
    pub async fn adopt(&self) -> Result<Adopted, Error> {
        self.db.on_backend(Adopt { migrator: self }).await
    }
}

struct Adopt<'m> {
    migrator: &'m Migrator<'m>,
}

impl OnBackend for Adopt<'_> {
    type Output = Adopted;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        let engine = Engine::new(self.migrator, handle);
        let migrations = self.migrator.migrations;
        // The tool's rows are read first, on the guard's connection: a read only.
        let state = handle.read_state().await?;
        let tool = adopted_tool(migrations, &state)?;
        let rows = handle.read_foreign(tool).await?;
        let applied = plan_adopt(migrations, tool, &rows)?;
        engine
            .record_under_lock(|state, _history| {
                // Under the lock, the state must still be the tool's alone.
                if adopted_tool(migrations, state)? != tool {
                    return Err(HistoryRefusal::NotManaged.into());
                }
                let records = applied
                    .iter()
                    .map(|(index, version)| {
                        let mut record =
                            engine.entry(&migrations.as_slice()[*index], HistoryKind::Adopted);
                        record.note = Some(format!("{tool} {version}"));
                        record
                    })
                    .collect();
                let current = applied
                    .last()
                    .map(|(index, _)| migrations.as_slice()[*index].revision());
                let from = state.versions.as_ref().and_then(|v| v.first()).cloned();
                let to = current.map(|r| r.to_string());
                let adopted = Adopted {
                    tool,
                    recorded: applied
                        .iter()
                        .map(|(index, version)| {
                            let migration = &migrations.as_slice()[*index];
                            (migration.revision(), migration.file_name(), version.clone())
                        })
                        .collect(),
                    current,
                    replaced_version: from.clone().filter(|f| Some(f) != to.as_ref()),
                };
                let entries = Entries {
                    records,
                    version: (from != to).then_some((from, to)),
                };
                Ok((entries, adopted))
            })
            .await
    }
}

struct Repair<'m> {
    migrator: &'m Migrator<'m>,
    revision: Revision,
    reason: &'m str,
}

impl OnBackend for Repair<'_> {
    type Output = Repaired;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        let engine = Engine::new(self.migrator, handle);
        let migrations = self.migrator.migrations;
        let (revision, reason) = (self.revision, self.reason);
        engine
            .record_under_lock(|state, history| {
                let (current, replaced) = plan_repair(migrations, state, history, revision)?;
                let Some(migration) = migrations.get(revision) else {
                    return Err(HistoryRefusal::UnknownRevision(revision).into());
                };
                let mut record = engine.entry(migration, HistoryKind::Repaired);
                record.chain = migrations.chain_at(current);
                record.note = Some(reason.to_owned());
                record.replaced_checksum = Some(replaced);
                let repaired = Repaired {
                    revision,
                    file: migration.file_name(),
                    replaced,
                    checksum: migration.checksum(),
                };
                let entries = Entries {
                    records: vec![record],
                    version: None,
                };
                Ok((entries, repaired))
            })
            .await
    }
}

impl<B: Backend> Engine<'_, B> {
    /// A finished `up` row of `migration` written without running it: its checksum, the
    /// chain at it, its down SQL, `kind`.
    pub(crate) fn entry(&self, migration: &Migration, kind: HistoryKind) -> NewRecord {
        let migrations = self.migrator.migrations;
        NewRecord {
            revision: migration.revision().to_string(),
            summary: migration.summary().to_owned(),
            direction: Direction::Up,
            finished: true,
            checksum: migration.checksum(),
            chain: migrations
                .position(migration.revision())
                .and_then(|i| migrations.chain_at(i)),
            duration_ms: 0,
            app_version: self.migrator.app_version_text(),
            backup: None,
            down_sql: (!migration.irreversible())
                .then(|| migration.script(Direction::Down, B::DIALECT).into_owned()),
            attempts: 1,
            kind,
            note: None,
            replaced_checksum: None,
        }
    }

    /// Under the migration lock, reads the state and the whole history, lets `decide` say
    /// what to write (or refuse), and writes it in one transaction, bringing our tables to
    /// this build's layout first.
    pub(crate) async fn record_under_lock<T>(
        &self,
        decide: impl FnOnce(&DbState, &[HistoryRecord]) -> Result<(Entries, T), Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut report = Report::new(Direction::Up);
        let mut outcome = None;
        self.locked(&mut report, started, async |session, report| {
            session.begin_round().await?;
            let state = self
                .backend()
                .read_state_in_transaction(session.conn())
                .await?;
            // Only a history table that is there is read: a query on a missing one would
            // abort the transaction the lock may be.
            let history = if state.tables_present || state.last.is_some() {
                self.backend().read_history(session.conn()).await?
            } else {
                Vec::new()
            };
            let (entries, value) = decide(&state, &history)?;
            outcome = Some(value);
            self.write_entries(session, report, &state, entries).await
        })
        .await?;
        outcome.ok_or(Error::Internal(
            "a history edit that succeeded recorded nothing",
        ))
    }

    async fn write_entries(
        &self,
        session: &mut Session<'_, B>,
        report: &mut Report,
        state: &DbState,
        entries: Entries,
    ) -> Result<(), Error> {
        let mut ops: Vec<Op> = if state.tables_present {
            self.backend()
                .missing_history_columns(session.conn())
                .await?
                .into_iter()
                .map(Op::AddHistoryColumn)
                .collect()
        } else {
            Vec::new()
        };
        ops.push(Op::Begin(Begin::Write));
        if !state.tables_present {
            ops.push(Op::CreateTables { absent: false });
        }
        ops.push(Op::RecordEntries(entries.records));
        if let Some((from, to)) = entries.version {
            ops.push(Op::MoveVersion { from, to });
        }
        ops.push(Op::Commit);
        let program = Program {
            direction: Direction::Up,
            ops,
        };
        Runner::new(self, session, report, None).run(&program).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_file;

    const BODY: &str = "-- calista:up\nSELECT 1;\n-- calista:down\nSELECT 2;\n";
    const EDITED: &str =
        "-- calista:up\nSELECT 1; -- now with a comment\n-- calista:down\nSELECT 2;\n";

    fn set(bodies: &[&str]) -> Migrations {
        let migrations = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let name = format!("2025010{}_0000_m{i}.sql", i + 1);
                parse_file(&name, &name, body.as_bytes()).unwrap()
            })
            .collect();
        Migrations::new(migrations, None)
    }

    fn rev(i: usize) -> Revision {
        Revision::parse(&format!("2025010{}_0000", i + 1)).unwrap()
    }

    /// The history and state after `migrations[..=last]` were applied.
    fn applied_through(migrations: &Migrations, last: usize) -> (DbState, Vec<HistoryRecord>) {
        let history: Vec<_> = (0..=last)
            .map(|i| {
                let m = &migrations.as_slice()[i];
                HistoryRecord {
                    chain: migrations.chain_at(i),
                    ..history_record(m, HistoryKind::Applied)
                }
            })
            .collect();
        let state = DbState {
            versions: Some(vec![rev(last).to_string()]),
            last: history.last().cloned(),
            tables_present: true,
            managed_by: None,
        };
        (state, history)
    }

    #[test]
    fn an_edited_applied_migration_is_repaired_with_the_checksum_it_was_applied_with() {
        let before = set(&[BODY, BODY, BODY]);
        let (state, history) = applied_through(&before, 2);
        let after = set(&[BODY, EDITED, BODY]);
        let (current, replaced) = plan_repair(&after, &state, &history, rev(1)).unwrap();
        assert_eq!(current, 2);
        assert_eq!(replaced, before.as_slice()[1].checksum());
    }

    #[test]
    fn a_lost_version_row_after_a_repair_names_the_revision_the_database_is_at() {
        let m = set(&[BODY, BODY, BODY]);
        let (_, history) = applied_through(&m, 2);
        let repair = HistoryRecord {
            chain: m.chain_at(2),
            ..history_record(&m.as_slice()[0], HistoryKind::Repaired)
        };
        let state = DbState {
            versions: Some(Vec::new()),
            last: Some(repair),
            tables_present: true,
            managed_by: None,
        };
        assert_eq!(
            verdict(&m, &state, &history),
            SchemaState::Corrupt(Corruption::NoVersionRow {
                last_applied: rev(2).to_string()
            })
        );
    }

    #[test]
    fn an_unchanged_or_unapplied_migration_has_nothing_to_repair() {
        let m = set(&[BODY, BODY, BODY]);
        let (state, history) = applied_through(&m, 1);
        assert!(matches!(
            plan_repair(&m, &state, &history, rev(1)),
            Err(HistoryRefusal::Unmodified { .. })
        ));
        assert!(matches!(
            plan_repair(&m, &state, &history, rev(2)),
            Err(HistoryRefusal::NotApplied { .. })
        ));
        let unknown = Revision::parse("20300101_0000").unwrap();
        assert_eq!(
            plan_repair(&m, &state, &history, unknown),
            Err(HistoryRefusal::UnknownRevision(unknown))
        );
    }

    /// A file imported from Alembic revision `id`.
    fn alembic(id: &str) -> String {
        format!("-- calista:imported alembic {id} -- upgrade.sql\n{BODY}")
    }

    fn row(version: &str) -> ForeignRow {
        ForeignRow {
            version: version.to_owned(),
            name: None,
            succeeded: true,
            checksum: None,
        }
    }

    #[test]
    fn alembics_head_stands_for_every_imported_revision_before_it() {
        let m = set(&[&alembic("aaa"), &alembic("bbb"), &alembic("ccc"), BODY]);
        let applied = plan_adopt(&m, Tool::Alembic, &[row("bbb")]).unwrap();
        assert_eq!(applied, [(0, "aaa".to_owned()), (1, "bbb".to_owned())]);
        assert!(matches!(
            plan_adopt(&m, Tool::Alembic, &[row("zzz")]),
            Err(HistoryRefusal::ForeignMissingHere { version, .. }) if version == "zzz"
        ));
    }

    #[test]
    fn a_migration_here_that_the_tool_skipped_is_a_gap_named_by_its_file() {
        let diesel = |v: &str| format!("-- calista:imported diesel {v} -- {v}_x/up.sql\n{BODY}");
        let m = set(&[&diesel("1"), BODY, &diesel("3")]);
        match plan_adopt(&m, Tool::Diesel, &[row("1"), row("3")]) {
            Err(HistoryRefusal::ForeignGap { file, .. }) => {
                assert_eq!(file, "20250102_0000_m1.sql")
            }
            other => panic!("{other:?}"),
        }
        // What the tool has not applied yet stays pending.
        assert_eq!(
            plan_adopt(&m, Tool::Diesel, &[row("1")]).unwrap(),
            [(0, "1".to_owned())]
        );
    }

    #[test]
    fn a_repair_is_refused_while_another_applied_migration_differs_too() {
        let before = set(&[BODY, BODY, BODY]);
        let (state, history) = applied_through(&before, 2);
        let after = set(&[EDITED, EDITED, BODY]);
        match plan_repair(&after, &state, &history, rev(1)) {
            Err(HistoryRefusal::OtherChanges { changed, missing }) => {
                assert_eq!(changed, ["20250101_0000_m0.sql"]);
                assert!(missing.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
