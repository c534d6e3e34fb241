//! Backups taken before an upgrade changes anything, and only then.
//!
//! SQLite: a consistent copy with `VACUUM INTO`, checked with `PRAGMA integrity_check`.
//! PostgreSQL: `pg_dump --format=custom` of the application's schema, the password passed
//! through the environment, never the command line.
//!
//! [`restore`] brings a database back exactly as a backup holds it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection};

use crate::error::{DriverError, ServerMessage};
use crate::naming::Revision;
use crate::utc::UtcDateTime;

/// The file extension of SQLite backups.
pub(crate) const SQLITE_EXTENSION: &str = "sqlite3";
/// The file extension of PostgreSQL backups (`pg_dump` custom format).
pub(crate) const POSTGRES_EXTENSION: &str = "dump";
/// The name of the folder backups go to when none is set, beside the SQLite file or in the
/// current directory for PostgreSQL: neutral; an application's settings name it after the
/// application (`myapp-backups`, the `calista` program's `calista-backups`).
pub const DEFAULT_DIR_NAME: &str = "db-backups";
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
    /// The folder; `None`: a folder named [`dir_name`](Self::dir_name) beside the SQLite
    /// file or in the current directory.
    pub dir: Option<PathBuf>,
    /// The name of the folder used when [`dir`](Self::dir) is not set (default
    /// [`DEFAULT_DIR_NAME`]).
    pub dir_name: String,
    /// How many backups of this database to keep; older ones are deleted after a successful upgrade.
    pub keep: u32,
    /// The `pg_dump` program; `None`: found on `PATH`. A restore runs the `pg_restore` and
    /// `psql` of the same folder.
    pub pg_dump: Option<PathBuf>,
    /// The application's restore command, to which a backup's path is added when an
    /// upgrade says how to restore its backup (default [`DEFAULT_RESTORE_HINT`]).
    pub restore_hint: String,
}

/// A placeholder for the application's restore command, which names no program: an
/// application sets its own in [`BackupOptions::restore_hint`] (the `calista` program's is
/// `calista db restore`).
pub const DEFAULT_RESTORE_HINT: &str = "<program> db restore";

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            dir: None,
            dir_name: DEFAULT_DIR_NAME.to_owned(),
            keep: DEFAULT_KEEP,
            pg_dump: None,
            restore_hint: DEFAULT_RESTORE_HINT.to_owned(),
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
    /// The command that restores it: the restore hint and the backup's absolute path,
    /// quoted for a POSIX shell.
    pub restore_command: String,
}

/// A backup that could not be taken. The upgrade stops before changing anything, and the
/// backup folder is left as it was (less the leftovers of earlier interrupted backups,
/// which every backup removes first). Each message names the folder and says what to do;
/// what the system, SQLite or `pg_dump` said is the error's [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The disk of the backup folder is full (or the user's quota on it is spent).
    #[error(
        "cannot back up into {dir}: there is no space left on its disk. Free space there, set the backup folder \
         elsewhere, or turn the backup off for this upgrade; nothing was changed in the database"
    )]
    NoSpace {
        /// The backup folder.
        dir: PathBuf,
        /// What the system, SQLite or pg_dump said.
        #[source]
        source: Cause,
    },
    /// This user may not write in the backup folder.
    #[error(
        "cannot back up into {dir}: this user may not write there (permission denied). Give it write access \
         to the folder, set the backup folder elsewhere, or turn the backup off for this upgrade; nothing was \
         changed in the database"
    )]
    FolderNotPermitted {
        /// The backup folder.
        dir: PathBuf,
        /// What the system, SQLite or pg_dump said.
        #[source]
        source: Cause,
    },
    /// The backup folder is on a read-only file system.
    #[error(
        "cannot back up into {dir}: it is on a read-only file system. Set the backup folder elsewhere, or turn \
         the backup off for this upgrade; nothing was changed in the database"
    )]
    FolderReadOnly {
        /// The backup folder.
        dir: PathBuf,
        /// What the system, SQLite or pg_dump said.
        #[source]
        source: Cause,
    },
    /// The database role lacks a privilege that `pg_dump` needs to read the schema.
    #[error(
        "cannot back up into {dir}: the database role lacks a privilege that pg_dump needs to read schema \
         {schema}. Grant it USAGE on the schema and SELECT on the schema's tables and sequences (or back up as \
         their owner), or turn the backup off for this upgrade; nothing was changed in the database"
    )]
    RoleLacksPrivilege {
        /// The backup folder.
        dir: PathBuf,
        /// The schema being dumped.
        schema: String,
        /// What pg_dump said.
        #[source]
        source: Cause,
    },
    /// `pg_dump` is older than the server, and refuses to dump it.
    #[error(
        "cannot back up into {dir}: pg_dump is older than the server, and refuses to dump it. Install a \
         pg_dump of the server's major version or newer and set its path in the backup settings, or turn the \
         backup off for this upgrade; nothing was changed in the database"
    )]
    PgDumpOlderThanServer {
        /// The backup folder.
        dir: PathBuf,
        /// What pg_dump said.
        #[source]
        source: Cause,
    },
    /// `pg_dump` could not connect, though the upgrade's own connection did.
    #[error(
        "cannot back up into {dir}: pg_dump could not connect to the database. Check that the server accepts \
         pg_dump's connection as it accepts the application's (the URL's host, port and TLS settings, the \
         server's pg_hba.conf), or turn the backup off for this upgrade; nothing was changed in the database"
    )]
    PgDumpCannotConnect {
        /// The backup folder.
        dir: PathBuf,
        /// What pg_dump said.
        #[source]
        source: Cause,
    },
    /// `pg_dump` failed for another reason.
    #[error(
        "cannot back up into {dir}: pg_dump failed ({status}). Fix what it reports, or turn the backup off for \
         this upgrade; nothing was changed in the database"
    )]
    PgDumpFailed {
        /// The backup folder.
        dir: PathBuf,
        /// Its exit status.
        status: String,
        /// The last lines pg_dump printed.
        #[source]
        source: Cause,
    },
    /// `pg_dump` was stopped by a signal before it finished, with nothing to report.
    #[error(
        "cannot back up into {dir}: pg_dump was stopped by {signal} before it finished (killed by hand, or by \
         the system when memory ran out). Once that is dealt with, run the command again, or turn the backup \
         off for this upgrade; nothing was changed in the database"
    )]
    PgDumpStopped {
        /// The backup folder.
        dir: PathBuf,
        /// The signal, as the system names it (`signal 9 (SIGKILL)`).
        signal: String,
    },
    /// `pg_dump` is not installed or not where the setting says.
    #[error(
        "cannot back up into {dir}: `{program}` was not found. Install the PostgreSQL client (for example the \
         postgresql-client package), set the path of pg_dump in the backup settings, or turn the backup off for \
         this upgrade; nothing was changed in the database"
    )]
    PgDumpMissing {
        /// The backup folder.
        dir: PathBuf,
        /// The program looked for.
        program: String,
    },
    /// `pg_dump` is there but could not be started.
    #[error(
        "cannot back up into {dir}: cannot run `{program}`. Check that it is pg_dump and that this user may \
         run it, set the path of pg_dump in the backup settings, or turn the backup off for this upgrade; \
         nothing was changed in the database"
    )]
    PgDumpNotRunnable {
        /// The backup folder.
        dir: PathBuf,
        /// The program.
        program: String,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// SQLite failed for another reason.
    #[error(
        "cannot back up into {dir}: SQLite failed while {doing}. Turn the backup off for this upgrade if it \
         keeps failing; nothing was changed in the database"
    )]
    Sqlite {
        /// The backup folder.
        dir: PathBuf,
        /// What it was doing: reading the database, writing or checking the copy.
        doing: &'static str,
        /// What SQLite said.
        #[source]
        source: DriverError,
    },
    /// The backup folder, or a folder above it, is a file.
    #[error(
        "cannot back up into {dir}: {file} is a file, not a folder. Set the backup folder to a folder, or turn \
         the backup off for this upgrade; nothing was changed in the database"
    )]
    NotAFolder {
        /// The backup folder.
        dir: PathBuf,
        /// The file where a folder should be: the backup folder or one above it.
        file: PathBuf,
    },
    /// The backup folder, or a folder above it, is a link to a path that does not exist
    /// (a disk not mounted, a folder removed).
    #[error(
        "cannot back up into {dir}: {link} is a link to {target}, which does not exist. Create that folder \
         (or mount its disk), set the backup folder elsewhere, or turn the backup off for this upgrade; nothing \
         was changed in the database"
    )]
    DanglingLink {
        /// The backup folder.
        dir: PathBuf,
        /// The link: the backup folder or one above it.
        link: PathBuf,
        /// Where it leads.
        target: PathBuf,
    },
    /// The backup folder or file could not be written, for another reason.
    #[error(
        "cannot back up: cannot write {path}. Check that the backup folder is a folder this user may write, \
         set it elsewhere, or turn the backup off for this upgrade; nothing was changed in the database"
    )]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The copy was written but does not pass SQLite's integrity check.
    #[error(
        "cannot back up into {dir}: the copy failed its integrity check ({detail}); it was deleted and nothing \
         was changed in the database"
    )]
    Corrupt {
        /// The backup folder.
        dir: PathBuf,
        /// What the check said.
        detail: String,
    },
}

