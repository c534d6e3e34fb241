//! An upgrade (or downgrade) as the database sees it: a plan compiled into one list of
//! [`Op`]s that the migrator runs (`run.rs`: with its retries, checks and records) and that
//! `db upgrade --sql` prints (`script.rs`), so the two cannot drift apart.

use std::ops::Range;
use std::time::Duration;

use super::migrator::Migrator;
use super::plan::{Batch, Plan};
use crate::backend::{Backend, HistoryColumn, NewRecord, Scope};
use crate::migration::Direction;
use crate::sql::{self, Statement};

/// The steps of an upgrade or downgrade, in the order they run.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// Up or down: the migrations run this way are the ones it reports.
    pub(crate) direction: Direction,
    pub(crate) ops: Vec<Op>,
}

/// One step of a [`Program`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A column of this build's history layout that the table (made by an older build)
    /// lacks, added on its own.
    AddHistoryColumn(HistoryColumn),
    /// A batch of the plan starts here: the migrator runs one batch per round under the
    /// lock. `from`: the revision the database is at before it, which a failure keeps;
    /// `alone`: the no-transaction migration the batch runs, if it is one.
    Batch {
        from: Option<String>,
        alone: Option<usize>,
    },
    /// Opens a transaction.
    Begin(Begin),
    /// Creates the schema (PostgreSQL) and our tables. `absent`: they were found absent
    /// before the lock was taken, and not looked for again under it: the creation fails if
    /// either exists ([`Backend::create_absent_tables`]).
    CreateTables { absent: bool },
    /// One attempt's wait for a table lock, from here on.
    SetLockWait { scope: Scope, wait: Duration },
    /// The migration at `index`, run `direction` in the open transaction: its file's SQL, or
    /// `recorded`, the down SQL recorded when it was applied.
    Migrate {
        index: usize,
        direction: Direction,
        recorded: Option<String>,
    },
    /// The settings of the no-transaction migration at `index`, put on the session.
    SessionSettings { index: usize, wait: Duration },
    /// One statement of the no-transaction migration at `index` (bytes `at` of its SQL), run
    /// outside any transaction; `first`: nothing of it ran before; `retry`: a lock wait that
    /// runs out is retried.
    Statement {
        index: usize,
        direction: Direction,
        at: Range<usize>,
        first: bool,
        retry: bool,
    },
    /// The session's settings taken off again, after the migration at `index`.
    ResetSettings { index: usize },
    /// The transaction an attempt began is still open: a migration's SQL may have ended it.
    CheckTransaction,
    /// History rows.
    RecordHistory(Vec<Row>),
    /// History rows written without running a migration (adopt, stamp, repair), as given.
    RecordEntries(Vec<NewRecord>),
    /// The newest history row, a started one, marked finished with the duration of the
    /// migration at `index` (none: zero).
    FinishStarted { index: Option<usize> },
    /// The newest history row deleted, if it is a started one.
    DeleteStarted,
    /// The version row moved from one revision to another (`None`: no row).
    MoveVersion {
        from: Option<String>,
        to: Option<String>,
    },
    /// Commits the open transaction.
    Commit,
}

/// Which transaction [`Op::Begin`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// A transaction of records.
    Write,
    /// The transaction of a batch of migrations: with the migration settings (the first
    /// migration's `lock_wait`), retried whole when a table lock is not granted in time,
    /// and checked before it is recorded.
    Attempt { lock_wait: Duration },
}

/// A history row to write: the migration at `index`, run `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) index: usize,
    pub(crate) direction: Direction,
    /// False for a no-transaction migration's "started" row.
    pub(crate) finished: bool,
}

/// What a program starts with besides the plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct Setup {
    /// The state tables do not exist yet: the first transaction creates them.
    pub(crate) create_tables: bool,
    /// They were found absent before the lock was taken, and the state was not read again
    /// under it: their creation checks it.
    pub(crate) assumed_absent: bool,
    /// The columns an older build's history table lacks, added first.
    pub(crate) add_columns: Vec<HistoryColumn>,
}

impl Op {
    /// What the step was doing, for an error's message.
    pub(crate) fn context(&self) -> &'static str {
        match self {
            Self::AddHistoryColumn(_) => "upgrading the layout of schema_history",
            Self::Begin(Begin::Attempt { .. }) => "starting the migration transaction",
            Self::Begin(Begin::Write) => "starting a transaction",
            Self::CreateTables { .. } => "creating the migration tables",
            Self::SetLockWait {
                scope: Scope::Transaction,
                ..
            } => "setting the migration's lock wait",
            Self::SetLockWait {
                scope: Scope::Session,
                ..
            } => "setting the lock wait",
            Self::SessionSettings { .. } => {
                "setting the schema and lock wait for a no-transaction migration"
            }
            Self::ResetSettings { .. } => "resetting the connection's settings",
            Self::CheckTransaction => "checking that the migration transaction is still open",
            Self::RecordHistory(_)
            | Self::RecordEntries(_)
            | Self::FinishStarted { .. }
            | Self::DeleteStarted => "writing schema_history",
            Self::MoveVersion { .. } => "writing alembic_version",
            Self::Commit => "committing the migration transaction",
            Self::Batch { .. } | Self::Migrate { .. } | Self::Statement { .. } => {
                "running a migration"
            }
        }
    }
}

