//! Verifying a set of migrations on scratch databases: the stairway (each down section
//! restores the schema, and the rows, its up section found) and one schema on two dialects
//! (after each revision, PostgreSQL's and SQLite's schemas are the same logical schema).
//!
//! # The stairway
//!
//! For each revision in order: snapshot, up, snapshot, down, snapshot — which must equal the
//! snapshot before the up — then up again. The first revision whose down leaves something
//! behind or removes too much is reported with the difference ([`Finding::DownDiffers`]).
//! An irreversible migration is applied and its down skipped.
//!
//! The rows of every table that exists before a revision's up are read too, and must be
//! the same after its down: a row removed, added or changed is a finding
//! ([`Finding::RowsChanged`], naming the rows). CALISTA's own tables are left out. Rows
//! come from the migrations themselves and from [seeds](Seed): SQL that
//! [`VerifyOptions::seeds`] runs right after a revision's up, on both dialects, so that the
//! next revisions meet tables with rows in them.
//!
//! # One schema on two dialects
//!
//! After each revision the PostgreSQL snapshot and the SQLite snapshot are compared with
//! [`Schema::diff_logical`]. A difference a migration means to keep is acknowledged in that
//! migration (or an earlier one) by an allow directive before its first section:
//!
//! ```sql
//! -- calista:allow dialect-difference event_store.payload -- SQLite keeps JSON as text, checked with json_valid
//! ```
//!
//! naming a table, or a table's column (`table.column`), or a view; every difference about
//! that table (or about that column: its type, nullability, the keys and indexes that use
//! it) is then accepted. The build checks its form (a name, and the reason after ` -- `);
//! whether it acknowledges anything is known only here: one that covers no difference is a
//! finding ([`Finding::UnusedAcknowledgement`]), so that stale ones do not pile up.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use calista_core::Revision;
//! use calista_core::verify::{Seed, VerifyOptions, verify};
//!
//! let migrations = calista_core::Migrations::from_dir("migrations")?;
//! let options = VerifyOptions {
//!     seeds: vec![Seed::new(
//!         Revision::parse("20250101_0000")?,
//!         "INSERT INTO customers (id, name) VALUES (1, 'Ada');",
//!     )],
//!     ..VerifyOptions::default()
//! };
//! let report = verify(&migrations, &options).await?;
//! assert!(report.is_clean(), "{:?}", report.findings);
//! # Ok(()) }
//! ```

mod rows;

use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::database::{Database, DatabaseOptions};
use crate::engine::migrator::{Migrator, Policy};
use crate::engine::plan::{DowngradeTarget, UpgradeTarget};
use crate::error::{Error, with_causes};
use crate::migration::{Dialect, Migration, Migrations};
use crate::naming::Revision;
use crate::schema::{Difference, Schema, SchemaDiff};
use crate::scratch;
use crate::url::{DatabaseUrl, PostgresUrl, SqliteTarget};

/// How many rows a [`Finding::RowsChanged`] shows of those removed, and of those added.
pub const ROWS_SHOWN: usize = 5;

/// Where [`verify`] makes its scratch databases, and the rows it seeds.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// A PostgreSQL server (any database on it that the role may connect to); the scratch
    /// database is created there and dropped after. `None`: PostgreSQL is not checked, nor
    /// are the dialects compared.
    pub postgres: Option<PostgresUrl>,
    /// The PostgreSQL schema the migrations run in (default: the connection's own,
    /// `current_schema()`).
    pub schema: Option<crate::database::SchemaName>,
    /// SQL run during the stairway, on each dialect, right after a revision's up: rows for
    /// the next revisions to keep.
    pub seeds: Vec<Seed>,
}

/// Rows to insert during the stairway: plain SQL, which should run on both dialects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The revision after whose up it runs (before the next revision's).
    pub after: Revision,
    /// How findings name it, e.g. its file.
    pub name: String,
    /// The statements.
    pub sql: String,
}

