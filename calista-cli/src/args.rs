//! The program's command line: clap types only; nothing here touches a database. The `db`
//! group and its options are the library's (`calista::cli`), as in any application.

use calista::cli::{ConfigCommand, DbCommand, DbOptions};
use clap::{Parser, Subcommand};

/// Shown after `--help`: the exit codes scripts can rely on.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure: a migration's SQL failed, a backup failed, the database is unreachable, ...
  2  usage or configuration error
  3  schema behind: the guard refused, or `db check` found pending migrations
  4  schema unsafe: ahead of this build, modified, out of order, interrupted
  5  the migration lock timed out, or a migration's table locks did (PostgreSQL)
With --targets FILE (db upgrade, check, status): 0 when every target succeeded, else the
most severe of the targets' own codes, in this order: 2, 1, 4, 5, 3.

Settings come from flags, then the environment (CALISTA_DB_URL, CALISTA_AUTO_UPGRADE, CALISTA_BACKUP,
CALISTA_CONFIG, ...), then calista.toml, then defaults;
`calista config show` prints each one and where it came from.";

/// CALISTA: an event-sourced data pipeline, and its schema migrations.
#[derive(Debug, Parser)]
#[command(name = "calista", version, about, after_help = EXIT_CODES, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: DbOptions,

    #[command(subcommand)]
    pub(crate) command: Command,
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
