//! The `db` command group's clap types; nothing here touches a database.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// The options of the `db` commands, global (accepted before or after the command).
///
/// Each one has an environment variable and a configuration-file key too, named after
/// the application (see [`crate::settings::AppNames`]).
#[derive(Debug, Clone, Default, Args)]
#[non_exhaustive]
pub struct DbOptions {
    /// Configuration file (default: the application's `<name>.toml`, if it exists)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Database URL, e.g. postgresql://user@host/db or sqlite:///app.db
    #[arg(long, global = true, value_name = "URL")]
    pub db_url: Option<String>,

    /// Upgrade the schema to head at start-up instead of refusing when it is behind
    #[arg(long, global = true)]
    pub auto_upgrade: bool,

    /// Do not take a backup before upgrading
    #[arg(long, global = true)]
    pub no_backup: bool,

    /// Use the migrations in this folder instead of the ones built in (same checks)
    #[arg(long, global = true, value_name = "DIR")]
    pub migrations: Option<PathBuf>,

    /// Output format, for commands that scripts read
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// More detail on stderr (-v: steps, -vv: debug)
    ///
    /// For the application's log subscriber: the library emits `tracing` events and
    /// installs no subscriber.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// How results are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum Format {
    /// For people.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
}

/// The `db` commands: upgrade, inspect, and in development downgrade the schema.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum DbCommand {
    /// Apply pending migrations (backup first, under the migration lock).
    Upgrade {
        /// Stop at this revision (YYYYMMDD_HHMM) instead of the newest.
        #[arg(long, value_name = "REV")]
        to: Option<String>,
        /// Print the SQL that would run, version-table statements included; change nothing.
        #[arg(long, conflicts_with = "targets")]
        sql: bool,
        /// Many databases at once.
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Revert migrations: to a revision, `-1` (one step) or `base`. Development and CI only.
    Downgrade {
        /// A revision id, -N, or base.
        #[arg(allow_hyphen_values = true)]
        target: String,
    },
    /// Print the database's current revision.
    Current,
    /// Reachability, backend, URL, current and head revisions, pending count, state.
    Status {
        /// Many databases at once.
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Every revision, applied or not, when, and how (applied, adopted, stamped, repaired).
    History,
    /// The head revision of the migrations.
    Heads,
    /// Exit 0 only when the schema is up to date (for CI and health checks).
    Check {
        /// Many databases at once.
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Check a migrations folder as the build does, lint included (never connects);
    /// exit 0 only when clean.
    Lint,
    /// Write calista migration files from another tool's migrations (sqlx, diesel, refinery,
    /// Alembic), in their order and with their dates; never overwrites (never connects).
    Import(ImportArgs),
    /// Write a new migration file named with the current UTC time.
    New {
        /// Short summary: lowercase words joined by underscores, e.g. add_user_email.
        summary: String,
    },
    /// List the backups taken before upgrades.
    Backups,
    /// Bring the database back exactly as a backup holds it. Stop the application first.
    /// Development and CI; production needs --yes.
    Restore {
        /// The backup file (as `db backups` lists it, or as an upgrade printed it).
        backup: PathBuf,
        /// Confirm: replace the database with the backup (required in production).
        #[arg(long)]
        yes: bool,
    },
    /// Revert the newest migration with the down SQL it was applied with, then apply its
    /// file as it is now: for editing an unreleased migration. Development and CI only.
    Redo,
    /// Check the migrations on scratch databases: each down restores the schema and the rows
    /// its up found, and PostgreSQL and SQLite build the same logical schema. Exit 0 only
    /// when clean.
    Verify {
        /// A PostgreSQL server to create the scratch database on (and drop it after), e.g.
        /// postgresql://postgres@localhost/postgres; the role needs CREATEDB. Else the
        /// application's own variable (MYAPP_VERIFY_PG_URL for myapp; CALISTA_VERIFY_PG_URL for calista)
        #[arg(long, value_name = "URL")]
        pg_url: Option<String>,
        /// A folder of `<revision>.sql` files (e.g. 20250101_0000.sql): SQL run right after
        /// that revision's up, on both dialects; the rows it inserts must survive every later
        /// revision's up and down
        #[arg(long, value_name = "DIR")]
        seed: Option<PathBuf>,
    },
    /// Record what another migration tool (sqlx, diesel, refinery, Alembic) applied to this
    /// database as applied, from the files `db import` wrote, running none of it; that tool's
    /// table is left as it is. Production needs --yes.
    Adopt {
        /// Confirm (required in production).
        #[arg(long)]
        yes: bool,
    },
    /// Mark the database as at REV without running anything, once its live schema matches
    /// what the migrations up to REV build on a scratch database (a difference is refused
    /// with the diff). Production needs --yes.
    Stamp {
        /// The revision the database is at (YYYYMMDD_HHMM).
        #[arg(value_name = "REV")]
        revision: String,
        /// Record the stamp even though the schema differs (the differences are noted).
        #[arg(long)]
        force: bool,
        /// Confirm (required in production).
        #[arg(long)]
        yes: bool,
    },
    /// Replace the migration files up to REV with one baseline (a section per dialect) that
    /// builds the same schema, checked first on scratch PostgreSQL and SQLite databases.
    /// Databases at or past REV run nothing; ones before it are told to upgrade with
    /// --release first (never connects to the configured database).
    Squash {
        /// The last migration to replace (YYYYMMDD_HHMM); the baseline takes its revision.
        #[arg(long, value_name = "REV")]
        through: String,
        /// The oldest release that still has the replaced files: what a database before REV
        /// must be upgraded with first.
        #[arg(long, value_name = "VERSION")]
        release: String,
        /// A PostgreSQL server to check the baseline on (a scratch database, dropped after);
        /// the role needs CREATEDB. Else the application's own variable (MYAPP_VERIFY_PG_URL
        /// for myapp; CALISTA_VERIFY_PG_URL for calista)
        #[arg(long, value_name = "URL")]
        pg_url: Option<String>,
    },
    /// Accept an intended edit of an applied migration: the history keeps the checksum it
    /// was applied with, the new one, when and why, and the guard passes again. Runs no SQL of
    /// the migration. Production needs --yes.
    Repair {
        /// The applied migration whose edit to accept (YYYYMMDD_HHMM).
        #[arg(long, value_name = "REV")]
        accept: String,
        /// Why the edit is safe to accept, recorded with it.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Confirm (required in production).
        #[arg(long)]
        yes: bool,
    },
    /// Resolve a no-transaction migration that was interrupted.
    Recover {
        /// Forget the interrupted attempt; the next upgrade runs it again.
        #[arg(
            long,
            conflicts_with = "mark_applied",
            required_unless_present = "mark_applied"
        )]
        retry: bool,
        /// It did complete: record it as applied.
        #[arg(long)]
        mark_applied: bool,
    },
}

