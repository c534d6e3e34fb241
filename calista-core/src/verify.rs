//! Verifying a set of migrations on scratch databases: the stairway (each down section
//! restores the schema its up section found) and one schema on two dialects (after each
//! revision, PostgreSQL's and SQLite's schemas are the same logical schema).
//!
//! # The stairway
//!
//! For each revision in order: snapshot, up, snapshot, down, snapshot — which must equal the
//! snapshot before the up — then up again. The first revision whose down leaves something
//! behind or removes too much is reported with the difference ([`Finding::DownDiffers`]).
//! An irreversible migration is applied and its down skipped.
//!
//! # One schema on two dialects
//!
//! After each revision the PostgreSQL snapshot and the SQLite snapshot are compared with
//! [`Schema::diff_logical`]. A difference a migration means to keep is acknowledged in that
//! migration (or an earlier one) by a comment line:
//!
//! ```sql
//! -- calista-verify: dialect-difference event_store.payload -- SQLite keeps JSON as text, checked with json_valid
//! ```
//!
//! naming a table, or a table's column (`table.column`), or a view; every difference about
//! that table (or about that column: its type, nullability, the keys and indexes that use
//! it) is then accepted. The reason after ` -- ` is required. (It is a comment, not a
//! `-- calista:` directive, so that migrations carrying it read the same to every build.)

use std::error::Error as _;

use serde::Serialize;

use crate::backup::BackupPolicy;
use crate::database::{Database, DatabaseOptions};
use crate::error::Error;
use crate::migration::{Dialect, Migrations};
use crate::migrator::{Downgrades, Migrator, Policy};
use crate::plan::{DowngradeTarget, UpgradeTarget};
use crate::schema::{Difference, Schema, SchemaDiff};
use crate::scratch;
use crate::url::{DatabaseUrl, PostgresUrl, SqliteTarget};

/// The comment that acknowledges a difference between dialects.
pub const ACKNOWLEDGEMENT: &str = "-- calista-verify:";

/// Where [`verify`] makes its scratch databases.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// A PostgreSQL server (any database on it that the role may connect to); the scratch
    /// database is created there and dropped after. `None`: PostgreSQL is not checked, nor
    /// are the dialects compared.
    pub postgres: Option<PostgresUrl>,
    /// The PostgreSQL schema the migrations run in (default `calista`).
    pub schema: Option<String>,
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
    /// After this revision the two dialects' schemas part.
    DialectsDiffer {
        /// The revision.
        revision: String,
        /// Its file.
        file: String,
        /// From PostgreSQL's schema (`-`: only there) to SQLite's (`+`: only there).
        diff: SchemaDiff,
    },
    /// A `-- calista-verify:` line that cannot be read.
    BadAcknowledgement {
        /// The file.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// What is wrong, and the form to write.
        problem: String,
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
            Self::StepFailed {
                file,
                dialect,
                step,
                error,
                ..
            } => {
                write!(f, "{file}: on {dialect}, its {step} failed: {error}")
            }
            Self::DialectsDiffer { file, diff, .. } => write!(
                f,
                "{file}: after it, the PostgreSQL and SQLite schemas differ (- PostgreSQL only or as PostgreSQL has it, \
                 + SQLite); make the sections agree, or acknowledge a difference with \
                 `{ACKNOWLEDGEMENT} dialect-difference <table>[.<column>] -- <reason>`:\n{}",
                indent(&diff.to_string())
            ),
            Self::BadAcknowledgement {
                file,
                line,
                problem,
            } => write!(f, "{file}:{line}: {problem}"),
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
    let acknowledgements = read_acknowledgements(migrations, &mut report.findings);
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
            tracing::warn!(error = %e, database = %name, "could not drop the scratch database");
        }
        outcome.map(Some)
    };
    let (sqlite, postgres) = tokio::join!(sqlite, postgres);
    let sqlite = sqlite?;
    let postgres = postgres?;
    report.irreversible = sqlite.irreversible.clone();
    report.dialects.push(Dialect::Sqlite.to_string());
    report.findings.extend(sqlite.finding.clone());
    if let Some(postgres) = &postgres {
        report.dialects.insert(0, Dialect::Postgres.to_string());
        report.findings.extend(postgres.finding.clone());
        report.dialects_compared = true;
        compare_dialects(
            migrations,
            postgres,
            &sqlite,
            &acknowledgements,
            &mut report,
        );
    }
    Ok(report)
}

/// What the stairway saw on one dialect.
#[derive(Debug)]
pub struct Stairway {
    /// The schema after each revision's up, in order, for as far as the stairway got.
    pub after_up: Vec<Schema>,
    /// The first problem, where the stairway stopped.
    pub finding: Option<Finding>,
    /// Revisions whose down was skipped (irreversible).
    pub irreversible: Vec<String>,
}

