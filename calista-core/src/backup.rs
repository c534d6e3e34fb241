//! Backups taken before an upgrade changes anything, and only then.
//!
//! SQLite: a consistent copy with `VACUUM INTO`, checked with `PRAGMA integrity_check`.
//! PostgreSQL: `pg_dump --format=custom` of the application's schema, the password passed
//! through the environment, never the command line.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::{ConnectOptions, Connection};

use crate::utc::UtcDateTime;

/// The file extension of SQLite backups.
pub const SQLITE_EXTENSION: &str = "sqlite3";
/// The file extension of PostgreSQL backups (`pg_dump` custom format).
pub const POSTGRES_EXTENSION: &str = "dump";
/// The folder backups go to when none is set: beside the SQLite file, or in the current
/// directory for PostgreSQL.
pub const DEFAULT_DIR_NAME: &str = "calista-backups";
/// How many backups of a database are kept when nothing is set.
pub const DEFAULT_KEEP: u32 = 10;
/// The suffix of a backup being written; renamed away once the backup is complete and
/// checked, so a backup interrupted by a crash is never mistaken for a good one.
const PARTIAL: &str = ".partial";

/// Whether and how to back up before an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupPolicy {
    /// Take a backup.
    Enabled(BackupOptions),
    /// Do not; the reason is reported, e.g. "disabled by --no-backup".
    Disabled {
        /// Why, in words a user recognises (the setting and where it came from).
        reason: String,
    },
}

/// Where backups go and how many are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOptions {
    /// The folder; `None`: [`DEFAULT_DIR_NAME`] beside the SQLite file or in the current directory.
    pub dir: Option<PathBuf>,
    /// How many backups of this database to keep; older ones are deleted after a successful upgrade.
    pub keep: u32,
    /// The `pg_dump` program; `None`: found on `PATH`.
    pub pg_dump: Option<PathBuf>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            dir: None,
            keep: DEFAULT_KEEP,
            pg_dump: None,
        }
    }
}

/// What happened about the backup of an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupOutcome {
    /// A backup was written.
    Taken(Backup),
    /// None was taken, and why.
    Skipped(String),
}

/// A backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The command that restores it (with any password left out).
    pub restore_command: String,
}

/// A backup that could not be taken; the upgrade stops before changing anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// `pg_dump` is not installed or not where the setting says.
    #[error(
        "cannot back up: `{program}` was not found. Install the PostgreSQL client (for example the \
         postgresql-client package), set its path with `pg_dump = \"/path/to/pg_dump\"` under [db] in calista.toml \
         (or CALISTA_PG_DUMP), or skip the backup with --no-backup; nothing was changed"
    )]
    PgDumpMissing {
        /// The program looked for.
        program: String,
    },
    /// `pg_dump` ran and failed.
    #[error(
        "cannot back up: pg_dump failed ({status}): {stderr}. A server newer than pg_dump is a common cause: \
         install a pg_dump of the server's version or newer; nothing was changed"
    )]
    PgDumpFailed {
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The backup folder or file could not be written.
    #[error(
        "cannot back up: cannot write {path}; check that the folder is writable and the disk has room, or set [db] backup_dir; nothing was changed"
    )]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// SQLite could not write the copy.
    #[error(
        "cannot back up: SQLite could not write the copy {path} (disk full, or the folder not writable?); nothing was changed"
    )]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// The copy was written but does not pass SQLite's integrity check.
    #[error(
        "cannot back up: the copy {path} failed its integrity check ({detail}); it was deleted and nothing was changed"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the check said.
        detail: String,
    },
}

/// What is backed up.
#[derive(Debug, Clone)]
pub(crate) enum Source<'a> {
    /// A SQLite file.
    Sqlite {
        /// The database file.
        file: &'a Path,
    },
    /// A PostgreSQL schema.
    Postgres {
        /// `--host`, `--port`, `--username` and `--dbname` arguments: no password.
        connection_args: Vec<String>,
        /// Environment for the client: PGPASSWORD, PGSSLMODE.
        env: Vec<(&'static str, String)>,
        /// The database name, for the file name.
        database: String,
        /// The schema to dump.
        schema: &'a str,
    },
}

impl Source<'_> {
    fn database_name(&self) -> String {
        match self {
            Self::Sqlite { file } => file.file_stem().map_or_else(
                || "database".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            ),
            Self::Postgres { database, .. } => database.clone(),
        }
    }

    fn extension(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => SQLITE_EXTENSION,
            Self::Postgres { .. } => POSTGRES_EXTENSION,
        }
    }

    fn default_dir(&self) -> PathBuf {
        match self {
            Self::Sqlite { file } => file
                .parent()
                .unwrap_or(Path::new("."))
                .join(DEFAULT_DIR_NAME),
            Self::Postgres { .. } => PathBuf::from(DEFAULT_DIR_NAME),
        }
    }
}

