//! The `db` command group for an application's own command line (feature `cli`).
//!
//! An application adds the group to its clap parser and runs it on its own migrations and
//! settings, so that `myapp db upgrade` works like `calista db upgrade`:
//!
//! ```no_run
//! use clap::{Parser, Subcommand};
//!
//! static MIGRATIONS: calista::Migrations = calista::migrations!();
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: Command,
//! }
//!
//! #[derive(Subcommand)]
//! enum Command {
//!     /// The database schema: upgrade, inspect, and (in development) downgrade.
//!     Db(calista::cli::DbArgs),
//!     /// Settings: each one and where it came from.
//!     Config(calista::cli::ConfigArgs),
//!     /// The application's own work.
//!     Serve,
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let db = calista::cli::Db::new(&MIGRATIONS, "myapp");
//!     match Cli::parse().command {
//!         Command::Db(args) => db.run(args).await,
//!         Command::Config(args) => db.run_config(args.command, &args.options),
//!         Command::Serve => std::process::ExitCode::SUCCESS,
//!     }
//! }
//! ```
//!
//! The group prints; the rest of this module is what an application needs to mount and run
//! it: the clap types, the [`Context`] a command runs on, [`CliError`] and the exit codes.
//! An application's own command runs on the same settings and output with [`Db::run_app`].
//!
//! Settings are the application's: `--db-url`, then `MYAPP_DB_URL`, then `[db] url` in
//! `myapp.toml`, then the default (see [`crate::settings`]). Results go to stdout, notices and
//! errors (with their causes) to stderr, and the exit code follows the table in [`exit`].

mod args;
mod config;
mod context;
mod db;
pub mod exit;
mod fleet;
mod history;
mod import;
mod lint;
mod output;
mod redo;
mod verify;

use std::process::ExitCode;

pub use args::{
    ConfigArgs, ConfigCommand, DbArgs, DbCommand, DbOptions, FleetArgs, Format, ImportArgs,
    ImportDialect, ImportTool,
};
pub use context::Context;
pub use exit::CliError;

use crate::Migrations;
use crate::settings::AppNames;
use output::Output;

/// Whether the commands' notices and errors on stderr carry colour: stderr is a terminal and
/// `NO_COLOR` is unset or empty. An application's own log subscriber on stderr follows it,
/// so that its lines agree with them.
pub fn colour_on_stderr() -> bool {
    output::colour_allowed() && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Runs the `db` commands of one application: its migrations, its names.
///
/// Each `run` method resolves the settings, runs one command, prints its result on stdout
/// (text, or JSON with `--format json`), prints an error on stderr with its causes (never
/// a password), and returns the exit code of the table in [`exit`].
#[derive(Debug, Clone)]
pub struct Db {
    migrations: &'static Migrations,
    names: AppNames,
    app_version: Option<crate::semver::Version>,
}

impl Db {
    /// The `db` commands of the application called `program` (`myapp`: settings from
    /// `MYAPP_*` and `myapp.toml`, hints that say `myapp db upgrade`).
    pub fn new(migrations: &'static Migrations, program: &str) -> Self {
        Self {
            migrations,
            names: AppNames::new(program),
            app_version: None,
        }
    }

    /// Other names than those derived from the program's name.
    pub fn names(mut self, names: AppNames) -> Self {
        self.names = names;
        self
    }

    /// The application's version, recorded with each migration applied (default: the
    /// version of the crate that embedded the migrations).
    pub fn app_version(mut self, version: crate::semver::Version) -> Self {
        self.app_version = Some(version);
        self
    }

    /// Runs one `db` command with its options (`myapp db …`).
    pub async fn run(&self, args: DbArgs) -> ExitCode {
        self.run_command(args.command, &args.options).await
    }

    /// Runs one `db` command, for a parser that keeps the options apart from the command
    /// (global options before the `db` subcommand).
    pub async fn run_command(&self, command: DbCommand, options: &DbOptions) -> ExitCode {
        let mut out = Output::new(options.format, options.quiet);
        // Before the settings: the folder is what they work on, and no database is needed.
        let done = match &command {
            DbCommand::Lint => Some(lint::run(options.migrations.clone(), &out)),
            DbCommand::Import(import) => {
                Some(import::run(import, options.migrations.clone(), &out))
            }
            _ => None,
        };
        if let Some(done) = done {
            return finish(done, &out);
        }
        let context = match self.context(options) {
            Ok(context) => context,
            Err(error) => return out.fail(&error),
        };
        context.protect(&mut out);
        finish(db::run(command, &context, &out).await, &out)
    }

    /// Runs one `config` command (`myapp config show`): the settings the `db` commands
    /// resolve, each with where it came from. Never connects.
    pub fn run_config(&self, command: ConfigCommand, options: &DbOptions) -> ExitCode {
        let mut out = Output::new(options.format, options.quiet);
        let context = match self.context(options) {
            Ok(context) => context,
            Err(error) => return out.fail(&error),
        };
        context.protect(&mut out);
        config::run(command, &context, &out);
        exit::exit(exit::SUCCESS)
    }

    /// Runs one of the application's own commands as the `db` commands run: on the
    /// settings they resolve (its [`Context`]), its `Ok` text printed on stdout (nothing
    /// when empty; the command writes JSON itself when `options.format` asks for it), its
    /// error on stderr with its causes and the exit code of [`CliError::exit_code`].
    ///
    /// When the command ran the process-wide guard (a `#[requires_db]` handler), what the
    /// guard did is printed on stderr first: the upgrade it made at start-up, or its notices.
    pub async fn run_app(
        &self,
        options: &DbOptions,
        command: impl AsyncFnOnce(&Context) -> Result<String, CliError>,
    ) -> ExitCode {
        let mut out = Output::new(options.format, options.quiet);
        let context = match self.context(options) {
            Ok(context) => context,
            Err(error) => return out.fail(&error),
        };
        context.protect(&mut out);
        let produced = command(&context).await;
        match crate::startup() {
            Some(crate::Ensured::Upgraded(report)) => out.notice(&format!(
                "the schema was upgraded at start-up (auto-upgrade):\n{}",
                db::render_report(report, &out)
            )),
            Some(ensured) => {
                for notice in ensured.notices() {
                    out.notice(&format!("notice: {notice}"));
                }
            }
            None => {}
        }
        let printed = produced.map(|text| {
            if !text.is_empty() {
                out.print(&text);
            }
        });
        finish(printed, &out)
    }

    /// Resolves the settings for the options given (never connects).
    fn context(&self, options: &DbOptions) -> Result<Context, CliError> {
        Context::load(
            self.migrations,
            &self.names,
            self.app_version.clone(),
            options,
        )
    }
}

/// The exit code of a command's result, its error printed.
fn finish(result: Result<(), CliError>, out: &Output) -> ExitCode {
    match result {
        Ok(()) => exit::exit(exit::SUCCESS),
        Err(error) => out.fail(&error),
    }
}
