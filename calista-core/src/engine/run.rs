//! Runs a [`Program`] on a migration session: each step's statements (ours, inside a
//! transaction, sent together before the next step that needs a round trip of its own), a
//! batch's transaction and a no-transaction statement retried when a table lock is not
//! granted in time, the check that a batch's transaction is still the one it began, the
//! location of a failed statement in its file, and the durations, attempts and history rows
//! of what ran.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::migrator::{Engine, Report, step};
use super::program::{Begin, Op, Program};
use crate::backend::{Backend, Bound, LockScope, Scope, Watch};
use crate::database::Session;
use crate::error::{AfterLoss, Error, StatementError, StatementLocation};
use crate::migration::{Direction, Migration};
use crate::sql;

/// Runs one program (see the module's documentation).
pub(crate) struct Runner<'r, 'h, B: Backend> {
    engine: &'r Engine<'r, B>,
    session: &'r mut Session<'h, B>,
    report: &'r mut Report,
    /// Up or down: the migrations run this way are reported.
    direction: Direction,
    /// The backup taken before, recorded with each migration.
    backup: Option<String>,
    /// The revision the current batch started from: what a failure keeps.
    from: Option<String>,
    /// The revision the version row was last moved to.
    moved_to: Option<String>,
    /// Our statements not yet sent, with what each was for.
    pending: Vec<(String, &'static str)>,
    /// Whether the pending statements begin an attempt, whose mark they take.
    begins_attempt: bool,
    /// The mark of the open attempt's transaction.
    mark: Option<B::Mark>,
    /// Whether that transaction was still open after the last migration's SQL, asked with it
    /// in one round trip ([`Backend::run_and_check`]): the next [`Op::CheckTransaction`]'s
    /// answer.
    checked: Option<bool>,
    /// The lock wait in effect.
    wait: Duration,
    /// Which attempt of the running unit this is, from 1.
    attempt: u32,
    /// When each migration's steps started and ended, in the attempt that succeeded.
    spans: HashMap<(usize, Direction), (Instant, Instant)>,
    /// How many attempts each migration took.
    attempts: HashMap<(usize, Direction), u32>,
    /// The migrations run since the last commit, in order.
    done: Vec<(usize, Direction)>,
    /// The last history rows, held to be written with the version row's statement.
    history: Option<Bound>,
    /// Whether the current batch runs a no-transaction migration.
    alone: bool,
    /// Whether that migration's "started" record is committed and its "finished" one not yet.
    started: bool,
}

/// How running steps ended, when it did not succeed.
enum Attempt {
    /// A table lock was not granted in time (`error`) while running the migration at
    /// `index`: the attempt can be rolled back and tried again. Only steps of a unit that is
    /// retried end so.
    LockWait { index: usize, error: sqlx::Error },
    /// Any other failure.
    Failed(Error),
}

impl<'r, 'h, B: Backend> Runner<'r, 'h, B> {
    pub(crate) fn new(
        engine: &'r Engine<'r, B>,
        session: &'r mut Session<'h, B>,
        report: &'r mut Report,
        backup: Option<String>,
    ) -> Self {
        Self {
            engine,
            session,
            report,
            direction: Direction::Up,
            backup,
            from: None,
            moved_to: None,
            pending: Vec::new(),
            begins_attempt: false,
            mark: None,
            checked: None,
            wait: Duration::ZERO,
            attempt: 1,
            spans: HashMap::new(),
            attempts: HashMap::new(),
            done: Vec::new(),
            history: None,
            alone: false,
            started: false,
        }
    }

    /// Runs `program`: a batch's transaction, and each statement of a no-transaction
    /// migration that may be retried, as a unit with its retries; every other step once.
    pub(crate) async fn run(mut self, program: &Program) -> Result<(), Error> {
        let result = self.run_program(program).await;
        result.map_err(|error| self.lost_or(error))
    }

