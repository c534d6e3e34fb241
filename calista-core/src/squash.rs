//! `db squash`: the migrations up to a revision replaced by one baseline file, with a
//! section per dialect, that builds the same schema (DESIGN §12).
//!
//! The baseline takes the revision of the last file it replaces and carries the chained
//! digest of the replaced files there (`-- calista:baseline <first>..<through> chain:<hex>
//! -- <release>`): a database that ran them is at that revision, with that digest, and
//! runs nothing; a fresh database runs the baseline; a database part-way through the
//! replaced files is refused, naming the release that still has them.
//!
//! The baseline's SQL is the replaced files' up SQL of each dialect, in order (and their
//! down SQL in reverse, when every one is reversible): one file and one transaction
//! instead of hundreds. It is checked before it is written: on a scratch database of each
//! dialect, the schema the baseline builds must equal the full replay's, byte for byte.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::database::{Database, DatabaseOptions};
use crate::error::Error;
use crate::migration::{Baseline, Dialect, Direction, Migration, Migrations};
use crate::naming::{self, Revision};
use crate::schema::Schema;
use crate::scratch;
use crate::url::{DatabaseUrl, PostgresUrl, SqliteTarget};
use crate::{Migrator, Policy, UpgradeTarget};

/// A squash worked out: the baseline file and the files it replaces. Nothing is written
/// until [`write()`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SquashPlan {
    /// The baseline's file name (`<through>_baseline.sql`).
    pub file: String,
    /// The baseline's text.
    pub text: String,
    /// The files it replaces, oldest first.
    pub replaced: Vec<String>,
    /// The revision it takes: the last one it replaces.
    pub through: Revision,
}

/// Why a squash cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SquashError {
    /// The revision is not one of the migrations.
    UnknownRevision(Revision),
    /// The release is not a version a person can name.
    BadRelease(String),
    /// A single migration that is already a baseline: nothing to squash.
    NothingToSquash(Revision),
}

impl fmt::Display for SquashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRevision(revision) => write!(
                f,
                "revision {revision} is not one of the migrations; `db history` lists them"
            ),
            Self::BadRelease(release) => write!(
                f,
                "`{release}` is not a release: give the version of the oldest release that still has the \
                 migrations being replaced (e.g. 1.4.0), which databases behind them must be upgraded with first"
            ),
            Self::NothingToSquash(revision) => {
                write!(f, "{revision} is already the baseline: nothing to squash")
            }
        }
    }
}

impl std::error::Error for SquashError {}

/// Works out the baseline replacing the migrations up to `through`, for databases that the
/// release `release` (the oldest one that still has them) brings to `through` first.
pub fn plan(
    migrations: &Migrations,
    through: Revision,
    release: &str,
) -> Result<SquashPlan, SquashError> {
    let last = migrations
        .position(through)
        .ok_or(SquashError::UnknownRevision(through))?;
    let release = release.trim();
    if release.is_empty() || release.contains(char::is_whitespace) || release.contains("--") {
        return Err(SquashError::BadRelease(release.to_owned()));
    }
    let replaced = &migrations.as_slice()[..=last];
    if let [only] = replaced
        && only.baseline().is_some()
    {
        return Err(SquashError::NothingToSquash(through));
    }
    let first = replaced[0]
        .baseline()
        .map_or(replaced[0].revision(), |b| b.first);
    let chain = migrations
        .chain_at(last)
        .ok_or(SquashError::UnknownRevision(through))?;
    let legacy = migrations
        .chain_before_whitespace_rule_at(last)
        .filter(|legacy| *legacy != chain);
    let baseline = Baseline {
        first,
        through,
        chain,
        chain_before_whitespace_rule: legacy,
        release,
    };
    let reversible = replaced.iter().all(|m| !m.irreversible());
    let mut text = format!(
        "-- The baseline of the migrations {first} to {through} ({} files), squashed for release {release}:\n\
         -- a database that ran them is at {through} and runs nothing here; one part-way through them\n\
         -- is upgraded with release {release} first.\n{}\n",
        replaced.len(),
        baseline.directive()
    );
    if replaced.iter().any(Migration::no_transaction) {
        text.push_str("-- calista:no-transaction\n");
    }
    if !reversible {
        text.push_str("-- calista:irreversible\n");
    }
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        text.push_str(&format!("\n-- calista:up {}\n", dialect.marker_word()));
        for migration in replaced {
            push_script(&mut text, migration, Direction::Up, dialect);
        }
        if reversible {
            text.push_str(&format!("\n-- calista:down {}\n", dialect.marker_word()));
            for migration in replaced.iter().rev() {
                push_script(&mut text, migration, Direction::Down, dialect);
            }
        }
    }
    Ok(SquashPlan {
        file: naming::file_name(through, "baseline"),
        text,
        replaced: replaced.iter().map(Migration::file_name).collect(),
        through,
    })
}