impl Seed {
    /// A seed named `seed after <revision>`.
    pub fn new(after: Revision, sql: impl Into<String>) -> Self {
        Self {
            after,
            name: format!("seed after {after}"),
            sql: sql.into(),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many revisions the set holds.
    pub revisions: usize,
    /// The dialects whose stairway ran.
    pub dialects: Vec<String>,
    /// Whether the dialects were compared (both stairways ran).
    pub dialects_compared: bool,
    /// What is wrong; empty when the set is clean.
    pub findings: Vec<Finding>,
    /// Differences between the dialects that migrations acknowledge.
    pub acknowledged: Vec<Acknowledged>,
    /// Revisions whose down was not checked: irreversible migrations.
    pub irreversible: Vec<String>,
    /// How many seeds ran (on each dialect).
    pub seeds: usize,
}

impl VerifyReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// After up and down, the schema is not what it was before the up.
    DownDiffers {
        /// The revision.
        revision: String,
        /// Its file.
        file: String,
        /// The dialect.
        dialect: String,
        /// From the schema before the up (`-`: the down removed it) to the schema after the
        /// down (`+`: the down left it behind).
        diff: SchemaDiff,
    },
    /// After up and down, a table that existed before the up does not hold the rows it held.
    RowsChanged {
        /// The revision.
        revision: String,
        /// Its file.
        file: String,
        /// The dialect.
        dialect: String,
        /// The table.
        table: String,
        /// Rows there before the up and not after the down (the first [`ROWS_SHOWN`]), as
        /// `(column=value, …)`.
        removed: Vec<String>,
        /// How many rows were removed.
        removed_count: usize,
        /// Rows there after the down and not before the up (the first [`ROWS_SHOWN`]); a
        /// changed row is one removed and one added.
        added: Vec<String>,
        /// How many rows were added.
        added_count: usize,
    },
    /// A migration's SQL failed during the stairway.
    StepFailed {
        /// The revision.
        revision: String,
        /// Its file.
        file: String,
        /// The dialect.
        dialect: String,
        /// `up`, `down` or `up again`.
        step: String,
        /// The error, with its causes.
        error: String,
    },
    /// A seed's SQL failed.
    SeedFailed {
        /// The seed's name.
        seed: String,
        /// The revision it runs after.
        revision: String,
        /// The dialect.
        dialect: String,
        /// The error, with its causes.
        error: String,
    },
    /// A seed names a revision the set does not hold: it never ran.
    SeedWithoutRevision {
        /// The seed's name.
        seed: String,
        /// The revision it names.
        revision: String,
    },
    /// After this revision the two dialects' schemas part.
    DialectsDiffer {
        /// The revision.
        revision: String,
        /// Its file.
        file: String,
        /// From PostgreSQL's schema (`-`: only there) to SQLite's (`+`: only there).
        diff: SchemaDiff,
    },
    /// A `-- calista:allow dialect-difference` directive that covered no difference, after
    /// any revision: the sections agree there now.
    UnusedAcknowledgement {
        /// The revision of the migration that holds it.
        revision: String,
        /// Its file.
        file: String,
        /// The directive's line (1-based).
        line: u32,
        /// The table or `table.column` it names.
        target: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DownDiffers {
                file,
                dialect,
                diff,
                ..
            } => {
                write!(
                    f,
                    "{file}: on {dialect}, up then down does not give back the schema from before the up \
                     (- removed by the down, + left behind by it):\n{}",
                    indent(&diff.to_string())
                )
            }
            Self::RowsChanged {
                file,
                dialect,
                table,
                removed,
                removed_count,
                added,
                added_count,
                ..
            } => {
                write!(
                    f,
                    "{file}: on {dialect}, up then down does not give back the rows of {table} \
                     ({removed_count} removed, {added_count} added; - there before the up and gone after \
                     the down, + there only after the down):"
                )?;
                let shown = |sign: char, rows: &[String], count: usize| {
                    let mut lines: Vec<String> =
                        rows.iter().map(|r| format!("{sign} {r}")).collect();
                    if count > rows.len() {
                        lines.push(format!("{sign} … and {} more", count - rows.len()));
                    }
                    lines
                };
                let mut lines = shown('-', removed, *removed_count);
                lines.extend(shown('+', added, *added_count));
                write!(f, "\n{}", indent(&lines.join("\n")))
            }
            Self::StepFailed {
                file,
                dialect,
                step,
                error,
                ..
            } => {
                write!(f, "{file}: on {dialect}, its {step} failed: {error}")
            }
            Self::SeedFailed {
                seed,
                revision,
                dialect,
                error,
            } => write!(
                f,
                "{seed}: on {dialect}, the seed after {revision} failed: {error}"
            ),
            Self::SeedWithoutRevision { seed, revision } => write!(
                f,
                "{seed}: no migration has revision {revision}, so the seed never ran"
            ),
            Self::DialectsDiffer { file, diff, .. } => write!(
                f,
                "{file}: after it, the PostgreSQL and SQLite schemas differ (- PostgreSQL only or as PostgreSQL has it, \
                 + SQLite); make the sections agree, or acknowledge a difference before the first section with \
                 `-- calista:allow dialect-difference <table>[.<column>] -- <reason>`:\n{}",
                indent(&diff.to_string())
            ),
            Self::UnusedAcknowledgement {
                file, line, target, ..
            } => write!(
                f,
                "{file}:{line}: `-- calista:allow dialect-difference {target}` acknowledges nothing: \
                 after every revision, the dialects agree on {target}; remove the line"
            ),
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A difference between dialects that a migration acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    /// The difference.
    pub object: String,
    /// The file that acknowledges it.
    pub file: String,
    /// Its reason.
    pub reason: String,
}

/// Runs the stairway on a scratch SQLite file and (when `options.postgres` is given) a
/// scratch PostgreSQL database, and compares the dialects after each revision. The scratch
/// databases are dropped afterwards. An `Err` means the check could not run (a server
/// unreachable); what it finds is in the report.
pub async fn verify(
    migrations: &Migrations,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let mut report = VerifyReport {
        revisions: migrations.len(),
        ..VerifyReport::default()
    };
    for seed in &options.seeds {
        if !migrations.iter().any(|m| m.revision() == seed.after) {
            report.findings.push(Finding::SeedWithoutRevision {
                seed: seed.name.clone(),
                revision: seed.after.to_string(),
            });
        }
    }
    let sqlite = async {
        let path = scratch::sqlite_path("calista_verify");
        let url = DatabaseUrl::Sqlite(SqliteTarget::File(path.clone()));
        let outcome = run_on(migrations, &url, options).await;
        scratch::remove_sqlite(&path);
        outcome
    };
    let postgres = async {
        let Some(server) = &options.postgres else {
            return Ok(None);
        };
        let name = scratch::unique_name("calista_verify");
        let mut admin = scratch::admin(server).await?;
        scratch::create_database(&mut admin, &name, None).await?;
        let url = DatabaseUrl::Postgres(server.with_database(&name));
        let outcome = run_on(migrations, &url, options).await;
        if let Err(e) = scratch::drop_database(&mut admin, &name).await {
            tracing::warn!(error = %with_causes(&e), database = %name, "could not drop the scratch database");
        }
        outcome.map(Some)
    };
    let (sqlite, postgres) = tokio::join!(sqlite, postgres);
    let sqlite = sqlite?;
    let postgres = postgres?;
    report.irreversible = sqlite.irreversible.clone();
    report.seeds = sqlite.seeds;
    report.dialects.push(Dialect::Sqlite.to_string());
    report.findings.extend(sqlite.findings.clone());
    if let Some(postgres) = &postgres {
        report.dialects.insert(0, Dialect::Postgres.to_string());
        report.findings.extend(postgres.findings.clone());
        report.dialects_compared = true;
        compare_dialects(migrations, postgres, &sqlite, &mut report);
    }
    Ok(report)
}

/// What the stairway saw on one dialect.
#[derive(Debug)]
pub struct Stairway {
    /// The schema after each revision's up, in order, for as far as the stairway got.
    pub after_up: Vec<Schema>,
    /// The problems of the revision where the stairway stopped (several when its down
    /// changed the rows of several tables).
    pub findings: Vec<Finding>,
    /// Revisions whose down was skipped (irreversible).
    pub irreversible: Vec<String>,
    /// How many seeds ran.
    pub seeds: usize,
}

async fn run_on(
    migrations: &Migrations,
    url: &DatabaseUrl,
    options: &VerifyOptions,
) -> Result<Stairway, Error> {
    let database_options = DatabaseOptions {
        schema: options.schema.clone(),
        ..DatabaseOptions::default()
    };
    let db = Database::connect(url, database_options)?;
    let outcome = stairway(migrations, &db, &options.seeds).await;
    db.close().await;
    outcome
}

/// Runs the stairway on `db`, which should be empty: for each revision, up, down (checking
/// the schema, and the rows of the tables that were there, are what they were before the
/// up), up again, then the `seeds` that run after it. Stops at the first revision with a
/// problem.
pub async fn stairway(
    migrations: &Migrations,
    db: &Database,
    seeds: &[Seed],
) -> Result<Stairway, Error> {
    let policy = Policy::scratch();
    let migrator = Migrator::new(migrations, db).with_policy(policy);
    let dialect = db.dialect().to_string();
    let mut result = Stairway {
        after_up: Vec::new(),
        findings: Vec::new(),
        irreversible: Vec::new(),
        seeds: 0,
    };
    let failed = |migration: &Migration, step: &str, error: Error| Finding::StepFailed {
        revision: migration.revision().to_string(),
        file: migration.file_name(),
        dialect: dialect.clone(),
        step: step.to_owned(),
        error: with_causes(&error),
    };
    for migration in migrations.iter() {
        let revision = migration.revision();
        let before = Schema::read(db).await?;
        let rows_before = rows::read(db, &before).await?;
        let up = UpgradeTarget::Revision(revision);
        if let Err(e) = migrator.upgrade(up).await {
            result
                .findings
                .push(step_or_err(e, |e| failed(migration, "up", e))?);
            break;
        }
        let after_up = Schema::read(db).await?;
        if migration.irreversible() {
            result.irreversible.push(revision.to_string());
        } else {
            if let Err(e) = migrator.downgrade(DowngradeTarget::Steps(1)).await {
                result
                    .findings
                    .push(step_or_err(e, |e| failed(migration, "down", e))?);
                break;
            }
            let after_down = Schema::read(db).await?;
            let diff = before.diff(&after_down);
            if !diff.is_empty() {
                result.findings.push(Finding::DownDiffers {
                    revision: revision.to_string(),
                    file: migration.file_name(),
                    dialect: dialect.clone(),
                    diff,
                });
                break;
            }
            let rows_after = rows::read(db, &after_down).await?;
            result
                .findings
                .extend(rows_changed(migration, &dialect, &rows_before, &rows_after));
            if !result.findings.is_empty() {
                break;
            }
            if let Err(e) = migrator.upgrade(up).await {
                result
                    .findings
                    .push(step_or_err(e, |e| failed(migration, "up again", e))?);
                break;
            }
        }
        result.after_up.push(after_up);
        for seed in seeds.iter().filter(|seed| seed.after == revision) {
            if let Err(error) = run_seed(db, seed).await {
                result.findings.push(Finding::SeedFailed {
                    seed: seed.name.clone(),
                    revision: revision.to_string(),
                    dialect: dialect.clone(),
                    error,
                });
                return Ok(result);
            }
            result.seeds += 1;
        }
    }
    Ok(result)
}

/// Runs a seed's statements, which the caller wrote to run on this scratch database; the
/// error, with its causes, when they fail.
async fn run_seed(db: &Database, seed: &Seed) -> Result<(), String> {
    let pool = db.own_pool();
    let outcome = if let Some(pool) = pool.as_postgres() {
        let schema = db.schema().await.map_err(|e| with_causes(&e))?;
        seed_in_schema(pool, schema.as_ref(), &seed.sql).await
    } else if let Some(pool) = pool.as_sqlite() {
        sqlx::raw_sql(AssertSqlSafe(seed.sql.as_str()))
            .execute(pool)
            .await
            .map(drop)
    } else {
        Ok(())
    };
    outcome.map_err(|e| with_causes(&e))
}

/// Runs `sql` in one transaction with `schema` first on `search_path`, where the migrations
/// put the tables it fills: set inside the transaction, since a start-up parameter is one a
/// pooler refuses, and a session's setting would stay on a pooled server connection.
async fn seed_in_schema(
    pool: &sqlx::PgPool,
    schema: Option<&crate::database::SchemaName>,
    sql: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(schema) = schema {
        // A schema name is a plain identifier, checked when it was made.
        let set = format!("SET LOCAL search_path TO \"{schema}\", public");
        sqlx::raw_sql(AssertSqlSafe(set)).execute(&mut *tx).await?;
    }
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
    tx.commit().await
}

/// A finding for each table whose rows differ between `before` and `after`.
fn rows_changed(
    migration: &Migration,
    dialect: &str,
    before: &rows::Rows,
    after: &rows::Rows,
) -> Vec<Finding> {
    let empty = Vec::new();
    before
        .iter()
        .filter_map(|(table, before)| {
            let after = after.get(table).unwrap_or(&empty);
            let removed = only_in(before, after);
            let added = only_in(after, before);
            if removed.is_empty() && added.is_empty() {
                return None;
            }
            let first = |rows: &[String]| rows.iter().take(ROWS_SHOWN).cloned().collect();
            Some(Finding::RowsChanged {
                revision: migration.revision().to_string(),
                file: migration.file_name(),
                dialect: dialect.to_owned(),
                table: table.clone(),
                removed: first(&removed),
                removed_count: removed.len(),
                added: first(&added),
                added_count: added.len(),
            })
        })
        .collect()
}

/// The rows of sorted `a` that sorted `b` lacks, counting duplicates.
fn only_in(a: &[String], b: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    let mut b = b.iter().peekable();
    for row in a {
        while b.next_if(|other| *other < row).is_some() {}
        if b.next_if(|other| *other == row).is_none() {
            missing.push(row.clone());
        }
    }
    missing
}

/// A migration's failure is a finding; anything else (the server went away) stops the check.
fn step_or_err(error: Error, finding: impl FnOnce(Error) -> Finding) -> Result<Finding, Error> {
    match error {
        Error::Migration { .. } | Error::MigrationInterrupted { .. } | Error::Plan(_) => {
            Ok(finding(error))
        }
        other => Err(other),
    }
}

/// One `-- calista:allow dialect-difference` directive, from the migration at index `at`.
#[derive(Debug, Clone)]
struct Acknowledgement {
    at: usize,
    line: u32,
    table: String,
    column: Option<String>,
    reason: String,
}

impl Acknowledgement {
    fn covers(&self, difference: &Difference) -> bool {
        let table = difference
            .table
            .clone()
            .or_else(|| difference.object.strip_prefix("view ").map(str::to_owned));
        table.as_deref() == Some(self.table.as_str())
            && self
                .column
                .as_ref()
                .is_none_or(|column| difference.columns.contains(column))
    }

    fn target(&self) -> String {
        match &self.column {
            Some(column) => format!("{}.{column}", self.table),
            None => self.table.clone(),
        }
    }
}

fn acknowledgements(migrations: &Migrations) -> Vec<Acknowledgement> {
    let mut found = Vec::new();
    for (at, migration) in migrations.iter().enumerate() {
        for allowed in migration.dialect_differences() {
            found.push(Acknowledgement {
                at,
                line: allowed.line,
                table: allowed.table.to_owned(),
                column: allowed.column.map(str::to_owned),
                reason: allowed.reason.to_owned(),
            });
        }
    }
    found
}

/// Compares the dialects after each revision both stairways got past, stopping at the
/// first difference no directive acknowledges. When every revision was compared, each
/// directive that covered nothing is a finding.
fn compare_dialects(
    migrations: &Migrations,
    postgres: &Stairway,
    sqlite: &Stairway,
    report: &mut VerifyReport,
) {
    let acknowledgements = acknowledgements(migrations);
    let mut used = vec![false; acknowledgements.len()];
    let steps = postgres.after_up.iter().zip(&sqlite.after_up);
    let mut compared = 0;
    for (at, (pg, lite)) in steps.enumerate() {
        let mut diff = pg.diff_logical(lite);
        diff.differences.retain(|difference| {
            let Some(index) = acknowledgements
                .iter()
                .position(|a| a.at <= at && a.covers(difference))
            else {
                return true;
            };
            used[index] = true;
            let ack = &acknowledgements[index];
            if !report
                .acknowledged
                .iter()
                .any(|a| a.object == difference.object)
            {
                report.acknowledged.push(Acknowledged {
                    object: difference.object.clone(),
                    file: migrations.as_slice()[ack.at].file_name(),
                    reason: ack.reason.clone(),
                });
            }
            false
        });
        if !diff.is_empty() {
            let migration = &migrations.as_slice()[at];
            report.findings.push(Finding::DialectsDiffer {
                revision: migration.revision().to_string(),
                file: migration.file_name(),
                diff,
            });
            return;
        }
        compared += 1;
    }
    if compared < migrations.len() {
        return; // a later revision might have needed them
    }
    for (ack, used) in acknowledgements.iter().zip(used) {
        if !used {
            let migration = &migrations.as_slice()[ack.at];
            report.findings.push(Finding::UnusedAcknowledgement {
                revision: migration.revision().to_string(),
                file: migration.file_name(),
                line: ack.line,
                target: ack.target(),
            });
        }
    }
}
