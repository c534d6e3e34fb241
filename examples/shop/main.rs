//! An application with its own command line that adds calista's `db` group: `shop db
//! upgrade` works like `calista db upgrade`, with the shop's migrations, its settings
//! (`--db-url`, `SHOP_DB_URL`, `[db] url` in `shop.toml`) and its words in every hint.
//!
//! ```sh
//! cargo run --example shop --features cli -- db status
//! cargo run --example shop --features cli -- db upgrade
//! cargo run --example shop --features cli -- order ada 42.50
//! ```

use std::process::ExitCode;

use calista::cli::{Db, DbArgs};
use calista::settings::{AppNames, Flags};
use calista::{Ensured, Pool};
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

/// The shop's own work, on a pool it opens itself: the guard runs on that pool in one
/// line, under the policy its settings give (`SHOP_AUTO_UPGRADE=1` upgrades instead of
/// refusing, and a refusal says `shop db upgrade`).
async fn order(customer: &str, total: f64) -> Result<i64, Error> {
    let names = AppNames::new("shop");
    let settings = calista::settings::resolve_from_process(&names, &Flags::default())?;
    let db = calista::Database::connect(&settings.db_url.value, settings.database_options())?;
    let ensured = MIGRATIONS
        .ensure_schema_with(db.pool(), &settings.policy(&names))
        .await?;
    for notice in ensured.notices() {
        eprintln!("notice: {notice}");
    }
    if let Ensured::Upgraded(report) = &ensured {
        eprintln!("upgraded the schema: {} migrations", report.steps.len());
    }
    let insert = "INSERT INTO orders (customer, total) VALUES ($1, $2)";
    let count = "SELECT count(*) FROM orders WHERE customer = $1";
    let orders = match db.pool() {
        Pool::Postgres(pool) => {
            calista::sqlx::query(insert)
                .bind(customer)
                .bind(total)
                .execute(pool)
                .await?;
            calista::sqlx::query_scalar(count)
                .bind(customer)
                .fetch_one(pool)
                .await?
        }
        Pool::Sqlite(pool) => {
            calista::sqlx::query(insert)
                .bind(customer)
                .bind(total)
                .execute(pool)
                .await?;
            calista::sqlx::query_scalar(count)
                .bind(customer)
                .fetch_one(pool)
                .await?
        }
    };
    db.close().await;
    Ok(orders)
}