impl DbCommand {
    /// The fleet options of a command that takes them, when `--targets` is given.
    pub(crate) fn fleet(&self) -> Option<&FleetArgs> {
        match self {
            Self::Upgrade { fleet, .. } | Self::Check { fleet } | Self::Status { fleet }
                if fleet.targets.is_some() =>
            {
                Some(fleet)
            }
            _ => None,
        }
    }
}

/// Many databases at once, for `db upgrade`, `db check` and `db status`: `--targets FILE`.
#[derive(Debug, Clone, Default, Args)]
#[non_exhaustive]
pub struct FleetArgs {
    /// Run on every database in FILE instead of the configured one: a database URL and
    /// optionally a schema name a line (`#` comments)
    ///
    /// Each target keeps its own migration lock, backup and history (a schema per tenant: the
    /// schema holds calista's tables and the migrations' objects); one that fails does not stop
    /// the others. Bad lines are reported, by number, before anything runs. The end is a
    /// summary (or, with --format json, one record per target). Running the same file again
    /// finishes what is left. Exit code: 0 when every target succeeded; otherwise the most
    /// severe of the targets' own codes, in this order: 2, 1, 4, 5, 3.
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,

    /// With --targets: how many targets at once [default: 8]
    ///
    /// On PostgreSQL each target being worked on uses one connection (two while it waits for a
    /// table lock, plus pg_dump's while it backs up): targets on one server see up to about twice
    /// N connections from this run.
    #[arg(long, value_name = "N", requires = "targets", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,

    /// With --targets: only share I of N (I from 0), e.g. --shard $(JOB_COMPLETION_INDEX)/4
    ///
    /// A target's share is a hash of its own line (URL without password, and schema), so
    /// editing other lines never moves it; the N shares are disjoint and cover the file.
    #[arg(long, value_name = "I/N", requires = "targets")]
    pub shard: Option<crate::fleet::Shard>,
}

/// `db import`: which tool's migrations, where, and for which dialect.
#[derive(Debug, Clone, Args)]
#[non_exhaustive]
pub struct ImportArgs {
    /// The tool that wrote the migrations
    #[arg(long = "from", value_enum, value_name = "TOOL")]
    pub tool: ImportTool,
    /// Its migrations folder; for Alembic, the file `alembic upgrade base:head --sql` wrote
    #[arg(value_name = "SRC")]
    pub source: PathBuf,
    /// The dialect the SQL was written for: its sections get the SQL; the other dialect's
    /// fail on purpose until written (`both`: shared sections)
    #[arg(long, value_enum)]
    pub dialect: ImportDialect,
    /// Where to write the files (default: --migrations DIR, else ./migrations)
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// The revision id (YYYYMMDD_HHMM) of the first migration without a date of its own
    /// (refinery, Alembic, sqlx's integer versions); each next one is a minute later
    #[arg(long, value_name = "REV")]
    pub start: Option<String>,
    /// Alembic: the file `alembic downgrade head:base --sql` wrote, for the down sections
    /// (without it, every revision is irreversible)
    #[arg(long, value_name = "FILE")]
    pub alembic_downgrade: Option<PathBuf>,
}

/// A tool `db import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum ImportTool {
    /// sqlx: `<version>_<description>.sql`, or `.up.sql` and `.down.sql`.
    Sqlx,
    /// diesel: `<version>_<name>/up.sql`, `down.sql`, `metadata.toml`.
    Diesel,
    /// refinery: `V<version>__<name>.sql`.
    Refinery,
    /// Alembic: the SQL `alembic upgrade --sql` renders.
    Alembic,
}

/// The dialect imported SQL was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum ImportDialect {
    /// PostgreSQL only.
    Postgres,
    /// SQLite only.
    Sqlite,
    /// Both: the SQL goes into shared sections.
    Both,
}

/// The `db` command group with its options: what an application puts in its own parser,
/// as `Db(calista::cli::DbArgs)` in its subcommand enum.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The options.
    #[command(flatten)]
    pub options: DbOptions,
    /// The command.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// The `config` commands: the application's settings. Never connects.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum ConfigCommand {
    /// Print each resolved setting and where it came from (never connects).
    Show,
}

/// The `config` command group with its options: `Config(calista::cli::ConfigArgs)` in the
/// application's subcommand enum gives `myapp config show`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The options.
    #[command(flatten)]
    pub options: DbOptions,
    /// The command.
    #[command(subcommand)]
    pub command: ConfigCommand,
}
