//! The development edit loop: reverting migrations with the down SQL recorded when they
//! were applied, so that editing the newest, unreleased migration needs no hand repair.
//!
//! - [`Migrator::redo`] reverts the newest applied migration with its recorded down SQL
//!   and applies its file as it is now, in one transaction.
//! - [`Migrator::downgrade`] of a migration whose file changed since it was applied (the
//!   guard's "modified") reverts it with the recorded down SQL, and its [`Report`] says so
//!   in [`Report::recorded_down_sql`].
//!
//! Both are refused in production, like every downgrade.

use std::time::Instant;

use crate::database::Session;
use crate::engine::migrator::{Downgrades, Migrator, Report, current_of, step};
use crate::error::{Error, StatementError};
use crate::migration::Direction;
use crate::naming::Revision;
use crate::plan::{self, Assessment, DowngradeTarget, SchemaState, TransactionMode};

impl Migrator<'_> {
    /// Reverts the newest applied migration with the down SQL recorded when it was applied
    /// (the file's own down SQL when none was recorded and the file is unchanged), then
    /// applies the file as it is now; one transaction (development and CI only). The
    /// report's `steps` hold the migration applied again; `recorded_down_sql` names it when
    /// the recorded SQL was used because the file had changed.
    pub async fn redo(&self) -> Result<Report, Error> {
        self.refuse_in_production()?;
        let started = Instant::now();
        let mut report = Report::new(Direction::Up);
        self.locked(&mut report, started, async |session, report| {
            self.redo_locked(session, report).await
        })
        .await?;
        Ok(report)
    }

    fn refuse_in_production(&self) -> Result<(), Error> {
        match &self.policy().downgrades {
            Downgrades::Refused { environment } => Err(Error::DowngradeRefused {
                environment: environment.clone(),
                new_migration: self.policy().hints.new_migration.clone(),
                allow: self.policy().hints.allow_downgrade.clone(),
            }),
            Downgrades::Allowed => Ok(()),
        }
    }

    async fn redo_locked(&self, session: &mut Session, report: &mut Report) -> Result<(), Error> {
        let (current, changed) = self.position_under_lock(session).await?;
        let Some(index) = current else {
            return Err(Error::Setup(
                "nothing to redo: no migration is applied".to_owned(),
            ));
        };
        let migration = &self.migrations.as_slice()[index];
        if migration.no_transaction() || migration.irreversible() {
            return Err(Error::Setup(format!(
                "{} is {}, which redo cannot revert and apply in one transaction",
                migration.file_name(),
                if migration.irreversible() {
                    "irreversible"
                } else {
                    "a no-transaction migration (downgrade it with -1, then upgrade)"
                }
            )));
        }
        let revision = migration.revision();
        report.from = Some(revision);
        report.to = Some(revision);
        session.begin_write().await?;
        session.upgrade_layout(self.db.store()).await?;
        let mut records = Vec::new();
        self.revert(session, &[index], &changed, report, &mut records)
            .await?;
        // The file as it is now.
        let started = Instant::now();
        session
            .run_migration(&migration.script(Direction::Up, self.db.dialect()))
            .await
            .map_err(|(_, error)| Error::Migration {
                file: migration.file_name(),
                direction: Direction::Up,
                kept: Some(revision.to_string()),
                source: StatementError::new(error, None),
            })?;
        let duration = started.elapsed();
        records.push(self.record(index, Direction::Up, true, duration, None));
        report.steps = vec![step(migration, duration, 1)];
        session.insert_history(self.db.store(), &records).await?;
        session.commit().await
    }

    /// A downgrade through migrations some of whose files changed since they were applied
    /// (the caller found the state "modified"); one transaction. The lock is released, and
    /// the transaction ended, by `locked` on every path.
    pub(crate) async fn downgrade_edited(
        &self,
        target: DowngradeTarget,
        started: Instant,
    ) -> Result<Report, Error> {
        let mut report = Report::new(Direction::Down);
        self.locked(&mut report, started, async |session, report| {
            let (current, changed_now) = self.position_under_lock(session).await?;
            let plan =
                plan::plan_downgrade(self.migrations, current, target, TransactionMode::All)?;
            let steps: Vec<usize> = plan.steps().collect();
            let reverted: Vec<Revision> = steps
                .iter()
                .map(|&i| self.migrations.as_slice()[i].revision())
                .collect();
            if let Some(kept) = changed_now.iter().find(|r| !reverted.contains(r)) {
                return Err(Error::Setup(format!(
                    "the migration {kept} changed since it was applied and this downgrade keeps it: \
                     restore its file, or downgrade below it"
                )));
            }
            if let Some(&alone) = steps
                .iter()
                .find(|&&i| self.migrations.as_slice()[i].no_transaction())
            {
                return Err(Error::Setup(format!(
                    "{} is a no-transaction migration and a migration to revert changed since it was applied: \
                     restore the changed file first",
                    self.migrations.as_slice()[alone].file_name()
                )));
            }
            (report.from, report.to) = (plan.from, plan.to);
            session.begin_write().await?;
            session.upgrade_layout(self.db.store()).await?;
            let mut records = Vec::new();
            self.revert(session, &steps, &changed_now, report, &mut records)
                .await?;
            session.insert_history(self.db.store(), &records).await?;
            let (from, to) = (
                plan.from.map(|r| r.to_string()),
                plan.to.map(|r| r.to_string()),
            );
            session
                .set_version(self.db.store(), from.as_deref(), to.as_deref())
                .await?;
            session.commit().await
        })
        .await?;
        Ok(report)
    }

    /// The current position read under the lock, and the applied migrations whose files
    /// changed; any other unsafe state is refused.
    async fn position_under_lock(
        &self,
        session: &mut Session,
    ) -> Result<(Option<usize>, Vec<Revision>), Error> {
        let store = self.db.store();
        session.lock_round().await?;
        let state = session.read_state(store).await?;
        let verdict = match plan::assess(self.migrations, &state) {
            Assessment::Decided(verdict) => verdict,
            Assessment::NeedsHistory => {
                let history = session.read_history(store).await?;
                plan::diagnose(self.migrations, current_of(&state), &history)
            }
        };
        let current = Revision::parse(current_of(&state))
            .ok()
            .and_then(|r| self.migrations.position(r));
        match verdict {
            SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => Ok((
                current.and_then(|c| self.migrations.position(c)),
                Vec::new(),
            )),
            SchemaState::Modified { changed, missing }
                if missing.is_empty() && current.is_some() =>
            {
                Ok((current, changed.into_iter().map(|(r, _)| r).collect()))
            }
            other => Err(self.refusal(other)),
        }
    }

    /// Runs the down SQL of each migration at `steps` (newest first) in the open
    /// transaction: the recorded SQL for those in `changed`, else the file's.
    async fn revert(
        &self,
        session: &mut Session,
        steps: &[usize],
        changed: &[Revision],
        report: &mut Report,
        records: &mut Vec<crate::backend::NewRecord>,
    ) -> Result<(), Error> {
        for &index in steps {
            let migration = &self.migrations.as_slice()[index];
            let revision = migration.revision();
            let edited = changed.contains(&revision);
            let recorded = session
                .read_down_sql(self.db.store(), &revision.to_string())
                .await?;
            let down = match (edited, recorded) {
                (true, Some(sql)) => {
                    report.recorded_down_sql.push(revision);
                    tracing::info!(file = %migration.file_name(), "reverted with the down SQL recorded when it was applied");
                    sql
                }
                (true, None) => {
                    return Err(Error::Setup(format!(
                        "{} changed since it was applied, by a build that did not record its down SQL: \
                         restore the file as it was to revert it, or undo its changes by hand",
                        migration.file_name()
                    )));
                }
                (false, _) => migration
                    .script(Direction::Down, self.db.dialect())
                    .into_owned(),
            };
            let started = Instant::now();
            session
                .run_migration(&down)
                .await
                .map_err(|(_, error)| Error::Migration {
                    file: migration.file_name(),
                    direction: Direction::Down,
                    kept: Some(revision.to_string()),
                    source: StatementError::new(error, None),
                })?;
            let duration = started.elapsed();
            records.push(self.record(index, Direction::Down, true, duration, None));
            if report.direction == Direction::Down {
                report.steps.push(step(migration, duration, 1));
            }
        }
        Ok(())
    }
}
