//! Runs plans against a database: the guard, upgrades, downgrades and recovery.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::plan::{
    self, Assessment, Batch, DbState, DowngradeTarget, Plan, SchemaState, TransactionMode,
    UpgradeTarget,
};
use super::program::{Op, Program, Row, Setup};
use super::run::{Runner, millis};
use crate::backend::{Backend, NewRecord};
use crate::backup::{self, BackupOutcome, BackupPolicy};
use crate::database::{Database, Handle, OnBackend, Session};
use crate::error::{AfterLoss, Error, Hints};
use crate::migration::{Direction, Migration, Migrations};
use crate::naming::Revision;

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
    pub app_version: Option<semver::Version>,
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
                environment: Environment::Production,
            },
            app_version: None,
            hints: Hints::default(),
            lock_attempt_timeout: crate::settings::DEFAULT_LOCK_ATTEMPT_TIMEOUT,
        }
    }
}

impl Policy {
    /// For a scratch database calista makes and drops itself (stamp, squash, verify):
    /// downgrades allowed, no backup.
    pub(crate) fn scratch() -> Self {
        Self {
            downgrades: Downgrades::Allowed,
            backup: BackupPolicy::Disabled {
                reason: "a scratch database".to_owned(),
            },
            ..Self::default()
        }
    }
}

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Forward-only, backups on by default.
    Production,
    /// Downgrades allowed, backups off by default.
    Development,
    /// Like development, for continuous integration.
    Ci,
}

impl Environment {
    /// Whether downgrades may run: in development and CI only.
    pub fn allows_downgrade(&self) -> bool {
        !matches!(self, Self::Production)
    }