impl BackupError {
    /// Whether pg_dump failed in a way a server gone away also gives: it could not
    /// connect, or it failed on its connection.
    pub(crate) fn may_be_lost_connection(&self) -> bool {
        matches!(
            self,
            Self::PgDumpCannotConnect { .. } | Self::PgDumpFailed { .. }
        )
    }
}

/// What the system, SQLite or `pg_dump` said when a backup failed: an [`io::Error`], a
/// [`DriverError`], or pg_dump's last lines on stderr.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The last lines `pg_dump` printed on stderr, its password hidden.
#[derive(Debug)]
struct PgDumpSaid(String);

impl std::fmt::Display for PgDumpSaid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("pg_dump printed nothing on stderr")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl std::error::Error for PgDumpSaid {}

/// How many of pg_dump's last lines a failure shows: its error and the detail after it.
const PG_DUMP_LINES: usize = 5;

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
        /// Environment for the client: the password (`PGPASSWORD`) and the URL's TLS
        /// settings (`PGSSLMODE`, `PGSSLROOTCERT`, …).
        env: Vec<(&'static str, String)>,
        /// The database name, for the file name.
        database: String,
        /// Server, port and database, which with the schema tell this database from
        /// others of the same name.
        server: String,
        /// The schema to dump.
        schema: &'a str,
    },
}

impl Source<'_> {
    /// The name in backup file names: the database's, then a short hash of where it is,
    /// so two databases of one name (`app.db` in two folders) never share backups.
    fn database_name(&self) -> String {
        let (name, identity) = match self {
            Self::Sqlite { file } => {
                let name = file.file_stem().map_or_else(
                    || "database".to_owned(),
                    |s| s.to_string_lossy().into_owned(),
                );
                // The file exists when it is backed up; canonical, so that `./app.db` and
                // `/srv/app.db` are one database.
                let path = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
                (name, format!("sqlite:{}", path.display()))
            }
            Self::Postgres {
                database,
                server,
                schema,
                ..
            } => (database.clone(), format!("postgres:{server}/{schema}")),
        };
        format!("{name}-{}", identity_hash(&identity))
    }

    fn extension(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => SQLITE_EXTENSION,
            Self::Postgres { .. } => POSTGRES_EXTENSION,
        }
    }

    fn default_dir(&self, name: &str) -> PathBuf {
        match self {
            Self::Sqlite { file } => file.parent().unwrap_or(Path::new(".")).join(name),
            Self::Postgres { .. } => PathBuf::from(name),
        }
    }
}

/// The folder backups of a database go to.
pub(crate) fn backup_dir(source: &Source<'_>, options: &BackupOptions) -> PathBuf {
    options
        .dir
        .clone()
        .unwrap_or_else(|| source.default_dir(&options.dir_name))
}