    async fn run_program(&mut self, program: &Program) -> Result<(), Error> {
        self.direction = program.direction;
        let ops = program.ops.as_slice();
        let mut at = 0;
        while at < ops.len() {
            let end = match &ops[at] {
                Op::Begin(Begin::Attempt { .. }) => ops[at..]
                    .iter()
                    .position(|op| *op == Op::Commit)
                    .map_or(ops.len(), |commit| at + commit + 1),
                _ => at + 1,
            };
            let unit = &ops[at..end];
            match &ops[at] {
                Op::Begin(Begin::Attempt { .. }) => self.with_retries(unit).await?,
                Op::Statement {
                    retry: true, first, ..
                } => self.statement_with_retries(unit, *first).await?,
                _ => self.run_steps(unit, false).await.map_err(once::<B>)?,
            }
            at = end;
        }
        self.flush(&[], 0, false).await.map_err(once::<B>)
    }

    /// Runs `unit` until it succeeds, fails for another reason than a lock wait, or the
    /// lock budget (the database's lock timeout) is spent; between attempts it rolls back
    /// and pauses, so that the queries queued behind its lock request can run. From the
    /// second attempt on, a second connection watches who blocks it.
    async fn with_retries(&mut self, unit: &[Op]) -> Result<(), Error> {
        // What came before is not part of the attempt: a rollback must not lose it.
        self.flush(&[], 0, false).await.map_err(once::<B>)?;
        let budget = self.engine.migrator.db.options().lock_timeout;
        let started = Instant::now();
        let done_before = self.done.len();
        let mut watcher: Option<B::Watcher> = None;
        self.attempt = 0;
        let result = loop {
            self.attempt += 1;
            let outcome = match watcher.as_mut() {
                Some(watcher) => tokio::select! {
                    biased;
                    outcome = self.run_steps(unit, true) => outcome,
                    never = watcher.watch() => match never {},
                },
                None => self.run_steps(unit, true).await,
            };
            let index = match outcome {
                Ok(()) => break Ok(()),
                Err(Attempt::Failed(error)) => break Err(error),
                Err(Attempt::LockWait { index, .. }) => index,
            };
            let wait = self.wait;
            if let Err(error) = self.session.rollback_attempt().await {
                break Err(error);
            }
            self.forget_attempt(unit, done_before);
            let pause = backoff(self.attempt);
            let waited = started.elapsed();
            let file = self.engine.migration(index).file_name();
            if waited + pause >= budget {
                break Err(Error::TableLockTimeout {
                    file,
                    attempts: self.attempt,
                    attempt_timeout: wait,
                    waited,
                    kept: self.from.clone(),
                    blockers: watcher.as_ref().map(Watch::seen).unwrap_or_default(),
                    interrupted: None,
                });
            }
            tracing::info!(
                file = %file,
                attempt = self.attempt,
                wait_ms = millis(wait),
                pause_ms = millis(pause),
                "a table lock was not granted in time: rolled back, trying again"
            );
            if watcher.is_none() {
                let backend = self.session.backend;
                watcher = backend.watch_blockers(self.session.conn()).await;
            }
            tokio::time::sleep(pause).await;
        };
        if let Some(watcher) = watcher {
            watcher.close().await;
        }
        self.attempt = 1;
        result
    }

    /// A statement of a no-transaction migration, with its retries. When its lock waits use
    /// up the budget, the migration is interrupted if statements of it ran before; if none
    /// did, its started record is forgotten: the database is untouched.
    async fn statement_with_retries(&mut self, unit: &[Op], first: bool) -> Result<(), Error> {
        let mut result = self.with_retries(unit).await;
        if let Err(Error::TableLockTimeout { interrupted, .. }) = &mut result {
            if first {
                let forget = [Op::Begin(Begin::Write), Op::DeleteStarted, Op::Commit];
                self.run_steps(&forget, false).await.map_err(once::<B>)?;
            } else {
                let recover = &self.engine.migrator.policy().hints.recover;
                *interrupted = Some(Box::new(recover.clone()));
            }
        }
        result
    }

    /// After a failed attempt: nothing it ran counts.
    fn forget_attempt(&mut self, unit: &[Op], done_before: usize) {
        self.done.truncate(done_before);
        for op in unit {
            if let Op::Migrate {
                index, direction, ..
            } = op
            {
                self.spans.remove(&(*index, *direction));
            }
        }
        self.pending.clear();
        self.begins_attempt = false;
        self.mark = None;
        self.checked = None;
    }

    async fn run_steps(&mut self, ops: &[Op], retryable: bool) -> Result<(), Attempt> {
        for position in 0..ops.len() {
            self.step(ops, position, retryable).await?;
        }
        Ok(())
    }

