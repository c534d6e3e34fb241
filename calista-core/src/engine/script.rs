//! The SQL script of an upgrade, as `calista db upgrade --sql` prints it: for review, or
//! for a DBA to run by hand (`psql -v ON_ERROR_STOP=1 -f`, `sqlite3 -bail`).
//!
//! It prints the [`Program`] the upgrade itself runs, step by step, with the statements of
//! our own from the same functions and the values the upgrade binds written as literals.
//! What a script cannot do (take the lock, back up, check that its transaction is still
//! open) it leaves out.

use std::time::Duration;

use super::migrator::Engine;
use super::plan::Plan;
use super::program::{Begin, Op, Program};
use crate::backend::{Backend, Bound, Scope};
use crate::utc::UtcDateTime;

/// The script of `program`, compiled from `plan`.
pub(crate) fn print<B: Backend>(engine: &Engine<'_, B>, plan: &Plan, program: &Program) -> String {
    let backend = engine.backend();
    let show = |r: Option<crate::Revision>| r.map_or_else(|| "base".to_owned(), |r| r.to_string());
    let mut out = format!(
        "-- upgrade script: {} -> {} on {}, generated {}\n\
         -- The upgrade itself runs these statements with the migration lock, a backup and checks.\n\
         -- To run it by hand: {}\n",
        show(plan.from),
        show(plan.to),
        B::DIALECT,
        UtcDateTime::now().iso8601(),
        B::RUN_BY_HAND,
    );
    if plan.is_empty() {
        out.push_str("-- Nothing to do: the database is up to date.\n");
        return out;
    }
    let migrations = engine.migrator.migrations.as_slice();
    let mut alone = None;
    for (position, op) in program.ops.iter().enumerate() {
        match op {
            Op::AddHistoryColumn(column) => {
                if position == 0 {
                    out.push_str(
                        "\n-- schema_history was made by an older build: it gains this build's columns\n",
                    );
                }
                statement(&mut out, &backend.add_history_column(*column));
            }
            Op::Batch { alone: index, .. } => {
                out.push('\n');
                alone = *index;
                if let Some(index) = alone {
                    out.push_str(&format!(
                        "-- {} (no-transaction): recorded as started, then run one statement at a time \
                         outside a transaction, then recorded as finished\n",
                        migrations[index].file_name()
                    ));
                }
            }
            Op::Begin(begin) => {
                statement(&mut out, B::BEGIN);
                if let Begin::Attempt { lock_wait } = begin {
                    settings(
                        &mut out,
                        &backend.migration_settings(Scope::Transaction, *lock_wait),
                    );
                }
            }
            Op::CreateTables { .. } => statement(&mut out, backend.create_tables()),
            Op::SetLockWait { scope, wait } => {
                settings(
                    &mut out,
                    backend.lock_wait_setting(*scope, *wait).as_slice(),
                );
            }
            Op::Migrate {
                index,
                direction,
                recorded,
            } => {
                let migration = &migrations[*index];
                out.push_str(&format!("\n-- {}\n", migration.file_name()));
                match recorded {
                    Some(sql) => statement(&mut out, sql),
                    None => statement(&mut out, &migration.script(*direction, B::DIALECT)),
                }
            }
            Op::SessionSettings { wait, .. } => {
                settings(&mut out, &backend.migration_settings(Scope::Session, *wait));
            }
            Op::Statement {
                index,
                direction,
                at,
                ..
            } => {
                let script = migrations[*index].script(*direction, B::DIALECT);
                statement(&mut out, &script[at.clone()]);
            }
            Op::ResetSettings { .. } => {
                for reset in backend.reset_migration_settings() {
                    statement(&mut out, reset);
                }
            }
            Op::CheckTransaction => {}
            Op::RecordHistory(rows) => {
                if alone.is_none() {
                    out.push('\n');
                }
                let records: Vec<_> = rows
                    .iter()
                    .map(|row| engine.record(*row, Duration::ZERO, 1, None))
                    .collect();
                for insert in Bound::history(backend, &records) {
                    statement(&mut out, &insert.inlined());
                }
            }
            Op::RecordEntries(records) => {
                for insert in Bound::history(backend, records) {
                    statement(&mut out, &insert.inlined());
                }
            }
            Op::FinishStarted { .. } => {
                statement(&mut out, &Bound::finish_started(backend, 0).inlined());
            }
            Op::DeleteStarted => {
                statement(&mut out, &Bound::delete_started(backend).inlined());
            }
            Op::MoveVersion { from, to } => {
                if let Some(version) = Bound::version(backend, from.clone(), to.clone()) {
                    statement(&mut out, &version.inlined());
                }
            }
            Op::Commit => statement(&mut out, "COMMIT"),
        }
    }
    out
}

fn settings(out: &mut String, settings: &[String]) {
    for setting in settings {
        statement(out, setting);
    }
}

/// Appends one statement (or a migration's SQL) and its terminator. A text that does not
/// end with `;` (its last statement has none, or a comment follows it) gets one on a line of
/// its own, which a trailing comment cannot swallow.
fn statement(out: &mut String, sql: &str) {
    let sql = sql.trim_end();
    out.push_str(sql);
    out.push_str(if sql.ends_with(';') {
        "\n"
    } else if sql.lines().last().is_some_and(|l| l.contains("--")) {
        "\n;\n"
    } else {
        ";\n"
    });
}