/// The first 8 hex digits of the SHA-256 of a database's identity.
fn identity_hash(identity: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(identity.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `<database>-<identity hash>-<revision>-<UTC timestamp>.<ext>` (`database` holds the
/// name and the hash).
fn file_name(database: &str, revision: Option<&str>, at: UtcDateTime, extension: &str) -> String {
    format!(
        "{database}-{}-{}.{extension}",
        revision.unwrap_or(""),
        at.compact()
    )
}

/// Takes a backup of a database at `revision`. On failure the folder is left as it was:
/// the partial file, whatever SQLite wrote beside it, and the folders made for it are
/// removed.
pub(crate) async fn take(
    source: &Source<'_>,
    revision: Option<&str>,
    options: &BackupOptions,
) -> Result<Backup, BackupError> {
    let dir = backup_dir(source, options);
    let made = make_folder(&dir)?;
    let taken = write_backup(source, revision, options, &dir).await;
    if taken.is_err() {
        // Innermost first; a folder that is not empty is someone else's and stays.
        for folder in made.iter().rev() {
            let _ = fs::remove_dir(folder);
        }
    }
    taken
}

/// Creates `dir` and its missing parents; returns those it created, outermost first.
fn make_folder(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|folder| !folder.as_os_str().is_empty() && !folder.exists())
        .map(Path::to_path_buf)
        .collect();
    // None of those is a link to nowhere, and the nearest that exists is a folder: the
    // system's words for either ("File exists", "Not a directory") name no path.
    if let Some(link) = missing.iter().find(|path| path.is_symlink()) {
        let target = fs::read_link(link).unwrap_or_default();
        return Err(BackupError::DanglingLink {
            dir: dir.to_owned(),
            target: link
                .parent()
                .map_or_else(|| target.clone(), |parent| parent.join(&target)),
            link: link.clone(),
        });
    }
    let existing = dir.ancestors().nth(missing.len());
    if let Some(file) = existing.filter(|path| !path.as_os_str().is_empty() && !path.is_dir()) {
        return Err(BackupError::NotAFolder {
            dir: dir.to_owned(),
            file: file.to_owned(),
        });
    }
    fs::create_dir_all(dir).map_err(|e| io_failure(dir, dir, e))?;
    Ok(missing.into_iter().rev().collect())
}

async fn write_backup(
    source: &Source<'_>,
    revision: Option<&str>,
    options: &BackupOptions,
    dir: &Path,
) -> Result<Backup, BackupError> {
    remove_stale_partials(dir, &source.database_name());
    let path = dir.join(file_name(
        &source.database_name(),
        revision,
        UtcDateTime::now(),
        source.extension(),
    ));
    let partial = PathBuf::from(format!("{}{PARTIAL}", path.display()));
    create_private_file(&partial).map_err(|e| io_failure(dir, &partial, e))?;
    let written = match source {
        Source::Sqlite { file } => sqlite_copy(file, &partial, dir).await,
        Source::Postgres {
            connection_args,
            env,
            schema,
            ..
        } => pg_dump(connection_args, env, schema, &partial, dir, options).await,
    };
    let finished =
        written.and_then(|()| fs::rename(&partial, &path).map_err(|e| io_failure(dir, &path, e)));
    if let Err(e) = finished {
        remove_partial(&partial);
        return Err(e);
    }
    let size = fs::metadata(&path)
        .map_err(|e| io_failure(dir, &path, e))?
        .len();
    let restore_command = format!(
        "{} {}",
        options.restore_hint,
        shell_quote(&std::path::absolute(&path).unwrap_or_else(|_| path.clone()))
    );
    Ok(Backup {
        path,
        size,
        restore_command,
    })
}

/// What SQLite writes beside a database file while it writes it: the rollback journal,
/// or the WAL and its index. A copy that fails part-way can leave its journal behind.
const SQLITE_SIDE_FILES: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Deletes a backup that failed: the partial file and whatever SQLite wrote beside it.
fn remove_partial(partial: &Path) {
    let _ = fs::remove_file(partial);
    for side in SQLITE_SIDE_FILES {
        let _ = fs::remove_file(format!("{}{side}", partial.display()));
    }
}

/// Deletes what killed backups of `database` left behind: the `.partial` file and
/// whatever SQLite wrote beside it (`.partial-journal`, `.partial-wal`, …). Runs under the
/// migration lock, so no other backup of it is being written.
fn remove_stale_partials(dir: &Path, database: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = name
            .find(PARTIAL)
            .and_then(|at| parse_file_name(&name[..at]))
            .is_some_and(|parsed| parsed.database == database);
        if is_ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates an empty file readable by its owner only; the backup is then written into it.
fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// The causes of a failure that lie with the backup folder, whoever reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FolderFault {
    NoSpace,
    NotPermitted,
    ReadOnly,
}

impl FolderFault {
    fn error(self, dir: &Path, source: Cause) -> BackupError {
        let dir = dir.to_owned();
        match self {
            Self::NoSpace => BackupError::NoSpace { dir, source },
            Self::NotPermitted => BackupError::FolderNotPermitted { dir, source },
            Self::ReadOnly => BackupError::FolderReadOnly { dir, source },
        }
    }
}

/// A failure to write `path` in the backup folder `dir`, by its cause.
fn io_failure(dir: &Path, path: &Path, error: io::Error) -> BackupError {
    let fault = match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => FolderFault::NoSpace,
        io::ErrorKind::PermissionDenied => FolderFault::NotPermitted,
        io::ErrorKind::ReadOnlyFilesystem => FolderFault::ReadOnly,
        _ => {
            return BackupError::Write {
                path: path.to_owned(),
                source: error,
            };
        }
    };
    fault.error(dir, Box::new(error))
}

/// A failure of SQLite while writing the copy into `dir`, by its result code.
fn sqlite_write_failure(dir: &Path, error: sqlx::Error) -> BackupError {
    let fault = match sqlite_primary_code(&error) {
        // SQLITE_FULL: SQLite's word for ENOSPC.
        Some(13) => FolderFault::NoSpace,
        // SQLITE_PERM
        Some(3) => FolderFault::NotPermitted,
        // SQLITE_READONLY
        Some(8) => FolderFault::ReadOnly,
        // SQLITE_CANTOPEN: a file beside the copy (its journal) could not be made, and
        // SQLite does not say why; making one there tells (no file left on the disk, say).
        Some(14) => match folder_refuses_files(dir) {
            Some(refused) => return refused,
            None => {
                return BackupError::Sqlite {
                    dir: dir.to_owned(),
                    doing: "writing the copy",
                    source: error.into(),
                };
            }
        },
        _ => {
            return BackupError::Sqlite {
                dir: dir.to_owned(),
                doing: "writing the copy",
                source: error.into(),
            };
        }
    };
    fault.error(dir, Box::new(DriverError::from(error)))
}

/// Why `dir` refuses a new file, when it does for a cause that lies with the folder: a
/// file is made there and deleted at once.
fn folder_refuses_files(dir: &Path) -> Option<BackupError> {
    let probe = dir.join(format!(".backup-probe-{}", std::process::id()));
    match create_private_file(&probe) {
        Ok(()) => {
            let _ = fs::remove_file(&probe);
            None
        }
        Err(error) => match io_failure(dir, &probe, error) {
            BackupError::Write { .. } => None,
            refused => Some(refused),
        },
    }
}

async fn sqlite_copy(file: &Path, target: &Path, dir: &Path) -> Result<(), BackupError> {
    let failed = |doing| {
        move |source: sqlx::Error| BackupError::Sqlite {
            dir: dir.to_owned(),
            doing,
            source: source.into(),
        }
    };
    // A connection of its own: VACUUM cannot run inside the migration's transaction, and
    // while that transaction has written nothing yet, this copy sees the state before it.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .log_statements(tracing::log::LevelFilter::Trace);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(failed("opening the database"))?;
    let copied = sqlx::query("VACUUM INTO ?1")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    copied.map_err(|e| sqlite_write_failure(dir, e))?;

    let check = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(target)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&check)
        .await
        .map_err(failed("opening the copy to check it"))?;
    let verdict: Result<String, _> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    match verdict {
        Ok(ok) if ok == "ok" => Ok(()),
        Ok(detail) => Err(BackupError::Corrupt {
            dir: dir.to_owned(),
            detail,
        }),
        Err(e) => Err(BackupError::Corrupt {
            dir: dir.to_owned(),
            detail: ServerMessage::of(&e).to_string(),
        }),
    }
}

async fn pg_dump(
    connection_args: &[String],
    env: &[(&'static str, String)],
    schema: &str,
    target: &Path,
    dir: &Path,
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
        // Its own messages in English, which `pg_dump_failure` reads.
        .env_remove("LC_ALL")
        .env("LC_MESSAGES", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match command.output().await {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::PgDumpMissing {
                dir: dir.to_owned(),
                program: program.display().to_string(),
            });
        }
        Err(source) => {
            return Err(BackupError::PgDumpNotRunnable {
                dir: dir.to_owned(),
                program: program.display().to_string(),
                source,
            });
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = hide_password(&String::from_utf8_lossy(&output.stderr), env);
    #[cfg(unix)]
    if stderr.trim().is_empty() {
        use std::os::unix::process::ExitStatusExt;
        if output.status.signal().is_some() {
            // `signal: 9 (SIGKILL)`, as the status shows itself.
            let shown = output.status.to_string();
            return Err(BackupError::PgDumpStopped {
                dir: dir.to_owned(),
                signal: shown.replacen("signal:", "signal", 1),
            });
        }
    }
    Err(pg_dump_failure(
        dir,
        schema,
        output.status.to_string(),
        &stderr,
    ))
}

/// What failed when pg_dump did, from what it printed: its own messages (in English, as it
/// runs with `LC_MESSAGES=C`) and the server's it quotes after `ERROR:` (in the server's
/// language; in another, they are shown as pg_dump's words only).
fn pg_dump_failure(dir: &Path, schema: &str, status: String, stderr: &str) -> BackupError {
    let said: Cause = Box::new(PgDumpSaid(last_lines(stderr, PG_DUMP_LINES)));
    let dir_owned = dir.to_owned();
    let lines = || stderr.lines();
    if stderr.contains("server version mismatch") {
        return BackupError::PgDumpOlderThanServer {
            dir: dir_owned,
            source: said,
        };
    }
    if lines().any(|line| {
        (line.contains("connection to server") || line.contains("connection to database"))
            && line.contains("failed")
    }) {
        return BackupError::PgDumpCannotConnect {
            dir: dir_owned,
            source: said,
        };
    }
    if lines().any(|line| {
        line.contains("ERROR:  permission denied for ")
            || line.contains("ERROR:  must be owner of ")
    }) {
        return BackupError::RoleLacksPrivilege {
            dir: dir_owned,
            schema: schema.to_owned(),
            source: said,
        };
    }
    // pg_dump's own lines about its output file, not the server's (whose disk may be the
    // full one): the system's words for ENOSPC, EDQUOT, EACCES, EPERM and EROFS.
    let fault = lines()
        .filter(|line| !line.contains("ERROR:"))
        .find_map(|line| {
            [
                ("No space left on device", FolderFault::NoSpace),
                ("Disk quota exceeded", FolderFault::NoSpace),
                ("Permission denied", FolderFault::NotPermitted),
                ("Operation not permitted", FolderFault::NotPermitted),
                ("Read-only file system", FolderFault::ReadOnly),
            ]
            .into_iter()
            .find(|(words, _)| line.contains(words))
            .map(|(_, fault)| fault)
        });
    match fault {
        Some(fault) => fault.error(dir, said),
        None => BackupError::PgDumpFailed {
            dir: dir_owned,
            status,
            source: said,
        },
    }
}

/// The last `count` lines of `text` that say something, marked when earlier ones are cut.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let kept = &lines[lines.len().saturating_sub(count)..];
    let mut shown = kept.join("\n");
    if kept.len() < lines.len() {
        shown.insert_str(0, "…\n");
    }
    shown
}

/// A path as one word of a POSIX shell: as it is when that is safe, else in single quotes.
fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@%,".contains(&b));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// A backup file found in a backup folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Where it is.
    pub path: PathBuf,
    /// The name of the database it is of.
    pub database: String,
    /// A short hash of where that database is (its file, or its server and schema), which
    /// tells apart databases of one name; `None` in backups of older versions.
    pub database_id: Option<String>,
    /// The revision the database was at (`None`: no revision, an empty database).
    pub revision: Option<Revision>,
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
        let (database, database_id) = match parsed.database.rsplit_once('-') {
            Some((db, id)) if is_identity_hash(id) => (db.to_owned(), Some(id.to_owned())),
            _ => (parsed.database, None),
        };
        found.push(BackupFile {
            path: entry.path(),
            database,
            database_id,
            revision: parsed.revision,
            taken_at: parsed.taken_at,
            size,
        });
    }
    found.sort_by(|a, b| (&a.taken_at, &a.path).cmp(&(&b.taken_at, &b.path)));
    Ok(found)
}

