//! Runs plans against a database: the guard, upgrades, downgrades and recovery.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::NewRecord;
use crate::backup::{self, BackupOutcome, BackupPolicy};
use crate::database::{Database, Session};
use crate::error::{DEFAULT_UPGRADE_HINT, Error};
use crate::migration::{Direction, Migration, Migrations};
use crate::naming::Revision;
use crate::plan::{
    self, Assessment, Batch, DbState, DowngradeTarget, Plan, SchemaState, TransactionMode,
    UpgradeTarget,
};

/// How the guard and the migrator behave: the resolved settings, as far as they concern them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Upgrade to head when the guard finds the schema behind, instead of failing.
    pub auto_upgrade: bool,
    /// How pending migrations are grouped into transactions.
    pub transaction_mode: TransactionMode,
    /// Whether to back up before an upgrade.
    pub backup: BackupPolicy,
    /// Whether downgrades are allowed (development and CI only).
    pub downgrades: Downgrades,
    /// The application's version, recorded with each migration; `None`: the version of
    /// the crate that embedded the migrations.
    pub app_version: Option<String>,
    /// The sentence that tells a user how to upgrade, used in "behind" errors.
    pub upgrade_hint: String,
}

impl Default for Policy {
    /// Production defaults: no automatic upgrade, one transaction, backups on,
    /// downgrades refused.
    fn default() -> Self {
        Self {
            auto_upgrade: false,
            transaction_mode: TransactionMode::All,
            backup: BackupPolicy::Enabled(backup::BackupOptions::default()),
            downgrades: Downgrades::Refused {
                environment: "production".to_owned(),
            },
            app_version: None,
            upgrade_hint: DEFAULT_UPGRADE_HINT.to_owned(),
        }
    }
}

/// Whether downgrades may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downgrades {
    /// Development and CI.
    Allowed,
    /// Production: forward-only.
    Refused {
        /// The environment's name, for the message.
        environment: String,
    },
}

/// What [`Migrator::ensure_schema`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ensured {
    /// Nothing to do.
    UpToDate {
        /// The current revision.
        current: Option<Revision>,
    },
    /// Automatic upgrade ran.
    Upgraded(Report),
}

/// What an upgrade or downgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Up or down.
    pub direction: Direction,
    /// The revision before.
    pub from: Option<Revision>,
    /// The revision after.
    pub to: Option<Revision>,
    /// Each migration run, in order, with its duration.
    pub steps: Vec<Step>,
    /// Wall time, lock wait included.
    pub total: Duration,
    /// The backup, when the upgrade had something to do.
    pub backup: Option<BackupOutcome>,
    /// Old backups deleted after the upgrade succeeded.
    pub pruned: Vec<PathBuf>,
}

impl Report {
    fn new(direction: Direction) -> Self {
        Self {
            direction,
            from: None,
            to: None,
            steps: Vec::new(),
            total: Duration::ZERO,
            backup: None,
            pruned: Vec::new(),
        }
    }
}

/// One migration run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its revision.
    pub revision: Revision,
    /// Its file name.
    pub file: String,
    /// How long its SQL took.
    pub duration: Duration,
    /// Whether it ran alone, outside a transaction.
    pub no_transaction: bool,
}

/// How to resolve an interrupted no-transaction migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Forget the started record; the next upgrade runs the migration again.
    Retry,
    /// Record it as finished: it did complete.
    MarkApplied,
}

/// Applies a set of migrations to a database under a policy.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use calista_core::{Database, DatabaseOptions, Migrations, Migrator, UpgradeTarget};
///
/// let migrations = Migrations::from_dir("migrations")?;
/// let url = calista_core::url::DatabaseUrl::parse("sqlite:///app.db", std::path::Path::new("."))?;
/// let db = Database::connect(&url, DatabaseOptions::default())?;
/// let report = Migrator::new(&migrations, &db).upgrade(UpgradeTarget::Head).await?;
/// println!("{} migrations applied", report.steps.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Migrator<'a> {
    migrations: &'a Migrations,
    db: &'a Database,
    policy: Policy,
}