async fn run_on(
    migrations: &Migrations,
    url: &DatabaseUrl,
    options: &VerifyOptions,
) -> Result<Stairway, Error> {
    let mut database_options = DatabaseOptions::default();
    if let Some(schema) = &options.schema {
        database_options.schema = schema.clone();
    }
    let db = Database::connect(url, database_options)?;
    let outcome = stairway(migrations, &db).await;
    db.close().await;
    outcome
}

/// Runs the stairway on `db`, which should be empty: for each revision, up, down (checking
/// the schema is what it was before the up), up again. Stops at the first problem.
pub async fn stairway(migrations: &Migrations, db: &Database) -> Result<Stairway, Error> {
    let policy = Policy {
        downgrades: Downgrades::Allowed,
        backup: BackupPolicy::Disabled {
            reason: "a scratch database".to_owned(),
        },
        ..Policy::default()
    };
    let migrator = Migrator::new(migrations, db).with_policy(policy);
    let dialect = db.dialect().to_string();
    let mut result = Stairway {
        after_up: Vec::new(),
        finding: None,
        irreversible: Vec::new(),
    };
    let failed = |migration: &crate::Migration, step: &str, error: Error| Finding::StepFailed {
        revision: migration.revision().to_string(),
        file: migration.file_name(),
        dialect: dialect.clone(),
        step: step.to_owned(),
        error: with_causes(&error),
    };
    for migration in migrations.iter() {
        let revision = migration.revision();
        let before = Schema::read(db).await?;
        let up = UpgradeTarget::Revision(revision);
        if let Err(e) = migrator.upgrade(up).await {
            result.finding = Some(step_or_err(e, |e| failed(migration, "up", e))?);
            break;
        }
        let after_up = Schema::read(db).await?;
        if migration.irreversible() {
            result.irreversible.push(revision.to_string());
            result.after_up.push(after_up);
            continue;
        }
        if let Err(e) = migrator.downgrade(DowngradeTarget::Steps(1)).await {
            result.finding = Some(step_or_err(e, |e| failed(migration, "down", e))?);
            break;
        }
        let after_down = Schema::read(db).await?;
        let diff = before.diff(&after_down);
        if !diff.is_empty() {
            result.finding = Some(Finding::DownDiffers {
                revision: revision.to_string(),
                file: migration.file_name(),
                dialect: dialect.clone(),
                diff,
            });
            break;
        }
        if let Err(e) = migrator.upgrade(up).await {
            result.finding = Some(step_or_err(e, |e| failed(migration, "up again", e))?);
            break;
        }
        result.after_up.push(after_up);
    }
    Ok(result)
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

fn with_causes(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One `-- calista-verify: dialect-difference` line.
#[derive(Debug, Clone)]
struct Acknowledgement {
    /// Index of its migration.
    at: usize,
    file: String,
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
}

fn read_acknowledgements(
    migrations: &Migrations,
    findings: &mut Vec<Finding>,
) -> Vec<Acknowledgement> {
    let mut found = Vec::new();
    for (at, migration) in migrations.iter().enumerate() {
        for (number, line) in migration.text().lines().enumerate() {
            let Some(rest) = line.trim().strip_prefix(ACKNOWLEDGEMENT) else {
                continue;
            };
            let bad = |problem: &str| Finding::BadAcknowledgement {
                file: migration.file_name(),
                line: number + 1,
                problem: format!(
                    "{problem}; write `{ACKNOWLEDGEMENT} dialect-difference <table>[.<column>] -- <reason>`"
                ),
            };
            let Some(rest) = rest.trim().strip_prefix("dialect-difference") else {
                findings.push(bad("the only acknowledgement is `dialect-difference`"));
                continue;
            };
            let (object, reason) = rest.split_once(" -- ").unwrap_or((rest, ""));
            let (object, reason) = (object.trim(), reason.trim());
            if object.is_empty() || object.contains(char::is_whitespace) {
                findings.push(bad("name one table, or one table's column"));
                continue;
            }
            if reason.is_empty() {
                findings.push(bad("the reason is required"));
                continue;
            }
            let (table, column) = match object.split_once('.') {
                Some((table, column)) => (table.to_owned(), Some(column.to_owned())),
                None => (object.to_owned(), None),
            };
            found.push(Acknowledgement {
                at,
                file: migration.file_name(),
                table,
                column,
                reason: reason.to_owned(),
            });
        }
    }
    found
}

fn compare_dialects(
    migrations: &Migrations,
    postgres: &Stairway,
    sqlite: &Stairway,
    acknowledgements: &[Acknowledgement],
    report: &mut VerifyReport,
) {
    let steps = postgres.after_up.iter().zip(&sqlite.after_up);
    for (at, (pg, lite)) in steps.enumerate() {
        let mut diff = pg.diff_logical(lite);
        diff.differences.retain(|difference| {
            let Some(ack) = acknowledgements
                .iter()
                .find(|a| a.at <= at && a.covers(difference))
            else {
                return true;
            };
            if !report
                .acknowledged
                .iter()
                .any(|a| a.object == difference.object)
            {
                report.acknowledged.push(Acknowledged {
                    object: difference.object.clone(),
                    file: ack.file.clone(),
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
    }
}