impl Program {
    /// The steps of `plan`.
    pub(crate) fn compile<B: Backend>(migrator: &Migrator<'_>, plan: &Plan, setup: Setup) -> Self {
        let direction = plan.direction;
        let mut ops: Vec<Op> = setup
            .add_columns
            .into_iter()
            .map(Op::AddHistoryColumn)
            .collect();
        let mut current = plan.from.map(|r| r.to_string());
        let mut create_tables = setup.create_tables;
        for batch in &plan.batches {
            let last = match batch {
                Batch::Transaction(steps) => steps.last().copied(),
                Batch::Alone(index) => Some(*index),
            };
            let Some(last) = last else { continue };
            let after = migrator
                .revision_after(Some(last), direction)
                .map(|r| r.to_string());
            match batch {
                Batch::Transaction(steps) => {
                    ops.push(Op::Batch {
                        from: current.clone(),
                        alone: None,
                    });
                    let mut wait = migrator.lock_wait(steps[0]);
                    ops.push(Op::Begin(Begin::Attempt { lock_wait: wait }));
                    if std::mem::take(&mut create_tables) {
                        ops.push(Op::CreateTables {
                            absent: setup.assumed_absent,
                        });
                    }
                    for &index in steps {
                        let wanted = migrator.lock_wait(index);
                        if wanted != wait {
                            ops.push(Op::SetLockWait {
                                scope: Scope::Transaction,
                                wait: wanted,
                            });
                            wait = wanted;
                        }
                        ops.push(Op::Migrate {
                            index,
                            direction,
                            recorded: None,
                        });
                    }
                    ops.push(Op::CheckTransaction);
                    let rows = steps.iter().map(|&index| Row {
                        index,
                        direction,
                        finished: true,
                    });
                    ops.push(Op::RecordHistory(rows.collect()));
                }
                Batch::Alone(index) => {
                    let index = *index;
                    ops.push(Op::Batch {
                        from: current.clone(),
                        alone: Some(index),
                    });
                    // Recorded as started, committed, before it runs: a crash part-way is
                    // then seen as "interrupted" instead of passing unnoticed.
                    ops.push(Op::Begin(Begin::Write));
                    if std::mem::take(&mut create_tables) {
                        ops.push(Op::CreateTables {
                            absent: setup.assumed_absent,
                        });
                    }
                    ops.push(Op::RecordHistory(vec![Row {
                        index,
                        direction,
                        finished: false,
                    }]));
                    ops.push(Op::Commit);
                    alone::<B>(migrator, index, direction, &mut ops);
                    ops.push(Op::Begin(Begin::Write));
                    ops.push(Op::FinishStarted { index: Some(index) });
                }
            }
            ops.push(Op::MoveVersion {
                from: current,
                to: after.clone(),
            });
            ops.push(Op::Commit);
            current = after;
        }
        Self { direction, ops }
    }
}

/// The steps that run the no-transaction migration at `index`. Where the server runs a
/// multi-statement query as one implicit transaction (PostgreSQL), one statement at a time,
/// with the schema on `search_path` and the lock wait set on the session and reset after;
/// else its SQL as it is.
fn alone<B: Backend>(
    migrator: &Migrator<'_>,
    index: usize,
    direction: Direction,
    ops: &mut Vec<Op>,
) {
    let script = migrator.migrations.as_slice()[index].script(direction, B::DIALECT);
    if !B::MULTI_STATEMENT_QUERY_IS_ONE_TRANSACTION {
        ops.push(Op::Statement {
            index,
            direction,
            at: 0..script.len(),
            first: true,
            retry: false,
        });
        return;
    }
    let wait = migrator.lock_wait(index);
    let budget = migrator.db.options().lock_timeout;
    ops.push(Op::SessionSettings { index, wait });
    for (position, statement) in sql::statements(&script, B::DIALECT).iter().enumerate() {
        let at = statement.offset..statement.offset + statement.text.len();
        let first = position == 0;
        match concurrent_wait(statement, budget) {
            Some(once) => {
                ops.push(Op::SetLockWait {
                    scope: Scope::Session,
                    wait: once,
                });
                ops.push(Op::Statement {
                    index,
                    direction,
                    at,
                    first,
                    retry: false,
                });
                ops.push(Op::SetLockWait {
                    scope: Scope::Session,
                    wait,
                });
            }
            None => ops.push(Op::Statement {
                index,
                direction,
                at,
                first,
                retry: true,
            }),
        }
    }
    ops.push(Op::ResetSettings { index });
}

/// The lock wait of a no-transaction statement that must not be retried: `… CONCURRENTLY`
/// takes a lock that blocks no reader or writer, and a timeout in its later waits would
/// leave an invalid index to clean up, so it gets one attempt with the whole `budget`.
fn concurrent_wait(statement: &Statement<'_>, budget: Duration) -> Option<Duration> {
    statement.has_keyword("CONCURRENTLY").then_some(budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::Dialect;

    #[test]
    fn only_a_concurrently_statement_gets_the_whole_budget_in_one_attempt() {
        let budget = Duration::from_secs(60);
        let script = "CREATE INDEX CONCURRENTLY ix ON t (a);\n\
                      create index concurrently ix2 on t (b);\n\
                      CREATE INDEX ix_concurrently ON t (c);\n\
                      SELECT 'CONCURRENTLY';\n\
                      CREATE INDEX ix3 ON t (d) -- not CONCURRENTLY\n";
        let waits: Vec<_> = sql::statements(script, Dialect::Postgres)
            .iter()
            .map(|s| concurrent_wait(s, budget))
            .collect();
        assert_eq!(waits, [Some(budget), Some(budget), None, None, None]);
    }
}