    /// `production`, `development` or `ci`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Development => "development",
            Self::Ci => "ci",
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether downgrades may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downgrades {
    /// Development and CI.
    Allowed,
    /// Production: forward-only.
    Refused {
        /// The environment in effect, for the message.
        environment: Environment,
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
/// included) are left as they were. On PostgreSQL calista's tables and the migrations'
/// objects go where the pool's queries look, its `current_schema()`, as
/// `sqlx::migrate!().run(&pool)` does; to name another schema
/// ([`DatabaseOptions::schema`](crate::DatabaseOptions)) or other options, use
/// [`Database::from_pool`] and a [`Migrator`].
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
/// let url = calista_core::url::DatabaseUrl::parse("sqlite://app.db", std::path::Path::new("."))?;
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

    /// The rows of the version table as written ([`Database::current`]): what `db current`
    /// shows, whatever the guard thinks of them.
    pub async fn current(&self) -> Result<Vec<String>, Error> {
        self.db.current().await
    }

    /// Every migration applied (and, in development, reverted), oldest first
    /// ([`Database::history`]).
    pub async fn history(&self) -> Result<Vec<crate::HistoryRecord>, Error> {
        self.db.history().await
    }

    /// The guard's check: compares the database with the migrations. Takes no lock and,
    /// when the database is up to date or behind, costs one query that reads the version
    /// rows and one history row, however many migrations exist.
    pub async fn check(&self) -> Result<SchemaState, Error> {
        self.db.on_backend(Check(self)).await
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
        let state = self.check().await?;
        let state = match self.on_standby(state).await? {
            Ok(state) => state,
            Err(refusal) => return Err(refusal),
        };
        match state {
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
        self.db.on_backend(Upgrade(self, target)).await
    }

    /// Reverts migrations down to `target`, in reverse order (development and CI only).
    /// An irreversible migration in the way refuses the whole downgrade before anything runs.
    pub async fn downgrade(&self, target: DowngradeTarget) -> Result<Report, Error> {
        self.refuse_downgrades_in_production()?;
        self.db.on_backend(Downgrade(self, target)).await
    }

    /// Resolves an interrupted no-transaction migration.
    pub async fn recover(&self, how: Recovery) -> Result<SchemaState, Error> {
        self.db.on_backend(Recover(self, how)).await?;
        self.check().await
    }

    /// The SQL an upgrade to `target` would run, version-table statements included.
    /// Reads the database, changes nothing.
    pub async fn upgrade_script(&self, target: UpgradeTarget) -> Result<String, Error> {
        self.db.on_backend(Script(self, target)).await
    }

    /// Reverts the newest applied migration with the down SQL recorded when it was applied
    /// (the file's own down SQL when none was recorded and the file is unchanged), then
    /// applies the file as it is now; one transaction (development and CI only). The
    /// report's `steps` hold the migration applied again; `recorded_down_sql` names it when
    /// the recorded SQL was used because the file had changed.
    pub async fn redo(&self) -> Result<Report, Error> {
        self.refuse_downgrades_in_production()?;
        self.db.on_backend(Redo(self)).await
    }

    /// [`Migrator::refusal`], for the server the state was read from: on a hot standby, a
    /// state that is behind says so, and how far the standby's replay lags, instead of
    /// advising an upgrade there. Costs one query, for a state that is behind.
    pub async fn refusal_on_server(&self, state: SchemaState) -> Error {
        match self.on_standby(state).await {
            Ok(Ok(state)) => self.refusal(state),
            Ok(Err(refusal)) | Err(refusal) => refusal,
        }
    }

    /// `Ok(state)` back, unless it is behind (or interrupted) on a hot standby: then
    /// `Err`, the refusal that says so. No upgrade can run there, and its primary may be
    /// ahead of what it has replayed.
    async fn on_standby(&self, state: SchemaState) -> Result<Result<SchemaState, Error>, Error> {
        if !matches!(
            state,
            SchemaState::Behind { .. } | SchemaState::Interrupted { .. }
        ) {
            return Ok(Ok(state));
        }
        Ok(match self.db.on_backend(IsStandby).await? {
            Some(standby) => Err(Error::StandbyBehind {
                state: Box::new(state),
                lag: standby.lag,
            }),
            None => Ok(state),
        })
    }

    /// The error the guard returns for a state it refuses.
    pub fn refusal(&self, state: SchemaState) -> Error {
        Error::Schema {
            state: Box::new(state),
            hints: Box::new(self.policy.hints.clone()),
            app_version: self.app_version(),
        }
    }

    /// The policy's application version, else the version of the crate that embedded the
    /// migrations; `None` when neither is known (migrations read from a folder).
    pub(crate) fn app_version(&self) -> Option<semver::Version> {
        self.policy.app_version.clone().or_else(|| {
            self.migrations
                .app_version()
                .and_then(|text| semver::Version::parse(text).ok())
        })
    }

    /// The application's version as the history records it: text, empty when not known.
    pub(crate) fn app_version_text(&self) -> String {
        self.app_version()
            .map(|version| version.to_string())
            .unwrap_or_default()
    }

    /// Downgrades (and redo) are for development and CI.
    fn refuse_downgrades_in_production(&self) -> Result<(), Error> {
        match &self.policy.downgrades {
            Downgrades::Refused { environment } => Err(Error::DowngradeRefused {
                environment: *environment,
                new_migration: self.policy.hints.new_migration.clone(),
                allow: self.policy.hints.allow_downgrade.clone(),
            }),
            Downgrades::Allowed => Ok(()),
        }
    }

    /// One attempt's wait for a table lock when running the migration at `index`.
    pub(crate) fn lock_wait(&self, index: usize) -> Duration {
        self.migrations.as_slice()[index]
            .lock_timeout()
            .unwrap_or(self.policy.lock_attempt_timeout)
    }

    /// The revision after running the migration at `index` in `direction`.
    pub(crate) fn revision_after(
        &self,
        index: Option<usize>,
        direction: Direction,
    ) -> Option<Revision> {
        let index = index?;
        match direction {
            Direction::Up => Some(self.migrations.as_slice()[index].revision()),
            Direction::Down => index
                .checked_sub(1)
                .map(|i| self.migrations.as_slice()[i].revision()),
        }
    }
}

// The migrator's operations, each run on its database's backend by `Database::on_backend`.

struct Check<'m>(&'m Migrator<'m>);
struct IsStandby;
struct Upgrade<'m>(&'m Migrator<'m>, UpgradeTarget);
struct Downgrade<'m>(&'m Migrator<'m>, DowngradeTarget);
struct Recover<'m>(&'m Migrator<'m>, Recovery);
struct Script<'m>(&'m Migrator<'m>, UpgradeTarget);
struct Redo<'m>(&'m Migrator<'m>);

impl OnBackend for Check<'_> {
    type Output = SchemaState;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        Engine::new(self.0, handle).check().await
    }
}

impl OnBackend for IsStandby {
    type Output = Option<crate::backend::Standby>;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        handle.standby().await
    }
}

impl OnBackend for Upgrade<'_> {
    type Output = Report;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        Engine::new(self.0, handle).upgrade(self.1).await
    }
}

