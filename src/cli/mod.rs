//! The `calista` program: parse, resolve settings, run one command, map the result to an
//! exit code (see `exit`).

mod args;
mod config;
mod context;
mod db;
mod events;
mod exit;
mod lint;
mod output;
mod redo;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use args::{Cli, Command, ConfigCommand, EventsCommand};
use context::Context;
use exit::CliError;
use output::Output;

/// Runs the program.
pub(crate) fn run() -> ExitCode {
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
    init_logging(cli.global.verbose, cli.global.quiet);
    let mut out = Output::new(cli.global.format, cli.global.quiet);
    if let Command::Version = cli.command {
        out.print(&format!("calista {}", env!("CARGO_PKG_VERSION")));
        return exit::exit(exit::SUCCESS);
    }
    // Before the settings: the folder is what it checks, and no database is needed.
    if let Command::Db(args::DbCommand::Lint) = cli.command {
        return match lint::run(cli.global.migrations, &out) {
            Ok(()) => exit::exit(exit::SUCCESS),
            Err(error) => fail(&out, &error),
        };
    }
    let context = match Context::load(&cli.global) {
        Ok(context) => context,
        Err(error) => return fail(&out, &error),
    };
    if let calista::url::DatabaseUrl::Postgres(pg) = context.url()
        && let Some(password) = pg.password()
    {
        out.add_secret(password);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(
                &out,
                &CliError::failure("cannot start the async runtime", e),
            );
        }
    };
    match runtime.block_on(dispatch(cli.command, &context, &out)) {
        Ok(()) => exit::exit(exit::SUCCESS),
        Err(error) => fail(&out, &error),
    }
}

async fn dispatch(command: Command, context: &Context, out: &Output) -> Result<(), CliError> {
    match command {
        Command::Version => Ok(()),
        Command::Config(ConfigCommand::Show) => {
            config::show(context, out);
            Ok(())
        }
        Command::Db(command) => db::run(command, context, out).await,
        Command::Events(command) => {
            calista::App::new(context.migrations, context.url().clone())
                .options(context.database_options())
                .policy(context.policy())
                .install()?;
            let produced = match command {
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
                    events::append(event, out.json()).await
                }
                EventsCommand::List { stream, limit } => {
                    events::list(stream, limit, out.json()).await
                }
            };
            if let Some(calista::Ensured::Upgraded(report)) = calista::startup() {
                out.notice(&format!(
                    "the schema was upgraded at start-up (auto-upgrade):\n{}",
                    db::render_startup(report, out)
                ));
            }
            match produced? {
                events::Produced::Text(text) => out.print(&text),
                events::Produced::Json(value) => out.print_json(&value),
            }
            Ok(())
        }
    }
}

fn fail(out: &Output, error: &CliError) -> ExitCode {
    out.error(error);
    exit::exit(error.exit_code())
}

/// Notices from the library (`tracing` events) go to stderr: warnings by default.
fn init_logging(verbose: u8, quiet: bool) {
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
        .without_time()
        .with_target(false)
        .compact();
    let _ = tracing_subscriber::registry()
        .with(targets)
        .with(format)
        .try_init();
}
