//! Planning, pure: from (migrations, database state) to a verdict and a plan, or a refusal.
//!
//! Nothing here touches a database, so every state of the guard is table-tested.

use std::collections::HashMap;

use crate::migration::{Checksum, Direction, Migrations};
use crate::naming::Revision;
use crate::origin::Tool;

/// What the guard reads from the database: the version table and the newest history row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DbState {
    /// The rows of `alembic_version` (at most two are read); `None` when the table is missing.
    pub versions: Option<Vec<String>>,
    /// The newest `schema_history` row; `None` when the table is missing or empty.
    pub last: Option<HistoryRecord>,
    /// Whether both tables exist.
    pub tables_present: bool,
    /// Another migration tool's history table, found when ours are missing: the database
    /// is that tool's until `db adopt` records what it applied.
    pub managed_by: Option<Tool>,
}

impl DbState {
    /// A database with none of the migration tables.
    pub(crate) fn empty() -> Self {
        Self::default()
    }
}

/// One row of `schema_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// The migration's revision.
    pub revision: String,
    /// The migration's summary.
    pub summary: String,
    /// `up` or `down`.
    pub direction: Direction,
    /// Whether it finished; `false` only for a no-transaction migration that started and
    /// has not (yet) finished.
    pub finished: bool,
    /// The file's checksum.
    pub checksum: Option<Checksum>,
    /// The chained digest of every migration applied after this row (`None`: at base).
    pub chain: Option<Checksum>,
    /// When it ran, UTC, ISO 8601.
    pub applied_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// The version of the application that ran it.
    pub app_version: String,
    /// The backup taken before the upgrade it was part of.
    pub backup: Option<String>,
    /// How the row came to be: a migration run, or a record written without running one.
    pub kind: HistoryKind,
    /// Why, for a row written without running a migration (a repair's reason, the tool a
    /// migration was adopted from, a stamp's forcing).
    pub note: Option<String>,
    /// For a repair: the checksum the migration was applied with, which the new one
    /// replaces.
    pub replaced_checksum: Option<Checksum>,
}

/// How a history row came to be. Rows written by a build that predates the column read
/// as [`HistoryKind::Applied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HistoryKind {
    /// The migration ran (up or down).
    #[default]
    Applied,
    /// Another tool ran it; `db adopt` recorded it as applied without running it.
    Adopted,
    /// `db stamp` recorded it as applied, after comparing the live schema.
    Stamped,
    /// `db repair` accepted an edit of the applied migration: its new checksum.
    Repaired,
    /// A baseline ran (`db squash`): it stands for the migrations it replaced.
    Baseline,
}

impl HistoryKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Applied,
        Self::Adopted,
        Self::Stamped,
        Self::Repaired,
        Self::Baseline,
    ];

    /// The word `schema_history.kind` holds.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Adopted => "adopted",
            Self::Stamped => "stamped",
            Self::Repaired => "repaired",
            Self::Baseline => "baseline",
        }
    }

    /// The kind a stored word names; an unknown word (a newer build's) reads as `None`.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == word)
    }
}

impl std::fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guard's verdict on a database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaState {
    /// At the newest embedded revision: the command runs.
    UpToDate {
        /// The current revision (`None` only when there are no migrations at all).
        current: Option<Revision>,
    },
    /// Migrations are pending (an empty database is behind too).
    Behind {
        /// The current revision, `None` for an empty database.
        current: Option<Revision>,
        /// The newest embedded revision.
        head: Revision,
        /// How many migrations are pending.
        pending: usize,
    },
    /// The database is at a revision this build does not know.
    Ahead {
        /// The revision in `alembic_version`.
        current: String,
        /// The application version that applied it, from the history.
        applied_by: Option<String>,
    },
    /// Applied migrations differ from the embedded ones.
    Modified {
        /// Applied migrations whose file has changed since: (revision, file name).
        changed: Vec<(Revision, String)>,
        /// Applied revisions this build does not have at all (deleted or renamed files).
        missing: Vec<String>,
    },
    /// Embedded migrations older than the current revision were never applied.
    OutOfOrder {
        /// The current revision.
        current: Revision,
        /// The migrations that were merged late: (revision, file name).
        unapplied: Vec<(Revision, String)>,
    },
    /// A no-transaction migration started and did not finish.
    Interrupted {
        /// Its revision.
        revision: Revision,
        /// Its summary.
        summary: String,
        /// When it started, UTC.
        started_at: String,
        /// `up` or `down`.
        direction: Direction,
    },
    /// The version table does not make sense: edited by hand, or damaged.
    Corrupt(Corruption),
    /// The database is at a migration that a baseline replaced (`db squash`): this build
    /// cannot upgrade it; the release that squashed it away can.
    BelowBaseline {
        /// The revision in `alembic_version`.
        current: Revision,
        /// The last migration the baseline replaced.
        through: Revision,
        /// The oldest release that still has the replaced migrations.
        release: String,
    },
    /// Another migration tool manages the database and calista has recorded nothing yet:
    /// adopting it records what that tool applied. An upgrade never does that on its own.
    Managed {
        /// The tool.
        tool: Tool,
    },
}