/// The folder backups of a database go to.
pub(crate) fn backup_dir(source: &Source<'_>, options: &BackupOptions) -> PathBuf {
    options.dir.clone().unwrap_or_else(|| source.default_dir())
}

/// `<database>-<revision>-<UTC timestamp>.<ext>`.
fn file_name(database: &str, revision: Option<&str>, at: UtcDateTime, extension: &str) -> String {
    format!(
        "{database}-{}-{}.{extension}",
        revision.unwrap_or(""),
        at.compact()
    )
}

/// Takes a backup of a database at `revision`.
pub(crate) async fn take(
    source: &Source<'_>,
    revision: Option<&str>,
    options: &BackupOptions,
) -> Result<Backup, BackupError> {
    let dir = backup_dir(source, options);
    fs::create_dir_all(&dir).map_err(|e| BackupError::Write {
        path: dir.clone(),
        source: e,
    })?;
    remove_stale_partials(&dir, &source.database_name());
    let path = dir.join(file_name(
        &source.database_name(),
        revision,
        UtcDateTime::now(),
        source.extension(),
    ));
    let partial = PathBuf::from(format!("{}{PARTIAL}", path.display()));
    create_private_file(&partial)?;
    let written = match source {
        Source::Sqlite { file } => sqlite_copy(file, &partial).await,
        Source::Postgres {
            connection_args,
            env,
            schema,
            ..
        } => pg_dump(connection_args, env, schema, &partial, options).await,
    };
    let finished = written.and_then(|()| {
        fs::rename(&partial, &path).map_err(|e| BackupError::Write {
            path: path.clone(),
            source: e,
        })
    });
    if let Err(e) = finished {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    let size = fs::metadata(&path)
        .map_err(|e| BackupError::Write {
            path: path.clone(),
            source: e,
        })?
        .len();
    let restore_command = restore_command(source, &path);
    Ok(Backup {
        path,
        size,
        restore_command,
    })
}

/// Deletes what crashed backups of `database` left behind. Runs under the migration lock,
/// so no other backup of it is being written.
fn remove_stale_partials(dir: &Path, database: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = name
            .strip_suffix(PARTIAL)
            .and_then(parse_file_name)
            .is_some_and(|(db, ..)| db == database);
        if is_ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates an empty file readable by its owner only; the backup is then written into it.
fn create_private_file(path: &Path) -> Result<(), BackupError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|e| BackupError::Write {
            path: path.to_owned(),
            source: e,
        })
}

async fn sqlite_copy(file: &Path, target: &Path) -> Result<(), BackupError> {
    let sqlite_error = |source| BackupError::Sqlite {
        path: target.to_owned(),
        source,
    };
    // A connection of its own: VACUUM cannot run inside the migration's transaction, and
    // while that transaction has written nothing yet, this copy sees the state before it.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .log_statements(tracing::log::LevelFilter::Trace);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(sqlite_error)?;
    let copied = sqlx::query("VACUUM INTO ?1")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    copied.map_err(sqlite_error)?;

    let check = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(target)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&check)
        .await
        .map_err(sqlite_error)?;
    let verdict: Result<String, _> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    match verdict {
        Ok(ok) if ok == "ok" => Ok(()),
        Ok(detail) => Err(BackupError::Corrupt {
            path: target.to_owned(),
            detail,
        }),
        Err(e) => Err(BackupError::Corrupt {
            path: target.to_owned(),
            detail: e.to_string(),
        }),
    }
}

async fn pg_dump(
    connection_args: &[String],
    env: &[(&'static str, String)],
    schema: &str,
    target: &Path,
    options: &BackupOptions,
) -> Result<(), BackupError> {
    let program = options
        .pg_dump
        .clone()
        .unwrap_or_else(|| PathBuf::from("pg_dump"));
    let mut command = tokio::process::Command::new(&program);
    command
        .arg("--format=custom")
        .arg(format!("--schema={schema}"))
        .arg("--no-password")
        .arg(format!("--file={}", target.display()))
        .args(connection_args)
        .env_remove("PGPASSWORD")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match command.output().await {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::PgDumpMissing {
                program: program.display().to_string(),
            });
        }
        Err(e) => {
            return Err(BackupError::Write {
                path: program,
                source: e,
            });
        }
    };
    if output.status.success() {
        Ok(())
    } else {
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        for (_, password) in env
            .iter()
            .filter(|(k, v)| *k == "PGPASSWORD" && !v.is_empty())
        {
            stderr = stderr.replace(password.as_str(), "***");
        }
        Err(BackupError::PgDumpFailed {
            status: output.status.to_string(),
            stderr: stderr.trim().to_owned(),
        })
    }
}