impl<'a> Migrator<'a> {
    /// A migrator with the production defaults of [`Policy`].
    pub fn new(migrations: &'a Migrations, db: &'a Database) -> Self {
        Self {
            migrations,
            db,
            policy: Policy::default(),
        }
    }

    /// Sets the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy in effect.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The guard's check: compares the database with the migrations. Takes no lock and,
    /// when the database is up to date or behind, costs one query that reads the version
    /// rows and one history row, however many migrations exist.
    pub async fn check(&self) -> Result<SchemaState, Error> {
        if let Some(brief) = self.db.read_state_brief().await?
            && let Assessment::Decided(
                verdict @ (SchemaState::UpToDate { .. } | SchemaState::Behind { .. }),
            ) = plan::assess(self.migrations, &brief)
        {
            return Ok(verdict);
        }
        // Anything else is rare, and worth reading everything it takes to say exactly what.
        let state = self.db.read_state().await?;
        match plan::assess(self.migrations, &state) {
            Assessment::Decided(verdict) => Ok(verdict),
            Assessment::NeedsHistory => {
                let history = self.db.read_history().await?;
                Ok(plan::diagnose(
                    self.migrations,
                    current_of(&state),
                    &history,
                ))
            }
        }
    }

    /// The guard: `Ok` when commands may run. A database that is behind is upgraded when
    /// the policy allows it, and refused otherwise; an unsafe one is always refused.
    pub async fn ensure_schema(&self) -> Result<Ensured, Error> {
        for file in self.migrations.missing_from_build() {
            tracing::warn!(
                file = %file,
                "the migrations folder holds {file}, which this build does not include: rebuild to embed it \
                 (add `println!(\"cargo::rerun-if-changed=migrations\");` to build.rs so that Cargo notices new files)"
            );
        }
        match self.check().await? {
            SchemaState::UpToDate { current } => Ok(Ensured::UpToDate { current }),
            SchemaState::Behind { .. } | SchemaState::Interrupted { .. }
                if self.policy.auto_upgrade =>
            {
                Ok(Ensured::Upgraded(self.upgrade(UpgradeTarget::Head).await?))
            }
            state => Err(self.refusal(state)),
        }
    }

    /// Upgrades to `target`: takes the migration lock, checks again under it, backs up
    /// (when there is something to do), then applies the pending migrations.
    pub async fn upgrade(&self, target: UpgradeTarget) -> Result<Report, Error> {
        let started = Instant::now();
        // Step 0, no lock: a process that finds nothing to do never waits for one.
        let state = self.check().await?;
        match &state {
            SchemaState::UpToDate { current } => {
                let position = current.and_then(|c| self.migrations.position(c));
                let plan = plan::plan_upgrade(
                    self.migrations,
                    position,
                    target,
                    self.policy.transaction_mode,
                )?;
                if plan.is_empty() {
                    let mut report = Report::new(Direction::Up);
                    (report.from, report.to, report.total) =
                        (*current, *current, started.elapsed());
                    return Ok(report);
                }
            }
            // Interrupted may be another process's migration in progress: the lock decides.
            SchemaState::Behind { .. } | SchemaState::Interrupted { .. } => {}
            _ => return Err(self.refusal(state)),
        }
        let mut report = Report::new(Direction::Up);
        self.locked(&mut report, started, async |session, report| {
            self.upgrade_batches(session, report, target).await
        })
        .await?;
        Ok(report)
    }

    /// Reverts migrations down to `target`, in reverse order (development and CI only).
    /// An irreversible migration in the way refuses the whole downgrade before anything runs.
    pub async fn downgrade(&self, target: DowngradeTarget) -> Result<Report, Error> {
        if let Downgrades::Refused { environment } = &self.policy.downgrades {
            return Err(Error::DowngradeRefused {
                environment: environment.clone(),
            });
        }
        let started = Instant::now();
        let mut report = Report::new(Direction::Down);
        self.locked(&mut report, started, async |session, report| {
            self.downgrade_batches(session, report, target).await
        })
        .await?;
        Ok(report)
    }