impl SchemaState {
    /// Whether commands may run against the database as it is.
    pub fn is_up_to_date(&self) -> bool {
        matches!(self, Self::UpToDate { .. })
    }

    /// The current revision, when it is one this build knows.
    pub fn current(&self) -> Option<Revision> {
        match self {
            Self::OutOfOrder { current, .. } => Some(*current),
            Self::UpToDate { current } | Self::Behind { current, .. } => *current,
            _ => None,
        }
    }

    /// A one-word name for the state, as `calista db status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UpToDate { .. } => "up to date",
            Self::Behind { .. } => "behind",
            Self::Ahead { .. } => "ahead",
            Self::Modified { .. } => "modified",
            Self::OutOfOrder { .. } => "out of order",
            Self::Interrupted { .. } => "interrupted",
            Self::Corrupt(_) => "corrupt",
            Self::Managed { .. } => "managed by another tool",
            Self::BelowBaseline { .. } => "below the baseline",
        }
    }
}

/// What is wrong with a version table that cannot be read as a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// `alembic_version` has no row, but the history says a migration is applied.
    NoVersionRow {
        /// The revision the history leaves the schema at: the one to put back.
        last_applied: String,
    },
    /// `alembic_version` has more than one row.
    SeveralVersionRows {
        /// The rows found (at most two are read).
        found: Vec<String>,
    },
    /// The history's chained digests do not match any explanation.
    HistoryMismatch {
        /// The current revision.
        current: Revision,
    },
}

/// The guard's first look: a verdict, or "read the whole history to say what is wrong".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Assessment {
    /// The verdict.
    Decided(SchemaState),
    /// Something differs; [`diagnose`] says what, from the whole history.
    NeedsHistory,
}

/// Decides the state from the version table and the newest history row only, so an
/// up-to-date check costs the same however many migrations exist.
pub(crate) fn assess(migrations: &Migrations, state: &DbState) -> Assessment {
    use Assessment::{Decided, NeedsHistory};

    if let Some((last, revision)) = state
        .last
        .as_ref()
        .filter(|last| !last.finished)
        .and_then(|last| Some((last, Revision::parse(&last.revision).ok()?)))
    {
        return Decided(SchemaState::Interrupted {
            revision,
            summary: last.summary.clone(),
            started_at: last.applied_at.clone(),
            direction: last.direction,
        });
    }
    let versions = state.versions.as_deref().unwrap_or_default();
    if let Some(tool) = managed_by(state) {
        return Decided(SchemaState::Managed { tool });
    }
    let current = match versions {
        [] => {
            return match &state.last {
                Some(last) if last.chain.is_some() => Decided(no_version_row(migrations, last)),
                _ => Decided(behind(migrations, None)),
            };
        }
        [one] => one,
        several => {
            return Decided(SchemaState::Corrupt(Corruption::SeveralVersionRows {
                found: several.to_vec(),
            }));
        }
    };
    let Some(index) = Revision::parse(current)
        .ok()
        .and_then(|r| migrations.position(r))
    else {
        // Only a revision this build lacks pays for looking at the files' directives.
        if let Some(below) = Revision::parse(current)
            .ok()
            .and_then(|r| below_baseline(migrations, r))
        {
            return Decided(below);
        }
        return match &state.last {
            Some(last) if last.revision == *current && last.direction == Direction::Up => {
                Decided(SchemaState::Ahead {
                    current: current.clone(),
                    applied_by: Some(last.app_version.clone()),
                })
            }
            Some(_) => NeedsHistory,
            None => Decided(SchemaState::Ahead {
                current: current.clone(),
                applied_by: None,
            }),
        };
    };
    // A database whose history table is missing or empty (made by an earlier tool, or
    // with its history removed) has nothing to verify against; the version table decides.
    let verified = match &state.last {
        None => true,
        Some(last) => migrations.matches_chain_at(index, last.chain),
    };
    if !verified {
        return NeedsHistory;
    }
    Decided(behind(migrations, Some(index)))
}

/// The verdict on a database at `current`, a migration a baseline replaced.
fn below_baseline(migrations: &Migrations, current: Revision) -> Option<SchemaState> {
    let (_, baseline) = migrations.baseline_replacing(current)?;
    Some(SchemaState::BelowBaseline {
        current,
        through: baseline.through,
        release: baseline.release.to_owned(),
    })
}

