//! Errors of the runtime: what happened, to which migration or table, and what to do next.

use std::time::Duration;

use crate::engine::plan::{Corruption, PlanRefusal, SchemaState};
use crate::migration::Direction;
use crate::problem::SourceError;

/// How a program should treat an error; the `calista` program maps these to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A failure while working: SQL failed, backup failed, database unreachable. Exit 1.
    Failure,
    /// Bad usage or configuration: a refused request, an invalid folder or target. Exit 2.
    Usage,
    /// The schema is behind and upgrades are not automatic. Exit 3.
    Behind,
    /// The schema is unsafe to touch: ahead, modified, out of order, interrupted, corrupt. Exit 4.
    Unsafe,
    /// The migration lock was not obtained in time. Exit 5.
    LockTimeout,
}

impl ErrorKind {
    /// The exit code the `calista` program (and `myapp db …`) gives an error of this kind:
    /// 1 failure, 2 usage, 3 behind, 4 unsafe, 5 lock timeout.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Failure => 1,
            Self::Usage => 2,
            Self::Behind => 3,
            Self::Unsafe => 4,
            Self::LockTimeout => 5,
        }
    }
}

/// What errors tell a person to do, in the embedding application's words: its commands,
/// its variables, its files. The defaults name no program; an application with a command
/// line puts its own (see `AppNames::hints` in the settings module).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hints {
    /// How to apply pending migrations, after "N migrations are pending.": a clause, as
    /// "run `myapp db upgrade` to apply them".
    pub upgrade: String,
    /// How to opt in to automatic upgrades, a clause after the upgrade hint and ", or".
    pub auto_upgrade: String,
    /// How to create a migration, as "`myapp db new <summary>`".
    pub new_migration: String,
    /// How to resolve an interrupted no-transaction migration once it has been inspected.
    pub recover: String,
    /// How to list the applied migrations, as "`myapp db history`".
    pub history: String,
    /// How to allow downgrades, after "downgrades are refused in production".
    pub allow_downgrade: String,
    /// How to see which revision the database is at, after "check with", as
    /// "`myapp db status`".
    pub status: String,
    /// How to adopt a database another migration tool manages, as "`myapp db adopt`".
    pub adopt: String,
    /// How to accept an intended edit of an applied migration, as
    /// "`myapp db repair --accept <revision> --reason <text>`".
    pub repair: String,
}

impl Default for Hints {
    /// Neutral words: no program, variable or file named.
    fn default() -> Self {
        Self {
            upgrade: "upgrade the database to apply them".to_owned(),
            auto_upgrade: "let the application upgrade it at start-up (the policy's automatic upgrades)"
                .to_owned(),
            new_migration: "a new migration file".to_owned(),
            recover: "resolve the attempt with a recovery: retry (forget the attempt; the next upgrade runs the migration again), or mark it applied if it did complete"
                .to_owned(),
            history: "the history of applied migrations".to_owned(),
            allow_downgrade: "run downgrades in a development or CI environment".to_owned(),
            status: "the revision the version table (alembic_version) holds".to_owned(),
            adopt: "adopting the database (recording what that tool applied)".to_owned(),
            repair: "a repair of the migration that records the edit and why".to_owned(),
        }
    }
}

