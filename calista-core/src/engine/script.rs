//! The SQL script of an upgrade, as `calista db upgrade --sql` prints it: for review, or
//! for a DBA to run by hand (`psql -v ON_ERROR_STOP=1 -f`, `sqlite3 -bail`).
//!
//! It is made of the statements the upgrade itself runs, from the same functions: the
//! transaction's settings ([`Store::migration_settings`]), the state tables, each
//! migration's SQL, and the history and version rows ([`Store::insert_history`] and the
//! version statements), with the values the upgrade binds written as literals.

use std::time::Duration;

use crate::backend::NewRecord;
use crate::database::Database;
use crate::migration::{Dialect, Direction, Migrations};
use crate::plan::{Batch, Plan};
use crate::sql_split;
use crate::store::{Scope, Store, Value, history_insert_chunk, inline};
use crate::utc::UtcDateTime;

/// What the script needs of the migrator: the lock wait of the migration at an index, and
/// the history row it writes for it (`finished`: false for a no-transaction migration's
/// "started" row).
pub(crate) struct Recorder<'a> {
    pub(crate) lock_wait: &'a dyn Fn(usize) -> Duration,
    pub(crate) record: &'a dyn Fn(usize, bool) -> NewRecord,
}

/// Renders `plan` as one script. `create_tables`: the state tables do not exist yet;
/// `add_columns`: the history columns an older build's table lacks, added first, each on
/// its own, as the upgrade does.
pub(crate) fn render(
    migrations: &Migrations,
    db: &Database,
    plan: &Plan,
    create_tables: bool,
    add_columns: &[(&str, &str)],
    recorder: &Recorder<'_>,
) -> String {
    let dialect = db.dialect();
    let store = db.store();
    let show = |r: Option<crate::Revision>| r.map_or_else(|| "base".to_owned(), |r| r.to_string());
    let run_with = match dialect {
        Dialect::Postgres => "psql -v ON_ERROR_STOP=1 -f <file>",
        Dialect::Sqlite => "sqlite3 -bail <database> < <file>",
    };
    let mut out = format!(
        "-- upgrade script: {} -> {} on {dialect}, generated {}\n\
         -- The upgrade itself runs these statements with the migration lock, a backup and checks.\n\
         -- To run it by hand: {run_with}\n",
        show(plan.from),
        show(plan.to),
        UtcDateTime::now().iso8601()
    );
    if plan.is_empty() {
        out.push_str("-- Nothing to do: the database is up to date.\n");
        return out;
    }
    if !add_columns.is_empty() {
        out.push_str(
            "\n-- schema_history was made by an older build: it gains this build's columns\n",
        );
        for (name, definition) in add_columns {
            statement(&mut out, &store.add_history_column(name, definition));
        }
    }
    let mut current = plan.from.map(|r| r.to_string());
    let mut tables_pending = create_tables;
    for batch in &plan.batches {
        out.push('\n');
        match batch {
            Batch::Transaction(steps) => {
                let Some(&first) = steps.first() else {
                    continue;
                };
                let mut wait = (recorder.lock_wait)(first);
                statement(&mut out, store.begin());
                for setting in store.migration_settings(Scope::Transaction, wait) {
                    statement(&mut out, &setting);
                }
                if std::mem::take(&mut tables_pending) {
                    statement(&mut out, &store.create_tables);
                }
                let mut records = Vec::new();
                for &index in steps {
                    let migration = &migrations.as_slice()[index];
                    let wanted = (recorder.lock_wait)(index);
                    if wanted != wait && dialect == Dialect::Postgres {
                        statement(&mut out, &store.set_lock_wait(Scope::Transaction, wanted));
                        wait = wanted;
                    }
                    out.push_str(&format!("\n-- {}\n", migration.file_name()));
                    statement(&mut out, &migration.script(Direction::Up, dialect));
                    records.push((recorder.record)(index, true));
                }
                out.push('\n');
                history(&mut out, store, &records);
                let after = migrations.as_slice()[steps[steps.len() - 1]]
                    .revision()
                    .to_string();
                version(&mut out, store, current.as_deref(), &after);
                current = Some(after);
                statement(&mut out, "COMMIT");
            }
            Batch::Alone(index) => {
                let migration = &migrations.as_slice()[*index];
                out.push_str(&format!(
                    "-- {} (no-transaction): recorded as started, then run one statement at a time \
                     outside a transaction, then recorded as finished\n",
                    migration.file_name()
                ));
                statement(&mut out, store.begin());
                if std::mem::take(&mut tables_pending) {
                    statement(&mut out, &store.create_tables);
                }
                history(&mut out, store, &[(recorder.record)(*index, false)]);
                statement(&mut out, "COMMIT");
                let script = migration.script(Direction::Up, dialect);
                match dialect {
                    Dialect::Postgres => {
                        let wait = (recorder.lock_wait)(*index);
                        for setting in store.migration_settings(Scope::Session, wait) {
                            statement(&mut out, &setting);
                        }
                        let budget = db.options().lock_timeout;
                        for part in sql_split::statements(&script, dialect) {
                            match crate::engine::migrator::concurrent_wait(part, budget) {
                                Some(once) => {
                                    statement(&mut out, &store.set_lock_wait(Scope::Session, once));
                                    statement(&mut out, part);
                                    statement(&mut out, &store.set_lock_wait(Scope::Session, wait));
                                }
                                None => statement(&mut out, part),
                            }
                        }
                        for reset in store.reset_migration_settings() {
                            statement(&mut out, &reset);
                        }
                    }
                    Dialect::Sqlite => statement(&mut out, &script),
                }
                let after = migration.revision().to_string();
                statement(&mut out, store.begin());
                statement(&mut out, &inline(&store.finish_started, &[Value::Int(0)]));
                version(&mut out, store, current.as_deref(), &after);
                current = Some(after);
                statement(&mut out, "COMMIT");
            }
        }
    }
    out
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

/// The history rows, as the upgrade writes them: the store's multi-row inserts.
fn history(out: &mut String, store: &Store, records: &[NewRecord]) {
    for chunk in records.chunks(history_insert_chunk(store.dialect)) {
        let values: Vec<Value> = chunk.iter().flat_map(NewRecord::values).collect();
        statement(out, &inline(&store.insert_history(chunk.len()), &values));
    }
}

/// The version row, moved from `from` (none: inserted) to `to`.
fn version(out: &mut String, store: &Store, from: Option<&str>, to: &str) {
    let to = Value::Text(to.to_owned());
    statement(
        out,
        &match from {
            None => inline(&store.insert_version, &[to]),
            Some(from) => inline(&store.update_version, &[to, Value::Text(from.to_owned())]),
        },
    );
}