    /// Resolves an interrupted no-transaction migration.
    pub async fn recover(&self, how: Recovery) -> Result<SchemaState, Error> {
        let mut session = self.db.session().await?;
        let result = self.recover_locked(&mut session, how).await;
        self.db.end_session(session, result.is_ok()).await;
        result?;
        self.check().await
    }

    /// The SQL an upgrade to `target` would run, version-table statements included.
    /// Reads the database, changes nothing.
    pub async fn upgrade_script(&self, target: UpgradeTarget) -> Result<String, Error> {
        let state = self.db.read_state().await?;
        let verdict = self.check().await?;
        let current = match &verdict {
            SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => *current,
            _ => return Err(self.refusal(verdict)),
        };
        let position = current.and_then(|c| self.migrations.position(c));
        let plan = plan::plan_upgrade(
            self.migrations,
            position,
            target,
            self.policy.transaction_mode,
        )?;
        Ok(crate::script::render(
            self.migrations,
            self.db,
            &plan,
            !state.tables_present,
            &self.app_version(),
        ))
    }

    /// The error the guard returns for a state it refuses.
    pub fn refusal(&self, state: SchemaState) -> Error {
        Error::Schema {
            state: Box::new(state),
            hint: self.policy.upgrade_hint.clone(),
            app_version: self.app_version(),
        }
    }

    fn app_version(&self) -> String {
        self.policy
            .app_version
            .clone()
            .or_else(|| self.migrations.app_version().map(str::to_owned))
            .unwrap_or_else(|| "0.0.0".to_owned())
    }

    /// Runs `work` on a session holding the lock; on every path the lock is released and,
    /// after a failure, the open transaction rolled back.
    async fn locked(
        &self,
        report: &mut Report,
        started: Instant,
        work: impl AsyncFnOnce(&mut Session, &mut Report) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut session = self.db.session().await?;
        let result = work(&mut session, report).await;
        self.db.end_session(session, result.is_ok()).await;
        report.total = started.elapsed();
        result
    }

    async fn upgrade_batches(
        &self,
        session: &mut Session,
        report: &mut Report,
        target: UpgradeTarget,
    ) -> Result<(), Error> {
        let mode = self.policy.transaction_mode;
        self.rounds(session, report, |current| {
            plan::plan_upgrade(self.migrations, current, target, mode)
        })
        .await
    }

    async fn downgrade_batches(
        &self,
        session: &mut Session,
        report: &mut Report,
        target: DowngradeTarget,
    ) -> Result<(), Error> {
        let mode = self.policy.transaction_mode;
        // "-1" means one step back from where the database is when the lock is taken; the
        // first round pins it to that revision, and later rounds aim there.
        let mut target = target;
        self.rounds(session, report, |current| {
            let plan = plan::plan_downgrade(self.migrations, current, target, mode)?;
            target = plan
                .to
                .map_or(DowngradeTarget::Base, DowngradeTarget::Revision);
            Ok(plan)
        })
        .await
    }

    /// Each round: lock (SQLite) or nothing (PostgreSQL: the advisory lock is held), read
    /// the state again, plan from it, run the first batch. Planning afresh each round means
    /// another process's progress is never repeated; a plan of one batch needs no second
    /// round. The first round of an upgrade that has something to do takes the backup.
    async fn rounds(
        &self,
        session: &mut Session,
        report: &mut Report,
        mut next_plan: impl FnMut(Option<usize>) -> Result<Plan, plan::PlanRefusal>,
    ) -> Result<(), Error> {
        let store = self.db.store();
        let mut first_round = true;
        loop {
            session.lock_round().await?;
            let state = session.read_state(store).await?;
            let current = self.current_under_lock(session, &state).await?;
            let plan = next_plan(current)?;
            if first_round {
                (report.from, report.to) = (plan.from, plan.from);
            }
            let Some(batch) = plan.batches.first() else {
                session.end_read_round().await;
                break;
            };
            if first_round && plan.direction == Direction::Up {
                report.backup = Some(self.backup(session, &state, plan.from).await?);
            }
            first_round = false;
            session.begin_write().await?;
            if !state.tables_present {
                session.create_tables(store).await?;
            }
            let backup_path = match &report.backup {
                Some(BackupOutcome::Taken(b)) => Some(b.path.display().to_string()),
                _ => None,
            };
            report.to = self
                .run_batch(session, &plan, batch, backup_path, report)
                .await?;
            if plan.batches.len() == 1 {
                // That was the plan's last batch: the target is reached under the lock.
                break;
            }
        }
        if let Some(BackupOutcome::Taken(taken)) = &report.backup {
            report.pruned = self.prune_backups(taken);
        }
        Ok(())
    }