/// An error of the migration runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The guard refused: the schema is not at this build's head.
    #[error("{}", describe_state(.state, .hints, .app_version.as_ref()))]
    Schema {
        /// The state found.
        state: Box<SchemaState>,
        /// What to tell the user, in the application's words.
        hints: Box<Hints>,
        /// The version of the running application, when known.
        app_version: Option<semver::Version>,
    },

    /// The database could not be reached.
    #[error("cannot connect to {url}; check that the server is running and the URL is right")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What the driver or the server said.
        #[source]
        source: DriverError,
    },

    /// A connection pooler in the way refused a startup parameter of the URL's.
    #[error(
        "{url} refused the startup parameter `{parameter}`: a connection pooler in the way (such as PgBouncer) \
         accepts only the parameters it knows. Remove it from the URL (a search_path in `options` can be set \
         on the role instead: ALTER ROLE … SET search_path = …), add it to the pooler's \
         ignore_startup_parameters, or connect to PostgreSQL directly"
    )]
    PoolerRefusedParameter {
        /// The URL, password redacted.
        url: String,
        /// The parameter refused.
        parameter: String,
        /// What the pooler said.
        #[source]
        source: DriverError,
    },

    /// The database did not answer in time.
    #[error("no answer from {url} within {}s; check the server, the network, or raise the connect timeout", .waited.as_secs())]
    Timeout {
        /// The URL, password redacted.
        url: String,
        /// How long we waited.
        waited: Duration,
    },

    /// Another process held the migration lock for longer than the lock timeout.
    #[error(
        "timed out after {:.1}s waiting for the migration lock, held by {holder}; \
         another upgrade is probably running: wait for it, or raise the lock timeout",
        .waited.as_secs_f64()
    )]
    LockTimeout {
        /// Who holds it, as far as the database can tell.
        holder: String,
        /// How long we waited.
        waited: Duration,
    },

    /// A migration's SQL failed; everything in its transaction was rolled back.
    #[error(
        "migration {file} failed ({direction}){}{}; {}",
        .source.location.as_ref().map_or_else(String::new, |at| format!(" at line {at}")),
        .source.advice.map_or_else(String::new, |advice| format!("; {advice}")),
        match .kept { Some(at) => format!("the database is at revision {at}: nothing of the failed transaction was kept"),
                      None => "the database is empty again: nothing of the failed transaction was kept".to_owned() }
    )]
    Migration {
        /// The file that failed.
        file: String,
        /// Up or down.
        direction: Direction,
        /// The revision the database is at now.
        kept: Option<String>,
        /// The statement that failed and what the database said.
        #[source]
        source: Box<StatementError>,
    },

    /// A no-transaction migration failed part-way; it is recorded as interrupted.
    #[error(
        "migration {file} (no-transaction) failed part-way{}; it is recorded as interrupted. \
         Inspect what it left behind, then {recover}",
        .source.location.as_ref().map_or_else(String::new, |at| format!(" at line {at}"))
    )]
    MigrationInterrupted {
        /// The file that failed.
        file: String,
        /// How to recover, in the application's words.
        recover: String,
        /// The statement that failed and what the database said.
        #[source]
        source: Box<StatementError>,
    },

    /// A migration's SQL ended calista's transaction itself (`COMMIT`, `ROLLBACK`, …), so
    /// its statements and its record could not commit together: nothing was recorded.
    #[error(
        "migration {file} ended the migration transaction itself (its SQL holds COMMIT, ROLLBACK, END or \
         another transaction-control statement{}): what ran before that statement was committed or rolled \
         back outside calista's control, and what ran after it ran outside any transaction, so nothing was \
         recorded and alembic_version still says {}, which may no longer match the schema. Remove the \
         transaction control (the migration already runs in a transaction) or mark the file \
         `-- calista:no-transaction`; check the schema by hand before the next upgrade",
        .statement.as_ref().map_or_else(String::new, |at| format!(", line {at}")),
        .kept.as_deref().unwrap_or("nothing (no revision)")
    )]
    TransactionEnded {
        /// The file whose SQL ended the transaction (as far as its text tells).
        file: String,
        /// Where the transaction-control statement is, when it could be found.
        statement: Option<StatementLocation>,
        /// The revision alembic_version holds.
        kept: Option<String>,
        /// The statement that failed after the transaction ended, if one did.
        #[source]
        source: Option<Box<StatementError>>,
    },

    /// A migration could not get its table locks on PostgreSQL within the lock budget:
    /// every attempt was rolled back, so nothing changed.
    #[error(
        "migration {file} could not get its table locks: {attempts} attempt(s) of {:.1}s each, over {:.1}s \
         (the lock timeout), were all rolled back{}. {}; let {} finish (or end it: \
         `SELECT pg_terminate_backend(pid)`), then run the upgrade again, or raise the lock timeout",
        .attempt_timeout.as_secs_f64(),
        .waited.as_secs_f64(),
        if let Some(recover) = .interrupted {
            format!(" after its first statements ran (it is a no-transaction migration): it is recorded as interrupted; \
             inspect what it left, then {recover}")
        } else {
            .kept.as_ref().map_or_else(|| ", so nothing was changed (the database has no revision)".to_owned(),
                                       |at| format!(", so nothing was changed (the database is at revision {at})"))
        },
        describe_blockers(.blockers),
        if .blockers.len() == 1 { "that transaction" } else { "those transactions" }
    )]
    TableLockTimeout {
        /// The migration whose statement waited.
        file: String,
        /// How many times the transaction was tried.
        attempts: u32,
        /// The wait of each attempt.
        attempt_timeout: Duration,
        /// How long all attempts took.
        waited: Duration,
        /// The revision the database is at.
        kept: Option<String>,
        /// The sessions that held the locks, as last seen.
        blockers: Vec<Blocker>,
        /// For a no-transaction migration that had run some statements, and so is recorded
        /// as interrupted: how to resolve it, in the application's words.
        interrupted: Option<Box<String>>,
    },

    /// A no-transaction migration would run through a connection pooler in transaction
    /// mode, which cannot keep work that spans transactions on one server connection.
    #[error(
        "{file} runs outside a transaction, but {url} goes through a connection pooler in transaction mode \
         (such as PgBouncer with pool_mode = transaction), which hands the server connection to other clients \
         between transactions: the migration's session settings and the migration lock would not stay with it. \
         Nothing was changed. Run this upgrade on a direct connection to PostgreSQL (the server's own host and \
         port, not the pooler's), or through the pooler in session mode"
    )]
    TransactionPooler {
        /// The no-transaction migration.
        file: String,
        /// The URL, password redacted.
        url: String,
    },

    /// An upgrade against a hot standby: refused before any backup or lock.
    #[error(
        "{url} is a standby (a read-only replica, in recovery): migrations run on the primary. \
         Connect to the primary and run it there; nothing was changed and no backup was taken"
    )]
    Standby {
        /// The URL, password redacted.
        url: String,
    },

    /// The guard found the schema behind on a standby: an upgrade cannot run there, and the
    /// primary may be ahead of what the standby has replayed.
    #[error(
        "{}; this database is a standby (a read-only replica), where no upgrade can run{}",
        describe_state_only(.state),
        match .lag { Some(lag) => format!(", and its replay is behind its primary ({lag}): the primary may already be \
             upgraded; wait for the standby to catch up (resume replay with `SELECT pg_wal_replay_resume()` if it \
             was paused)"),
             None => ": upgrade the primary; the standby follows it".to_owned() }
    )]
    StandbyBehind {
        /// The state found.
        state: Box<SchemaState>,
        /// How far its replay is behind, when it is.
        lag: Option<String>,
    },

    /// A database operation other than a migration's own SQL failed.
    #[error("{context}")]
    Database {
        /// What we were doing, and what to check.
        context: String,
        /// What the driver or the database said.
        #[source]
        source: DriverError,
    },

    /// A downgrade outside development and CI.
    #[error(
        "downgrades are refused in {environment}: migrations are forward-only at runtime; fix a mistake with \
         {new_migration}. {allow}"
    )]
    DowngradeRefused {
        /// The environment in effect.
        environment: crate::Environment,
        /// How to create a migration, in the application's words.
        new_migration: String,
        /// How to allow downgrades, in the application's words.
        allow: String,
    },

    /// An upgrade or downgrade that cannot be planned.
    #[error("{0}")]
    Plan(PlanRefusal),

    /// History cannot be written as asked (repair, adopt, stamp); nothing was changed.
    #[error("{0}")]
    History(crate::engine::history::HistoryRefusal),

    /// Nothing to recover: no migration is interrupted.
    #[error("no migration is interrupted; nothing to recover")]
    NothingToRecover,

    /// The migrations folder breaks the rules.
    #[error(transparent)]
    Source(#[from] SourceError),

    /// [`App::install`](crate::App::install) was called a second time.
    #[error("calista::App::install was called twice; install the application once, at start-up")]
    InstalledTwice,

    /// A `#[requires_db]` handler (or [`db`](crate::db)) ran before an application was
    /// installed.
    #[error(
        "no application installed: call calista::App::from_pool(&MIGRATIONS, &pool).install() \
         at start-up, before the first #[requires_db] handler runs"
    )]
    NotInstalled,

    /// [`Database::connect`](crate::Database::connect) was called outside a Tokio runtime.
    #[error(
        "calista::Database::connect must be called inside a Tokio runtime (e.g. under #[tokio::main])"
    )]
    NoRuntime,

    /// The runtime of a synchronous guard ([`require_db_blocking`](crate::require_db_blocking))
    /// could not start.
    #[error("cannot start a runtime for the schema guard")]
    GuardRuntime(#[source] std::io::Error),

    /// The thread of a synchronous guard panicked.
    #[error("the schema guard's thread panicked")]
    GuardPanicked,

    /// A redo with no migration applied.
    #[error("nothing to redo: no migration is applied")]
    NothingToRedo,

    /// A redo of a migration that cannot be reverted and applied in one transaction.
    #[error(
        "{file} is {}, which redo cannot revert and apply in one transaction",
        if *.irreversible { "irreversible" } else { "a no-transaction migration (downgrade it with -1, then upgrade)" }
    )]
    CannotRedo {
        /// The migration's file.
        file: String,
        /// Irreversible (else: a no-transaction migration).
        irreversible: bool,
    },

    /// A downgrade that would keep a migration whose file changed since it was applied.
    #[error(
        "the migration {revision} changed since it was applied and this downgrade keeps it: \
         restore its file, or downgrade below it"
    )]
    ChangedMigrationKept {
        /// The changed migration.
        revision: crate::Revision,
    },

    /// A downgrade through a changed migration that would revert a no-transaction one.
    #[error(
        "{file} is a no-transaction migration and a migration to revert changed since it was applied: \
         restore the changed file first"
    )]
    ChangedRevertNotAlone {
        /// The no-transaction migration's file.
        file: String,
    },

    /// A migration to revert changed since it was applied, and no down SQL was recorded.
    #[error(
        "{file} changed since it was applied, by a build that did not record its down SQL: \
         restore the file as it was to revert it, or undo its changes by hand"
    )]
    NoRecordedDownSql {
        /// The migration's file.
        file: String,
    },

    /// A revision the migrations do not have.
    #[error("the migrations have no revision {0}")]
    UnknownRevision(crate::Revision),

    /// The test server's URL is not a PostgreSQL URL (feature `testing`).
    #[error(
        "the test server from {from} is not a PostgreSQL URL: set {variable} to one such as {example}"
    )]
    TestServerUrl {
        /// Where the URL came from: a variable, or the default.
        from: String,
        /// The variable to set.
        variable: String,
        /// A URL that would do.
        example: String,
    },

    /// A scratch file or folder (a test database's template, `db squash`'s check) could
    /// not be made.
    #[error("cannot {doing}")]
    ScratchFile {
        /// What was being done, to which file.
        doing: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A step calista relies on did not happen: a defect of calista, to report.
    #[error("calista's own invariant failed ({0}); nothing more was changed. Please report it")]
    Internal(&'static str),

    /// sqlx's `Any` driver cannot read a test database's URL (feature `testing`).
    #[error("sqlx's Any driver cannot read the test database's URL")]
    AnyUrl(#[source] DriverError),

    /// On a PostgreSQL pool with no schema named, the pool's queries look in no schema
    /// that can hold calista's tables: its `search_path` names none that exists, or one that
    /// is not a plain identifier.
    #[error(
        "the pool of {url} looks in {} (its current_schema()), which cannot hold calista's tables: \
         name the schema in the database options, or set the pool's search_path to an existing \
         schema with a plain lowercase name",
        .found.as_ref().map_or_else(|| "no existing schema".to_owned(), |name| format!("schema \"{name}\""))
    )]
    NoCurrentSchema {
        /// The URL, password redacted.
        url: String,
        /// The schema it looks in, if any.
        found: Option<String>,
    },

    /// On a PostgreSQL pool with no schema named, calista's tables are not in the schema
    /// the pool's queries look in, but in another: nothing is installed a second time.
    #[error(
        "calista's tables are in schema `{found}`, not in `{current}` where the pool's queries look \
         (its current_schema()); the database was upgraded by the `calista` program or an older \
         version, which keep them in `{found}`. To keep that history, name schema `{found}` in the \
         database options (the DB_SCHEMA setting) and set the pool's search_path to it; to start \
         afresh in `{current}`, name `{current}` explicitly"
    )]
    StateInOtherSchema {
        /// The schema the pool's queries look in.
        current: crate::database::SchemaName,
        /// The schema that holds calista's tables.
        found: crate::database::SchemaName,
    },

    /// The pre-upgrade backup failed; nothing was changed.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),

    /// A restore failed or was refused; nothing was changed.
    #[error(transparent)]
    Restore(#[from] crate::backup::RestoreError),

    /// The connection to the database was lost during an upgrade or downgrade (the server
    /// stopped, restarted or ended the session, or the network failed). The driver's words
    /// are not part of the message (they are logged at debug level): what matters is what
    /// the database holds now.
    #[error(
        "the connection to the database was lost while {doing}{}; {}",
        .file.as_ref().map_or_else(String::new, |file| format!(" ({file})")),
        describe_lost(.after)
    )]
    ConnectionLost {
        /// What was running, as "running a migration".
        doing: String,
        /// The migration file that was running, if one was.
        file: Option<String>,
        /// What the database holds now, as far as can be known.
        after: AfterLoss,
    },
}

