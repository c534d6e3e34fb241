//! The SQL script of an upgrade, as `calista db upgrade --sql` prints it: the migrations
//! and the version-table statements, for review or for a DBA to run by hand.

use crate::database::Database;
use crate::migration::{Dialect, Direction, Migrations};
use crate::plan::{Batch, Plan};
use crate::utc::UtcDateTime;

/// Renders `plan` as one script. `create_tables`: the state tables do not exist yet.
pub(crate) fn render(
    migrations: &Migrations,
    db: &Database,
    plan: &Plan,
    create_tables: bool,
    app_version: &str,
) -> String {
    let dialect = db.dialect();
    let store = db.store();
    let show = |r: Option<crate::Revision>| r.map_or_else(|| "base".to_owned(), |r| r.to_string());
    let mut out = format!(
        "-- calista upgrade script: {} -> {} on {dialect}, generated {}\n\
         -- `calista db upgrade` runs the same SQL with the migration lock, a backup and checks.\n",
        show(plan.from),
        show(plan.to),
        UtcDateTime::now().iso8601()
    );
    if plan.is_empty() {
        out.push_str("-- Nothing to do: the database is up to date.\n");
        return out;
    }
    let begin = match dialect {
        Dialect::Postgres => "BEGIN;",
        Dialect::Sqlite => "BEGIN IMMEDIATE;",
    };
    let mut current = plan.from.map(|r| r.to_string());
    let mut tables_pending = create_tables;
    for batch in &plan.batches {
        let (steps, alone) = match batch {
            Batch::Transaction(steps) => (steps.clone(), false),
            Batch::Alone(step) => (vec![*step], true),
        };
        out.push('\n');
        if alone {
            out.push_str("-- no-transaction migration: runs outside a transaction, one statement at a time\n");
        } else {
            out.push_str(begin);
            out.push('\n');
        }
        if std::mem::take(&mut tables_pending) {
            out.push_str(&store.create_tables);
            out.push_str(";\n");
        }
        for &index in &steps {
            let migration = &migrations.as_slice()[index];
            out.push_str(&format!("\n-- {}\n", migration.file_name()));
            out.push_str(migration.script(Direction::Up, dialect).trim_end());
            out.push('\n');
            let chain = migrations
                .chain_at(index)
                .map_or_else(|| "NULL".to_owned(), |c| literal(&c.to_string()));
            out.push_str(&format!(
                "INSERT INTO {} (revision, summary, direction, finished, checksum, chain, duration_ms, app_version) \
                 VALUES ({}, {}, 'up', TRUE, {}, {chain}, 0, {});\n",
                store.table("schema_history"),
                literal(&migration.revision().to_string()),
                literal(migration.summary()),
                literal(&migration.checksum().to_string()),
                literal(app_version),
            ));
            let next = migration.revision().to_string();
            out.push_str(&match &current {
                None => format!(
                    "INSERT INTO {} (version_num) VALUES ({});\n",
                    store.table("alembic_version"),
                    literal(&next)
                ),
                Some(previous) => format!(
                    "UPDATE {} SET version_num = {} WHERE version_num = {};\n",
                    store.table("alembic_version"),
                    literal(&next),
                    literal(previous)
                ),
            });
            current = Some(next);
        }
        if !alone {
            out.push_str("COMMIT;\n");
        }
    }
    out
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