    /// Runs `ops[position]`. `retryable`: the unit it is part of is retried on a lock wait.
    async fn step(&mut self, ops: &[Op], position: usize, retryable: bool) -> Result<(), Attempt> {
        let backend = self.session.backend;
        let op = &ops[position];
        let context = op.context();
        match op {
            Op::AddHistoryColumn(column) => {
                let sql = backend.add_history_column(*column);
                self.own(vec![sql], context, ops, position, retryable)
                    .await?;
                tracing::info!(
                    column = column.name(),
                    "schema_history gains a column of this build's layout"
                );
            }
            Op::Batch { from, alone } => {
                self.from.clone_from(from);
                (self.alone, self.started) = (alone.is_some(), false);
            }
            Op::Begin(begin) => {
                if !self.session.in_transaction() {
                    match B::LOCK_SCOPE {
                        LockScope::Transaction => {
                            self.session.take_lock().await.map_err(Attempt::Failed)?;
                        }
                        LockScope::Session => {
                            self.pending.push((B::BEGIN.to_owned(), context));
                            self.session.set_in_transaction(true);
                        }
                    }
                }
                if let Begin::Attempt { lock_wait } = begin {
                    self.wait = *lock_wait;
                    self.begins_attempt = true;
                    if let Some(savepoint) = B::ATTEMPT_SAVEPOINT {
                        self.pending
                            .push((format!("SAVEPOINT {savepoint}"), context));
                    }
                    let settings = backend.migration_settings(Scope::Transaction, *lock_wait);
                    self.pending
                        .extend(settings.into_iter().map(|setting| (setting, context)));
                }
            }
            Op::CreateTables { absent } => {
                let sql = match backend.create_absent_tables() {
                    Some(strict) if *absent => strict,
                    _ => backend.create_tables(),
                };
                let sql = sql.to_owned();
                self.own(vec![sql], context, ops, position, retryable)
                    .await?;
            }
            Op::SetLockWait { scope, wait } => {
                self.wait = *wait;
                let setting = backend.lock_wait_setting(*scope, *wait);
                self.own(Vec::from_iter(setting), context, ops, position, retryable)
                    .await?;
            }
            Op::SessionSettings { index, wait } => {
                self.wait = *wait;
                let now = Instant::now();
                self.spans
                    .entry((*index, self.direction))
                    .or_insert((now, now));
                let settings = backend.migration_settings(Scope::Session, *wait);
                self.own(settings, context, ops, position, retryable)
                    .await?;
            }
            Op::ResetSettings { index } => {
                let resets = backend.reset_migration_settings();
                let resets = resets.iter().map(|&reset| reset.to_owned()).collect();
                self.own(resets, context, ops, position, retryable).await?;
                if let Some(span) = self.spans.get_mut(&(*index, self.direction)) {
                    span.1 = Instant::now();
                }
            }
            Op::Migrate {
                index,
                direction,
                recorded,
            } => {
                self.flush(ops, position, retryable).await?;
                self.migrate(
                    ops,
                    position,
                    *index,
                    *direction,
                    recorded.as_deref(),
                    retryable,
                )
                .await?;
            }
            Op::Statement {
                index,
                direction,
                at,
                ..
            } => {
                self.flush(ops, position, retryable).await?;
                self.statement(*index, *direction, at.clone(), retryable)
                    .await?;
            }
            Op::CheckTransaction => {
                self.flush(ops, position, retryable).await?;
                let same = match (self.checked.take(), self.mark) {
                    (Some(same), _) => same,
                    (None, Some(mark)) => backend
                        .same_transaction(self.session.conn(), mark)
                        .await
                        .map_err(Attempt::Failed)?,
                    (None, None) => true,
                };
                if !same {
                    let ran = migrations_in(&ops[..position]);
                    return Err(Attempt::Failed(self.transaction_ended(&ran, None)));
                }
            }
            Op::RecordHistory(rows) => {
                self.flush(ops, position, retryable).await?;
                let records: Vec<_> = rows
                    .iter()
                    .map(|row| {
                        let duration = self.duration(row.index, row.direction);
                        self.engine
                            .record(*row, duration, self.attempt, self.backup.clone())
                    })
                    .collect();
                let mut inserts = Bound::history(backend, &records);
                // The last rows go with the version row's statement, if it comes next.
                if B::INSERT_IN_WITH
                    && matches!(ops.get(position + 1), Some(Op::MoveVersion { .. }))
                {
                    self.history = inserts.pop();
                }
                for insert in inserts {
                    self.execute(insert, context, ops, position, retryable)
                        .await?;
                }
            }
            Op::RecordEntries(records) => {
                self.flush(ops, position, retryable).await?;
                for insert in Bound::history(backend, records) {
                    self.execute(insert, context, ops, position, retryable)
                        .await?;
                }
            }
            Op::FinishStarted { index } => {
                self.flush(ops, position, retryable).await?;
                let duration = index.map_or(Duration::ZERO, |i| self.duration(i, self.direction));
                let finish = Bound::finish_started(backend, millis(duration));
                self.execute(finish, context, ops, position, retryable)
                    .await?;
            }
            Op::DeleteStarted => {
                self.flush(ops, position, retryable).await?;
                let delete = Bound::delete_started(backend);
                self.execute(delete, context, ops, position, retryable)
                    .await?;
            }
            Op::MoveVersion { from, to } => {
                self.flush(ops, position, retryable).await?;
                let version = Bound::version(backend, from.clone(), to.clone());
                let (version, context) = match (self.history.take(), version) {
                    (Some(rows), Some(version)) => match rows.then::<B>(version) {
                        Ok(both) => (Some(both), "writing schema_history and alembic_version"),
                        Err((rows, version)) => {
                            self.execute(rows, HISTORY, ops, position, retryable)
                                .await?;
                            (Some(version), context)
                        }
                    },
                    (Some(rows), None) => {
                        self.execute(rows, HISTORY, ops, position, retryable)
                            .await?;
                        (None, context)
                    }
                    (None, version) => (version, context),
                };
                if let Some(statement) = version {
                    let moved = self
                        .execute(statement, context, ops, position, retryable)
                        .await?;
                    if moved != 1 {
                        return Err(Attempt::Failed(B::describe(
                            sqlx::Error::RowNotFound,
                            "alembic_version changed under the migration lock (edited by hand?); \
                             the transaction was rolled back",
                        )));
                    }
                }
                self.moved_to.clone_from(to);
            }
            Op::Commit => {
                self.flush(ops, position, retryable).await?;
                if let Err((_, error)) = backend.run(self.session.conn(), "COMMIT").await {
                    return Err(self.own_failure(error, context, ops, position, retryable));
                }
                self.session.set_in_transaction(false);
                // A no-transaction migration's batch commits twice: its "started" record,
                // then its "finished" one.
                self.started = self.alone && !self.started;
                let attempt = self.mark.take().is_some();
                self.committed(attempt);
            }
        }
        Ok(())
    }