/// What a database holds after its connection was lost during an upgrade or downgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterLoss {
    /// The connection was lost before `COMMIT` was sent: the server rolls back a
    /// transaction whose connection ends, so the database is still at `kept`.
    RolledBack {
        /// The revision the database is at (`None`: none).
        kept: Option<String>,
    },
    /// The connection was lost while `COMMIT` was on its way: the transaction may or may not
    /// have been committed. `before`: the revision before it; `status`: how to check, in the
    /// application's words.
    Unknown {
        /// The revision the database was at before the transaction.
        before: Option<String>,
        /// How to see the revision now.
        status: String,
    },
    /// A no-transaction migration had started: it is recorded as interrupted.
    Interrupted {
        /// How to recover, in the application's words.
        recover: String,
    },
    /// Nothing was being changed at that moment: the connection was lost while taking the
    /// lock, reading the state, or ending a transaction that had changed nothing kept.
    Unchanged,
}

fn describe_lost(after: &AfterLoss) -> String {
    let revision = |at: &Option<String>| {
        at.as_ref().map_or_else(
            || "no revision (empty)".to_owned(),
            |at| format!("revision {at}"),
        )
    };
    match after {
        AfterLoss::RolledBack { kept } => format!(
            "COMMIT had not been sent, so the server rolls back the migration transaction: the database is \
             still at {}, with nothing of that transaction kept. Once the server answers again, run the command again",
            revision(kept)
        ),
        AfterLoss::Unknown { before, status } => format!(
            "the connection dropped while COMMIT was on its way, so whether the migration transaction was \
             committed is unknown: the database is at {} (if it was not) or at the transaction's target (if it was). \
             Check with {status} once the server answers again, then run the command again if the database is not \
             where it should be",
            revision(before)
        ),
        AfterLoss::Interrupted { recover } => format!(
            "a no-transaction migration was running, so the schema may be half-changed and the migration is \
             recorded as interrupted. Once the server answers again, inspect what it left behind, then {recover}"
        ),
        AfterLoss::Unchanged => "this was not changing the database (the server rolls back any transaction \
            the connection had open); what the command committed before it stays. Once the server answers \
            again, run the command again"
            .to_owned(),
    }
}