/// A migration's SQL of one direction and dialect, under a comment naming its file.
fn push_script(text: &mut String, migration: &Migration, direction: Direction, dialect: Dialect) {
    let script = migration.script(direction, dialect);
    let script = script.trim();
    text.push_str(&format!("-- {}\n", migration.file_name()));
    if !script.is_empty() {
        text.push_str(script);
        text.push('\n');
    }
}

/// What the check of a squash found on one dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SquashCheck {
    /// The dialect.
    pub dialect: Dialect,
    /// The canonical schema the full replay built: the snapshot's sorted rendering.
    pub replayed: String,
    /// The canonical schema the baseline built.
    pub baseline: String,
}

impl SquashCheck {
    /// Whether the baseline builds exactly the replay's schema.
    pub fn matches(&self) -> bool {
        self.replayed == self.baseline
    }
}

/// Checks `plan` against `migrations` on a scratch SQLite file and, when `postgres` names
/// a server (whose role may create databases), a scratch PostgreSQL database: the schema
/// the baseline builds and the full replay's, as canonical text. Writes nothing to the
/// migrations folder.
pub async fn check(
    migrations: &Migrations,
    plan: &SquashPlan,
    postgres: Option<&PostgresUrl>,
) -> Result<Vec<SquashCheck>, Error> {
    let squashed = squashed_set(migrations, plan)?;
    let mut checks = Vec::new();
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        if dialect == Dialect::Postgres && postgres.is_none() {
            continue;
        }
        let replayed = canonical(migrations, plan.through, dialect, postgres).await?;
        let baseline = canonical(&squashed, plan.through, dialect, postgres).await?;
        checks.push(SquashCheck {
            dialect,
            replayed,
            baseline,
        });
    }
    Ok(checks)
}

/// The set as it is after the squash: the baseline, then the files after it.
fn squashed_set(migrations: &Migrations, plan: &SquashPlan) -> Result<Migrations, Error> {
    let dir = tempfile_dir()?;
    let result = (|| {
        std::fs::write(dir.join(&plan.file), &plan.text)?;
        for migration in migrations.iter().filter(|m| m.revision() > plan.through) {
            std::fs::write(dir.join(migration.file_name()), migration.text())?;
        }
        Ok::<_, std::io::Error>(())
    })();
    let set = result
        .map_err(|source| Error::ScratchFile {
            doing: "write the squashed set to check it".to_owned(),
            source,
        })
        .and_then(|()| Migrations::from_dir(&dir).map_err(Error::from));
    let _ = std::fs::remove_dir_all(&dir);
    set
}

/// A new folder in the temporary folder.
fn tempfile_dir() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(scratch::unique_name("calista_squash"));
    std::fs::create_dir_all(&dir).map_err(|source| Error::ScratchFile {
        doing: format!(
            "create a scratch folder in {}",
            std::env::temp_dir().display()
        ),
        source,
    })?;
    Ok(dir)
}

/// The canonical schema `migrations` up to `through` build on a scratch database.
async fn canonical(
    migrations: &Migrations,
    through: Revision,
    dialect: Dialect,
    postgres: Option<&PostgresUrl>,
) -> Result<String, Error> {
    let policy = Policy::scratch();
    let build = async |url: &DatabaseUrl| {
        let db = Database::connect(url, DatabaseOptions::default())?;
        let built = async {
            Migrator::new(migrations, &db)
                .with_policy(policy.clone())
                .upgrade(UpgradeTarget::Revision(through))
                .await?;
            Schema::read(&db).await
        }
        .await;
        db.close().await;
        built.map(|schema| format!("{schema:#?}"))
    };
    match (dialect, postgres) {
        (Dialect::Postgres, Some(server)) => {
            let name = scratch::unique_name("calista_squash");
            let mut admin = scratch::admin(server).await?;
            scratch::create_database(&mut admin, &name, None).await?;
            let built = build(&DatabaseUrl::Postgres(server.with_database(&name))).await;
            if let Err(e) = scratch::drop_database(&mut admin, &name).await {
                tracing::warn!(error = %crate::error::with_causes(&e), database = %name, "could not drop the scratch database");
            }
            built
        }
        _ => {
            let path = scratch::sqlite_path("calista_squash");
            let built = build(&DatabaseUrl::Sqlite(SqliteTarget::File(path.clone()))).await;
            scratch::remove_sqlite(&path);
            built
        }
    }
}

/// Writes the baseline into `dir` and removes the files it replaces. The baseline is
/// written first (never over an existing file), so an interruption leaves both, which the
/// folder's rules then refuse (two files of one revision) instead of losing anything.
pub fn write(plan: &SquashPlan, dir: &Path) -> std::io::Result<()> {
    let baseline = dir.join(&plan.file);
    let replaced_by_itself = plan.replaced.contains(&plan.file);
    if replaced_by_itself {
        // Squashing again: the old baseline has the same name; replace it in place.
        std::fs::write(&baseline, &plan.text)?;
    } else {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&baseline)?;
        std::io::Write::write_all(&mut file, plan.text.as_bytes())?;
    }
    for replaced in plan.replaced.iter().filter(|f| **f != plan.file) {
        std::fs::remove_file(dir.join(replaced))?;
    }
    Ok(())
}