fn restore_command(source: &Source<'_>, path: &Path) -> String {
    match source {
        Source::Sqlite { file } => {
            format!(
                "stop the application, then: cp '{}' '{}'",
                path.display(),
                file.display()
            )
        }
        Source::Postgres {
            connection_args, ..
        } => format!(
            "pg_restore --clean --if-exists --single-transaction {} '{}' (with PGPASSWORD set if the server needs one)",
            connection_args.join(" "),
            path.display()
        ),
    }
}

/// A backup file found in a backup folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Where it is.
    pub path: PathBuf,
    /// The database it is of.
    pub database: String,
    /// The revision the database was at (empty: none).
    pub revision: String,
    /// When it was taken, `YYYYMMDDTHHMMSS.mmmZ` (UTC).
    pub taken_at: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The backups in a folder, oldest first; other files are left alone.
pub fn list(dir: &Path) -> io::Result<Vec<BackupFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(parsed) = parse_file_name(&name) else {
            continue;
        };
        let size = entry.metadata()?.len();
        found.push(BackupFile {
            path: entry.path(),
            database: parsed.0,
            revision: parsed.1,
            taken_at: parsed.2,
            size,
        });
    }
    found.sort_by(|a, b| (&a.taken_at, &a.path).cmp(&(&b.taken_at, &b.path)));
    Ok(found)
}

/// Splits `<database>-<revision>-<timestamp>.<ext>`; the database name may contain `-`.
fn parse_file_name(name: &str) -> Option<(String, String, String)> {
    let stem = name
        .strip_suffix(&format!(".{SQLITE_EXTENSION}"))
        .or_else(|| name.strip_suffix(&format!(".{POSTGRES_EXTENSION}")))?;
    let (rest, taken_at) = stem.rsplit_once('-')?;
    let (database, revision) = rest.rsplit_once('-')?;
    let timestamp_ok = taken_at.len() == 20
        && taken_at.as_bytes()[8] == b'T'
        && taken_at.as_bytes()[15] == b'.'
        && taken_at.ends_with('Z')
        && taken_at.bytes().filter(u8::is_ascii_digit).count() == 17;
    let revision_ok = revision.is_empty() || crate::naming::Revision::parse(revision).is_ok();
    (timestamp_ok && revision_ok && !database.is_empty()).then(|| {
        (
            database.to_owned(),
            revision.to_owned(),
            taken_at.to_owned(),
        )
    })
}

/// Deletes the oldest backups of `database` in `dir` beyond `keep`; returns what it deleted.
pub(crate) fn prune(dir: &Path, database: &str, keep: u32) -> io::Result<Vec<PathBuf>> {
    let mine: Vec<BackupFile> = list(dir)?
        .into_iter()
        .filter(|b| b.database == database)
        .collect();
    let excess = mine
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    let mut deleted = Vec::new();
    for old in mine.into_iter().take(excess) {
        fs::remove_file(&old.path)?;
        deleted.push(old.path);
    }
    Ok(deleted)
}

/// The database name used in backup file names.
pub(crate) fn database_name(source: &Source<'_>) -> String {
    source.database_name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_back() {
        let at = UtcDateTime::from_unix(1_756_204_200);
        let name = file_name("my-app", Some("20250826_1030"), at, SQLITE_EXTENSION);
        assert_eq!(name, "my-app-20250826_1030-20250826T103000.000Z.sqlite3");
        assert_eq!(
            parse_file_name(&name),
            Some((
                "my-app".into(),
                "20250826_1030".into(),
                "20250826T103000.000Z".into()
            ))
        );
        assert_eq!(
            parse_file_name(&format!("{name}{PARTIAL}")),
            None,
            "a partial backup is not a backup"
        );
        assert_eq!(
            parse_file_name(&file_name("db", None, at, POSTGRES_EXTENSION)).map(|p| p.1),
            Some(String::new())
        );
        assert_eq!(parse_file_name("notes.txt"), None);
        assert_eq!(parse_file_name("x-y-z.dump"), None);
    }

    #[test]
    fn prune_keeps_the_newest_of_one_database() {
        let dir = tempfile::tempdir().unwrap();
        for (db, second) in [("a", 1), ("a", 2), ("a", 3), ("b", 1)] {
            let name = file_name(
                db,
                Some("20250826_1030"),
                UtcDateTime::from_unix(1_756_204_200 + second),
                "dump",
            );
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        let deleted = prune(dir.path(), "a", 2).unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(
            deleted[0]
                .to_string_lossy()
                .ends_with("20250826T103001.000Z.dump")
        );
        let left: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|b| format!("{}:{}", b.database, b.taken_at))
            .collect();
        assert_eq!(
            left,
            [
                "b:20250826T103001.000Z",
                "a:20250826T103002.000Z",
                "a:20250826T103003.000Z"
            ]
        );
        assert!(dir.path().join("unrelated.txt").exists());
    }

    #[cfg(unix)]
    #[test]
    fn backup_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dump");
        create_private_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