    /// Statements of ours: kept to be sent with the next that needs a round trip inside a
    /// transaction, sent now outside one.
    async fn own(
        &mut self,
        statements: Vec<String>,
        context: &'static str,
        ops: &[Op],
        position: usize,
        retryable: bool,
    ) -> Result<(), Attempt> {
        self.pending
            .extend(statements.into_iter().map(|statement| (statement, context)));
        if self.session.in_transaction() {
            return Ok(());
        }
        self.flush(ops, position, retryable).await
    }

    /// Sends our pending statements in one round trip, taking the attempt's mark if they
    /// begin one. A failure is told by the step whose statement failed.
    async fn flush(&mut self, ops: &[Op], position: usize, retryable: bool) -> Result<(), Attempt> {
        let begins_attempt = std::mem::take(&mut self.begins_attempt);
        if self.pending.is_empty() && !begins_attempt {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let text: Vec<&str> = pending.iter().map(|(sql, _)| sql.as_str()).collect();
        let text = text.join(";\n");
        let backend = self.session.backend;
        let sent = if begins_attempt {
            match backend.begin_attempt(self.session.conn(), &text).await {
                Ok(mark) => {
                    self.mark = Some(mark);
                    Ok(())
                }
                Err(failure) => Err(failure),
            }
        } else {
            backend.run(self.session.conn(), &text).await
        };
        let Err((completed, error)) = sent else {
            return Ok(());
        };
        // Which of our statements failed: the first whose statements had not all completed.
        let mut before = 0;
        let context = pending
            .iter()
            .find(|(sql, _)| {
                before += sql::statements(sql, B::DIALECT).len().max(1);
                completed < before
            })
            .or(pending.last())
            .map_or("running statements of calista's", |(_, context)| context);
        Err(self.own_failure(error, context, ops, position, retryable))
    }

    /// Runs one of our statements with its values bound; returns the rows it changed.
    async fn execute(
        &mut self,
        statement: Bound,
        context: &'static str,
        ops: &[Op],
        position: usize,
        retryable: bool,
    ) -> Result<u64, Attempt> {
        let backend = self.session.backend;
        match backend.execute(self.session.conn(), statement).await {
            Ok(rows) => Ok(rows),
            Err(error) => Err(self.own_failure(error, context, ops, position, retryable)),
        }
    }

    /// The failure of one of our statements: a lock wait, in a unit that is retried, is one.
    fn own_failure(
        &self,
        error: sqlx::Error,
        context: &'static str,
        ops: &[Op],
        position: usize,
        retryable: bool,
    ) -> Attempt {
        if retryable && B::is_retryable_lock_wait(&error) {
            return Attempt::LockWait {
                index: migration_at(ops, position),
                error,
            };
        }
        if B::is_connection_lost(&error) {
            let committing = ops[position] == Op::Commit;
            return Attempt::Failed(self.lost(&error, context, None, committing));
        }
        match B::describe(error, context) {
            // A COMMIT the database answered with an error committed nothing (a deferred
            // constraint, a full disk): the migration transaction's batch is not kept.
            Error::Database { context, source } if ops[position] == Op::Commit && !self.alone => {
                let at = crate::error::position(&self.from);
                Attempt::Failed(Error::Database {
                    context: format!(
                        "{context}; nothing of the transaction was kept: the database is {at}"
                    ),
                    source,
                })
            }
            error => Attempt::Failed(error),
        }
    }

    /// The error for a connection lost while doing `doing` (in `file`, if a migration's SQL
    /// was running): what the database holds depends on whether `COMMIT` was on its way
    /// (`committing`) and on how far the batch got. The driver's words are only logged.
    fn lost(
        &self,
        error: &sqlx::Error,
        doing: &'static str,
        file: Option<String>,
        committing: bool,
    ) -> Error {
        tracing::debug!(error = %crate::error::ServerMessage::of(error), doing, "the connection to the database was lost");
        self.lost_after(doing, file, committing)
    }

    /// What the database holds after a loss while doing `doing`, as [`Self::lost`] says it.
    fn lost_after(&self, doing: &str, file: Option<String>, committing: bool) -> Error {
        let hints = &self.engine.migrator.policy().hints;
        let after = if committing {
            AfterLoss::Unknown {
                before: self.from.clone(),
                status: hints.status.clone(),
            }
        } else if self.started {
            AfterLoss::Interrupted {
                recover: hints.recover.clone(),
            }
        } else {
            AfterLoss::RolledBack {
                kept: self.from.clone(),
            }
        };
        Error::ConnectionLost {
            doing: doing.to_owned(),
            file,
            after,
        }
    }

    /// `error`, or, when it is a connection lost where the backend saw nothing being
    /// changed, the error that says what the run's database holds: the backend knows
    /// nothing of the batches committed before, nor of a no-transaction migration begun.
    fn lost_or(&self, error: Error) -> Error {
        match error {
            Error::ConnectionLost {
                doing,
                after: AfterLoss::Unchanged,
                ..
            } => self.lost_after(&doing, None, false),
            error => error,
        }
    }

    /// Runs a migration's SQL in the open transaction.
    async fn migrate(
        &mut self,
        ops: &[Op],
        position: usize,
        index: usize,
        direction: Direction,
        recorded: Option<&str>,
        retryable: bool,
    ) -> Result<(), Attempt> {
        let backend = self.session.backend;
        let migration = self.engine.migration(index);
        let script = migration.script(direction, B::DIALECT);
        let sql = recorded.unwrap_or(&script);
        // The last migration before the check asks it in the same round trip.
        let check = match self.mark {
            Some(mark) if ops.get(position + 1) == Some(&Op::CheckTransaction) => Some(mark),
            _ => None,
        };
        let started = Instant::now();
        let ran = match check {
            Some(mark) => backend.run_and_check(self.session.conn(), sql, mark).await,
            None => backend.run(self.session.conn(), sql).await.map(|()| None),
        };
        let (completed, error) = match ran {
            Ok(checked) => {
                self.checked = checked;
                let key = (index, direction);
                self.spans.insert(key, (started, Instant::now()));
                self.attempts.insert(key, self.attempt);
                self.done.push(key);
                return Ok(());
            }
            Err(failure) => failure,
        };
        if retryable && B::is_retryable_lock_wait(&error) {
            return Err(Attempt::LockWait { index, error });
        }
        if B::is_connection_lost(&error) {
            let file = Some(migration.file_name());
            return Err(Attempt::Failed(self.lost(
                &error,
                "running a migration",
                file,
                false,
            )));
        }
        // The recorded SQL is not the file's: its lines are not the file's either.
        let location = match recorded {
            Some(_) => None,
            None => locate::<B>(
                migration,
                direction,
                &script,
                0..script.len(),
                &error,
                completed,
            ),
        };
        let rolled_back = B::rolls_back_on_its_own(&error);
        let failure = StatementError::new(error, location);
        let Some(mark) = self.mark else {
            return Err(Attempt::Failed(Error::Migration {
                file: migration.file_name(),
                direction,
                kept: self.from.clone(),
                source: failure,
            }));
        };
        // A connection lost with the failure cannot be asked; the server rolls back what it
        // had, so the failure is reported as it is.
        let intact = backend
            .same_transaction(self.session.conn(), mark)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(error = %crate::error::with_causes(&e), "cannot check the transaction after a failure");
                true
            });
        // The transaction is gone: ended by the SQL of a migration that holds transaction
        // control, or else, after an error on which the database rolls back on its own (a
        // full disk), by the database, which kept nothing of it.
        let ran = migrations_in(&ops[..=position]);
        let ended_by_sql = || {
            ran.iter().any(|&(index, direction)| {
                transaction_control::<B>(self.engine.migration(index), direction).is_some()
            })
        };
        Err(Attempt::Failed(
            if intact || (rolled_back && !ended_by_sql()) {
                Error::Migration {
                    file: migration.file_name(),
                    direction,
                    kept: self.from.clone(),
                    source: failure,
                }
            } else {
                self.transaction_ended(&ran, Some(failure))
            },
        ))
    }