impl OnBackend for Downgrade<'_> {
    type Output = Report;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        Engine::new(self.0, handle).downgrade(self.1).await
    }
}

impl OnBackend for Recover<'_> {
    type Output = ();
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        Engine::new(self.0, handle).recover(self.1).await
    }
}

impl OnBackend for Script<'_> {
    type Output = String;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        Engine::new(self.0, handle).upgrade_script(self.1).await
    }
}

impl OnBackend for Redo<'_> {
    type Output = Report;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        Engine::new(self.0, handle).redo().await
    }
}

/// The migrator on one backend: the guard, upgrades, downgrades and recovery, written once
/// over [`Backend`].
pub(crate) struct Engine<'a, B: Backend> {
    pub(crate) migrator: &'a Migrator<'a>,
    pub(crate) handle: &'a Handle<B>,
}

impl<'a, B: Backend> Engine<'a, B> {
    pub(crate) fn new(migrator: &'a Migrator<'a>, handle: &'a Handle<B>) -> Self {
        Self { migrator, handle }
    }

    pub(crate) fn backend(&self) -> &B {
        &self.handle.backend
    }

    pub(crate) fn migration(&self, index: usize) -> &'a Migration {
        &self.migrator.migrations.as_slice()[index]
    }

    /// [`Migrator::check`].
    async fn check(&self) -> Result<SchemaState, Error> {
        self.check_for_upgrade().await.map(|(verdict, _)| verdict)
    }

    /// [`Migrator::check`], and whether it found none of our tables (a first upgrade, which
    /// then need not read the state again under the lock: see [`Engine::rounds`]).
    async fn check_for_upgrade(&self) -> Result<(SchemaState, bool), Error> {
        let migrations = self.migrator.migrations;
        if let Some(brief) = self.handle.read_state_brief().await?
            && let Assessment::Decided(
                verdict @ (SchemaState::UpToDate { .. } | SchemaState::Behind { .. }),
            ) = plan::assess(migrations, &brief)
        {
            return Ok((verdict, brief == DbState::empty()));
        }
        // Anything else is rare, and worth reading everything it takes to say exactly what.
        let state = self.handle.read_state().await?;
        let verdict = match plan::assess(migrations, &state) {
            Assessment::Decided(verdict) => verdict,
            Assessment::NeedsHistory => {
                let history = self.handle.read_history().await?;
                plan::diagnose(migrations, current_of(&state), &history)
            }
        };
        Ok((verdict, false))
    }

    /// [`Migrator::upgrade`].
    async fn upgrade(&self, target: UpgradeTarget) -> Result<Report, Error> {
        let started = Instant::now();
        let mode = self.migrator.policy.transaction_mode;
        let migrations = self.migrator.migrations;
        // Step 0, no lock: a process that finds nothing to do never waits for one.
        let (state, found_empty) = self.check_for_upgrade().await?;
        match &state {
            SchemaState::UpToDate { current } => {
                let position = current.and_then(|c| migrations.position(c));
                let plan = plan::plan_upgrade(migrations, position, target, mode)?;
                if plan.is_empty() {
                    let mut report = Report::new(Direction::Up);
                    (report.from, report.to, report.total) =
                        (*current, *current, started.elapsed());
                    return Ok(report);
                }
            }
            // Interrupted may be another process's migration in progress: the lock decides.
            SchemaState::Behind { .. } | SchemaState::Interrupted { .. } => {}
            _ => return Err(self.migrator.refusal(state)),
        }
        let mut report = Report::new(Direction::Up);
        self.locked(&mut report, started, async |session, report| {
            self.rounds(session, report, found_empty, |current| {
                plan::plan_upgrade(migrations, current, target, mode)
            })
            .await
        })
        .await?;
        Ok(report)
    }

    /// [`Migrator::downgrade`].
    async fn downgrade(&self, target: DowngradeTarget) -> Result<Report, Error> {
        let started = Instant::now();
        // An edited migration in the way is reverted with the down SQL it was applied with.
        if let SchemaState::Modified { missing, .. } = self.check().await?
            && missing.is_empty()
        {
            return self.downgrade_edited(target, started).await;
        }
        let mode = self.migrator.policy.transaction_mode;
        let migrations = self.migrator.migrations;
        let mut report = Report::new(Direction::Down);
        self.locked(&mut report, started, async |session, report| {
            // "-1" means one step back from where the database is when the lock is taken;
            // the first round pins it to that revision, and later rounds aim there.
            let mut target = target;
            self.rounds(session, report, false, |current| {
                let plan = plan::plan_downgrade(migrations, current, target, mode)?;
                target = plan
                    .to
                    .map_or(DowngradeTarget::Base, DowngradeTarget::Revision);
                Ok(plan)
            })
            .await
        })
        .await?;
        Ok(report)
    }

    /// [`Migrator::recover`], under the lock.
    async fn recover(&self, how: Recovery) -> Result<(), Error> {
        self.refuse_standby().await?;
        let mut session = self.handle.session().await?;
        let result = self.recover_locked(&mut session, how).await;
        self.handle.end_session(session, result.is_ok()).await;
        result
    }

    async fn recover_locked(
        &self,
        session: &mut Session<'_, B>,
        how: Recovery,
    ) -> Result<(), Error> {
        session.begin_round().await?;
        let state = self
            .backend()
            .read_state_in_transaction(session.conn())
            .await?;
        let Some(SchemaState::Interrupted {
            revision,
            direction,
            ..
        }) = (match plan::assess(self.migrator.migrations, &state) {
            Assessment::Decided(verdict) => Some(verdict),
            Assessment::NeedsHistory => None,
        })
        else {
            session.end_read_round().await;
            return Err(Error::NothingToRecover);
        };
        let mut ops = vec![Op::Begin(super::program::Begin::Write)];
        match how {
            Recovery::Retry => ops.push(Op::DeleteStarted),
            Recovery::MarkApplied => {
                let current = state.versions.as_ref().and_then(|v| v.first()).cloned();
                let after = match direction {
                    Direction::Up => Some(revision.to_string()),
                    Direction::Down => self
                        .migrator
                        .migrations
                        .position(revision)
                        .and_then(|i| i.checked_sub(1))
                        .map(|i| self.migration(i).revision().to_string()),
                };
                ops.push(Op::FinishStarted { index: None });
                ops.push(Op::MoveVersion {
                    from: current,
                    to: after,
                });
            }
        }
        ops.push(Op::Commit);
        let program = Program { direction, ops };
        let mut report = Report::new(direction);
        Runner::new(self, session, &mut report, None)
            .run(&program)
            .await
    }

    /// [`Migrator::upgrade_script`].
    async fn upgrade_script(&self, target: UpgradeTarget) -> Result<String, Error> {
        let state = self.handle.read_state().await?;
        let verdict = self.check().await?;
        let current = match &verdict {
            SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => *current,
            _ => return Err(self.migrator.refusal(verdict)),
        };
        let migrations = self.migrator.migrations;
        let position = current.and_then(|c| migrations.position(c));
        let plan = plan::plan_upgrade(
            migrations,
            position,
            target,
            self.migrator.policy.transaction_mode,
        )?;
        let add_columns = if state.tables_present && !plan.is_empty() {
            self.handle.missing_history_columns().await?
        } else {
            Vec::new()
        };
        let setup = Setup {
            create_tables: !state.tables_present,
            assumed_absent: false,
            add_columns,
        };
        let program = Program::compile::<B>(self.migrator, &plan, setup);
        Ok(super::script::print(self, &plan, &program))
    }

    /// Runs `work` on a session holding the lock; on every path the lock is released and,
    /// after a failure, the open transaction rolled back.
    pub(crate) async fn locked(
        &self,
        report: &mut Report,
        started: Instant,
        work: impl AsyncFnOnce(&mut Session<'_, B>, &mut Report) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.refuse_standby().await?;
        let mut session = self.handle.session().await?;
        let result = work(&mut session, report).await;
        self.handle.end_session(session, result.is_ok()).await;
        report.total = started.elapsed();
        result
    }

    /// A hot standby takes no writes: refused before any lock or backup, with one query.
    async fn refuse_standby(&self) -> Result<(), Error> {
        match self.handle.standby().await? {
            Some(_) => Err(Error::Standby {
                url: self.migrator.db.url().to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Each round: take the lock where it is a transaction, read the state again, plan from
    /// it, run the plan's first batch. Planning afresh each round means another process's
    /// progress is never repeated; a plan of one batch needs no second round. The first
    /// round of an upgrade that has something to do takes the backup, and brings our tables
    /// of an older build to this build's layout.
    ///
    /// `found_empty`: the check before the lock found none of our tables. Where the backend
    /// can tell from creating them that they are still absent
    /// ([`Backend::create_absent_tables`]), the first round plans from that, without reading
    /// the state again: a first upgrade's two round trips fewer. If another process made
    /// them meanwhile, the creation fails, the round is rolled back, and it runs again from a
    /// fresh read.
    ///
    /// A connection lost in a later round before its batch runs (taking the lock again,
    /// reading the state) changed nothing of that round, but the batches committed before
    /// stay: the error says the revision they reached.
    async fn rounds(
        &self,
        session: &mut Session<'_, B>,
        report: &mut Report,
        found_empty: bool,
        next_plan: impl FnMut(Option<usize>) -> Result<Plan, plan::PlanRefusal>,
    ) -> Result<(), Error> {
        let result = self
            .run_rounds(session, report, found_empty, next_plan)
            .await;
        match result {
            Err(Error::ConnectionLost {
                doing,
                file,
                after: AfterLoss::Unchanged,
            }) if report.to != report.from => Err(Error::ConnectionLost {
                doing,
                file,
                after: AfterLoss::RolledBack {
                    kept: report.to.as_ref().map(ToString::to_string),
                },
            }),
            result => result,
        }
    }

    async fn run_rounds(
        &self,
        session: &mut Session<'_, B>,
        report: &mut Report,
        found_empty: bool,
        mut next_plan: impl FnMut(Option<usize>) -> Result<Plan, plan::PlanRefusal>,
    ) -> Result<(), Error> {
        let mut first_round = true;
        let mut assume_empty = found_empty && self.backend().create_absent_tables().is_some();
        loop {
            session.begin_round().await?;
            let state = if assume_empty {
                DbState::empty()
            } else {
                self.backend()
                    .read_state_in_transaction(session.conn())
                    .await?
            };
            let current = self.current_under_lock(session, &state).await?;
            let mut plan = next_plan(current)?;
            if first_round {
                (report.from, report.to) = (plan.from, plan.from);
            }
            let Some(batch) = plan.batches.first() else {
                session.end_read_round().await;
                break;
            };
            // A no-transaction migration spans several transactions: the lock taken in this
            // round's ends with it, so it is held apart from here on, and the state read
            // again under it.
            if let Batch::Alone(index) = batch
                && B::HOLDS_LOCK_APART
                && !session.holds_lock_apart()
            {
                let file = self.migration(*index).file_name();
                session.end_read_round().await;
                session.hold_lock_apart(&file).await?;
                // The lock was let go meanwhile: the state is read again.
                assume_empty = false;
                continue;
            }
            let after = match batch {
                Batch::Transaction(steps) => self
                    .migrator
                    .revision_after(steps.last().copied(), plan.direction),
                Batch::Alone(index) => self.migrator.revision_after(Some(*index), plan.direction),
            };
            if first_round && plan.direction == Direction::Up && report.backup.is_none() {
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
            // A database made by an older build: our tables gain what this one writes, under
            // the lock (where the session holds it, each column commits alone and is checked
            // for again, so an interruption is finished next time).
            let add_columns = if first_round && state.tables_present {
                self.backend()
                    .missing_history_columns(session.conn())
                    .await?
            } else {
                Vec::new()
            };
            let last_round = plan.batches.len() == 1;
            plan.batches.truncate(1);
            let setup = Setup {
                create_tables: !state.tables_present,
                assumed_absent: assume_empty,
                add_columns,
            };
            let program = Program::compile::<B>(self.migrator, &plan, setup);
            let backup = match &report.backup {
                Some(BackupOutcome::Taken(b)) => Some(b.path.display().to_string()),
                _ => None,
            };
            let ran = Runner::new(self, session, report, backup)
                .run(&program)
                .await;
            match ran {
                Err(Error::Database { source, .. })
                    if assume_empty && B::is_duplicate_table(source.database_error()) =>
                {
                    tracing::debug!(
                        "another process made the migration tables meanwhile: reading the state again"
                    );
                    session.rollback().await;
                    assume_empty = false;
                    continue;
                }
                ran => ran?,
            }
            report.to = after;
            first_round = false;
            if last_round {
                // That was the plan's last batch: the target is reached under the lock.
                break;
            }
        }
        if let Some(BackupOutcome::Taken(taken)) = &report.backup {
            report.pruned = self.prune_backups(taken);
        }
        Ok(())
    }

    /// The current position, read under the lock; an unsafe state stops everything.
    async fn current_under_lock(
        &self,
        session: &mut Session<'_, B>,
        state: &DbState,
    ) -> Result<Option<usize>, Error> {
        let migrations = self.migrator.migrations;
        let verdict = match plan::assess(migrations, state) {
            Assessment::Decided(verdict) => verdict,
            Assessment::NeedsHistory => {
                let history = self.backend().read_history(session.conn()).await?;
                plan::diagnose(migrations, current_of(state), &history)
            }
        };
        match verdict {
            SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => {
                Ok(current.and_then(|c| migrations.position(c)))
            }
            other => Err(self.migrator.refusal(other)),
        }
    }

    /// The history row of `row`'s migration.
    pub(crate) fn record(
        &self,
        row: Row,
        duration: Duration,
        attempts: u32,
        backup: Option<String>,
    ) -> NewRecord {
        let Row {
            index,
            direction,
            finished,
        } = row;
        let migrations = self.migrator.migrations;
        let migration = self.migration(index);
        let chain = match direction {
            Direction::Up => migrations.chain_at(index),
            Direction::Down => index.checked_sub(1).and_then(|i| migrations.chain_at(i)),
        };
        NewRecord {
            revision: migration.revision().to_string(),
            summary: migration.summary().to_owned(),
            direction,
            finished,
            checksum: migration.checksum(),
            chain,
            duration_ms: millis(duration),
            app_version: self.migrator.app_version_text(),
            backup,
            down_sql: match direction {
                Direction::Up if !migration.irreversible() => {
                    Some(migration.script(Direction::Down, B::DIALECT).into_owned())
                }
                _ => None,
            },
            attempts: i64::from(attempts),
            kind: if migration.baseline().is_some() {
                plan::HistoryKind::Baseline
            } else {
                plan::HistoryKind::Applied
            },
            note: None,
            replaced_checksum: None,
        }
    }

    /// Takes the backup of step 4, or says why not. Runs under the lock, before any change.
    async fn backup(
        &self,
        session: &mut Session<'_, B>,
        state: &DbState,
        at: Option<Revision>,
    ) -> Result<BackupOutcome, Error> {
        let options = match &self.migrator.policy.backup {
            BackupPolicy::Disabled { reason } => return Ok(BackupOutcome::Skipped(reason.clone())),
            BackupPolicy::Enabled(options) => options,
        };
        let source = match self.migrator.db.backup_source() {
            Ok(source) => source,
            Err(reason) => {
                return Ok(BackupOutcome::Skipped(format!(
                    "{reason}: nothing to back up"
                )));
            }
        };
        if !state.tables_present && self.backend().is_empty(session.conn()).await? {
            return Ok(BackupOutcome::Skipped(
                "the database is empty: nothing to back up".to_owned(),
            ));
        }
        let at = at.map(|r| r.to_string());
        let taken = match backup::take(&source, at.as_deref(), options).await {
            Ok(taken) => taken,
            Err(error) => return Err(self.backup_failure(session, error).await),
        };
        tracing::info!(path = %taken.path.display(), bytes = taken.size, "backup taken");
        Ok(BackupOutcome::Taken(taken))
    }

    /// A backup that failed, as it is told. pg_dump's connection goes with the server: a
    /// server gone during the backup reads as a pg_dump that cannot connect (which blames
    /// the URL and pg_hba.conf) or that failed in its own words for the loss. The upgrade's
    /// own connection, asked once, tells a lost connection, which is said as such: nothing
    /// was being changed.
    async fn backup_failure(
        &self,
        session: &mut Session<'_, B>,
        error: backup::BackupError,
    ) -> Error {
        if error.may_be_lost_connection()
            && let Err((_, lost)) = self.backend().run(session.conn(), "SELECT 1").await
            && B::is_connection_lost(&lost)
        {
            tracing::debug!(backup = %error, "the connection to the database was lost during the backup");
            return Error::ConnectionLost {
                doing: "taking the backup".to_owned(),
                file: None,
                after: AfterLoss::Unchanged,
            };
        }
        Error::Backup(error)
    }

    fn prune_backups(&self, taken: &backup::Backup) -> Vec<PathBuf> {
        let BackupPolicy::Enabled(options) = &self.migrator.policy.backup else {
            return Vec::new();
        };
        let Ok(source) = self.migrator.db.backup_source() else {
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

/// The single version row of a state that [`plan::assess`] sent to diagnosis.
pub(crate) fn current_of(state: &DbState) -> &str {
    state
        .versions
        .as_ref()
        .and_then(|v| v.first())
        .map_or("", String::as_str)
}