/// The tool that manages a database calista has recorded nothing in: one whose history
/// table is there, or, where calista's version table is Alembic's (SQLite, or the schema
/// `public`), a version row that is no revision of ours, with no history of ours.
fn managed_by(state: &DbState) -> Option<Tool> {
    if state.last.is_some() || state.tables_present {
        return None;
    }
    match state.versions.as_deref().unwrap_or_default() {
        [] => state.managed_by,
        [one] if Revision::parse(one).is_err() => Some(Tool::Alembic),
        _ => None,
    }
}

/// An empty version table beside a history that leaves the schema at some revision: the
/// newest row's own revision after an upgrade; after a downgrade, the revision before it,
/// which its chained digest identifies. A downgrade of a revision this build does not know
/// is the work of a newer build: that build must look at it.
fn no_version_row(migrations: &Migrations, last: &HistoryRecord) -> SchemaState {
    let by_chain = migrations
        .chains()
        .iter()
        .position(|chain| Some(*chain) == last.chain)
        .map(|i| migrations.as_slice()[i].revision().to_string());
    // A row written without running its migration (a repair) names that migration, not the
    // revision the database is at: its chained digest says where that is.
    let at = match last.direction {
        Direction::Up => by_chain.or_else(|| Some(last.revision.clone())),
        Direction::Down => by_chain,
    };
    match at {
        Some(last_applied) => SchemaState::Corrupt(Corruption::NoVersionRow { last_applied }),
        None => SchemaState::Ahead {
            current: last.revision.clone(),
            applied_by: Some(last.app_version.clone()),
        },
    }
}

/// The state when the history checks out: up to date, or behind by what follows `index`.
fn behind(migrations: &Migrations, index: Option<usize>) -> SchemaState {
    let applied = index.map_or(0, |i| i + 1);
    let current = index.map(|i| migrations.as_slice()[i].revision());
    match migrations.head() {
        Some(head) if applied < migrations.len() => SchemaState::Behind {
            current,
            head: head.revision(),
            pending: migrations.len() - applied,
        },
        _ => SchemaState::UpToDate { current },
    }
}

/// Says what is wrong when [`assess`] found a difference, from the whole history
/// (oldest row first). Runs only on that failure path.
pub(crate) fn diagnose(
    migrations: &Migrations,
    current: &str,
    history: &[HistoryRecord],
) -> SchemaState {
    // Replay the history: what is applied now, with the checksum it was applied with.
    let mut applied: HashMap<&str, Option<Checksum>> = HashMap::new();
    let mut applied_by: HashMap<&str, &str> = HashMap::new();
    for record in history.iter().filter(|r| r.finished) {
        match record.direction {
            Direction::Up => {
                applied.insert(&record.revision, record.checksum);
                applied_by.insert(&record.revision, &record.app_version);
            }
            Direction::Down => {
                applied.remove(record.revision.as_str());
            }
        }
    }
    let Some(current_revision) = Revision::parse(current)
        .ok()
        .filter(|r| migrations.position(*r).is_some())
    else {
        return SchemaState::Ahead {
            current: current.to_owned(),
            applied_by: applied_by.get(current).map(|v| (*v).to_owned()),
        };
    };

    let mut changed = Vec::new();
    let mut unapplied = Vec::new();
    for migration in migrations
        .iter()
        .take_while(|m| m.revision() <= current_revision)
    {
        // A baseline stands for the files it replaced, whatever they were recorded with.
        if let Some(baseline) = migration.baseline() {
            let replaced: Vec<&str> = applied
                .keys()
                .copied()
                .filter(|r| Revision::parse(r).is_ok_and(|r| baseline.covers(r)))
                .collect();
            if replaced.is_empty() {
                unapplied.push((migration.revision(), migration.file_name()));
            }
            for revision in replaced {
                applied.remove(revision);
            }
            continue;
        }
        match applied.remove(migration.revision().to_string().as_str()) {
            None => unapplied.push((migration.revision(), migration.file_name())),
            Some(Some(sum)) if !migration.matches_checksum(sum) => {
                changed.push((migration.revision(), migration.file_name()))
            }
            Some(_) => {}
        }
    }
    let mut missing: Vec<String> = applied.into_keys().map(str::to_owned).collect();
    missing.sort();
    if !changed.is_empty() || !missing.is_empty() {
        SchemaState::Modified { changed, missing }
    } else if !unapplied.is_empty() {
        SchemaState::OutOfOrder {
            current: current_revision,
            unapplied,
        }
    } else {
        SchemaState::Corrupt(Corruption::HistoryMismatch {
            current: current_revision,
        })
    }
}

/// How transactional migrations are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransactionMode {
    /// All pending migrations in one transaction: a failure leaves the database exactly
    /// at the revision it started from.
    #[default]
    All,
    /// One transaction per migration: a failure keeps the migrations before it.
    Each,
}

