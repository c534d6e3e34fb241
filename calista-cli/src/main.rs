//! The `calista` program: CALISTA's own commands (`events`, `config`, `version`) and the
//! library's `db` group, built on the public API like any application embedding it.

mod args;
mod events;

use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;

use calista::cli::{CliError, Context, Db, Format, exit};
use calista::settings::AppNames;
use calista::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use calista::url::UrlConvention;
use clap::Parser;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use args::{Cli, Command, EventsCommand};

/// CALISTA's own migrations, embedded at build time.
static MIGRATIONS: calista::Migrations = calista::migrations!("../migrations");

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are successes; anything else is a usage error.
            return exit::exit(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    init_logging(
        cli.global.verbose,
        cli.global.quiet,
        calista::cli::colour_on_stderr(),
    );
    if let Command::Version = cli.command {
        // A closed pipe is not an error worth reporting.
        let _ = writeln!(std::io::stdout(), "calista {}", env!("CARGO_PKG_VERSION"));
        return exit::exit(exit::SUCCESS);
    }
    // ADR-0004: CALISTA's users' URLs keep the meaning they have had since Alembic.
    let names = AppNames::new("calista")
        .with_auto_upgrade_flag("--auto-upgrade")
        .with_url_convention(UrlConvention::SqlAlchemy)
        .with_default_schema(calista::SchemaName::calista());
    let mut db = Db::new(&MIGRATIONS, "calista").names(names);
    // Cargo checks that a package's version is semver.
    if let Ok(version) = calista::semver::Version::parse(env!("CARGO_PKG_VERSION")) {
        db = db.app_version(version);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime\n  caused by: {e}");
            return exit::exit(exit::FAILURE);
        }
    };
    let global = cli.global;
    runtime.block_on(async {
        match cli.command {
            Command::Version => exit::exit(exit::SUCCESS),
            Command::Config(command) => db.run_config(command, &global),
            Command::Db(command) => db.run_command(command, &global).await,
            Command::Events(command) => {
                let as_json = global.format == Format::Json;
                db.run_app(&global, async |context: &Context| {
                    install_app(context)?;
                    match command {
                        EventsCommand::Append {
                            stream,
                            event_type,
                            payload,
                            stream_type,
                            metadata,
                        } => {
                            let event = events::NewEvent {
                                stream,
                                stream_type,
                                event_type,
                                payload,
                                metadata,
                            };
                            events::append(event, as_json).await
                        }
                        EventsCommand::List { stream, limit } => {
                            events::list(stream, limit, as_json).await
                        }
                    }
                })
                .await
            }
        }
    })
}

/// Notices from the library (`tracing` events) go to stderr: warnings by default, in
/// colour when the program's own notices and errors are.
fn init_logging(verbose: u8, quiet: bool, colour: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, _) => LevelFilter::DEBUG,
    };
    let targets = Targets::new()
        .with_target("calista", level)
        .with_target("calista_core", level)
        .with_default(LevelFilter::ERROR);
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .with_target(false)
        .compact();
    let _ = tracing_subscriber::registry()
        .with(targets)
        .with(format)
        .try_init();
}

/// The process-wide handle the event commands use. On PostgreSQL the program opens the pool
/// itself, with no startup parameter and no statement kept prepared, so that the commands
/// work through a connection pooler in transaction mode as the `db` commands do; their
/// queries put the schema on `search_path` inside their own transactions.
fn install_app(context: &Context) -> Result<(), CliError> {
    let options = context.database_options();
    let app = match context.url() {
        calista::url::DatabaseUrl::Postgres(url) => {
            let connect = PgConnectOptions::from_str(url.expose_secret())
                .map_err(|e| CliError::failure(format!("cannot read the database URL {url}"), e))?
                .statement_cache_capacity(0)
                .application_name(&format!("calista (pid {})", std::process::id()));
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.connect_timeout)
                .connect_lazy_with(connect);
            calista::App::from_pool(context.migrations(), pool)
        }
        calista::url::DatabaseUrl::Sqlite(_) => {
            calista::App::new(context.migrations(), context.url().clone())
        }
    };
    app.options(options).policy(context.policy()).install()?;
    Ok(())
}
