//! Runs plans against a database: the guard, upgrades, downgrades and recovery.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::{NewRecord, postgres};
use crate::backup::{self, BackupOutcome, BackupPolicy};
use crate::database::{Database, Session};
use crate::error::{Error, Hints, StatementError, StatementLocation};
use crate::migration::{Dialect, Direction, Migration, Migrations};
use crate::naming::Revision;
use crate::plan::{
    self, Assessment, Batch, DbState, DowngradeTarget, Plan, SchemaState, TransactionMode,
    UpgradeTarget,
};
use crate::store::Scope;
use crate::{sql, sql_split};

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
    /// What errors tell a user to do, in the application's words (neutral by default).
    pub hints: Hints,
    /// How long one attempt of a migration waits for a table lock on PostgreSQL before it
    /// is rolled back and tried again (`-- calista:lock-timeout` overrides it); the attempts
    /// together get the database's lock timeout.
    pub lock_attempt_timeout: Duration,
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
            hints: Hints::default(),
            lock_attempt_timeout: crate::settings::DEFAULT_LOCK_ATTEMPT_TIMEOUT,
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
        /// What a person should know (also emitted as `tracing` events).
        notices: Vec<Notice>,
    },
    /// Automatic upgrade ran.
    Upgraded(Report),
}

impl Ensured {
    /// What a person should know: files missing from the build, a backup skipped and why.
    /// The same notices are emitted as `tracing` events; an application without a
    /// subscriber shows these.
    pub fn notices(&self) -> &[Notice] {
        match self {
            Self::UpToDate { notices, .. } => notices,
            Self::Upgraded(report) => &report.notices,
        }
    }
}

/// Something the guard or an upgrade wants a person to know; nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The migrations folder holds a file this build does not include (debug builds).
    MissingFromBuild {
        /// The file's name.
        file: String,
    },
    /// The upgrade took no backup.
    BackupSkipped {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingFromBuild { file } => write!(
                f,
                "the migrations folder holds {file}, which this build does not include: rebuild to embed it \
                 (add `println!(\"cargo::rerun-if-changed=migrations\");` to build.rs so that Cargo notices new files)"
            ),
            Self::BackupSkipped { reason } => write!(f, "backup skipped: {reason}"),
        }
    }
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
    /// Migrations reverted with the down SQL recorded when they were applied, because
    /// their files changed since (development).
    pub recorded_down_sql: Vec<Revision>,
    /// What a person should know (also emitted as `tracing` events).
    pub notices: Vec<Notice>,
}

impl Report {
    pub(crate) fn new(direction: Direction) -> Self {
        Self {
            direction,
            from: None,
            to: None,
            steps: Vec::new(),
            total: Duration::ZERO,
            backup: None,
            pruned: Vec::new(),
            recorded_down_sql: Vec::new(),
            notices: Vec::new(),
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
    /// How many times it was tried: more than 1 when an attempt could not get its table
    /// locks in time (PostgreSQL) and was rolled back to let others go first.
    pub attempts: u32,
}

/// How to resolve an interrupted no-transaction migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Forget the started record; the next upgrade runs the migration again.
    Retry,
    /// Record it as finished: it did complete.
    MarkApplied,
}

/// The one-line entry points on the application's own pool: `MIGRATIONS.ensure_schema(&pool)`
/// and `MIGRATIONS.upgrade(&pool)`, for a `&sqlx::PgPool` or a `&sqlx::SqlitePool`.
///
/// They run the same guard, lock, backups and history as the `calista` program, on
/// connections of their own: the pool and its connections' settings (`search_path`
/// included) are left as they were. On PostgreSQL calista's tables go in the schema
/// `calista` ([`DatabaseOptions::schema`](crate::DatabaseOptions)); the migrations run
/// with that schema first on `search_path`, so the application's tables go there too
/// unless its SQL names another schema. For other options, use [`Database::from_pool`]
/// and a [`Migrator`].
impl Migrations {
    /// The guard, with production defaults ([`Policy::default`]): `Ok` when the schema is
    /// up to date; a database that is behind is refused with an error that says so.
    pub async fn ensure_schema(&self, pool: impl Into<crate::Pool>) -> Result<Ensured, Error> {
        self.ensure_schema_with(pool, &Policy::default()).await
    }

