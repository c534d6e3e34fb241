//! A fleet of databases: one migration set checked or upgraded on many targets at once —
//! a schema per tenant in one PostgreSQL database, a database per tenant, SQLite files —
//! each with its own migration lock, backup and history.
//!
//! ```no_run
//! # async fn run(migrations: &calista_core::Migrations) -> Result<(), Box<dyn std::error::Error>> {
//! use calista_core::fleet::{self, Action, FleetOptions, Outcome, Progress, Shard, Targets};
//! use calista_core::{DatabaseOptions, Policy, UpgradeTarget};
//!
//! let targets = Targets::read("targets.txt".as_ref(), ".".as_ref())?;
//! // This machine's share, when several run the fleet (a Kubernetes Indexed Job).
//! let targets = targets.shard("0/4".parse::<Shard>()?);
//! let options = FleetOptions::new(Policy::default(), DatabaseOptions::default()).jobs(8);
//! let report = fleet::run(migrations, &targets, Action::Upgrade(UpgradeTarget::Head), &options, |event| {
//!     if let Progress::Finished { report, done, total } = event {
//!         eprintln!("{done}/{total} {} {}", report.outcome.name(), report.target);
//!     }
//! })
//! .await;
//! assert_eq!(report.count(Outcome::Failed), 0);
//! # Ok(()) }
//! ```
//!
//! **What state there is.** None of its own: each target's `alembic_version` and
//! `schema_history` say what is done. A run that is stopped (even by `kill -9`) leaves each
//! target at its old revision or its new one, and running the same fleet again finishes
//! what is left; a migration is never applied twice, because each target's upgrade takes
//! that target's lock and applies a batch in one transaction. Several runs may overlap.
//!
//! **What it costs.** A target that is up to date costs the guard's check: one query, no
//! lock. Only a target that is behind is upgraded (lock, re-check, backup, apply). At most
//! `FleetOptions::jobs` targets are worked on at once; on PostgreSQL each uses one
//! connection (two while it waits for a table lock, and `pg_dump`'s while it backs up), so
//! when targets share a server it sees at most about twice `jobs` connections from a run.

mod shard;
mod targets;

use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use crate::{
    Database, DatabaseOptions, Error, ErrorKind, Migrations, Migrator, Policy, Report, Revision,
    SchemaState, Step, UpgradeTarget,
};

pub use shard::{Shard, ShardError};
pub use targets::{BadLine, Target, TargetError, Targets, TargetsError};

/// Targets worked on at once unless told otherwise. Many targets usually share one server:
/// 8 keeps a run to about 16 of its connections (a sixth of PostgreSQL's default
/// `max_connections`, 100, leaving the applications theirs), and upgrades are bound by
/// that server's cores and WAL writes, which 8 concurrent batches keep busy on a small one.
/// An up-to-date check is one round trip, so more jobs speed a no-op run up further;
/// raise it for servers that can take it.
pub const DEFAULT_JOBS: usize = 8;

/// What to do to each target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Upgrade a target that is behind; one that is up to date costs the check only.
    Upgrade(UpgradeTarget),
    /// The guard's check only: no lock, no write.
    Check,
}

/// How a fleet runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetOptions {
    /// Targets worked on at once (at least 1).
    pub jobs: usize,
    /// The guard's and the migrator's policy, the same for every target (backups, hints,
    /// transaction mode, the application's version).
    pub policy: Policy,
    /// How to reach each target; its `schema` is the schema of targets that name none.
    pub database: DatabaseOptions,
}

impl FleetOptions {
    /// [`DEFAULT_JOBS`] at once, with this policy and these database options.
    pub fn new(policy: Policy, database: DatabaseOptions) -> Self {
        Self {
            jobs: DEFAULT_JOBS,
            policy,
            database,
        }
    }

    /// Another number of targets at once (at least 1).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

/// What came of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Outcome {
    /// Migrations were applied.
    Upgraded,
    /// Nothing to do: at the head (or, with a target revision, at or past it).
    UpToDate,
    /// Migrations are pending (a check).
    Behind,
    /// The schema is unsafe to touch (ahead, modified, out of order, interrupted, corrupt):
    /// refused, nothing written.
    Unsafe,
    /// The migration lock, or a migration's table locks, were not granted in time; nothing
    /// changed.
    LockTimeout,
    /// Anything else failed: unreachable, a migration's SQL, the backup.
    Failed,
}

impl Outcome {
    /// Every outcome, in the order summaries list them.
    pub const ALL: [Self; 6] = [
        Self::Upgraded,
        Self::UpToDate,
        Self::Behind,
        Self::Unsafe,
        Self::LockTimeout,
        Self::Failed,
    ];

    /// Its name in summaries and JSON: `upgraded`, `up to date`, `behind`, `unsafe`,
    /// `lock timeout`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Upgraded => "upgraded",
            Self::UpToDate => "up to date",
            Self::Behind => "behind",
            Self::Unsafe => "unsafe",
            Self::LockTimeout => "lock timeout",
            Self::Failed => "failed",
        }
    }

    /// The outcome of an error.
    fn of(error: &Error) -> Self {
        match error.kind() {
            ErrorKind::Behind => Self::Behind,
            ErrorKind::Unsafe => Self::Unsafe,
            ErrorKind::LockTimeout => Self::LockTimeout,
            _ => Self::Failed,
        }
    }
}