impl From<crate::engine::history::HistoryRefusal> for Error {
    fn from(refusal: crate::engine::history::HistoryRefusal) -> Self {
        Self::History(refusal)
    }
}

impl Error {
    /// The exit code the `calista` program gives this error ([`ErrorKind::exit_code`]), for
    /// an application that exits on it the same way: the guard's refusal of a database
    /// that is behind is 3.
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }

    /// How to treat it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Schema { state, .. } if matches!(**state, SchemaState::Behind { .. }) => {
                ErrorKind::Behind
            }
            Self::Schema { .. } => ErrorKind::Unsafe,
            Self::History(
                crate::engine::history::HistoryRefusal::Unsafe(_)
                | crate::engine::history::HistoryRefusal::OtherChanges { .. },
            ) => ErrorKind::Unsafe,
            Self::StandbyBehind { .. } => ErrorKind::Behind,
            Self::TransactionPooler { .. }
            | Self::Standby { .. }
            | Self::PoolerRefusedParameter { .. } => ErrorKind::Usage,
            Self::LockTimeout { .. } | Self::TableLockTimeout { .. } => ErrorKind::LockTimeout,
            // Any SQLite lock wait that ran out is a lock timeout, whatever was waiting.
            Self::Database { source, .. }
                if crate::backend::sqlite::is_lock_wait(source.database_error()) =>
            {
                ErrorKind::LockTimeout
            }
            // The SQL failed: a failure, which also leaves the state interrupted.
            Self::MigrationInterrupted { .. } => ErrorKind::Failure,
            Self::DowngradeRefused { .. }
            | Self::Plan(_)
            | Self::History(_)
            | Self::Source(_)
            | Self::NothingToRecover
            | Self::NoCurrentSchema { .. }
            | Self::StateInOtherSchema { .. }
            | Self::InstalledTwice
            | Self::NotInstalled
            | Self::NoRuntime
            | Self::NothingToRedo
            | Self::CannotRedo { .. }
            | Self::ChangedMigrationKept { .. }
            | Self::ChangedRevertNotAlone { .. }
            | Self::NoRecordedDownSql { .. }
            | Self::UnknownRevision(_)
            | Self::TestServerUrl { .. } => ErrorKind::Usage,
            Self::GuardRuntime(_)
            | Self::GuardPanicked
            | Self::ScratchFile { .. }
            | Self::Internal(_)
            | Self::AnyUrl(_) => ErrorKind::Failure,
            Self::Restore(e) if e.is_usage() => ErrorKind::Usage,
            Self::Restore(crate::backup::RestoreError::InUse { .. }) => ErrorKind::LockTimeout,
            Self::Restore(_) => ErrorKind::Failure,
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Migration { .. }
            | Self::TransactionEnded { .. }
            | Self::Database { .. }
            | Self::ConnectionLost { .. }
            | Self::Backup(_) => ErrorKind::Failure,
        }
    }

    pub(crate) fn database(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn connect(url: impl Into<String>, source: sqlx::Error) -> Self {
        let refused = source.as_database_error().and_then(|e| {
            e.message()
                .strip_prefix("unsupported startup parameter: ")
                .map(|parameter| parameter.trim().to_owned())
        });
        if let Some(parameter) = refused {
            return Self::PoolerRefusedParameter {
                url: url.into(),
                parameter,
                source: source.into(),
            };
        }
        Self::Connect {
            url: url.into(),
            source: source.into(),
        }
    }
}

/// What the database driver reported: for an error the database returned, its message with
/// PostgreSQL's DETAIL and HINT, never the server's own source file, line and routine.
/// sqlx's `Display` of a PostgreSQL error ends in " at line N" of the server's C source,
/// which reads like a line of the user's file, and its `Debug` shows file and routine too;
/// this type shows neither, and is the cause of every error that carries a driver error.
pub struct DriverError(sqlx::Error);

impl DriverError {
    /// The driver's error, for programs that inspect it (its SQLSTATE, its kind).
    pub fn database_error(&self) -> &sqlx::Error {
        &self.0
    }
}