/// A backup file name, split.
struct ParsedName {
    /// The name and, since backups carry it, `-` and the identity hash.
    database: String,
    revision: Option<Revision>,
    taken_at: String,
}

fn is_identity_hash(text: &str) -> bool {
    text.len() == 8 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Splits `<database>-<revision>-<timestamp>.<ext>`; the database part may contain `-`.
fn parse_file_name(name: &str) -> Option<ParsedName> {
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
    let revision = match revision {
        "" => None,
        text => Some(Revision::parse(text).ok()?),
    };
    (timestamp_ok && !database.is_empty()).then(|| ParsedName {
        database: database.to_owned(),
        revision,
        taken_at: taken_at.to_owned(),
    })
}

/// Deletes the oldest backups of `database` (a [`database_name`]: name and identity hash)
/// in `dir` beyond `keep`; returns what it deleted. Backups of other databases, and of
/// older versions that carry no identity, are never counted nor deleted.
pub(crate) fn prune(dir: &Path, database: &str, keep: u32) -> io::Result<Vec<PathBuf>> {
    let mine: Vec<BackupFile> = list(dir)?
        .into_iter()
        .filter(|b| {
            b.database_id
                .as_ref()
                .is_some_and(|id| format!("{}-{id}", b.database) == database)
        })
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

/// The database part of backup file names: its name and identity hash.
pub(crate) fn database_name(source: &Source<'_>) -> String {
    source.database_name()
}

/// A restore that did not happen. Each message says what was changed: nothing, in every
/// case, since the database is replaced only at the last step, at once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The backup file cannot be read.
    #[error(
        "cannot read the backup {path}; give the path of a file that `db backups` lists; nothing was changed"
    )]
    Unreadable {
        /// The file, as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not a backup this database can be restored from.
    #[error("{path} is not a {backend} backup of this database ({detail}); nothing was changed")]
    NotABackup {
        /// The file, as given.
        path: PathBuf,
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// There is no file to restore into.
    #[error("cannot restore: {0}")]
    NoTarget(&'static str),
    /// The backup was written by a newer `pg_dump` than the `pg_restore` run reads.
    #[error(
        "cannot restore: {path} was written by a newer pg_dump than this pg_restore reads ({said}). Install \
         the PostgreSQL client of the pg_dump that wrote it (or newer) and set the path of pg_dump to it: \
         pg_restore and psql are run from its folder; nothing was changed"
    )]
    PgRestoreTooOld {
        /// The backup.
        path: PathBuf,
        /// What pg_restore said.
        said: String,
    },
    /// The schema to restore into could not be found out (on the application's pool with no
    /// schema named, the pool's own).
    #[error("cannot restore: the schema to restore into is not known; nothing was changed")]
    Schema(#[source] Box<crate::Error>),
    /// Another connection uses the database (or an upgrade runs).
    #[error(
        "cannot restore: the database is in use ({detail}); stop the application, then restore; nothing was changed"
    )]
    InUse {
        /// What says so.
        detail: String,
    },
    /// A PostgreSQL client program is missing.
    #[error(
        "cannot restore: `{program}` was not found. Install the PostgreSQL client (for example the \
         postgresql-client package), or set the path of pg_dump to one whose folder also holds \
         pg_restore and psql; nothing was changed"
    )]
    ToolMissing {
        /// The program looked for.
        program: String,
    },
    /// `pg_restore` or `psql` failed.
    #[error(
        "cannot restore: {program} failed ({status}): {stderr}. The restore runs in one transaction, so nothing was changed"
    )]
    ToolFailed {
        /// `pg_restore` or `psql`.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed, password hidden).
        stderr: String,
    },
    /// The connection to the database was lost while `psql` restored (the server stopped,
    /// restarted or ended the session, or the network failed). psql's words for the loss are
    /// not part of the message: what matters is what the database holds now.
    #[error(
        "cannot restore: the connection to the database was lost while restoring; {}",
        if *.committing {
            "the connection dropped while COMMIT was on its way, so whether the restore was committed is \
             unknown: the database holds what it held before, or the backup. Once the server answers again, \
             check its revision, and restore again if it is not the backup's"
        } else {
            "the restore runs in one transaction and COMMIT had not been sent, so the server rolls it back: \
             nothing was changed. Once the server answers again, restore again"
        }
    )]
    ConnectionLost {
        /// Whether psql had read the whole backup, so that its COMMIT may have been on its
        /// way.
        committing: bool,
    },
    /// The copy beside the database could not be written.
    #[error(
        "cannot restore: cannot write {path}; check that the folder is writable and the disk has room; nothing was changed"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// SQLite failed.
    #[error("cannot restore: SQLite failed while {doing}; nothing was changed")]
    Sqlite {
        /// What it was doing.
        doing: &'static str,
        /// What SQLite said.
        #[source]
        source: DriverError,
    },
}

impl RestoreError {
    /// True when the request, not the system, is at fault: a file that is no backup of
    /// this database, or a database with no file.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Unreadable { .. } | Self::NotABackup { .. } | Self::NoTarget(_)
        )
    }
}

/// Brings `database` back exactly as `backup` holds it, whatever was created since. The
/// application must be stopped.
///
/// SQLite: the backup is checked, copied beside the database file and synced to disk, then
/// renamed over it in one step, while this process holds the database exclusively (SQLite
/// itself removes the `-wal` and `-shm` files of the old one, which only it can do safely).
///
/// PostgreSQL: `pg_restore` turns the backup into SQL (reading the file only), which `psql`
/// runs as it comes, in one transaction holding the migration lock, after `DROP SCHEMA …
/// CASCADE`; memory does not grow with the backup. Dropping the schema removes whatever
/// an upgrade created in it since, which a `pg_restore --clean` (dropping only what the
/// backup holds) cannot; one transaction means a failure changes nothing. The connection, password and TLS settings are the URL's,
/// passed as for `pg_dump`.
pub async fn restore(
    database: &crate::Database,
    backup: &Path,
    options: &BackupOptions,
) -> Result<(), RestoreError> {
    fs::File::open(backup)
        .and_then(|f| f.metadata())
        .and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(io::Error::other("it is not a file"))
            }
        })
        .map_err(|source| RestoreError::Unreadable {
            path: backup.to_owned(),
            source,
        })?;
    let lock_wait = database.options().lock_timeout.min(Duration::from_secs(5));
    database
        .schema()
        .await
        .map_err(|e| RestoreError::Schema(Box::new(e)))?;
    match database.backup_source() {
        Ok(Source::Sqlite { file }) => restore_sqlite(file, backup, lock_wait).await,
        Ok(Source::Postgres {
            connection_args,
            env,
            schema,
            ..
        }) => restore_postgres(&connection_args, &env, schema, backup, options).await,
        Err(reason) => Err(RestoreError::NoTarget(reason)),
    }
}