    async fn recover_locked(&self, session: &mut Session, how: Recovery) -> Result<(), Error> {
        let store = self.db.store();
        session.lock_round().await?;
        let state = session.read_state(store).await?;
        session.begin_write().await?;
        let Some(SchemaState::Interrupted {
            revision,
            direction,
            ..
        }) = (match plan::assess(self.migrations, &state) {
            Assessment::Decided(verdict) => Some(verdict),
            Assessment::NeedsHistory => None,
        })
        else {
            return Err(Error::NothingToRecover);
        };
        match how {
            Recovery::Retry => {
                session.delete_started(store).await?;
            }
            Recovery::MarkApplied => {
                let current = state.versions.as_ref().and_then(|v| v.first()).cloned();
                let after = match direction {
                    Direction::Up => Some(revision),
                    Direction::Down => Revision::parse(&revision)
                        .ok()
                        .and_then(|r| self.migrations.position(r))
                        .and_then(|i| i.checked_sub(1))
                        .map(|i| self.migrations.as_slice()[i].revision().to_string()),
                };
                session.finish_started(store, 0).await?;
                session
                    .set_version(store, current.as_deref(), after.as_deref())
                    .await?;
            }
        }
        session.commit().await
    }

    /// The current position, read under the lock; an unsafe state stops everything.
    async fn current_under_lock(
        &self,
        session: &mut Session,
        state: &DbState,
    ) -> Result<Option<usize>, Error> {
        let verdict = match plan::assess(self.migrations, state) {
            Assessment::Decided(verdict) => verdict,
            Assessment::NeedsHistory => {
                let history = session.read_history(self.db.store()).await?;
                plan::diagnose(self.migrations, current_of(state), &history)
            }
        };
        match verdict {
            SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => {
                Ok(current.and_then(|c| self.migrations.position(c)))
            }
            other => Err(self.refusal(other)),
        }
    }

    /// Runs one batch and records it; returns the revision the database is at after it.
    async fn run_batch(
        &self,
        session: &mut Session,
        plan: &Plan,
        batch: &Batch,
        backup: Option<String>,
        report: &mut Report,
    ) -> Result<Option<Revision>, Error> {
        let store = self.db.store();
        let dialect = self.db.dialect();
        let direction = plan.direction;
        let from = plan.from.map(|r| r.to_string());
        match batch {
            Batch::Transaction(steps) => {
                let mut records = Vec::with_capacity(steps.len());
                for &index in steps {
                    let migration = &self.migrations.as_slice()[index];
                    let started = Instant::now();
                    session
                        .run_script(&migration.script(direction, dialect))
                        .await
                        .map_err(|source| Error::Migration {
                            file: migration.file_name(),
                            direction,
                            kept: from.clone(),
                            source,
                        })?;
                    let duration = started.elapsed();
                    records.push(self.record(index, direction, true, duration, backup.clone()));
                    report.steps.push(step(migration, duration));
                }
                let after = self.revision_after(steps.last().copied(), direction);
                session.insert_history(store, &records).await?;
                session
                    .set_version(
                        store,
                        from.as_deref(),
                        after.map(|r| r.to_string()).as_deref(),
                    )
                    .await?;
                session.commit().await?;
                tracing::info!(migrations = steps.len(), to = ?after, "committed");
                Ok(after)
            }
            Batch::Alone(index) => {
                let index = *index;
                let migration = &self.migrations.as_slice()[index];
                // Recorded as started, committed, before it runs: a crash part-way is then
                // seen as "interrupted" instead of passing unnoticed.
                let started_record = self.record(index, direction, false, Duration::ZERO, backup);
                session
                    .insert_history(store, std::slice::from_ref(&started_record))
                    .await?;
                session.commit().await?;
                let started = Instant::now();
                session
                    .run_alone(&migration.script(direction, dialect))
                    .await
                    .map_err(|source| Error::MigrationInterrupted {
                        file: migration.file_name(),
                        source,
                    })?;
                let duration = started.elapsed();
                let after = self.revision_after(Some(index), direction);
                session.begin().await?;
                session.finish_started(store, millis(duration)).await?;
                session
                    .set_version(
                        store,
                        from.as_deref(),
                        after.map(|r| r.to_string()).as_deref(),
                    )
                    .await?;
                session.commit().await?;
                report.steps.push(step(migration, duration));
                Ok(after)
            }
        }
    }

