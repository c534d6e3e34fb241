//! The command line, all of it: clap types only; nothing here touches a database.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shown after `--help`: the exit codes scripts can rely on.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure: a migration's SQL failed, a backup failed, the database is unreachable, ...
  2  usage or configuration error
  3  schema behind: the guard refused, or `db check` found pending migrations
  4  schema unsafe: ahead of this build, modified, out of order, interrupted
  5  the migration lock timed out, or a migration's table locks did (PostgreSQL)

Settings come from flags, then the environment (CALISTA_*), then calista.toml, then defaults;
`calista config show` prints each one and where it came from.";

/// CALISTA: an event-sourced data pipeline, and its schema migrations.
#[derive(Debug, Parser)]
#[command(name = "calista", version, about, after_help = EXIT_CODES, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Configuration file [default: ./calista.toml if it exists] [env: CALISTA_CONFIG]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// Database URL, e.g. postgresql://user@host/db or sqlite:///calista.db [env: CALISTA_DB_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) db_url: Option<String>,

    /// Upgrade the schema to head at start-up instead of refusing when it is behind
    /// [env: CALISTA_AUTO_UPGRADE]
    #[arg(long, global = true)]
    pub(crate) auto_upgrade: bool,

    /// Do not take a backup before upgrading [env: CALISTA_BACKUP=0]
    #[arg(long, global = true)]
    pub(crate) no_backup: bool,

    /// Use the migrations in this folder instead of the ones built in (same checks)
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) migrations: Option<PathBuf>,

    /// Output format, for commands that scripts read
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub(crate) format: Format,

    /// More detail on stderr (-v: steps, -vv: debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    Human,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the version.
    Version,
    /// Settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The database schema: upgrade, inspect, and (in development) downgrade.
    #[command(subcommand)]
    Db(DbCommand),
    /// CALISTA's event store.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print each resolved setting and where it came from (never connects).
    Show,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Apply pending migrations (backup first, under the migration lock).
    Upgrade {
        /// Stop at this revision (YYYYMMDD_HHMM) instead of the newest.
        #[arg(long, value_name = "REV")]
        to: Option<String>,
        /// Print the SQL that would run, version-table statements included; change nothing.
        #[arg(long)]
        sql: bool,
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
    Status,
    /// Every revision, applied or not, and when.
    History,
    /// The head revision of the migrations.
    Heads,
    /// Exit 0 only when the schema is up to date (for CI and health checks).
    Check,
    /// Check a migrations folder as the build does, lint included (never connects);
    /// exit 0 only when clean.
    Lint,
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
    /// Check the migrations on scratch databases: each down restores the schema its up
    /// found, and PostgreSQL and SQLite build the same logical schema. Exit 0 only when clean.
    Verify {
        /// A PostgreSQL server to create the scratch database on (and drop it after), e.g.
        /// postgresql://postgres@localhost/postgres; the role needs CREATEDB
        #[arg(
            long,
            value_name = "URL",
            env = "CALISTA_VERIFY_PG_URL",
            hide_env_values = true
        )]
        pg_url: Option<String>,
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

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Append an event to a stream.
    Append {
        /// Stream id.
        #[arg(long)]
        stream: String,
        /// Event type, e.g. order_created.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: String,
        /// Event payload, a JSON document.
        #[arg(long)]
        payload: String,
        /// Stream type [default: the stream id up to its first '-' or ':']
        #[arg(long)]
        stream_type: Option<String>,
        /// Event metadata, a JSON document.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List events, oldest first.
    List {
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}