    /// Runs one statement (bytes `at` of its SQL) of a no-transaction migration.
    async fn statement(
        &mut self,
        index: usize,
        direction: Direction,
        at: std::ops::Range<usize>,
        retryable: bool,
    ) -> Result<(), Attempt> {
        let backend = self.session.backend;
        let migration = self.engine.migration(index);
        let script = migration.script(direction, B::DIALECT);
        let started = Instant::now();
        match backend.run(self.session.conn(), &script[at.clone()]).await {
            Ok(()) => {
                let key = (index, direction);
                self.spans.entry(key).or_insert((started, started)).1 = Instant::now();
                let attempts = self.attempts.entry(key).or_insert(1);
                *attempts = (*attempts).max(self.attempt);
                if !self.done.contains(&key) {
                    self.done.push(key);
                }
                Ok(())
            }
            Err((_, error)) if retryable && B::is_retryable_lock_wait(&error) => {
                Err(Attempt::LockWait { index, error })
            }
            Err((_, error)) if B::is_connection_lost(&error) => {
                let file = Some(migration.file_name());
                Err(Attempt::Failed(self.lost(
                    &error,
                    "running a migration",
                    file,
                    false,
                )))
            }
            Err((completed, error)) => {
                let location = locate::<B>(migration, direction, &script, at, &error, completed);
                Err(Attempt::Failed(Error::MigrationInterrupted {
                    file: migration.file_name(),
                    recover: self.engine.migrator.policy().hints.recover.clone(),
                    source: StatementError::new(error, location),
                }))
            }
        }
    }