    /// The revision after running the migration at `index` in `direction`.
    fn revision_after(&self, index: Option<usize>, direction: Direction) -> Option<Revision> {
        let index = index?;
        match direction {
            Direction::Up => Some(self.migrations.as_slice()[index].revision()),
            Direction::Down => index
                .checked_sub(1)
                .map(|i| self.migrations.as_slice()[i].revision()),
        }
    }

    fn record(
        &self,
        index: usize,
        direction: Direction,
        finished: bool,
        duration: Duration,
        backup: Option<String>,
    ) -> NewRecord {
        let migration = &self.migrations.as_slice()[index];
        let chain = match direction {
            Direction::Up => self.migrations.chain_at(index),
            Direction::Down => index
                .checked_sub(1)
                .and_then(|i| self.migrations.chain_at(i)),
        };
        NewRecord {
            revision: migration.revision().to_string(),
            summary: migration.summary().to_owned(),
            direction,
            finished,
            checksum: migration.checksum(),
            chain,
            duration_ms: millis(duration),
            app_version: self.app_version(),
            backup,
        }
    }

    /// Takes the backup of step 4, or says why not. Runs under the lock, before any change.
    async fn backup(
        &self,
        session: &mut Session,
        state: &DbState,
        at: Option<Revision>,
    ) -> Result<BackupOutcome, Error> {
        let options = match &self.policy.backup {
            BackupPolicy::Disabled { reason } => return Ok(BackupOutcome::Skipped(reason.clone())),
            BackupPolicy::Enabled(options) => options,
        };
        let source = match self.db.backup_source() {
            Ok(source) => source,
            Err(reason) => {
                return Ok(BackupOutcome::Skipped(format!(
                    "{reason}: nothing to back up"
                )));
            }
        };
        if !state.tables_present && session.is_empty(self.db.store()).await? {
            return Ok(BackupOutcome::Skipped(
                "the database is empty: nothing to back up".to_owned(),
            ));
        }
        let at = at.map(|r| r.to_string());
        let taken = backup::take(&source, at.as_deref(), options).await?;
        tracing::info!(path = %taken.path.display(), bytes = taken.size, "backup taken");
        Ok(BackupOutcome::Taken(taken))
    }

    fn prune_backups(&self, taken: &backup::Backup) -> Vec<PathBuf> {
        let BackupPolicy::Enabled(options) = &self.policy.backup else {
            return Vec::new();
        };
        let Ok(source) = self.db.backup_source() else {
            return Vec::new();
        };
        let dir = backup::backup_dir(&source, options);
        match backup::prune(&dir, &backup::database_name(&source), options.keep) {
            Ok(deleted) => deleted,
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), kept = %taken.path.display(), "could not delete old backups");
                Vec::new()
            }
        }
    }
}

fn step(migration: &Migration, duration: Duration) -> Step {
    Step {
        revision: migration.revision(),
        file: migration.file_name(),
        duration,
        no_transaction: migration.no_transaction(),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The single version row of a state that [`plan::assess`] sent to diagnosis.
fn current_of(state: &DbState) -> &str {
    state
        .versions
        .as_ref()
        .and_then(|v| v.first())
        .map_or("", String::as_str)
}
