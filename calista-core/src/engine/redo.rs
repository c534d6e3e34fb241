//! The development edit loop: reverting migrations with the down SQL recorded when they
//! were applied, so that editing the newest, unreleased migration needs no hand repair.
//!
//! - [`Migrator::redo`](crate::Migrator::redo) reverts the newest applied migration with its
//!   recorded down SQL and applies its file as it is now, in one transaction.
//! - [`Migrator::downgrade`](crate::Migrator::downgrade) of a migration whose file changed
//!   since it was applied (the guard's "modified") reverts it with the recorded down SQL, and
//!   its [`Report`] says so in [`Report::recorded_down_sql`].
//!
//! Both are refused in production, like every downgrade.

use std::time::Instant;

use super::migrator::{Engine, Report, current_of};
use super::plan::{self, Assessment, DowngradeTarget, SchemaState, TransactionMode};
use super::program::{Begin, Op, Program, Row};
use super::run::Runner;
use crate::backend::Backend;
use crate::database::Session;
use crate::error::Error;
use crate::migration::Direction;
use crate::naming::Revision;

impl<B: Backend> Engine<'_, B> {
    /// [`Migrator::redo`](crate::Migrator::redo).
    pub(crate) async fn redo(&self) -> Result<Report, Error> {
        let started = Instant::now();
        let mut report = Report::new(Direction::Up);
        self.locked(&mut report, started, async |session, report| {
            self.redo_locked(session, report).await
        })
        .await?;
        Ok(report)
    }

    async fn redo_locked(
        &self,
        session: &mut Session<'_, B>,
        report: &mut Report,
    ) -> Result<(), Error> {
        let (current, changed) = self.position_under_lock(session).await?;
        let Some(index) = current else {
            return Err(Error::NothingToRedo);
        };
        let migration = self.migration(index);
        if migration.no_transaction() || migration.irreversible() {
            return Err(Error::CannotRedo {
                file: migration.file_name().to_owned(),
                irreversible: migration.irreversible(),
            });
        }
        let revision = migration.revision();
        report.from = Some(revision);
        report.to = Some(revision);
        let mut ops = self
            .begin_edit(session, Some(revision), self.migrator.lock_wait(index))
            .await?;
        ops.extend(self.reverts(session, &[index], &changed, report).await?);
        // The file as it is now.
        ops.push(Op::Migrate {
            index,
            direction: Direction::Up,
            recorded: None,
        });
        ops.push(Op::RecordHistory(vec![
            Row {
                index,
                direction: Direction::Down,
                finished: true,
            },
            Row {
                index,
                direction: Direction::Up,
                finished: true,
            },
        ]));
        ops.push(Op::Commit);
        let program = Program {
            direction: Direction::Up,
            ops,
        };
        Runner::new(self, session, report, None).run(&program).await
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
        let migrations = self.migrator.migrations;
        self.locked(&mut report, started, async |session, report| {
            let (current, changed_now) = self.position_under_lock(session).await?;
            let plan = plan::plan_downgrade(migrations, current, target, TransactionMode::All)?;
            let steps: Vec<usize> = plan.steps().collect();
            let reverted: Vec<Revision> = steps
                .iter()
                .map(|&i| self.migration(i).revision())
                .collect();
            if let Some(kept) = changed_now.iter().find(|r| !reverted.contains(r)) {
                return Err(Error::ChangedMigrationKept { revision: *kept });
            }
            if let Some(&alone) = steps.iter().find(|&&i| self.migration(i).no_transaction()) {
                return Err(Error::ChangedRevertNotAlone {
                    file: self.migration(alone).file_name().to_owned(),
                });
            }
            (report.from, report.to) = (plan.from, plan.to);
            let lock_wait = steps
                .first()
                .map_or(self.migrator.policy().lock_attempt_timeout, |&index| {
                    self.migrator.lock_wait(index)
                });
            let mut ops = self.begin_edit(session, plan.from, lock_wait).await?;
            ops.extend(self.reverts(session, &steps, &changed_now, report).await?);
            let rows = steps.iter().map(|&index| Row {
                index,
                direction: Direction::Down,
                finished: true,
            });
            ops.push(Op::RecordHistory(rows.collect()));
            ops.push(Op::MoveVersion {
                from: plan.from.map(|r| r.to_string()),
                to: plan.to.map(|r| r.to_string()),
            });
            ops.push(Op::Commit);
            let program = Program {
                direction: Direction::Down,
                ops,
            };
            Runner::new(self, session, report, None).run(&program).await
        })
        .await?;
        Ok(report)
    }

    /// The current position read under the lock, and the applied migrations whose files
    /// changed; any other unsafe state is refused.
    async fn position_under_lock(
        &self,
        session: &mut Session<'_, B>,
    ) -> Result<(Option<usize>, Vec<Revision>), Error> {
        let migrations = self.migrator.migrations;
        session.begin_round().await?;
        let state = self
            .backend()
            .read_state_in_transaction(session.conn())
            .await?;
        let verdict = match plan::assess(migrations, &state) {
            Assessment::Decided(verdict) => verdict,
            Assessment::NeedsHistory => {
                let history = self.backend().read_history(session.conn()).await?;
                plan::diagnose(migrations, current_of(&state), &history)
            }
        };
        let current = Revision::parse(current_of(&state))
            .ok()
            .and_then(|r| migrations.position(r));
        match verdict {
            SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => {
                Ok((current.and_then(|c| migrations.position(c)), Vec::new()))
            }
            SchemaState::Modified { changed, missing }
                if missing.is_empty() && current.is_some() =>
            {
                Ok((current, changed.into_iter().map(|(r, _)| r).collect()))
            }
            other => Err(self.migrator.refusal(other)),
        }
    }

    /// The first steps of an edit's transaction, from revision `from`: it opens with the
    /// migration settings (`lock_wait`, and the schema on `search_path`), and our tables of
    /// an older build gain this build's layout in it.
    async fn begin_edit(
        &self,
        session: &mut Session<'_, B>,
        from: Option<Revision>,
        lock_wait: std::time::Duration,
    ) -> Result<Vec<Op>, Error> {
        let mut ops = vec![
            Op::Batch {
                from: from.map(|r| r.to_string()),
                alone: None,
            },
            Op::Begin(Begin::Attempt { lock_wait }),
        ];
        let missing = self
            .backend()
            .missing_history_columns(session.conn())
            .await?;
        ops.extend(missing.into_iter().map(Op::AddHistoryColumn));
        Ok(ops)
    }

    /// The steps that run the down SQL of each migration at `steps` (newest first) in the
    /// open transaction: the recorded SQL for those in `changed`, else the file's.
    async fn reverts(
        &self,
        session: &mut Session<'_, B>,
        steps: &[usize],
        changed: &[Revision],
        report: &mut Report,
    ) -> Result<Vec<Op>, Error> {
        let mut ops = Vec::new();
        for &index in steps {
            let migration = self.migration(index);
            let revision = migration.revision();
            let recorded = if changed.contains(&revision) {
                let recorded = self
                    .backend()
                    .read_down_sql(session.conn(), &revision.to_string())
                    .await?;
                let Some(sql) = recorded else {
                    return Err(Error::NoRecordedDownSql {
                        file: migration.file_name().to_owned(),
                    });
                };
                report.recorded_down_sql.push(revision);
                tracing::info!(file = %migration.file_name(), "reverted with the down SQL recorded when it was applied");
                Some(sql)
            } else {
                None
            };
            ops.push(Op::Migrate {
                index,
                direction: Direction::Down,
                recorded,
            });
        }
        Ok(ops)
    }
}