    /// The guard under `policy`: with `auto_upgrade`, a database that is behind is
    /// upgraded; errors carry `policy.hints`.
    pub async fn ensure_schema_with(
        &self,
        pool: impl Into<crate::Pool>,
        policy: &Policy,
    ) -> Result<Ensured, Error> {
        self.on_pool(pool, policy, async |migrator| {
            migrator.ensure_schema().await
        })
        .await
    }

    /// Upgrades to the newest migration, with production defaults (a backup first).
    pub async fn upgrade(&self, pool: impl Into<crate::Pool>) -> Result<Report, Error> {
        self.upgrade_with(pool, &Policy::default()).await
    }

    /// Upgrades to the newest migration under `policy`.
    pub async fn upgrade_with(
        &self,
        pool: impl Into<crate::Pool>,
        policy: &Policy,
    ) -> Result<Report, Error> {
        self.on_pool(pool, policy, async |migrator| {
            migrator.upgrade(UpgradeTarget::Head).await
        })
        .await
    }

    /// Runs `work` with a [`Migrator`] under `policy` on a handle around `pool`, closed
    /// after (which leaves the pool itself open).
    async fn on_pool<T>(
        &self,
        pool: impl Into<crate::Pool>,
        policy: &Policy,
        work: impl AsyncFnOnce(&Migrator<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let db = Database::from_pool(pool, crate::DatabaseOptions::default())?;
        let done = work(&Migrator::new(self, &db).with_policy(policy.clone())).await;
        db.close().await;
        done
    }
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
    pub(crate) migrations: &'a Migrations,
    pub(crate) db: &'a Database,
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
        let mut notices = Vec::new();
        for file in self.migrations.missing_from_build() {
            let notice = Notice::MissingFromBuild { file };
            tracing::info!("{notice}");
            notices.push(notice);
        }
        match self.check().await? {
            SchemaState::UpToDate { current } => Ok(Ensured::UpToDate { current, notices }),
            SchemaState::Behind { .. } | SchemaState::Interrupted { .. }
                if self.policy.auto_upgrade =>
            {
                let mut report = self.upgrade(UpgradeTarget::Head).await?;
                notices.append(&mut report.notices);
                report.notices = notices;
                Ok(Ensured::Upgraded(report))
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
                new_migration: self.policy.hints.new_migration.clone(),
                allow: self.policy.hints.allow_downgrade.clone(),
            });
        }
        let started = Instant::now();
        // An edited migration in the way is reverted with the down SQL it was applied with.
        if let SchemaState::Modified { missing, .. } = self.check().await?
            && missing.is_empty()
        {
            return self.downgrade_edited(target, started).await;
        }
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
        let recorder = crate::engine::script::Recorder {
            lock_wait: &|index| self.lock_wait(index),
            record: &|index, finished| {
                self.record(index, Direction::Up, finished, Duration::ZERO, None)
            },
        };
        let add_columns = if state.tables_present && !plan.is_empty() {
            self.db.missing_history_columns().await?
        } else {
            Vec::new()
        };
        Ok(crate::engine::script::render(
            self.migrations,
            self.db,
            &plan,
            !state.tables_present,
            &add_columns,
            &recorder,
        ))
    }

    /// The error the guard returns for a state it refuses.
    pub fn refusal(&self, state: SchemaState) -> Error {
        Error::Schema {
            state: Box::new(state),
            hints: Box::new(self.policy.hints.clone()),
            app_version: self.app_version(),
        }
    }

    pub(crate) fn app_version(&self) -> String {
        self.policy
            .app_version
            .clone()
            .or_else(|| self.migrations.app_version().map(str::to_owned))
            .unwrap_or_else(|| "0.0.0".to_owned())
    }