impl From<sqlx::Error> for DriverError {
    fn from(error: sqlx::Error) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", ServerMessage::of(&self.0))
    }
}

impl std::fmt::Debug for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = ServerMessage::of(&self.0);
        f.debug_struct("DriverError")
            .field("message", &shown.message)
            .field("code", &shown.code)
            .field("detail", &shown.detail)
            .field("hint", &shown.hint)
            .finish()
    }
}

/// Its text is whole: the driver's error inside adds nothing but the server's source line.
impl std::error::Error for DriverError {}

/// A driver error as a person reads it: the one place that decides what of a server's
/// error is shown (message, code, DETAIL, HINT) and what never is (the server's source
/// file, line and routine).
pub(crate) struct ServerMessage {
    /// The database's message, or the driver's own text for an error that did not come
    /// from the database (a refused connection, a TLS failure).
    pub(crate) message: String,
    /// The SQLSTATE (PostgreSQL) or result code (SQLite).
    pub(crate) code: Option<String>,
    /// PostgreSQL's DETAIL.
    pub(crate) detail: Option<String>,
    /// PostgreSQL's HINT.
    pub(crate) hint: Option<String>,
    /// Whether it came from PostgreSQL (its code is a SQLSTATE).
    pub(crate) postgres: bool,
}

impl ServerMessage {
    pub(crate) fn of(error: &sqlx::Error) -> Self {
        let Some(db) = error.as_database_error() else {
            return Self {
                message: driver_words(error),
                code: None,
                detail: None,
                hint: None,
                postgres: false,
            };
        };
        let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
        Self {
            message: db.message().to_owned(),
            code: db.code().map(|c| c.into_owned()),
            detail: pg.and_then(|e| e.detail()).map(str::to_owned),
            hint: pg.and_then(|e| e.hint()).map(str::to_owned),
            postgres: pg.is_some(),
        }
    }
}

/// An error that did not come from the database, in a person's words: a closed or reset
/// connection is said as such, not as the bytes the driver missed; a TLS library's link to
/// its manual and the driver's own source location (`(sqlx_postgres::…:95)`) are left out.
fn driver_words(error: &sqlx::Error) -> String {
    use std::io::ErrorKind as Io;
    match error {
        sqlx::Error::Io(io) => match io.kind() {
            Io::UnexpectedEof | Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => {
                "the server closed the connection".to_owned()
            }
            Io::ConnectionRefused => {
                "the connection was refused (is the server running there?)".to_owned()
            }
            Io::TimedOut => "the connection timed out".to_owned(),
            _ => format!("the connection failed: {io}"),
        },
        sqlx::Error::Tls(tls) => {
            let text = tls.to_string();
            if text.contains("close_notify") || text.contains("unexpected EOF") {
                "the server closed the connection".to_owned()
            } else {
                format!("TLS failed: {}", without_link(&text))
            }
        }
        sqlx::Error::PoolTimedOut => "no connection of the pool was free in time".to_owned(),
        sqlx::Error::PoolClosed => "the connection pool was closed".to_owned(),
        other => without_source_location(&other.to_string()).to_owned(),
    }
}

/// `text` without a trailing `: https://…` link.
fn without_link(text: &str) -> &str {
    text.find(": http").map_or(text, |at| &text[..at])
}

/// `text` without the driver's trailing source location, as ` (sqlx_postgres::connection::tls:95)`.
fn without_source_location(text: &str) -> &str {
    let Some(open) = text.rfind(" (") else {
        return text;
    };
    let inside = text[open + 2..].strip_suffix(')').unwrap_or("");
    let located = inside.contains("::")
        && inside
            .rsplit_once(':')
            .is_some_and(|(_, line)| !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()));
    if located { &text[..open] } else { text }
}

/// The message, then DETAIL and HINT on lines of their own.
impl std::fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_server_message(
            f,
            &self.message,
            None,
            self.detail.as_deref(),
            self.hint.as_deref(),
        )
    }
}

/// How a database's message is written everywhere: the message, its code when given
/// (`(SQLSTATE 42P07)`), then DETAIL and HINT on lines of their own.
fn write_server_message(
    f: &mut std::fmt::Formatter<'_>,
    message: &str,
    code: Option<(&str, &str)>,
    detail: Option<&str>,
    hint: Option<&str>,
) -> std::fmt::Result {
    f.write_str(message)?;
    if let Some((name, code)) = code {
        write!(f, " ({name} {code})")?;
    }
    if let Some(detail) = detail {
        write!(f, "\n    DETAIL: {detail}")?;
    }
    if let Some(hint) = hint {
        write!(f, "\n    HINT: {hint}")?;
    }
    Ok(())
}

/// An error and each of its causes, joined by ": ", for one line of text (a log field, a
/// JSON value, a panic message) where a program cannot show the causes apart.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// A session that held a lock an upgrade waited for (never its query text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// The server process id (`pg_stat_activity.pid`).
    pub pid: i32,
    /// Its `application_name`, if it set one.
    pub application: Option<String>,
    /// How long its transaction had been open when it was seen.
    pub transaction_age: Option<Duration>,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(application) = self.application.as_deref().filter(|a| !a.is_empty()) {
            write!(f, " (application '{application}'")?;
        } else {
            f.write_str(" (no application name")?;
        }
        match self.transaction_age {
            Some(age) => write!(f, ", transaction open for {:.0}s)", age.as_secs_f64()),
            None => f.write_str(", no transaction open)"),
        }
    }
}

fn describe_blockers(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return "The sessions holding them could not be seen (they may have just finished)"
            .to_owned();
    }
    let list: Vec<String> = blockers.iter().map(ToString::to_string).collect();
    format!("Held by {}", list.join(", "))
}

/// Where a statement is in its migration file: line and, when the database said, column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLocation {
    /// The line in the file (1-based).
    pub line: u32,
    /// The column (1-based, in characters), when the database pointed at one.
    pub column: Option<u32>,
    /// The statement's first line of SQL.
    pub text: String,
}