    /// After a commit: what ran is reported, with its duration and attempts.
    fn committed(&mut self, attempt: bool) {
        let done = std::mem::take(&mut self.done);
        if attempt {
            tracing::info!(
                migrations = done.len(),
                to = ?self.moved_to,
                attempts = self.attempt,
                "committed"
            );
        }
        for key in done {
            if key.1 == self.direction {
                let attempts = self.attempts.get(&key).copied().unwrap_or(1);
                let duration = self.duration(key.0, key.1);
                let migration = self.engine.migration(key.0);
                self.report.steps.push(step(migration, duration, attempts));
            }
        }
    }

    /// How long the migration at `index` took, run `direction`.
    fn duration(&self, index: usize, direction: Direction) -> Duration {
        self.spans
            .get(&(index, direction))
            .map_or(Duration::ZERO, |(start, end)| end.duration_since(*start))
    }

    /// The error for a transaction a migration's SQL ended: names the first migration of
    /// `ran` that holds transaction control, else the last one run.
    fn transaction_ended(
        &self,
        ran: &[(usize, Direction)],
        failure: Option<Box<StatementError>>,
    ) -> Error {
        let last = ran.last().map_or(0, |&(index, _)| index);
        let (migration, statement) = ran
            .iter()
            .map(|&(index, direction)| (self.engine.migration(index), direction))
            .find_map(|(m, direction)| {
                transaction_control::<B>(m, direction).map(|at| (m, Some(at)))
            })
            .unwrap_or((self.engine.migration(last), None));
        Error::TransactionEnded {
            file: migration.file_name(),
            statement,
            kept: self.from.clone(),
            source: failure,
        }
    }
}