async fn restore_sqlite(
    file: &Path,
    backup: &Path,
    lock_wait: Duration,
) -> Result<(), RestoreError> {
    let sqlite_error = |doing| {
        move |source: sqlx::Error| RestoreError::Sqlite {
            doing,
            source: source.into(),
        }
    };
    // The backup first: a file that is not a sound SQLite database changes nothing.
    let read_only = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(backup)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&read_only)
        .await
        .map_err(sqlite_error("opening the backup"))?;
    let verdict: Result<String, _> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    match verdict {
        Ok(ok) if ok == "ok" => {}
        Ok(detail) => {
            return Err(RestoreError::NotABackup {
                path: backup.to_owned(),
                backend: "SQLite",
                detail: format!("its integrity check says: {detail}"),
            });
        }
        Err(e) => {
            return Err(RestoreError::NotABackup {
                path: backup.to_owned(),
                backend: "SQLite",
                detail: ServerMessage::of(&e).to_string(),
            });
        }
    }

    // Beside the database, so the rename below stays in one file system (and is atomic).
    let staged = PathBuf::from(format!("{}.restoring", file.display()));
    let write_error = |source| RestoreError::Write {
        path: staged.clone(),
        source,
    };
    let _ = fs::remove_file(&staged); // a leftover of a killed restore
    // A copy that fails part-way (a full disk) is removed too: it would keep the space.
    let copied = fs::copy(backup, &staged).and_then(|_| {
        let f = fs::OpenOptions::new().write(true).open(&staged)?;
        if let Ok(meta) = fs::metadata(file) {
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()
    });
    if let Err(e) = copied {
        let _ = fs::remove_file(&staged);
        return Err(write_error(e));
    }

    let holder = if file.exists() {
        match hold_exclusively(file, lock_wait).await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = fs::remove_file(&staged);
                return Err(e);
            }
        }
    } else {
        None
    };
    let renamed = fs::rename(&staged, file);
    if let Some(conn) = holder {
        // Its file is gone from the folder: closing it touches only the old one.
        let _ = conn.close().await;
    }
    if let Err(e) = renamed {
        let _ = fs::remove_file(&staged);
        return Err(RestoreError::Write {
            path: file.to_owned(),
            source: e,
        });
    }
    // The rename is durable once the folder is synced.
    if let Some(dir) = file.parent()
        && let Ok(dir) = fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A connection holding `file` exclusively, in rollback-journal mode. Reading first rolls
/// back a crashed writer's journal; leaving WAL mode checkpoints and deletes the `-wal` and
/// `-shm` files, and fails while another connection has the file open, as does
/// `BEGIN EXCLUSIVE` while another holds a lock: both mean the application still runs.
/// `None` for a file that is no sound database, which is replaced as it is.
async fn hold_exclusively(
    file: &Path,
    lock_wait: Duration,
) -> Result<Option<sqlx::SqliteConnection>, RestoreError> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .busy_timeout(lock_wait);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| RestoreError::Sqlite {
            doing: "opening the database",
            source: source.into(),
        })?;
    for (sql, doing) in [
        ("SELECT count(*) FROM sqlite_master", "reading the database"),
        ("PRAGMA journal_mode = DELETE", "leaving WAL mode"),
        ("BEGIN EXCLUSIVE", "locking the database"),
    ] {
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            let _ = conn.close().await;
            if is_damaged(&e) {
                // No application uses a file that is no database: replacing it is the point.
                return Ok(None);
            }
            return Err(if crate::backend::sqlite::is_busy(&e) {
                RestoreError::InUse {
                    detail: format!(
                        "another connection holds it; waited {}s",
                        lock_wait.as_secs()
                    ),
                }
            } else {
                RestoreError::Sqlite {
                    doing,
                    source: e.into(),
                }
            });
        }
    }
    // `journal_mode` answers with the mode in effect: still WAL means others have it open.
    let mode: Result<String, _> = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await;
    match mode {
        Ok(mode) if mode.eq_ignore_ascii_case("wal") => {
            let _ = conn.close().await;
            Err(RestoreError::InUse {
                detail: "another connection has it open in WAL mode".to_owned(),
            })
        }
        _ => Ok(Some(conn)),
    }
}

/// SQLITE_CORRUPT (11) or SQLITE_NOTADB (26): the file is not a sound database.
fn is_damaged(error: &sqlx::Error) -> bool {
    matches!(sqlite_primary_code(error), Some(11 | 26))
}

/// A SQLite error's primary result code (its extended code's low byte).
fn sqlite_primary_code(error: &sqlx::Error) -> Option<i32> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .map(|code| code & 0xff)
}