/// What happened to one target.
#[derive(Debug)]
#[non_exhaustive]
pub struct TargetReport {
    /// The target.
    pub target: Target,
    /// What came of it.
    pub outcome: Outcome,
    /// What the guard's check found first, when it could read the database.
    pub state: Option<SchemaState>,
    /// The upgrade's report, when an upgrade ran to its end.
    pub report: Option<Report>,
    /// Why it did not succeed: the error, or the guard's refusal.
    pub error: Option<Error>,
    /// Wall time for this target, connecting included.
    pub duration: Duration,
}

impl TargetReport {
    /// The revision it was at (`None`: empty, or unknown to this build).
    pub fn from(&self) -> Option<Revision> {
        match (&self.report, &self.state) {
            (Some(report), _) => report.from,
            (None, Some(state)) => state.current(),
            (None, None) => None,
        }
    }

    /// The revision it is at now, as far as this run knows.
    pub fn to(&self) -> Option<Revision> {
        match (&self.report, &self.state) {
            (Some(report), _) => report.to,
            (None, Some(state)) => state.current(),
            (None, None) => None,
        }
    }

    /// The migrations applied to it, in order.
    pub fn applied(&self) -> &[Step] {
        self.report.as_ref().map_or(&[], |r| &r.steps)
    }
}

/// What happened to every target, in the order of the list.
#[derive(Debug)]
#[non_exhaustive]
pub struct FleetReport {
    /// One report per target.
    pub targets: Vec<TargetReport>,
    /// Wall time of the whole run.
    pub total: Duration,
}

impl FleetReport {
    /// How many targets had `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.targets.iter().filter(|t| t.outcome == outcome).count()
    }
}

/// A step of a run, for a progress display.
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// Work on a target began.
    Started {
        /// The target.
        target: &'a Target,
    },
    /// A target is done.
    Finished {
        /// What happened.
        report: &'a TargetReport,
        /// Targets done so far, this one included.
        done: usize,
        /// Targets in the run.
        total: usize,
    },
}

/// Runs `action` on every target, at most `options.jobs` at once, and reports on each.
/// One target failing does not stop the others. `progress` hears of each target as it
/// starts and finishes, on the task that awaits this call; it should return quickly.
pub async fn run(
    migrations: &Migrations,
    targets: &Targets,
    action: Action,
    options: &FleetOptions,
    mut progress: impl FnMut(Progress<'_>),
) -> FleetReport {
    let started = Instant::now();
    let total = targets.len();
    let mut pending = targets.iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut done: Vec<(usize, TargetReport)> = Vec::with_capacity(total);
    loop {
        while running.len() < options.jobs.max(1) {
            let Some((position, target)) = pending.next() else {
                break;
            };
            progress(Progress::Started { target });
            let span = tracing::info_span!("fleet", database = %target);
            running.push(async move {
                (
                    position,
                    one(migrations, target, action, options)
                        .instrument(span)
                        .await,
                )
            });
        }
        let Some((position, report)) = running.next().await else {
            break;
        };
        tracing::info!(database = %report.target, outcome = report.outcome.name(), "fleet target done");
        progress(Progress::Finished {
            report: &report,
            done: done.len() + 1,
            total,
        });
        done.push((position, report));
    }
    done.sort_by_key(|(position, _)| *position);
    FleetReport {
        targets: done.into_iter().map(|(_, report)| report).collect(),
        total: started.elapsed(),
    }
}

/// One target: the check without a lock, and an upgrade only when it is behind.
async fn one(
    migrations: &Migrations,
    target: &Target,
    action: Action,
    options: &FleetOptions,
) -> TargetReport {
    let started = Instant::now();
    let mut report = TargetReport {
        target: target.clone(),
        outcome: Outcome::Failed,
        state: None,
        report: None,
        error: None,
        duration: Duration::ZERO,
    };
    let mut database = options.database.clone();
    if let Some(schema) = target.schema() {
        database.schema = Some(schema.clone());
    }
    match Database::connect(target.url(), database) {
        Ok(db) => {
            let migrator = Migrator::new(migrations, &db).with_policy(options.policy.clone());
            work(&migrator, action, &mut report).await;
            db.close().await;
        }
        Err(error) => report.error = Some(error),
    }
    if let Some(error) = &report.error {
        report.outcome = Outcome::of(error);
    }
    report.duration = started.elapsed();
    report
}

async fn work(migrator: &Migrator<'_>, action: Action, report: &mut TargetReport) {
    let state = match migrator.check().await {
        Ok(state) => state,
        Err(error) => {
            report.error = Some(error);
            return;
        }
    };
    report.state = Some(state.clone());
    if state.is_up_to_date() {
        report.outcome = Outcome::UpToDate;
        return;
    }
    let behind = matches!(state, SchemaState::Behind { .. });
    match action {
        // Interrupted may be another run's no-transaction migration in progress: the
        // upgrade's lock decides, as for a single database.
        Action::Upgrade(to) if behind || matches!(state, SchemaState::Interrupted { .. }) => {
            match migrator.upgrade(to).await {
                Ok(upgrade) => {
                    report.outcome = if upgrade.steps.is_empty() {
                        Outcome::UpToDate
                    } else {
                        Outcome::Upgraded
                    };
                    report.report = Some(upgrade);
                }
                Err(error) => report.error = Some(error),
            }
        }
        _ => report.error = Some(migrator.refusal(state)),
    }
}