    /// Runs `work` on a session holding the lock; on every path the lock is released and,
    /// after a failure, the open transaction rolled back.
    pub(crate) async fn locked(
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
                let outcome = self.backup(session, &state, plan.from).await?;
                if let BackupOutcome::Skipped(reason) = &outcome {
                    let notice = Notice::BackupSkipped {
                        reason: reason.clone(),
                    };
                    tracing::info!("{notice}");
                    report.notices.push(notice);
                }
                report.backup = Some(outcome);
            }
            if first_round && state.tables_present {
                // A database made by an older build: our tables gain what this one writes.
                // PostgreSQL: each ALTER commits alone (under the advisory lock, and each is
                // checked for again, so an interruption is finished next time); SQLite: in
                // the round's write transaction.
                let added = session.upgrade_layout(store).await?;
                if !added.is_empty() {
                    tracing::info!(columns = ?added, "schema_history upgraded to this build's layout");
                }
            }
            let backup_path = match &report.backup {
                Some(BackupOutcome::Taken(b)) => Some(b.path.display().to_string()),
                _ => None,
            };
            let create_tables = !state.tables_present;
            report.to = self
                .run_batch(session, &plan, batch, create_tables, backup_path, report)
                .await?;
            first_round = false;
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
        create_tables: bool,
        backup: Option<String>,
        report: &mut Report,
    ) -> Result<Option<Revision>, Error> {
        let store = self.db.store();
        let direction = plan.direction;
        let from = plan.from.map(|r| r.to_string());
        match batch {
            Batch::Transaction(steps) => {
                let run = Run {
                    steps,
                    direction,
                    create_tables,
                    from: from.as_deref(),
                    backup: backup.as_deref(),
                };
                let (mut done, attempts) = self
                    .with_retries(session, from.as_deref(), &Work::Transaction(&run))
                    .await?;
                let after = self.revision_after(steps.last().copied(), direction);
                tracing::info!(migrations = steps.len(), to = ?after, attempts, "committed");
                for step in &mut done {
                    step.attempts = attempts;
                }
                report.steps.append(&mut done);
                Ok(after)
            }
            Batch::Alone(index) => {
                let index = *index;
                let migration = &self.migrations.as_slice()[index];
                // Recorded as started, committed, before it runs: a crash part-way is then
                // seen as "interrupted" instead of passing unnoticed.
                session.begin_write().await?;
                if create_tables {
                    session.create_tables(store).await?;
                }
                let started_record = self.record(index, direction, false, Duration::ZERO, backup);
                session
                    .insert_history(store, std::slice::from_ref(&started_record))
                    .await?;
                session.commit().await?;
                let started = Instant::now();
                let attempts = self
                    .run_alone(session, index, direction, from.as_deref())
                    .await?;
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
                report.steps.push(step(migration, duration, attempts));
                Ok(after)
            }
        }
    }

    /// One attempt at a batch of transactional migrations: its statements, its history rows
    /// and the version row commit together, or not at all.
    /// `number` counts the attempts (from 1); the history rows record it.
    async fn attempt_transaction(
        &self,
        session: &mut Session,
        run: &Run<'_>,
        number: u32,
    ) -> Result<Vec<Step>, Attempt> {
        let store = self.db.store();
        let dialect = self.db.dialect();
        let direction = run.direction;
        let Some(&first) = run.steps.first() else {
            return Ok(Vec::new());
        };
        let mut wait = self.lock_wait(first);
        let mut begin = vec![store.begin().to_owned()];
        begin.extend(store.migration_settings(Scope::Transaction, wait));
        let begun = session
            .begin_attempt(&begin)
            .await
            .map_err(|e| Attempt::from_own(e, first, wait))?;
        if run.create_tables {
            session
                .create_tables(store)
                .await
                .map_err(|e| Attempt::from_own(e, first, wait))?;
        }
        let mut records = Vec::with_capacity(run.steps.len());
        let mut done = Vec::with_capacity(run.steps.len());
        for (position, &index) in run.steps.iter().enumerate() {
            let migration = &self.migrations.as_slice()[index];
            let wanted = self.lock_wait(index);
            // SQLite has no per-attempt lock wait to set: it waits in its busy handler.
            if wanted != wait && dialect == Dialect::Postgres {
                session
                    .run_own(
                        &[store.set_lock_wait(Scope::Transaction, wanted)],
                        "setting the migration's lock wait",
                    )
                    .await
                    .map_err(|e| Attempt::from_own(e, index, wanted))?;
                wait = wanted;
            }
            let script = migration.script(direction, dialect);
            let started = Instant::now();
            if let Err((completed, error)) = session.run_migration(&script).await {
                if postgres::is_lock_wait(&error) {
                    return Err(Attempt::LockWait { index, wait });
                }
                let location = locate(
                    migration, direction, dialect, &script, &script, &error, completed,
                );
                let failure = StatementError::new(error, location);
                // A connection lost with the failure cannot be asked; the server rolls back
                // what it had, so the failure is reported as it is.
                let intact = session.transaction_intact(begun).await.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "cannot check the transaction after a failure");
                    true
                });
                return Err(Attempt::Failed(if intact {
                    Error::Migration {
                        file: migration.file_name(),
                        direction,
                        kept: run.from.map(str::to_owned),
                        source: failure,
                    }
                } else {
                    self.transaction_ended(
                        &run.steps[..=position],
                        index,
                        direction,
                        run.from,
                        Some(failure),
                    )
                }));
            }
            let duration = started.elapsed();
            records.push(NewRecord {
                attempts: i64::from(number),
                ..self.record(
                    index,
                    direction,
                    true,
                    duration,
                    run.backup.map(str::to_owned),
                )
            });
            done.push(step(migration, duration, 1));
        }
        // Defence in depth: a migration that ended our transaction must not be recorded.
        if !session
            .transaction_intact(begun)
            .await
            .map_err(Attempt::Failed)?
        {
            return Err(Attempt::Failed(self.transaction_ended(
                run.steps,
                run.steps.last().copied().unwrap_or(first),
                direction,
                run.from,
                None,
            )));
        }
        let last = run.steps.last().copied().unwrap_or(first);
        let after = self.revision_after(Some(last), direction);
        let own = |e| Attempt::from_own(e, last, wait);
        session.insert_history(store, &records).await.map_err(own)?;
        session
            .set_version(store, run.from, after.map(|r| r.to_string()).as_deref())
            .await
            .map_err(own)?;
        session.commit().await.map_err(own)?;
        Ok(done)
    }

    /// Runs a no-transaction migration: on PostgreSQL one statement at a time (a
    /// multi-statement query would be one implicit transaction), each retried like a
    /// transaction when it waits too long for a lock, with the schema on `search_path` and
    /// the lock wait set on the connection and reset after. Returns the most attempts any
    /// statement took.
    async fn run_alone(
        &self,
        session: &mut Session,
        index: usize,
        direction: Direction,
        from: Option<&str>,
    ) -> Result<u32, Error> {
        let migration = &self.migrations.as_slice()[index];
        let store = self.db.store();
        let dialect = self.db.dialect();
        let script = migration.script(direction, dialect);
        let interrupted = |source| Error::MigrationInterrupted {
            file: migration.file_name(),
            recover: self.policy.hints.recover.clone(),
            source,
        };
        if dialect == Dialect::Sqlite {
            return match session.run_migration(&script).await {
                Ok(()) => Ok(1),
                Err((completed, error)) => {
                    let location = locate(
                        migration, direction, dialect, &script, &script, &error, completed,
                    );
                    Err(interrupted(StatementError::new(error, location)))
                }
            };
        }
        let wait = self.lock_wait(index);
        session
            .run_own(
                &store.migration_settings(Scope::Session, wait),
                "setting the schema and lock wait for a no-transaction migration",
            )
            .await?;
        let mut most = 1;
        let mut result = Ok(());
        for (position, statement) in sql_split::statements(&script, dialect)
            .into_iter()
            .enumerate()
        {
            let special = concurrent_wait(statement, self.db.options().lock_timeout);
            let concurrent = special.is_some();
            let statement_wait = special.unwrap_or(wait);
            if concurrent {
                session
                    .run_own(
                        &[store.set_lock_wait(Scope::Session, statement_wait)],
                        "setting the lock wait",
                    )
                    .await?;
            }
            let work = Work::Statement {
                index,
                script: &script,
                statement,
                direction,
                retry: !concurrent,
                wait: statement_wait,
            };
            let outcome = self.with_retries(session, from, &work).await;
            if concurrent {
                session
                    .run_own(
                        &[store.set_lock_wait(Scope::Session, wait)],
                        "setting the lock wait",
                    )
                    .await?;
            }
            match outcome {
                Ok((_, attempts)) => most = most.max(attempts),
                Err(Error::TableLockTimeout {
                    file,
                    attempts,
                    attempt_timeout,
                    waited,
                    kept,
                    blockers,
                    ..
                }) => {
                    result = Err(Error::TableLockTimeout {
                        file,
                        attempts,
                        attempt_timeout,
                        waited,
                        kept,
                        blockers,
                        interrupted: (position > 0)
                            .then(|| Box::new(self.policy.hints.recover.clone())),
                    });
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(Error::TableLockTimeout {
            interrupted: None, ..
        }) = &result
        {
            // Not one statement ran: forget the started record, the database is untouched.
            session.begin().await?;
            session.delete_started(store).await?;
            session.commit().await?;
        }
        result?;
        session
            .run_own(
                &store.reset_migration_settings(),
                "resetting the connection's settings",
            )
            .await?;
        Ok(most)
    }

    /// Runs `attempt` until it succeeds, fails for another reason than a lock wait, or the
    /// lock budget (the database's lock timeout) is spent; between attempts it rolls back
    /// and pauses, so that the queries queued behind its lock request can run. From the
    /// second attempt on, a second connection watches who blocks it. Returns the value and
    /// how many attempts it took.
    async fn with_retries(
        &self,
        session: &mut Session,
        kept: Option<&str>,
        work: &Work<'_>,
    ) -> Result<(Vec<Step>, u32), Error> {
        let budget = self.db.options().lock_timeout;
        let started = Instant::now();
        let mut watcher: Option<postgres::Watcher> = None;
        let mut attempts = 0_u32;
        let result = loop {
            attempts += 1;
            let outcome = match watcher.as_mut() {
                Some(watcher) => tokio::select! {
                    biased;
                    outcome = self.attempt(session, work, attempts) => outcome,
                    never = watcher.watch() => match never {},
                },
                None => self.attempt(session, work, attempts).await,
            };
            let (index, wait) = match outcome {
                Ok(value) => break Ok((value, attempts)),
                Err(Attempt::Failed(error)) => break Err(error),
                Err(Attempt::LockWait { index, wait }) => (index, wait),
            };
            session.rollback().await;
            let pause = backoff(attempts);
            let waited = started.elapsed();
            let file = self.migrations.as_slice()[index].file_name();
            if waited + pause >= budget {
                break Err(Error::TableLockTimeout {
                    file,
                    attempts,
                    attempt_timeout: wait,
                    waited,
                    kept: kept.map(str::to_owned),
                    blockers: watcher.as_ref().map(|w| w.seen.clone()).unwrap_or_default(),
                    interrupted: None,
                });
            }
            tracing::info!(
                file = %file,
                attempt = attempts,
                wait_ms = millis(wait),
                pause_ms = millis(pause),
                "a table lock was not granted in time: rolled back, trying again"
            );
            if watcher.is_none() {
                watcher = self.db.lock_watcher(session).await;
            }
            tokio::time::sleep(pause).await;
        };
        if let Some(watcher) = watcher {
            watcher.close().await;
        }
        result
    }

    /// One attempt at `work`.
    async fn attempt(
        &self,
        session: &mut Session,
        work: &Work<'_>,
        number: u32,
    ) -> Result<Vec<Step>, Attempt> {
        match *work {
            Work::Transaction(run) => self.attempt_transaction(session, run, number).await,
            Work::Statement {
                index,
                script,
                statement,
                direction,
                retry,
                wait,
            } => {
                let migration = &self.migrations.as_slice()[index];
                let dialect = self.db.dialect();
                match session.run_migration(statement).await {
                    Ok(()) => Ok(Vec::new()),
                    Err((_, error)) if retry && postgres::is_lock_wait(&error) => {
                        Err(Attempt::LockWait { index, wait })
                    }
                    Err((completed, error)) => {
                        let location = locate(
                            migration, direction, dialect, script, statement, &error, completed,
                        );
                        Err(Attempt::Failed(Error::MigrationInterrupted {
                            file: migration.file_name(),
                            recover: self.policy.hints.recover.clone(),
                            source: StatementError::new(error, location),
                        }))
                    }
                }
            }
        }
    }

    /// The error for a batch whose transaction a migration's SQL ended: names the first
    /// migration of `steps` that holds transaction control, else `last`, the last one run.
    fn transaction_ended(
        &self,
        steps: &[usize],
        last: usize,
        direction: Direction,
        kept: Option<&str>,
        failure: Option<Box<StatementError>>,
    ) -> Error {
        let dialect = self.db.dialect();
        let (migration, statement) = steps
            .iter()
            .map(|&i| &self.migrations.as_slice()[i])
            .find_map(|m| transaction_control(m, direction, dialect).map(|at| (m, Some(at))))
            .unwrap_or((&self.migrations.as_slice()[last], None));
        Error::TransactionEnded {
            file: migration.file_name(),
            statement,
            kept: kept.map(str::to_owned),
            source: failure,
        }
    }

    /// One attempt's wait for a table lock when running the migration at `index`.
    fn lock_wait(&self, index: usize) -> Duration {
        self.migrations.as_slice()[index]
            .lock_timeout()
            .unwrap_or(self.policy.lock_attempt_timeout)
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

    pub(crate) fn record(
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
            down_sql: match direction {
                Direction::Up if !migration.irreversible() => Some(
                    migration
                        .script(Direction::Down, self.db.dialect())
                        .into_owned(),
                ),
                _ => None,
            },
            attempts: 1,
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

pub(crate) fn step(migration: &Migration, duration: Duration, attempts: u32) -> Step {
    Step {
        revision: migration.revision(),
        file: migration.file_name(),
        duration,
        no_transaction: migration.no_transaction(),
        attempts,
    }
}

/// A batch of transactional migrations, as each attempt runs it.
struct Run<'a> {
    steps: &'a [usize],
    direction: Direction,
    create_tables: bool,
    from: Option<&'a str>,
    backup: Option<&'a str>,
}

/// The lock wait of a no-transaction statement that must not be retried: `… CONCURRENTLY`
/// takes a lock that blocks no reader or writer, and a timeout in its later waits would
/// leave an invalid index to clean up, so it gets one attempt with the whole `budget`.
pub(crate) fn concurrent_wait(statement: &str, budget: Duration) -> Option<Duration> {
    statement
        .to_ascii_uppercase()
        .contains("CONCURRENTLY")
        .then_some(budget)
}

/// What one attempt runs.
enum Work<'a> {
    /// A batch of transactional migrations.
    Transaction(&'a Run<'a>),
    /// One statement of the no-transaction migration at `index`, part of its `script`.
    Statement {
        index: usize,
        script: &'a str,
        statement: &'a str,
        direction: Direction,
        /// Whether a lock wait may be retried.
        retry: bool,
        wait: Duration,
    },
}

/// How an attempt ended, when it did not succeed.
enum Attempt {
    /// A lock was not granted within `wait` while running the migration at `index`: the
    /// attempt can be rolled back and tried again.
    LockWait { index: usize, wait: Duration },
    /// Any other failure.
    Failed(Error),
}

impl Attempt {
    /// The failure of one of calista's own statements, a lock wait if it was one.
    fn from_own(error: Error, index: usize, wait: Duration) -> Self {
        match &error {
            Error::Database { source, .. } if postgres::is_lock_wait(source) => {
                Self::LockWait { index, wait }
            }
            _ => Self::Failed(error),
        }
    }
}

/// The pause before attempt `attempt + 1`: doubling from 100 ms up to 2 s, jittered down to
/// half, so that processes retrying together do not queue up together again.
fn backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let ceiling = Duration::from_millis(100)
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(Duration::from_secs(2));
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    let half = ceiling / 2;
    let extra = u64::try_from(half.as_micros()).unwrap_or(0);
    half + Duration::from_micros(random % extra.max(1))
}

/// Where the statement that failed is in the migration's file. `sent` is the part of
/// `script` that was sent (the whole script, or one statement of a no-transaction
/// migration); `completed`, how many of its statements finished before the failure.
/// PostgreSQL's error position, when it gives one, points at the exact line and column.
fn locate(
    migration: &Migration,
    direction: Direction,
    dialect: Dialect,
    script: &str,
    sent: &str,
    error: &sqlx::Error,
    completed: usize,
) -> Option<StatementLocation> {
    use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
    let base = (sent.as_ptr() as usize).wrapping_sub(script.as_ptr() as usize);
    let statements = sql::statements(sent, dialect);
    let position = error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>())
        .and_then(|e| match e.position() {
            Some(PgErrorPosition::Original(position)) => Some(position),
            _ => None,
        });
    if let Some(position) = position {
        // A position in characters, from 1, in the text sent.
        let at = sent.char_indices().nth(position.saturating_sub(1))?.0;
        let statement = statements
            .iter()
            .rev()
            .find(|s| s.offset <= at)
            .or(statements.first())?;
        let (line, column) = migration.locate(direction, dialect, base + at)?;
        return Some(StatementLocation {
            line,
            column: Some(column),
            text: shorten(statement.first_line()),
        });
    }
    let statement = statements.get(completed)?;
    let (line, _) = migration.locate(direction, dialect, base + statement.offset)?;
    Some(StatementLocation {
        line,
        column: None,
        text: shorten(statement.first_line()),
    })
}

/// A line of SQL for a message: at most 100 characters.
fn shorten(line: &str) -> String {
    let mut text: String = line.trim().chars().take(100).collect();
    if line.trim().chars().count() > 100 {
        text.push('…');
    }
    text
}

/// The first transaction-control statement of a migration (`BEGIN`, `COMMIT`, `ROLLBACK`,
/// …), if it holds one: what ended its transaction. The build-time check's rule.
fn transaction_control(
    migration: &Migration,
    direction: Direction,
    dialect: Dialect,
) -> Option<StatementLocation> {
    let script = migration.script(direction, dialect);
    sql::statements(&script, dialect)
        .into_iter()
        .find(sql::checks::is_transaction_control)
        .and_then(|statement| {
            let (line, _) = migration.locate(direction, dialect, statement.offset)?;
            Some(StatementLocation {
                line,
                column: None,
                text: shorten(statement.first_line()),
            })
        })
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The single version row of a state that [`plan::assess`] sent to diagnosis.
pub(crate) fn current_of(state: &DbState) -> &str {
    state
        .versions
        .as_ref()
        .and_then(|v| v.first())
        .map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_two_seconds_and_are_jittered_down_to_half() {
        for attempt in 1..20 {
            let ceiling =
                Duration::from_millis(100 << (attempt - 1).min(5)).min(Duration::from_secs(2));
            let pause = backoff(attempt);
            assert!(
                pause >= ceiling / 2 && pause <= ceiling,
                "{attempt}: {pause:?}"
            );
        }
        let pauses: std::collections::HashSet<_> = (0..20).map(|_| backoff(6)).collect();
        assert!(pauses.len() > 1, "jittered: {pauses:?}");
    }

    #[test]
    fn long_lines_are_shortened_for_messages() {
        assert_eq!(shorten("  INSERT INTO t  "), "INSERT INTO t");
        let long = format!("SELECT '{}'", "x".repeat(200));
        assert_eq!(shorten(&long).chars().count(), 101);
    }
}