/// What writing history rows is, for an error's message.
const HISTORY: &str = "writing schema_history";

/// The failure of steps run once: a lock wait is a failure like any other there.
fn once<B: Backend>(attempt: Attempt) -> Error {
    match attempt {
        Attempt::Failed(error) => error,
        Attempt::LockWait { error, .. } => B::describe(error, "waiting for a table lock"),
    }
}

/// The migrations `ops` run, in order.
fn migrations_in(ops: &[Op]) -> Vec<(usize, Direction)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Migrate {
                index, direction, ..
            } => Some((*index, *direction)),
            _ => None,
        })
        .collect()
}

/// The migration a step of ours at `position` serves: the next one run, else the last.
fn migration_at(ops: &[Op], position: usize) -> usize {
    let index = |op: &Op| match op {
        Op::Migrate { index, .. } | Op::Statement { index, .. } => Some(*index),
        _ => None,
    };
    ops[position..]
        .iter()
        .find_map(index)
        .or_else(|| ops[..position].iter().rev().find_map(index))
        .unwrap_or_default()
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

/// Where the statement that failed is in the migration's file. `at` is the part of `script`
/// that was sent (the whole script, or one statement of a no-transaction migration);
/// `completed`, how many of its statements finished before the failure. The server's
/// error position, when it gives one, points at the exact line and column.
fn locate<B: Backend>(
    migration: &Migration,
    direction: Direction,
    script: &str,
    at: std::ops::Range<usize>,
    error: &sqlx::Error,
    completed: usize,
) -> Option<StatementLocation> {
    let sent = script.get(at.clone())?;
    let statements = sql::statements(sent, B::DIALECT);
    if let Some(position) = B::error_position(error) {
        // A position in characters, from 1, in the text sent.
        let offset = sent.char_indices().nth(position.saturating_sub(1))?.0;
        let statement = statements
            .iter()
            .rev()
            .find(|s| s.offset <= offset)
            .or(statements.first())?;
        let (line, column) = migration.locate(direction, B::DIALECT, at.start + offset)?;
        return Some(StatementLocation {
            line,
            column: Some(column),
            text: shorten(statement.first_line()),
        });
    }
    let statement = statements.get(completed)?;
    let (line, _) = migration.locate(direction, B::DIALECT, at.start + statement.offset)?;
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
fn transaction_control<B: Backend>(
    migration: &Migration,
    direction: Direction,
) -> Option<StatementLocation> {
    let script = migration.script(direction, B::DIALECT);
    sql::statements(&script, B::DIALECT)
        .into_iter()
        .find(sql::checks::is_transaction_control)
        .and_then(|statement| {
            let (line, _) = migration.locate(direction, B::DIALECT, statement.offset)?;
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