/// A group of migrations that run together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Positions in the migration set, run in one transaction, in this order.
    Transaction(Vec<usize>),
    /// One no-transaction migration, run alone.
    Alone(usize),
}

/// Where an upgrade stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpgradeTarget {
    /// The newest embedded revision.
    #[default]
    Head,
    /// A given revision (inclusive).
    Revision(Revision),
}

/// Where a downgrade stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DowngradeTarget {
    /// Back to this revision, which stays applied.
    Revision(Revision),
    /// Revert this many migrations (`-1` is one step).
    Steps(usize),
    /// Revert everything.
    Base,
}

impl std::str::FromStr for DowngradeTarget {
    type Err = crate::naming::NameError;

    /// Parses `base`, `-N`, or a revision id.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "base" {
            return Ok(Self::Base);
        }
        if let Some(steps) = text.strip_prefix('-').and_then(|n| n.parse::<usize>().ok()) {
            return Ok(Self::Steps(steps));
        }
        Revision::parse(text).map(Self::Revision)
    }
}

/// A plan: which migrations run, which way, grouped into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Up or down.
    pub direction: Direction,
    /// The revision before.
    pub from: Option<Revision>,
    /// The revision after (`None`: base).
    pub to: Option<Revision>,
    /// The batches, in order.
    pub batches: Vec<Batch>,
}

impl Plan {
    /// Whether there is nothing to run.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The positions of every migration that runs, in order.
    pub(crate) fn steps(&self) -> impl Iterator<Item = usize> + '_ {
        self.batches.iter().flat_map(|b| match b {
            Batch::Transaction(steps) => steps.clone(),
            Batch::Alone(step) => vec![*step],
        })
    }
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanRefusal {
    /// The target revision is not in this build.
    UnknownTarget(Revision),
    /// The upgrade target is older than the current revision.
    TargetBehindCurrent {
        /// The target.
        target: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The downgrade target is newer than the current revision.
    TargetAheadOfCurrent {
        /// The target.
        target: Revision,
        /// The current revision (`None`: base).
        current: Option<Revision>,
    },
    /// An irreversible migration is in the way of a downgrade.
    Irreversible {
        /// Its file name.
        file: String,
    },
    /// More steps requested than there are applied migrations.
    TooManySteps {
        /// Requested.
        requested: usize,
        /// Applied.
        applied: usize,
    },
}

impl std::fmt::Display for PlanRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownTarget(revision) => {
                write!(
                    f,
                    "revision {revision} is not one of this build's migrations; the migration history lists them"
                )
            }
            Self::TargetBehindCurrent { target, current } => write!(
                f,
                "the database is already at {current}, past {target}; to go back, downgrade to {target} \
                 (development and CI only)"
            ),
            Self::TargetAheadOfCurrent { target, current } => write!(
                f,
                "the database is at {}, before {target}: a downgrade only goes back; upgrade to {target} instead",
                current.map_or_else(|| "base (empty)".to_owned(), |c| c.to_string())
            ),
            Self::Irreversible { file } => write!(
                f,
                "the downgrade would revert {file}, which is marked irreversible; nothing was changed. \
                 Choose a target after it, or restore a backup"
            ),
            Self::TooManySteps { requested, applied } => write!(
                f,
                "cannot go back {requested} migrations: only {applied} are applied; use `base` to revert them all"
            ),
        }
    }
}

/// Plans an upgrade from `current` (position of the current revision; `None`: empty).
pub(crate) fn plan_upgrade(
    migrations: &Migrations,
    current: Option<usize>,
    target: UpgradeTarget,
    mode: TransactionMode,
) -> Result<Plan, PlanRefusal> {
    let first = current.map_or(0, |i| i + 1);
    let last = match target {
        UpgradeTarget::Head => migrations.len(),
        UpgradeTarget::Revision(revision) => {
            let position = migrations
                .position(revision)
                .ok_or(PlanRefusal::UnknownTarget(revision))?;
            if let Some(current) = current.filter(|c| position < *c) {
                return Err(PlanRefusal::TargetBehindCurrent {
                    target: revision,
                    current: migrations.as_slice()[current].revision(),
                });
            }
            position + 1
        }
    };
    let revision_at = |i: Option<usize>| i.map(|i| migrations.as_slice()[i].revision());
    Ok(Plan {
        direction: Direction::Up,
        from: revision_at(current),
        to: if last > first {
            revision_at(Some(last - 1))
        } else {
            revision_at(current)
        },
        batches: batches(migrations, (first..last).collect(), mode),
    })
}