impl std::fmt::Display for StatementLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.line)?;
        if let Some(column) = self.column {
            write!(f, ":{column}")?;
        }
        write!(f, " (`{}`)", self.text)
    }
}

/// A failed statement of a migration: where it is, and the database's message, shown once
/// (with its DETAIL and HINT, without the server's own source position).
#[derive(Debug)]
pub struct StatementError {
    /// Where the statement is in the file, when it could be found.
    pub location: Option<StatementLocation>,
    /// The database's message.
    pub message: String,
    /// The SQLSTATE (PostgreSQL) or result code (SQLite).
    pub code: Option<String>,
    /// PostgreSQL's DETAIL.
    pub detail: Option<String>,
    /// PostgreSQL's HINT.
    pub hint: Option<String>,
    /// What to do, when calista knows better than the database.
    pub advice: Option<&'static str>,
    /// `SQLSTATE` or `SQLite code`: how the code is named.
    code_name: &'static str,
    error: DriverError,
}

impl StatementError {
    pub(crate) fn new(error: sqlx::Error, location: Option<StatementLocation>) -> Box<Self> {
        let ServerMessage {
            message,
            code,
            detail,
            hint,
            postgres,
        } = ServerMessage::of(&error);
        let advice = match code.as_deref() {
            // active_sql_transaction: CREATE INDEX CONCURRENTLY, VACUUM, … in a transaction.
            Some("25001") => Some(
                "this statement cannot run inside a transaction: mark the file `-- calista:no-transaction` \
                 (it then runs alone, one statement at a time)",
            ),
            // disk_full; SQLITE_FULL.
            Some("53100") => {
                Some("the server's disk is full: free space on it, then run the command again")
            }
            Some("13") if !postgres => Some(
                "the disk of the database file is full: free space on it, then run the command again",
            ),
            _ => None,
        };
        Box::new(Self {
            location,
            message,
            detail,
            hint,
            code,
            advice,
            code_name: if postgres { "SQLSTATE" } else { "SQLite code" },
            error: DriverError(error),
        })
    }

    /// The driver's error, for programs that inspect it.
    pub fn database_error(&self) -> &sqlx::Error {
        self.error.database_error()
    }
}

impl std::fmt::Display for StatementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_server_message(
            f,
            &self.message,
            self.code.as_deref().map(|code| (self.code_name, code)),
            self.detail.as_deref(),
            self.hint.as_deref(),
        )
    }
}

/// The driver's error is not a cause of its own: its text is the message shown above.
impl std::error::Error for StatementError {}

/// What a state that is behind means, without advice on upgrading (a standby's).
fn describe_state_only(state: &SchemaState) -> String {
    match state {
        SchemaState::Behind {
            current,
            head,
            pending,
        } => format!(
            "the database schema is behind: it is {}, this build expects {head} ({pending} pending)",
            position(current)
        ),
        other => describe_state(other, &Hints::default(), None),
    }
}

/// Where a database is: "at revision R", or empty.
pub(crate) fn position(current: &Option<impl std::fmt::Display>) -> String {
    current.as_ref().map_or_else(
        || "empty (no revision)".to_owned(),
        |c| format!("at revision {c}"),
    )
}

/// The message for a state the guard refuses.
fn describe_state(
    state: &SchemaState,
    hints: &Hints,
    app_version: Option<&semver::Version>,
) -> String {
    let Hints {
        upgrade,
        auto_upgrade,
        new_migration,
        recover,
        history,
        adopt,
        repair,
        ..
    } = hints;
    match state {
        SchemaState::UpToDate { .. } => "the database schema is up to date".to_owned(),
        SchemaState::BelowBaseline {
            current,
            through,
            release,
        } => format!(
            "the database is at revision {current}, one of the migrations up to {through} that this build \
             replaced with a baseline: it cannot upgrade it. Upgrade it first with release {release} (the \
             oldest that still has those migrations), then with this one; the database was not touched"
        ),
        SchemaState::Managed { tool } => format!(
            "the database is managed by {tool} (its table {}) and calista has recorded nothing in it yet: \
             record what {tool} applied, without running any of it, with {adopt}. An upgrade never adopts \
             on its own: running the imported migrations again would fail or do harm. The database was not touched",
            tool.history_table()
        ),
        SchemaState::Behind {
            current,
            head,
            pending,
        } => {
            let at = position(current);
            let plural = if *pending == 1 {
                "migration is"
            } else {
                "migrations are"
            };
            format!(
                "the database schema is behind: it is {at}, this build expects {head}; {pending} {plural} pending. \
                 {}, or {auto_upgrade}",
                capitalized(upgrade)
            )
        }
        SchemaState::Ahead {
            current,
            applied_by: Some(version),
        } if semver::Version::parse(version)
            .ok()
            .zip(app_version)
            .is_some_and(|(theirs, ours)| theirs <= *ours) =>
        {
            let who = match app_version {
                Some(ours) if ours.to_string() == *version => {
                    format!("this same version ({version})")
                }
                _ => format!("an older version ({version})"),
            };
            format!(
                "the database is at revision {current}, which this build does not know, though {who} of the \
                 application applied it: its migration file was probably deleted or renamed, or the migrations \
                 were read from the wrong folder. Restore the file; the database was not touched"
            )
        }
        SchemaState::Ahead {
            current,
            applied_by: Some(version),
        } => format!(
            "the database is at revision {current}, which this build does not know: it was applied by version \
             {version} of the application. Update this program to {version} or later; the database was not touched"
        ),
        SchemaState::Ahead {
            current,
            applied_by: None,
        } => format!(
            "the database is at revision {current}, which this build does not know, and no history records it \
             (alembic_version may have been edited by hand). Use the program that applied it; the database was not touched"
        ),
        SchemaState::Modified { changed, missing } => {
            let mut parts = Vec::new();
            if !changed.is_empty() {
                let files: Vec<&str> = changed.iter().map(|(_, f)| f.as_str()).collect();
                parts.push(format!(
                    "applied migrations were edited since: {}",
                    files.join(", ")
                ));
            }
            if !missing.is_empty() {
                parts.push(format!(
                    "applied revisions are missing from this build: {}",
                    missing.join(", ")
                ));
            }
            let accept = if changed.is_empty() {
                String::new()
            } else {
                format!(" If an edit was intended (a comment, say), accept it with {repair}.")
            };
            format!(
                "{}. An applied migration must never change: restore the original file(s) and put the change in \
                 {new_migration}; the database was not touched.{accept}",
                parts.join("; ")
            )
        }
        SchemaState::OutOfOrder { current, unapplied } => {
            let files: Vec<&str> = unapplied.iter().map(|(_, f)| f.as_str()).collect();
            format!(
                "migrations older than the current revision {current} were never applied: {}. They were probably \
                 merged late: rename each to a new timestamp after {current} (as {new_migration} would be named); \
                 the database was not touched",
                files.join(", ")
            )
        }
        SchemaState::Interrupted {
            revision,
            summary,
            started_at,
            direction,
        } => format!(
            "migration {revision}_{summary} ({direction}, no-transaction) started at {started_at} and did not finish, \
             so the schema may be half-changed. Inspect it (for example, an index left INVALID by CREATE INDEX \
             CONCURRENTLY: `SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid`), undo any partial change, \
             then {recover}"
        ),
        SchemaState::Corrupt(Corruption::NoVersionRow { last_applied }) => format!(
            "alembic_version has no row, but schema_history shows {last_applied} applied: the version table was \
             probably edited by hand. Put the revision back with \
             `INSERT INTO alembic_version (version_num) VALUES ('{last_applied}')` once you have checked the schema"
        ),
        SchemaState::Corrupt(Corruption::SeveralVersionRows { found }) => format!(
            "alembic_version holds several rows ({}…) but must hold exactly one: it was probably edited by hand. \
             Delete all but the revision the schema is really at",
            found.join(", ")
        ),
        SchemaState::Corrupt(Corruption::HistoryMismatch { current }) => format!(
            "schema_history does not match the migrations applied up to {current}: it was probably edited by hand. \
             Compare {history} with the files; the database was not touched"
        ),
    }
}

