//! An application with its own command line that adds calista's `db` group: `shop db
//! upgrade` works like `calista db upgrade`, with the shop's migrations, its settings
//! (`--db-url`, `SHOP_DB_URL`, `[db] url` in `shop.toml`) and its words in every hint.
//!
//! ```sh
//! cargo run --example shop --features cli -- db status
//! cargo run --example shop --features cli -- db upgrade
//! cargo run --example shop --features cli -- config show
//! cargo run --example shop --features cli -- order ada 42.50
//! ```

use std::process::ExitCode;

use calista::Ensured;
use calista::cli::{ConfigArgs, Db, DbArgs};
use calista::settings::{AppNames, Flags};
use calista::sqlx::{self, SqlitePool, sqlite::SqliteConnectOptions};
use calista::url::{DatabaseUrl, SqliteTarget};
use clap::{Parser, Subcommand};

/// The shop's migrations, checked at build time.
static MIGRATIONS: calista::Migrations = calista::migrations!("examples/orders/migrations");

/// A small shop.
#[derive(Parser)]
#[command(name = "shop")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The database schema: upgrade, inspect, and (in development) downgrade.
    Db(DbArgs),
    /// The shop's settings: `shop config show` prints each one and where it came from.
    Config(ConfigArgs),
    /// Record an order (needs the schema up to date).
    Order {
        /// Who ordered.
        customer: String,
        /// How much.
        total: f64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Db(args) => Db::new(&MIGRATIONS, "shop").run(args).await,
        Command::Config(args) => {
            Db::new(&MIGRATIONS, "shop").run_config(args.command, &args.options)
        }
        Command::Order { customer, total } => match order(&customer, total).await {
            Ok(count) => {
                println!("{customer} has {count} orders");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The shop's own work, on its one pool, opened on the database its settings name (the URL
/// read as sqlx reads it): the guard runs on that pool in one line, under the policy its
/// settings give (`SHOP_AUTO_UPGRADE=1` upgrades instead of refusing, and a refusal says
/// `shop db upgrade`).
async fn order(customer: &str, total: f64) -> Result<i64, Error> {
    let names = AppNames::new("shop");
    let settings = calista::settings::resolve_from_process(&names, &Flags::default())?;
    let DatabaseUrl::Sqlite(SqliteTarget::File(file)) = &settings.db_url.value else {
        return Err(
            "the shop keeps its orders in a SQLite file: set SHOP_DB_URL to sqlite://shop.db"
                .into(),
        );
    };
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await?;
    let ensured = MIGRATIONS
        .ensure_schema_with(&pool, &settings.policy(&names))
        .await?;
    for notice in ensured.notices() {
        eprintln!("notice: {notice}");
    }
    if let Ensured::Upgraded(report) = &ensured {
        eprintln!("upgraded the schema: {} migrations", report.steps.len());
    }
    sqlx::query("INSERT INTO orders (customer, total) VALUES ($1, $2)")
        .bind(customer)
        .bind(total)
        .execute(&pool)
        .await?;
    let orders = sqlx::query_scalar("SELECT count(*) FROM orders WHERE customer = $1")
        .bind(customer)
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(orders)
}