/// Plans a downgrade from `current` (position of the current revision; `None`: empty).
/// An irreversible migration in the way refuses the whole plan.
pub(crate) fn plan_downgrade(
    migrations: &Migrations,
    current: Option<usize>,
    target: DowngradeTarget,
    mode: TransactionMode,
) -> Result<Plan, PlanRefusal> {
    let applied = current.map_or(0, |i| i + 1);
    // Positions >= keep are reverted.
    let keep = match target {
        DowngradeTarget::Base => 0,
        DowngradeTarget::Steps(steps) if steps > applied => {
            return Err(PlanRefusal::TooManySteps {
                requested: steps,
                applied,
            });
        }
        DowngradeTarget::Steps(steps) => applied - steps,
        DowngradeTarget::Revision(revision) => {
            let position = migrations
                .position(revision)
                .ok_or(PlanRefusal::UnknownTarget(revision))?;
            if position + 1 > applied {
                return Err(PlanRefusal::TargetAheadOfCurrent {
                    target: revision,
                    current: current.map(|c| migrations.as_slice()[c].revision()),
                });
            }
            position + 1
        }
    };
    let steps: Vec<usize> = (keep..applied).rev().collect();
    if let Some(blocked) = steps
        .iter()
        .map(|&i| &migrations.as_slice()[i])
        .find(|m| m.irreversible())
    {
        return Err(PlanRefusal::Irreversible {
            file: blocked.file_name(),
        });
    }
    let revision_at = |i: usize| migrations.as_slice()[i].revision();
    Ok(Plan {
        direction: Direction::Down,
        from: current.map(revision_at),
        to: keep.checked_sub(1).map(revision_at),
        batches: batches(migrations, steps, mode),
    })
}

