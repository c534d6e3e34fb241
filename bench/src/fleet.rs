//! G. a fleet: `calista db upgrade --targets` on many schemas of one PostgreSQL database and
//! on many SQLite files, against a sequential shell loop of `calista db upgrade` and
//! `xargs -P` of it, the same jobs at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

use crate::db::{Backend, pg_admin_url};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The migrations of every target.
pub(crate) const MIGRATIONS: usize = 20;

/// How the targets are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    /// `calista db … --targets FILE --jobs J`.
    Fleet,
    /// `while read url schema; do calista … db …; done < FILE`.
    Loop,
    /// `xargs -P J -L 1` of `calista … db …`.
    Xargs,
}

impl Runner {
    pub(crate) const ALL: [Self; 3] = [Self::Fleet, Self::Loop, Self::Xargs];
}

/// What the runs do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// Every target from empty to the head: `db upgrade`.
    Upgrade,
    /// Every target up to date: `db check`.
    Check,
    /// Every target up to date: `db upgrade`, which finds nothing to do.
    NoOpUpgrade,
}

impl Work {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Upgrade => "full upgrade (from empty)",
            Self::Check => "no-op `db check`",
            Self::NoOpUpgrade => "no-op `db upgrade`",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Self::Upgrade | Self::NoOpUpgrade => "upgrade",
            Self::Check => "check",
        }
    }
}

/// One backend's fleet: the targets file and what it names.
pub(crate) struct Fleet {
    backend: Backend,
    targets: usize,
    dir: tempfile::TempDir,
    file: PathBuf,
    database: Option<String>,
}

impl Fleet {
    /// `targets` schemas of one new PostgreSQL database, or `targets` SQLite files in a new
    /// folder; nothing created in them yet.
    pub(crate) async fn new(backend: Backend, targets: usize) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("targets");
        let (lines, database): (Vec<String>, _) = match backend {
            Backend::Postgres => {
                let name = format!("calista_bench_fleet_{}", std::process::id());
                let url = with_database(&pg_admin_url(), &name);
                let lines = (0..targets)
                    .map(|i| format!("{url} tenant_{i:04}"))
                    .collect();
                (lines, Some(name))
            }
            Backend::Sqlite => {
                let lines = (0..targets)
                    .map(|i| format!("sqlite:///{}/tenant_{i:04}.db", dir.path().display()))
                    .collect();
                (lines, None)
            }
        };
        std::fs::write(&file, lines.join("\n") + "\n")?;
        let fleet = Self {
            backend,
            targets,
            dir,
            file,
            database,
        };
        fleet.empty().await?;
        Ok(fleet)
    }

    /// Back to empty targets: a new database, or no files.
    pub(crate) async fn empty(&self) -> Result<()> {
        match &self.database {
            Some(name) => {
                let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                admin.execute("CHECKPOINT").await?;
                admin.close().await?;
            }
            None => {
                for entry in std::fs::read_dir(self.dir.path())? {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "db") {
                        std::fs::remove_file(path)?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn drop_now(self) {
        if let Some(name) = &self.database
            && let Ok(mut admin) = sqlx::PgConnection::connect(&pg_admin_url()).await
        {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
            let _ = admin.close().await;
        }
    }

    pub(crate) fn targets(&self) -> usize {
        self.targets
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `work` on every target with `runner`, `jobs` at once; the wall time.
    pub(crate) fn run(
        &self,
        binary: &Path,
        migrations: &Path,
        runner: Runner,
        work: Work,
        jobs: usize,
    ) -> Result<Duration> {
        let calista = format!(
            "{} --migrations {} db {}",
            binary.display(),
            migrations.display(),
            work.command()
        );
        let file = self.file.display();
        let mut command = match runner {
            Runner::Fleet => {
                let mut command = Command::new(binary);
                command
                    .arg("--migrations")
                    .arg(migrations)
                    .args(["db", work.command(), "--jobs", &jobs.to_string()])
                    .arg("--targets")
                    .arg(&self.file);
                command
            }
            // The schema goes through the environment; a SQLite line has none, and its
            // default does not matter there.
            Runner::Loop => shell(&format!(
                "while read -r url schema; do CALISTA_DB_SCHEMA=\"${{schema:-calista}}\" {calista} --db-url \"$url\" || exit 1; done < {file}"
            )),
            Runner::Xargs => shell(&format!(
                "xargs -P {jobs} -L 1 sh -c 'CALISTA_DB_SCHEMA=\"${{1:-calista}}\" exec {calista} --db-url \"$0\"' < {file}"
            )),
        };
        command
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            // The targets are empty, or up to date: no backup would be taken anyway.
            .env("CALISTA_BACKUP", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let status = command.status()?;
        let elapsed = started.elapsed();
        if !status.success() {
            return Err(
                format!("{runner:?} {work:?} on {:?} failed: {status}", self.backend).into(),
            );
        }
        Ok(elapsed)
    }
}

fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

fn with_database(url: &str, database: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let cut = base.rfind('/').unwrap_or(base.len());
    format!("{}/{database}", &base[..cut])
}