/// A client program beside the configured `pg_dump`, or on `PATH`.
fn program_beside(pg_dump: Option<&Path>, name: &str) -> PathBuf {
    match pg_dump.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

async fn restore_postgres(
    connection_args: &[String],
    env: &[(&'static str, String)],
    schema: &str,
    backup: &Path,
    options: &BackupOptions,
) -> Result<(), RestoreError> {
    let pg_restore = program_beside(options.pg_dump.as_deref(), "pg_restore");
    let psql = program_beside(options.pg_dump.as_deref(), "psql");

    // The backup's table of contents (pg_restore reads the file only; a line per object, not
    // per row): the file is a backup, of this schema, before anything connects.
    let mut command = tokio::process::Command::new(&pg_restore);
    command
        .arg("--list")
        .arg(backup)
        // Its messages in English, which are read below.
        .env_remove("LC_ALL")
        .env("LC_MESSAGES", "C");
    let contents = match run_client(command, &pg_restore, env).await {
        Ok(contents) => contents,
        // It read nothing but the file: the file is what it could not read, unless it is
        // of a newer format than this pg_restore knows.
        Err(RestoreError::ToolFailed { stderr, .. }) if stderr.contains("unsupported version") => {
            return Err(RestoreError::PgRestoreTooOld {
                path: backup.to_owned(),
                said: stderr,
            });
        }
        Err(RestoreError::ToolFailed { stderr, .. }) => {
            return Err(RestoreError::NotABackup {
                path: backup.to_owned(),
                backend: "PostgreSQL",
                detail: stderr,
            });
        }
        Err(e) => return Err(e),
    };
    if !holds_schema(&String::from_utf8_lossy(&contents), schema) {
        return Err(RestoreError::NotABackup {
            path: backup.to_owned(),
            backend: "PostgreSQL",
            detail: format!("it holds no schema `{schema}`"),
        });
    }

    // The schema name is a validated identifier and the key a number: nothing here is
    // text from outside.
    let key = crate::backend::postgres::lock_key(schema);
    let quoted = format!("\"{schema}\"");
    // No notice of the schema it replaces (`drop cascades to …`) among psql's errors: set in
    // the restore's transaction, as a start-up parameter (`PGOPTIONS`) is one a pooler refuses.
    let prologue = format!(
        "SET LOCAL client_min_messages = warning;\nDO $calista$ BEGIN\n  IF NOT pg_catalog.pg_try_advisory_xact_lock({key}) THEN\n    \
         RAISE EXCEPTION 'an upgrade of schema {schema} is running (it holds the migration lock)';\n  \
         END IF;\nEND $calista$;\nDROP SCHEMA IF EXISTS {quoted} CASCADE;\n"
    );
    let mut psql_command = tokio::process::Command::new(&psql);
    psql_command
        .args([
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            "--no-password",
            "--file=-",
        ])
        .args(connection_args)
        // Its own messages in English, which `psql_failure` reads.
        .env_remove("LC_ALL")
        .env("LC_MESSAGES", "C");
    let mut restore_command = tokio::process::Command::new(&pg_restore);
    restore_command.arg("--file=-").arg(backup);
    stream(
        restore_command,
        &pg_restore,
        psql_command,
        &psql,
        env,
        prologue,
        backup,
    )
    .await
}

/// Whether a backup's table of contents (`pg_restore --list`) holds the schema: a line
/// `<id>; <oid> <oid> SCHEMA - <schema> <owner>`.
fn holds_schema(contents: &str, schema: &str) -> bool {
    contents.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        matches!(fields.as_slice(), [_, _, _, "SCHEMA", "-", name, ..] if *name == schema)
    })
}

/// Pipes the SQL `pg_restore` renders into `psql`, after `prologue`, a buffer at a time:
/// memory does not grow with the backup. psql commits at the end of its input, so its
/// input ends only after pg_restore has succeeded; if pg_restore fails, psql is killed with
/// its input still open, and the server rolls back its transaction: nothing is changed.
async fn stream(
    mut restore_command: tokio::process::Command,
    pg_restore: &Path,
    mut psql_command: tokio::process::Command,
    psql: &Path,
    env: &[(&'static str, String)],
    prologue: String,
    backup: &Path,
) -> Result<(), RestoreError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut psql_child = spawn_client(&mut psql_command, psql, env, Stdio::piped(), Stdio::null())?;
    let mut restore_child = match spawn_client(
        &mut restore_command,
        pg_restore,
        env,
        Stdio::null(),
        Stdio::piped(),
    ) {
        Ok(child) => child,
        Err(e) => {
            let _ = psql_child.kill().await;
            return Err(e);
        }
    };
    let psql_errors = tokio::spawn(read_all(psql_child.stderr.take()));
    let restore_errors = tokio::spawn(read_all(restore_child.stderr.take()));
    let (Some(mut input), Some(mut rendered)) =
        (psql_child.stdin.take(), restore_child.stdout.take())
    else {
        let _ = psql_child.kill().await;
        let _ = restore_child.kill().await;
        return Err(RestoreError::Write {
            path: psql.to_owned(),
            source: io::Error::other("the client's pipes were not opened"),
        });
    };
    // Ends at the end of pg_restore's output, or when psql stops reading (it failed). The
    // lines are counted: psql names the line it was at when it failed.
    let mut lines = newlines(prologue.as_bytes());
    let copied: io::Result<()> = async {
        input.write_all(prologue.as_bytes()).await?;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = rendered.read(&mut buffer).await?;
            if read == 0 {
                return Ok(());
            }
            lines += newlines(&buffer[..read]);
            input.write_all(&buffer[..read]).await?;
        }
    }
    .await;
    if copied.is_err() {
        let _ = restore_child.start_kill();
    }
    let restored = restore_child.wait().await;
    let restore_errors = restore_errors.await.unwrap_or_default();
    let restored_whole = copied.is_ok() && restored.as_ref().is_ok_and(|status| status.success());
    if !restored_whole && copied.is_ok() {
        // psql has not seen the end of its input: killed now, it commits nothing.
        let _ = psql_child.kill().await;
        let detail = match restored {
            Ok(status) => format!(
                "{} ({status})",
                hide_password(&String::from_utf8_lossy(&restore_errors), env)
            ),
            Err(e) => e.to_string(),
        };
        return Err(RestoreError::NotABackup {
            path: backup.to_owned(),
            backend: "PostgreSQL",
            detail,
        });
    }
    // The whole script was written (or psql stopped reading it): its end lets psql commit.
    drop(input);
    let status = psql_child
        .wait()
        .await
        .map_err(|source| RestoreError::Write {
            path: psql.to_owned(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    let stderr = psql_errors.await.unwrap_or_default();
    let stderr = hide_password(&String::from_utf8_lossy(&stderr), env);
    Err(psql_failure(
        program_name(psql),
        status.to_string(),
        &stderr,
        copied.is_ok().then_some(lines),
    ))
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| n + u64::from(b == b'\n'))
}

/// What failed when psql did, from what it printed (in English, as it runs with
/// `LC_MESSAGES=C`). `whole`: the number of lines of its input when it was given all of it,
/// so that its COMMIT may have been sent.
///
/// A lost connection is said as such, with what the database holds: psql commits only at
/// the end of its input, so a loss at a line before the last left the transaction open,
/// and the server rolls it back. Otherwise psql's lines are shown without the line numbers
/// of its input (`psql:<stdin>:412:`), which are no file's the user has.
fn psql_failure(program: String, status: String, stderr: &str, whole: Option<u64>) -> RestoreError {
    const LOST: [&str; 3] = [
        "connection to server was lost",
        "server closed the connection unexpectedly",
        "SSL SYSCALL error",
    ];
    let lost_at = stderr
        .lines()
        .filter(|line| LOST.iter().any(|words| line.contains(words)))
        .map(|line| psql_line(line).map(|(at, _)| at))
        .reduce(|a, b| a.max(b));
    if let Some(at) = lost_at {
        let before_the_end = match (whole, at) {
            (None, _) => true,
            (Some(lines), Some(at)) => at < lines,
            (Some(_), None) => false,
        };
        return RestoreError::ConnectionLost {
            committing: !before_the_end,
        };
    }
    let shown: Vec<&str> = stderr
        .lines()
        .map(|line| psql_line(line).map_or(line, |(_, said)| said))
        .collect();
    RestoreError::ToolFailed {
        program,
        status,
        stderr: shown.join("\n"),
    }
}

/// A line psql starts with the line of its input it was at (`psql:<stdin>:412: …`): that
/// number and what follows.
fn psql_line(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix("psql:<stdin>:")?;
    let (at, said) = rest.split_once(": ")?;
    Some((at.parse().ok()?, said))
}

/// Everything a pipe gives until it closes (a client's stderr).
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut all).await;
    }
    all
}

/// Starts a PostgreSQL client with the connection's environment (and no other password),
/// stderr piped.
fn spawn_client(
    command: &mut tokio::process::Command,
    program: &Path,
    env: &[(&'static str, String)],
    stdin: Stdio,
    stdout: Stdio,
) -> Result<tokio::process::Child, RestoreError> {
    command
        .env_remove("PGPASSWORD")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => RestoreError::ToolMissing {
            program: program.display().to_string(),
        },
        _ => RestoreError::Write {
            path: program.to_owned(),
            source: e,
        },
    })
}