/// A clause as the start of a sentence.
fn capitalized(clause: &str) -> String {
    let mut chars = clause.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<PlanRefusal> for Error {
    fn from(refusal: PlanRefusal) -> Self {
        Self::Plan(refusal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::engine::plan::Corruption;
    use crate::naming::Revision;

    fn rev(text: &str) -> Revision {
        Revision::parse(text).unwrap()
    }

    /// Every state the guard refuses, and the errors that carry hints.
    fn refusals(hints: &Hints) -> Vec<String> {
        let states = [
            SchemaState::Behind {
                current: Some(rev("20250101_0000")),
                head: rev("20250102_0000"),
                pending: 1,
            },
            SchemaState::Ahead {
                current: "20260101_0000".into(),
                applied_by: Some("2.0.0".into()),
            },
            SchemaState::Ahead {
                current: "20260101_0000".into(),
                applied_by: None,
            },
            SchemaState::Ahead {
                current: "20260101_0000".into(),
                applied_by: Some("1.0.0".into()),
            },
            SchemaState::Modified {
                changed: vec![(rev("20250101_0000"), "20250101_0000_a.sql".into())],
                missing: vec!["20250102_0000".into()],
            },
            SchemaState::OutOfOrder {
                current: rev("20250103_0000"),
                unapplied: vec![(rev("20250102_0000"), "20250102_0000_b.sql".into())],
            },
            SchemaState::Interrupted {
                revision: crate::Revision::parse("20250101_0000").unwrap(),
                summary: "a".into(),
                started_at: "2025-01-01T00:00:00Z".into(),
                direction: Direction::Up,
            },
            SchemaState::Corrupt(Corruption::NoVersionRow {
                last_applied: "20250101_0000".into(),
            }),
            SchemaState::Corrupt(Corruption::SeveralVersionRows {
                found: vec!["20250101_0000".into(), "20250102_0000".into()],
            }),
            SchemaState::Corrupt(Corruption::HistoryMismatch {
                current: rev("20250101_0000"),
            }),
        ];
        let mut messages: Vec<String> = states
            .into_iter()
            .map(|state| {
                Error::Schema {
                    state: Box::new(state),
                    hints: Box::new(hints.clone()),
                    app_version: semver::Version::parse("1.0.0").ok(),
                }
                .to_string()
            })
            .collect();
        messages.push(
            Error::DowngradeRefused {
                environment: crate::Environment::Production,
                new_migration: hints.new_migration.clone(),
                allow: hints.allow_downgrade.clone(),
            }
            .to_string(),
        );
        messages.push(
            Error::MigrationInterrupted {
                file: "20250101_0000_a.sql".into(),
                recover: hints.recover.clone(),
                source: StatementError::new(
                    sqlx::Error::Protocol("the server went away".into()),
                    None,
                ),
            }
            .to_string(),
        );
        messages.push(
            Error::ConnectionLost {
                doing: "committing the migration transaction".into(),
                file: None,
                after: AfterLoss::Unknown {
                    before: Some("20250101_0000".into()),
                    status: hints.status.clone(),
                },
            }
            .to_string(),
        );
        messages
    }

    /// A downgrade or a redo loses its connection as an upgrade does: the advice is to run
    /// the command again, whichever it was.
    #[test]
    fn a_lost_connection_says_to_run_the_command_again_whichever_it_was() {
        for after in [
            AfterLoss::RolledBack {
                kept: Some("20250101_0000".into()),
            },
            AfterLoss::Unknown {
                before: Some("20250101_0000".into()),
                status: "`app status`".into(),
            },
            AfterLoss::Unchanged,
        ] {
            let message = Error::ConnectionLost {
                doing: "running a migration".into(),
                file: None,
                after,
            }
            .to_string();
            assert!(message.contains("run the command again"), "{message}");
            assert!(!message.contains("upgrade"), "{message}");
        }
    }

    #[test]
    fn default_hints_name_no_program_variable_or_file_of_ours() {
        for message in refusals(&Hints::default()) {
            let lower = message.to_lowercase();
            assert!(!lower.contains("calista"), "{message}");
            assert!(!message.contains("--"), "no flag of ours: {message}");
        }
    }

    #[test]
    fn the_applications_hints_appear_in_its_errors() {
        let hints = Hints {
            upgrade: "run `shop migrate` to apply them".into(),
            auto_upgrade: "set SHOP_MIGRATE_ON_START=1".into(),
            new_migration: "`shop new-migration`".into(),
            recover: "run `shop repair`".into(),
            history: "`shop migrations`".into(),
            allow_downgrade: "set SHOP_STAGE=dev".into(),
            status: "`shop status`".into(),
            adopt: "`shop adopt`".into(),
            repair: "`shop accept-edit`".into(),
        };
        let messages = refusals(&hints);
        assert!(messages[0].contains(
            "1 migration is pending. Run `shop migrate` to apply them, or set SHOP_MIGRATE_ON_START=1"
        ));
        assert!(
            messages[4].contains("`shop new-migration`"),
            "{}",
            messages[4]
        );
        assert!(messages[6].contains("run `shop repair`"), "{}", messages[6]);
        assert!(messages[9].contains("`shop migrations`"), "{}", messages[9]);
        assert!(
            messages[10].contains("set SHOP_STAGE=dev"),
            "{}",
            messages[10]
        );
        assert!(
            messages[12].contains("is unknown")
                && messages[12].contains("Check with `shop status`"),
            "{}",
            messages[12]
        );
        for message in &messages {
            assert!(!message.to_lowercase().contains("calista"), "{message}");
        }
    }

    #[test]
    fn a_connection_lost_before_commit_says_the_revision_kept_and_no_driver_words() {
        let error = Error::ConnectionLost {
            doing: "running a migration".into(),
            file: Some("20250102_0000_b.sql".into()),
            after: AfterLoss::RolledBack {
                kept: Some("20250101_0000".into()),
            },
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "the connection to the database was lost while running a migration (20250102_0000_b.sql); \
                 COMMIT had not been sent"
            ),
            "{text}"
        );
        assert!(text.contains("still at revision 20250101_0000"), "{text}");
        assert!(
            std::error::Error::source(&error).is_none(),
            "no driver cause: {error:?}"
        );
        assert_eq!(error.kind(), ErrorKind::Failure);
    }

    #[test]
    fn a_failed_migration_says_why_once() {
        let error = Error::Migration {
            file: "20250101_0000_a.sql".into(),
            direction: Direction::Up,
            kept: None,
            source: StatementError::new(
                sqlx::Error::Protocol("relation \"gone\" does not exist".into()),
                None,
            ),
        };
        // The cause is the source, never in the message: the chain says it once.
        let text = error.to_string();
        assert!(!text.contains("gone"), "{text}");
        let chain = with_causes(&error);
        assert_eq!(
            chain.matches("relation \"gone\" does not exist").count(),
            1,
            "{chain}"
        );
        assert!(
            text.starts_with("migration 20250101_0000_a.sql failed (up); "),
            "{text}"
        );
    }

    #[test]
    fn the_ahead_message_compares_versions() {
        let ahead = |applied_by: &str, ours: &str| {
            Error::Schema {
                state: Box::new(SchemaState::Ahead {
                    current: "20250103_0000".into(),
                    applied_by: Some(applied_by.into()),
                }),
                hints: Box::default(),
                app_version: semver::Version::parse(ours).ok(),
            }
            .to_string()
        };
        // A newer version applied it: update the program.
        assert!(ahead("2.10.0", "2.9.0").contains("Update this program to 2.10.0"));
        // This version or an older one applied it: a file went missing from this build.
        assert!(ahead("2.1.0", "2.1.0").contains("this same version (2.1.0)"));
        assert!(ahead("1.9.9", "2.0.0").contains("an older version (1.9.9)"));
        assert!(ahead("1.9.9", "2.0.0").contains("deleted or renamed"));
        // Not a version, or ours unknown: say who applied it.
        assert!(ahead("nightly", "2.0.0").contains("Update this program to nightly"));
    }

    /// What the driver says of a connection that broke reads as a closed connection, with no
    /// byte counts, no link to a TLS library's manual and no source location of the driver.
    #[test]
    fn driver_errors_read_in_plain_words() {
        let eof = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes, got 0 bytes at EOF",
        ));
        let tls = sqlx::Error::Tls(
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof"
                .into(),
        );
        for error in [eof, tls] {
            assert_eq!(
                ServerMessage::of(&error).to_string(),
                "the server closed the connection"
            );
        }
        let certificate = sqlx::Error::Tls(
            "invalid peer certificate: UnknownIssuer: https://docs.rs/rustls/latest".into(),
        );
        assert_eq!(
            ServerMessage::of(&certificate).to_string(),
            "TLS failed: invalid peer certificate: UnknownIssuer"
        );
        let protocol = sqlx::Error::Protocol(
            "unexpected response from SSLRequest: 0x00 (sqlx_postgres::connection::tls:95)".into(),
        );
        assert_eq!(
            ServerMessage::of(&protocol).to_string(),
            "encountered unexpected or invalid data: unexpected response from SSLRequest: 0x00"
        );
        let parenthesis = sqlx::Error::Protocol("a reply (of 3 bytes)".into());
        assert!(
            ServerMessage::of(&parenthesis)
                .to_string()
                .ends_with("(of 3 bytes)")
        );
    }

    /// A loss while nothing was being changed says so and names no driver words.
    #[test]
    fn a_connection_lost_while_taking_the_lock_says_nothing_was_changing() {
        let error = crate::backend::postgres::describe(
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
            "taking the migration lock",
        );
        let text = error.to_string();
        assert!(
            text.starts_with(
                "the connection to the database was lost while taking the migration lock; \
                 this was not changing the database"
            ),
            "{text}"
        );
        assert!(std::error::Error::source(&error).is_none(), "{error:?}");
        assert_eq!(error.exit_code(), 1);
    }
}
