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
//!     /// The application's own work.
//!     Serve,
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     match Cli::parse().command {
//!         Command::Db(args) => calista::cli::Db::new(&MIGRATIONS, "myapp").run(args).await,
//!         Command::Serve => std::process::ExitCode::SUCCESS,
//!     }
//! }
//! ```
//!
//! Settings are the application's: `--db-url`, then `MYAPP_DB_URL`, then `[db] url` in
//! `myapp.toml`, then the default (see [`crate::settings`]). Results go to stdout, notices and
//! errors (with their causes) to stderr, and the exit code follows the table in [`exit`].

mod args;
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
    DbArgs, DbCommand, DbOptions, FleetArgs, Format, ImportArgs, ImportDialect, ImportTool,
};
pub use context::Context;
pub use db::render_report;
pub use exit::CliError;
pub use output::{Output, Tone, table};

use crate::Migrations;
use crate::settings::AppNames;

/// Runs the `db` commands of one application: its migrations, its names.
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

    /// Runs one command, prints its result, and returns the exit code; an error is
    /// printed on stderr with its causes.
    pub async fn run(&self, args: DbArgs) -> ExitCode {
        let mut out = Output::new(args.options.format, args.options.quiet);
        // Before the settings: the folder is what it checks, and no database is needed.
        if let DbCommand::Lint = args.command {
            return match self.lint(&args.options, &out) {
                Ok(()) => exit::exit(exit::SUCCESS),
                Err(error) => out.fail(&error),
            };
        }
        if let DbCommand::Import(import) = &args.command {
            return match self.import(import, &args.options, &out) {
                Ok(()) => exit::exit(exit::SUCCESS),
                Err(error) => out.fail(&error),
            };
        }
        let context = match self.context(&args.options) {
            Ok(context) => context,
            Err(error) => return out.fail(&error),
        };
        context.protect(&mut out);
        match self.execute(args.command, &context, &out).await {
            Ok(()) => exit::exit(exit::SUCCESS),
            Err(error) => out.fail(&error),
        }
    }

    /// `db lint`: the build's checks and lint on the migrations folder (`--migrations DIR`,
    /// else `./migrations`), without settings or a database.
    pub fn lint(&self, options: &DbOptions, out: &Output) -> Result<(), CliError> {
        lint::run(options.migrations.clone(), out)
    }

    /// `db import`: another tool's migrations as calista files, written into `--into DIR`
    /// (else the migrations folder), without settings or a database.
    pub fn import(
        &self,
        args: &ImportArgs,
        options: &DbOptions,
        out: &Output,
    ) -> Result<(), CliError> {
        import::run(args, options.migrations.clone(), out)
    }

    /// Resolves the settings for the options given (never connects).
    pub fn context(&self, options: &DbOptions) -> Result<Context, CliError> {
        Context::load(
            self.migrations,
            &self.names,
            self.app_version.clone(),
            options,
        )
    }

    /// Runs one command on a resolved context, printing its result to `out`.
    pub async fn execute(
        &self,
        command: DbCommand,
        context: &Context,
        out: &Output,
    ) -> Result<(), CliError> {
        db::run(command, context, out).await
    }
}