/// Groups steps: consecutive transactional migrations share a transaction (mode `All`),
/// and each no-transaction migration runs alone.
fn batches(migrations: &Migrations, steps: Vec<usize>, mode: TransactionMode) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut together = Vec::new();
    for step in steps {
        if migrations.as_slice()[step].no_transaction() {
            if !together.is_empty() {
                out.push(Batch::Transaction(std::mem::take(&mut together)));
            }
            out.push(Batch::Alone(step));
        } else if mode == TransactionMode::Each {
            out.push(Batch::Transaction(vec![step]));
        } else {
            together.push(step);
        }
    }
    if !together.is_empty() {
        out.push(Batch::Transaction(together));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_file;

    const BODY: &str = "-- calista:up\nSELECT 1;\n-- calista:down\nSELECT 2;\n";

    fn set(files: &[(&str, &str)]) -> Migrations {
        let migrations = files
            .iter()
            .map(|(name, body)| parse_file(name, name, body.as_bytes()).unwrap())
            .collect();
        Migrations::new(migrations, None)
    }

    fn three() -> Migrations {
        set(&[
            ("20250101_0000_a.sql", BODY),
            ("20250102_0000_b.sql", BODY),
            ("20250103_0000_c.sql", BODY),
        ])
    }

    fn rev(text: &str) -> Revision {
        Revision::parse(text).unwrap()
    }

    /// The state a database is in after `migrations[..=index]` were applied by calista.
    fn at(migrations: &Migrations, index: usize) -> DbState {
        let m = &migrations.as_slice()[index];
        DbState {
            versions: Some(vec![m.revision().to_string()]),
            last: Some(record(migrations, index, Direction::Up)),
            tables_present: true,
            managed_by: None,
        }
    }

    fn record(migrations: &Migrations, index: usize, direction: Direction) -> HistoryRecord {
        let m = &migrations.as_slice()[index];
        HistoryRecord {
            revision: m.revision().to_string(),
            summary: m.summary().to_owned(),
            direction,
            finished: true,
            checksum: Some(m.checksum()),
            chain: match direction {
                Direction::Up => migrations.chain_at(index),
                Direction::Down => index.checked_sub(1).and_then(|i| migrations.chain_at(i)),
            },
            applied_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: 1,
            app_version: "1.2.3".into(),
            backup: None,
            kind: HistoryKind::Applied,
            note: None,
            replaced_checksum: None,
        }
    }

    fn decided(migrations: &Migrations, state: &DbState) -> SchemaState {
        match assess(migrations, state) {
            Assessment::Decided(state) => state,
            Assessment::NeedsHistory => panic!("expected a verdict"),
        }
    }

    #[test]
    fn up_to_date_at_head() {
        let m = three();
        assert_eq!(
            decided(&m, &at(&m, 2)),
            SchemaState::UpToDate {
                current: Some(rev("20250103_0000"))
            }
        );
        let none = set(&[]);
        assert_eq!(
            decided(&none, &DbState::empty()),
            SchemaState::UpToDate { current: None }
        );
    }

    #[test]
    fn empty_database_is_behind_by_everything() {
        let m = three();
        let expected = SchemaState::Behind {
            current: None,
            head: rev("20250103_0000"),
            pending: 3,
        };
        assert_eq!(decided(&m, &DbState::empty()), expected);
        // Tables present but empty, as after a downgrade to base.
        let base = DbState {
            versions: Some(vec![]),
            last: Some(record(&m, 0, Direction::Down)),
            tables_present: true,
            managed_by: None,
        };
        assert_eq!(decided(&m, &base), expected);
    }

    #[test]
    fn behind_counts_pending_migrations() {
        let m = three();
        assert_eq!(
            decided(&m, &at(&m, 0)),
            SchemaState::Behind {
                current: Some(rev("20250101_0000")),
                head: rev("20250103_0000"),
                pending: 2
            }
        );
    }

    #[test]
    fn unknown_revision_is_ahead_and_names_the_version_that_applied_it() {
        let m = three();
        let newer = set(&[
            ("20250101_0000_a.sql", BODY),
            ("20250102_0000_b.sql", BODY),
            ("20250103_0000_c.sql", BODY),
            ("20250104_0000_d.sql", BODY),
        ]);
        let mut state = at(&newer, 3);
        state.last.as_mut().unwrap().app_version = "2.0.0".into();
        assert_eq!(
            decided(&m, &state),
            SchemaState::Ahead {
                current: "20250104_0000".into(),
                applied_by: Some("2.0.0".into())
            }
        );
    }

    #[test]
    fn a_version_row_of_no_calista_revision_without_history_is_alembics() {
        let m = three();
        let state = DbState {
            versions: Some(vec!["abc123".into()]),
            last: None,
            tables_present: false,
            managed_by: None,
        };
        assert_eq!(
            decided(&m, &state),
            SchemaState::Managed {
                tool: Tool::Alembic
            }
        );
        let mut with_history = at(&m, 2);
        with_history.versions = Some(vec!["abc123".into()]);
        assert_eq!(assess(&m, &with_history), Assessment::NeedsHistory);
        let history: Vec<_> = (0..3).map(|i| record(&m, i, Direction::Up)).collect();
        assert_eq!(
            diagnose(&m, "abc123", &history),
            SchemaState::Ahead {
                current: "abc123".into(),
                applied_by: None
            }
        );
    }

    /// `migrations[..=index]` as a release before the whitespace rule recorded them.
    fn recorded_before_whitespace_rule(
        migrations: &Migrations,
        index: usize,
    ) -> Vec<HistoryRecord> {
        (0..=index)
            .map(|i| {
                let mut row = record(migrations, i, Direction::Up);
                row.checksum = Some(migrations.as_slice()[i].checksum_before_whitespace_rule());
                row.chain = migrations.chain_before_whitespace_rule_at(i);
                row
            })
            .collect()
    }

    #[test]
    fn a_history_recorded_under_the_earlier_checksum_rule_reads_as_unmodified() {
        // Trailing spaces and no final newline: the two rules give different checksums.
        let untidy = "-- calista:up  \nSELECT 1;   \n-- calista:down\nSELECT 2;";
        let m = set(&[
            ("20250101_0000_a.sql", BODY),
            ("20250102_0000_b.sql", untidy),
            ("20250103_0000_c.sql", BODY),
        ]);
        let b = &m.as_slice()[1];
        assert_ne!(b.checksum(), b.checksum_before_whitespace_rule());
        let history = recorded_before_whitespace_rule(&m, 1);
        let state = DbState {
            versions: Some(vec!["20250102_0000".into()]),
            last: history.last().cloned(),
            tables_present: true,
            managed_by: None,
        };
        assert_eq!(
            decided(&m, &state),
            SchemaState::Behind {
                current: Some(rev("20250102_0000")),
                head: rev("20250103_0000"),
                pending: 1
            }
        );
        // The full replay (after another difference sent the guard there) agrees.
        assert_eq!(
            diagnose(&m, "20250102_0000", &history),
            SchemaState::Corrupt(Corruption::HistoryMismatch {
                current: rev("20250102_0000")
            })
        );
        // An edit of the SQL is still one, under either rule.
        let edited = set(&[
            ("20250101_0000_a.sql", BODY),
            (
                "20250102_0000_b.sql",
                "-- calista:up\nSELECT 3;\n-- calista:down\nSELECT 2;\n",
            ),
            ("20250103_0000_c.sql", BODY),
        ]);
        assert_eq!(assess(&edited, &state), Assessment::NeedsHistory);
        assert!(matches!(
            diagnose(&edited, "20250102_0000", &history),
            SchemaState::Modified { changed, .. } if changed.len() == 1
        ));
    }

    #[test]
    fn modified_migration_is_found_from_the_history() {
        let applied = three();
        let edited = set(&[
            ("20250101_0000_a.sql", BODY),
            (
                "20250102_0000_b.sql",
                "-- calista:up\nSELECT 42;\n-- calista:down\nSELECT 2;\n",
            ),
            ("20250103_0000_c.sql", BODY),
        ]);
        assert_eq!(assess(&edited, &at(&applied, 2)), Assessment::NeedsHistory);
        let history: Vec<_> = (0..3).map(|i| record(&applied, i, Direction::Up)).collect();
        assert_eq!(
            diagnose(&edited, "20250103_0000", &history),
            SchemaState::Modified {
                changed: vec![(rev("20250102_0000"), "20250102_0000_b.sql".into())],
                missing: vec![]
            }
        );
    }

    #[test]
    fn deleted_applied_migration_is_modified() {
        let applied = three();
        let without_b = set(&[("20250101_0000_a.sql", BODY), ("20250103_0000_c.sql", BODY)]);
        let history: Vec<_> = (0..3).map(|i| record(&applied, i, Direction::Up)).collect();
        assert_eq!(
            diagnose(&without_b, "20250103_0000", &history),
            SchemaState::Modified {
                changed: vec![],
                missing: vec!["20250102_0000".into()]
            }
        );
    }

    #[test]
    fn late_merged_migration_is_out_of_order() {
        let applied = set(&[("20250101_0000_a.sql", BODY), ("20250103_0000_c.sql", BODY)]);
        let merged = three();
        assert_eq!(assess(&merged, &at(&applied, 1)), Assessment::NeedsHistory);
        let history: Vec<_> = (0..2).map(|i| record(&applied, i, Direction::Up)).collect();
        assert_eq!(
            diagnose(&merged, "20250103_0000", &history),
            SchemaState::OutOfOrder {
                current: rev("20250103_0000"),
                unapplied: vec![(rev("20250102_0000"), "20250102_0000_b.sql".into())]
            }
        );
    }

    #[test]
    fn started_but_unfinished_migration_is_interrupted() {
        let m = three();
        let mut state = at(&m, 1);
        let mut started = record(&m, 2, Direction::Up);
        started.finished = false;
        state.last = Some(started);
        assert_eq!(
            decided(&m, &state),
            SchemaState::Interrupted {
                revision: Revision::parse("20250103_0000").unwrap(),
                summary: "c".into(),
                started_at: "2025-01-01T00:00:00Z".into(),
                direction: Direction::Up,
            }
        );
    }

    #[test]
    fn hand_edited_version_tables_are_corrupt() {
        let m = three();
        let mut no_row = at(&m, 2);
        no_row.versions = Some(vec![]);
        assert_eq!(
            decided(&m, &no_row),
            SchemaState::Corrupt(Corruption::NoVersionRow {
                last_applied: "20250103_0000".into()
            })
        );
        // After a downgrade of c, the schema is at b: that is the row to put back.
        let mut reverted = at(&m, 1);
        reverted.versions = Some(vec![]);
        reverted.last = Some(record(&m, 2, Direction::Down));
        assert_eq!(
            decided(&m, &reverted),
            SchemaState::Corrupt(Corruption::NoVersionRow {
                last_applied: "20250102_0000".into()
            })
        );
        let mut two = at(&m, 2);
        two.versions = Some(vec!["20250102_0000".into(), "20250103_0000".into()]);
        assert!(matches!(
            decided(&m, &two),
            SchemaState::Corrupt(Corruption::SeveralVersionRows { .. })
        ));
    }

    #[test]
    fn another_tools_table_beside_none_of_ours_is_that_tools_database() {
        let m = three();
        let sqlx_made = DbState {
            managed_by: Some(Tool::Sqlx),
            ..DbState::empty()
        };
        assert_eq!(
            decided(&m, &sqlx_made),
            SchemaState::Managed { tool: Tool::Sqlx }
        );
        // Once adopted, ours decide.
        let adopted = DbState {
            managed_by: Some(Tool::Sqlx),
            ..at(&m, 1)
        };
        assert!(matches!(decided(&m, &adopted), SchemaState::Behind { .. }));
    }

    #[test]
    fn database_without_history_trusts_the_version_table() {
        let m = three();
        let alembic_made = DbState {
            versions: Some(vec!["20250102_0000".into()]),
            last: None,
            tables_present: false,
            managed_by: None,
        };
        assert_eq!(
            decided(&m, &alembic_made),
            SchemaState::Behind {
                current: Some(rev("20250102_0000")),
                head: rev("20250103_0000"),
                pending: 1
            }
        );
    }

    #[test]
    fn downgrade_history_is_replayed() {
        let m = three();
        let mut history: Vec<_> = (0..3).map(|i| record(&m, i, Direction::Up)).collect();
        history.push(record(&m, 2, Direction::Down));
        // At b after reverting c: the last row carries b's chain, so the check is O(1).
        let state = DbState {
            versions: Some(vec!["20250102_0000".into()]),
            last: history.last().cloned(),
            tables_present: true,
            managed_by: None,
        };
        assert!(matches!(
            decided(&m, &state),
            SchemaState::Behind { pending: 1, .. }
        ));
    }

    #[test]
    fn upgrade_plan_groups_transactional_migrations_and_isolates_no_transaction_ones() {
        let nt = "-- calista:no-transaction\n-- calista:up\nX;\n-- calista:down\nY;\n";
        let m = set(&[
            ("20250101_0000_a.sql", BODY),
            ("20250102_0000_b.sql", BODY),
            ("20250103_0000_c.sql", nt),
            ("20250104_0000_d.sql", BODY),
        ]);
        let plan = plan_upgrade(&m, None, UpgradeTarget::Head, TransactionMode::All).unwrap();
        assert_eq!(
            plan.batches,
            [
                Batch::Transaction(vec![0, 1]),
                Batch::Alone(2),
                Batch::Transaction(vec![3])
            ]
        );
        assert_eq!((plan.from, plan.to), (None, Some(rev("20250104_0000"))));
        let each = plan_upgrade(&m, Some(0), UpgradeTarget::Head, TransactionMode::Each).unwrap();
        assert_eq!(
            each.batches,
            [
                Batch::Transaction(vec![1]),
                Batch::Alone(2),
                Batch::Transaction(vec![3])
            ]
        );
    }

    #[test]
    fn upgrade_to_a_revision_stops_there_and_refuses_going_back() {
        let m = three();
        let plan = plan_upgrade(
            &m,
            None,
            UpgradeTarget::Revision(rev("20250102_0000")),
            TransactionMode::All,
        )
        .unwrap();
        assert_eq!(plan.steps().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(
            plan_upgrade(
                &m,
                Some(2),
                UpgradeTarget::Revision(rev("20250101_0000")),
                TransactionMode::All
            ),
            Err(PlanRefusal::TargetBehindCurrent {
                target: rev("20250101_0000"),
                current: rev("20250103_0000")
            })
        );
        assert!(
            plan_upgrade(&m, Some(2), UpgradeTarget::Head, TransactionMode::All)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            plan_upgrade(
                &m,
                None,
                UpgradeTarget::Revision(rev("20990101_0000")),
                TransactionMode::All
            ),
            Err(PlanRefusal::UnknownTarget(rev("20990101_0000")))
        );
    }

    #[test]
    fn downgrade_targets_run_in_reverse() {
        let m = three();
        let steps = |t| {
            plan_downgrade(&m, Some(2), t, TransactionMode::All)
                .map(|p| p.steps().collect::<Vec<_>>())
        };
        assert_eq!(steps(DowngradeTarget::Steps(1)), Ok(vec![2]));
        assert_eq!(steps(DowngradeTarget::Base), Ok(vec![2, 1, 0]));
        assert_eq!(
            steps(DowngradeTarget::Revision(rev("20250101_0000"))),
            Ok(vec![2, 1])
        );
        assert_eq!(
            steps(DowngradeTarget::Steps(4)),
            Err(PlanRefusal::TooManySteps {
                requested: 4,
                applied: 3
            })
        );
        let plan =
            plan_downgrade(&m, Some(2), DowngradeTarget::Base, TransactionMode::All).unwrap();
        assert_eq!((plan.from, plan.to), (Some(rev("20250103_0000")), None));
    }

    #[test]
    fn irreversible_migration_in_the_way_refuses_the_whole_downgrade() {
        let m = set(&[
            ("20250101_0000_a.sql", BODY),
            (
                "20250102_0000_b.sql",
                "-- calista:irreversible\n-- calista:up\nX;\n",
            ),
            ("20250103_0000_c.sql", BODY),
        ]);
        assert_eq!(
            plan_downgrade(&m, Some(2), DowngradeTarget::Base, TransactionMode::All),
            Err(PlanRefusal::Irreversible {
                file: "20250102_0000_b.sql".into()
            })
        );
        assert!(
            plan_downgrade(&m, Some(2), DowngradeTarget::Steps(1), TransactionMode::All).is_ok()
        );
    }

    #[test]
    fn downgrade_target_parses() {
        assert_eq!("base".parse(), Ok(DowngradeTarget::Base));
        assert_eq!("-1".parse(), Ok(DowngradeTarget::Steps(1)));
        assert_eq!(
            "20250101_0000".parse(),
            Ok(DowngradeTarget::Revision(rev("20250101_0000")))
        );
        assert!("-x".parse::<DowngradeTarget>().is_err());
    }
}