/// A client's name, for messages.
fn program_name(program: &Path) -> String {
    program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs a PostgreSQL client with the connection's environment (and no other password) and
/// no input; returns its stdout.
async fn run_client(
    mut command: tokio::process::Command,
    program: &Path,
    env: &[(&'static str, String)],
) -> Result<Vec<u8>, RestoreError> {
    let child = spawn_client(&mut command, program, env, Stdio::null(), Stdio::piped())?;
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| RestoreError::Write {
            path: program.to_owned(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(RestoreError::ToolFailed {
        program: program_name(program),
        status: output.status.to_string(),
        stderr: hide_password(&String::from_utf8_lossy(&output.stderr), env),
    })
}

/// A client's stderr, trimmed, without the password it was given.
fn hide_password(stderr: &str, env: &[(&'static str, String)]) -> String {
    let mut text = stderr.trim().to_owned();
    for (_, password) in env
        .iter()
        .filter(|(k, v)| *k == "PGPASSWORD" && !v.is_empty())
    {
        text = text.replace(password.as_str(), "***");
    }
    crate::url::redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str) -> Option<(String, String, String)> {
        parse_file_name(name).map(|p| {
            let revision = p.revision.map(|r| r.to_string()).unwrap_or_default();
            (p.database, revision, p.taken_at)
        })
    }

    #[test]
    fn file_names_parse_back() {
        let at = UtcDateTime::from_unix(1_756_204_200);
        let name = file_name(
            "my-app-0a1b2c3d",
            Some("20250826_1030"),
            at,
            SQLITE_EXTENSION,
        );
        assert_eq!(
            name,
            "my-app-0a1b2c3d-20250826_1030-20250826T103000.000Z.sqlite3"
        );
        assert_eq!(
            parsed(&name),
            Some((
                "my-app-0a1b2c3d".into(),
                "20250826_1030".into(),
                "20250826T103000.000Z".into()
            ))
        );
        assert_eq!(
            parsed(&format!("{name}{PARTIAL}")),
            None,
            "a partial backup is not a backup"
        );
        assert_eq!(
            parsed(&file_name("db", None, at, POSTGRES_EXTENSION)).map(|p| p.1),
            Some(String::new())
        );
        assert_eq!(parsed("notes.txt"), None);
        assert_eq!(parsed("x-y-z.dump"), None);
    }

    #[test]
    fn databases_of_one_name_in_two_places_have_two_names() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let (a, b) = (one.path().join("app.db"), two.path().join("app.db"));
        fs::write(&a, b"").unwrap();
        fs::write(&b, b"").unwrap();
        let name_a = database_name(&Source::Sqlite { file: &a });
        let name_b = database_name(&Source::Sqlite { file: &b });
        assert_ne!(name_a, name_b);
        assert!(name_a.starts_with("app-") && name_b.starts_with("app-"));
        // The same file by another path is the same database.
        let dotted = one.path().join(".").join("app.db");
        assert_eq!(database_name(&Source::Sqlite { file: &dotted }), name_a);
        let server = |server: &str, schema: &'static str| {
            database_name(&Source::Postgres {
                connection_args: Vec::new(),
                env: Vec::new(),
                database: "orders".into(),
                server: server.into(),
                schema,
            })
        };
        assert_ne!(
            server("h1:5432/orders", "calista"),
            server("h2:5432/orders", "calista")
        );
        assert_ne!(
            server("h1:5432/orders", "calista"),
            server("h1:5432/orders", "other")
        );
        assert_eq!(
            server("h1:5432/orders", "calista"),
            server("h1:5432/orders", "calista")
        );
    }

    #[test]
    fn prune_keeps_the_newest_of_one_database_and_never_touches_others() {
        let dir = tempfile::tempdir().unwrap();
        for (db, second) in [
            ("a-00000001", 1),
            ("a-00000001", 2),
            ("a-00000001", 3),
            ("a-00000002", 0), // the same name, another database
            ("b-00000003", 1),
            ("a", 0), // from a version without identities
        ] {
            let name = file_name(
                db,
                Some("20250826_1030"),
                UtcDateTime::from_unix(1_756_204_200 + second),
                "dump",
            );
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        let deleted = prune(dir.path(), "a-00000001", 2).unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(
            deleted[0]
                .to_string_lossy()
                .ends_with("a-00000001-20250826_1030-20250826T103001.000Z.dump")
        );
        let left: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|b| format!("{}:{:?}:{}", b.database, b.database_id, b.taken_at))
            .collect();
        assert_eq!(
            left,
            [
                "a:Some(\"00000002\"):20250826T103000.000Z",
                "a:None:20250826T103000.000Z",
                "b:Some(\"00000003\"):20250826T103001.000Z",
                "a:Some(\"00000001\"):20250826T103002.000Z",
                "a:Some(\"00000001\"):20250826T103003.000Z"
            ]
        );
        assert!(dir.path().join("unrelated.txt").exists());
    }

    #[test]
    fn every_leftover_of_a_killed_backup_of_this_database_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let at = UtcDateTime::from_unix(1_756_204_200);
        let mine = file_name("app-00000001", Some("20250826_1030"), at, SQLITE_EXTENSION);
        let other = file_name("app-00000002", Some("20250826_1030"), at, SQLITE_EXTENSION);
        let suffixes = [PARTIAL, ".partial-journal", ".partial-wal", ".partial-shm"];
        for suffix in suffixes {
            fs::write(dir.path().join(format!("{mine}{suffix}")), b"x").unwrap();
            fs::write(dir.path().join(format!("{other}{suffix}")), b"x").unwrap();
        }
        remove_stale_partials(dir.path(), "app-00000001");
        for suffix in suffixes {
            assert!(
                !dir.path().join(format!("{mine}{suffix}")).exists(),
                "{suffix}"
            );
            assert!(
                dir.path().join(format!("{other}{suffix}")).exists(),
                "{suffix}"
            );
        }
    }

    /// pg_dump's words (PostgreSQL 12 to 17) and what each is told as.
    #[test]
    fn pg_dump_failures_are_told_by_what_pg_dump_said() {
        let cases = [
            (
                "pg_dump: error: could not write to output file: No space left on device",
                "NoSpace",
            ),
            (
                "pg_dump: error: could not close output file: Disk quota exceeded",
                "NoSpace",
            ),
            (
                "pg_dump: error: could not open output file \"/b/x.dump.partial\": Permission denied",
                "FolderNotPermitted",
            ),
            (
                "pg_dump: error: could not open output file \"/b/x.dump.partial\": Read-only file system",
                "FolderReadOnly",
            ),
            (
                "pg_dump: error: query failed: ERROR:  permission denied for table a\n\
                 pg_dump: detail: Query was: LOCK TABLE calista.a IN ACCESS SHARE MODE",
                "RoleLacksPrivilege",
            ),
            (
                "pg_dump: error: query failed: ERROR:  permission denied for schema calista",
                "RoleLacksPrivilege",
            ),
            (
                "pg_dump: error: aborting because of server version mismatch\n\
                 pg_dump: detail: server version: 16.4; pg_dump version: 15.20",
                "PgDumpOlderThanServer",
            ),
            (
                "pg_dump: error: server version: 16.1; pg_dump version: 14.2\n\
                 pg_dump: error: aborting because of server version mismatch",
                "PgDumpOlderThanServer",
            ),
            // A socket this user may not open is a connection refused, not the folder.
            (
                "pg_dump: error: connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: \
                 Permission denied\n\tIs the server running locally and accepting connections on that socket?",
                "PgDumpCannotConnect",
            ),
            (
                "pg_dump: error: connection to server at \"db\" (10.0.0.1), port 5432 failed: FATAL:  \
                 password authentication failed for user \"app\"",
                "PgDumpCannotConnect",
            ),
            (
                "pg_dump: error: connection to database \"app\" failed: could not connect to server: \
                 Connection refused",
                "PgDumpCannotConnect",
            ),
            // The server's disk full, not the backup folder's.
            (
                "pg_dump: error: query failed: ERROR:  could not write to file \
                 \"base/pgsql_tmp/pgsql_tmp1.0\": No space left on device",
                "PgDumpFailed",
            ),
            ("", "PgDumpFailed"),
        ];
        for (stderr, expected) in cases {
            let error =
                pg_dump_failure(Path::new("/b"), "calista", "exit status: 1".into(), stderr);
            let variant = format!("{error:?}");
            assert!(variant.starts_with(expected), "{stderr:?}: {variant}");
            assert!(
                error.to_string().starts_with("cannot back up into /b: "),
                "{error}"
            );
            let said = std::error::Error::source(&error).map(ToString::to_string);
            let expected_said = if stderr.is_empty() {
                "pg_dump printed nothing on stderr"
            } else {
                stderr
            };
            assert_eq!(said.as_deref(), Some(expected_said));
        }
    }

    /// psql's words (PostgreSQL 15) when the server went away, over TLS and plain TCP, and
    /// what the restore's transaction became.
    #[test]
    fn a_psql_that_lost_its_connection_says_whether_commit_was_on_its_way() {
        let tls = "psql:<stdin>:8959: WARNING:  terminating connection due to immediate shutdown command\n\
                   psql:<stdin>:8959: SSL SYSCALL error: EOF detected\ninvalid socket\n\
                   psql:<stdin>:8959: error: connection to server was lost\n";
        let plain = "psql:<stdin>:6265: server closed the connection unexpectedly\n\
                     \tThis probably means the server terminated abnormally\n\
                     \tbefore or while processing the request.\n\
                     psql:<stdin>:6265: error: connection to server was lost\n";
        let at_commit = "server closed the connection unexpectedly\n";
        let cases = [
            // Lines after the one it lost the connection at: COMMIT was not sent.
            (tls, Some(9000), false),
            (plain, Some(6266), false),
            // It stopped reading: it never saw the end, so never sent COMMIT.
            (tls, None, false),
            // At the end of its input, or not at a line: COMMIT may have been on its way.
            (plain, Some(6265), true),
            (at_commit, Some(6265), true),
        ];
        for (stderr, whole, committing) in cases {
            let error = psql_failure("psql".into(), "exit status: 2".into(), stderr, whole);
            assert!(
                matches!(error, RestoreError::ConnectionLost { committing: c } if c == committing),
                "{stderr:?} {whole:?}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("lost while restoring") && !message.contains("SSL"),
                "{message}"
            );
            assert_eq!(
                message.contains("nothing was changed"),
                !committing,
                "{message}"
            );
        }
    }

    #[test]
    fn a_psql_failure_shows_its_words_without_its_inputs_line_numbers() {
        let error = psql_failure(
            "psql".into(),
            "exit status: 3".into(),
            "psql:<stdin>:412: ERROR:  role \"app_owner\" does not exist\n",
            Some(900),
        );
        assert_eq!(
            error.to_string(),
            "cannot restore: psql failed (exit status: 3): ERROR:  role \"app_owner\" does not exist. \
             The restore runs in one transaction, so nothing was changed"
        );
    }

    #[test]
    fn pg_dump_is_quoted_by_its_last_lines() {
        let text = "a\n\nb\nc\nd\ne\nf\n";
        assert_eq!(last_lines(text, 5), "…\nb\nc\nd\ne\nf");
        assert_eq!(last_lines("only\n", 5), "only");
    }

    #[test]
    fn restore_commands_quote_paths_for_the_shell() {
        assert_eq!(
            shell_quote(Path::new("/srv/b/app-1.dump")),
            "/srv/b/app-1.dump"
        );
        assert_eq!(
            shell_quote(Path::new("/srv/my b/x.dump")),
            "'/srv/my b/x.dump'"
        );
        assert_eq!(shell_quote(Path::new("/srv/it's")), "'/srv/it'\\''s'");
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

/// Backups and restores reach a server that requires TLS, with the URL's TLS settings: a
/// throw-away cluster (`initdb` as the `postgres` user, on a free port) that accepts only
/// TLS connections authenticated by a client certificate, all certificates made here.
#[cfg(test)]
#[cfg(unix)]
mod tls {
    use std::process::Command;

    use super::*;

    fn run(command: &mut Command) {
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert!(output.status.success(), "{command:?}: {output:?}");
    }

    /// A server program, run as the `postgres` user (the test runs as root, which the
    /// server refuses to be).
    fn as_postgres(program: &str) -> Command {
        let bindir = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .expect("pg_config (package postgresql-server-dev or postgresql) must be on PATH");
        let bindir = String::from_utf8_lossy(&bindir.stdout).trim().to_owned();
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(Path::new(&bindir).join(program));
        command
    }

    /// A certificate signed by `ca` (or self-signed when `ca` is `None`).
    fn certificate(dir: &Path, name: &str, subject: &str, ca: Option<&str>, san: Option<&str>) {
        let key = dir.join(format!("{name}.key"));
        let crt = dir.join(format!("{name}.crt"));
        match ca {
            None => run(Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject,
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&crt)),
            Some(ca) => {
                let csr = dir.join(format!("{name}.csr"));
                run(Command::new("openssl")
                    .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&csr));
                let ext = dir.join(format!("{name}.ext"));
                fs::write(
                    &ext,
                    san.map_or(String::new(), |s| format!("subjectAltName={s}\n")),
                )
                .unwrap();
                run(Command::new("openssl")
                    .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
                    .arg("-in")
                    .arg(&csr)
                    .arg("-CA")
                    .arg(dir.join(format!("{ca}.crt")))
                    .arg("-CAkey")
                    .arg(dir.join(format!("{ca}.key")))
                    .arg("-extfile")
                    .arg(&ext)
                    .arg("-out")
                    .arg(&crt));
            }
        }
        fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }

    /// The cluster, stopped when dropped.
    struct Cluster {
        data: PathBuf,
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = as_postgres("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_and_restore_connect_with_the_url_tls_settings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        run(Command::new("chown").arg("postgres").arg(root));
        certificate(root, "ca", "/CN=calista-test-ca", None, None);
        certificate(root, "other-ca", "/CN=another-ca", None, None);
        certificate(
            root,
            "server",
            "/CN=localhost",
            Some("ca"),
            Some("DNS:localhost"),
        );
        certificate(root, "client", "/CN=postgres", Some("ca"), None);

        let data = root.join("data");
        run(as_postgres("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust"]));
        for file in ["server.crt", "server.key", "ca.crt"] {
            fs::copy(root.join(file), data.join(file)).unwrap();
        }
        run(Command::new("chown").arg("-R").arg("postgres").arg(&data));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(
            &mut conf,
            format!(
                "\nport = {port}\nlisten_addresses = 'localhost'\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n",
                root.display()
            )
            .as_bytes(),
        )
        .unwrap();
        // Over TCP, TLS with a client certificate or nothing; the socket is for setting up.
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 cert\nhostssl all all ::1/128 cert\n",
        )
        .unwrap();
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("log"))
            .args(["-w", "start"]));
        let _cluster = Cluster { data: data.clone() };
        // psql on the cluster's socket, running `sql`.
        let psql = |sql: &str| {
            let mut command = Command::new("psql");
            command
                .args([
                    "-X",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-p", &port.to_string(), "-h"])
                .arg(root)
                .args(["-c", sql]);
            command
        };
        run(&mut psql(
            "CREATE SCHEMA calista; CREATE TABLE calista.t (x integer); INSERT INTO calista.t VALUES (1), (2);",
        ));

        let url = |query: &str| {
            let text = format!("postgres://postgres@localhost:{port}/postgres?{query}");
            crate::url::DatabaseUrl::parse(&text, root).unwrap()
        };
        let tls = format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            root.join("ca.crt").display(),
            root.join("client.crt").display(),
            root.join("client.key").display()
        );
        let options = BackupOptions {
            dir: Some(root.join("backups")),
            ..BackupOptions::default()
        };
        let backup_with = async |query: &str| {
            let in_calista = crate::DatabaseOptions {
                schema: Some(crate::SchemaName::calista()),
                ..crate::DatabaseOptions::default()
            };
            let db = crate::Database::connect(&url(query), in_calista).unwrap();
            // A named schema: known without a query.
            db.schema().await.unwrap();
            let source = db.backup_source().unwrap();
            take(&source, None, &options).await
        };

        let backup = backup_with(&tls).await.unwrap();
        assert!(backup.size > 0);
        // Each setting is the URL's: another root certificate fails the verification, no
        // client certificate fails the authentication, and no TLS is refused.
        let wrong_ca = tls.replace("/ca.crt", "/other-ca.crt");
        let no_client_cert = format!(
            "sslmode=verify-full&sslrootcert={}",
            root.join("ca.crt").display()
        );
        for (query, why) in [
            (wrong_ca.as_str(), "certificate verify failed"),
            (no_client_cert.as_str(), "certificate"),
            ("sslmode=disable", "no encryption"),
        ] {
            let error = crate::error::with_causes(&backup_with(query).await.unwrap_err());
            assert!(error.contains(why), "{query}: {error}");
        }

        // The restore's pg_restore and psql connect the same way.
        run(&mut psql(
            "DELETE FROM calista.t; CREATE TABLE calista.later (y integer);",
        ));
        let in_calista = || crate::DatabaseOptions {
            schema: Some(crate::SchemaName::calista()),
            ..crate::DatabaseOptions::default()
        };
        let db = crate::Database::connect(&url(&tls), in_calista()).unwrap();
        restore(&db, &backup.path, &options).await.unwrap();
        let count =
            psql("SELECT count(*) FROM calista.t; SELECT to_regclass('calista.later') IS NULL;")
                .output()
                .unwrap();
        assert_eq!(String::from_utf8_lossy(&count.stdout), "2\nt\n");
        let refused = crate::Database::connect(&url(&wrong_ca), in_calista()).unwrap();
        let error = restore(&refused, &backup.path, &options)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("certificate verify failed"), "{error}");
    }
}
