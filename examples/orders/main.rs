//! A small shop that embeds CALISTA's migrations for its own schema, on its one pool.
//!
//! ```sh
//! cargo run --example orders                                      # a SQLite file in the temp folder
//! ORDERS_DB_URL=sqlite://orders.db cargo run --example orders    # the URL as sqlx reads it
//! ```
//!
//! It opens its pool, checks the schema explicitly at start-up with
//! `MIGRATIONS.ensure_schema_with(&pool, …)` (upgrading, since this example opts in), then
//! hands the same pool to `App::from_pool` and serves two handlers marked
//! `#[calista::requires_db]`, which query it. A `PgPool` is handed over the same way.

use std::str::FromStr;

use calista::sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use calista::{App, Ensured, Policy};

/// The shop's migrations, checked at build time, from `examples/orders/migrations`.
static MIGRATIONS: calista::Migrations = calista::migrations!("examples/orders/migrations");

/// The shop's errors; a database error converts, so handlers can be `#[requires_db]`.
#[derive(Debug)]
enum ShopError {
    Db(calista::Error),
    Query(calista::sqlx::Error),
}

impl From<calista::Error> for ShopError {
    fn from(error: calista::Error) -> Self {
        Self::Db(error)
    }
}

impl From<calista::sqlx::Error> for ShopError {
    fn from(error: calista::sqlx::Error) -> Self {
        Self::Query(error)
    }
}

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "{e}"),
            Self::Query(e) => write!(f, "query failed: {e}"),
        }
    }
}

/// Records an order.
#[calista::requires_db]
async fn place_order(pool: &SqlitePool, customer: &str, total: f64) -> Result<(), ShopError> {
    calista::sqlx::query("INSERT INTO orders (customer, total) VALUES ($1, $2)")
        .bind(customer)
        .bind(total)
        .execute(pool)
        .await?;
    Ok(())
}

/// How many orders a customer has.
#[calista::requires_db]
async fn count_orders(pool: &SqlitePool, customer: &str) -> Result<i64, ShopError> {
    let count = calista::sqlx::query_scalar("SELECT count(*) FROM orders WHERE customer = $1")
        .bind(customer)
        .fetch_one(pool)
        .await?;
    Ok(count)
}

fn show(revision: Option<calista::Revision>) -> String {
    revision.map_or_else(|| "base".to_owned(), |r| r.to_string())
}

#[tokio::main]
async fn main() -> Result<(), ShopError> {
    let default = format!(
        "sqlite://{}",
        std::env::temp_dir()
            .join("calista-orders-example.db")
            .display()
    );
    let url = std::env::var("ORDERS_DB_URL").unwrap_or(default);
    // The shop's one pool; calista reads and migrates the same file.
    let options = SqliteConnectOptions::from_str(&url)?.create_if_missing(true);
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    println!("database: {url}");

    // Explicit check at start-up; this example opts in to upgrading (a shop's own choice).
    let policy = Policy {
        auto_upgrade: true,
        ..Policy::default()
    };
    match MIGRATIONS.ensure_schema_with(&pool, &policy).await? {
        Ensured::UpToDate { current, .. } => println!("schema up to date at {}", show(current)),
        Ensured::Upgraded(report) => {
            println!(
                "schema upgraded {} -> {} ({} migrations)",
                show(report.from),
                show(report.to),
                report.steps.len()
            )
        }
        _ => {}
    }

    // From here on, handlers acquire the database through #[requires_db], on this pool.
    App::from_pool(&MIGRATIONS, &pool)
        .policy(policy)
        .install()?;
    place_order(&pool, "ada", 42.5).await?;
    place_order(&pool, "ada", 7.0).await?;
    println!("ada has {} orders", count_orders(&pool, "ada").await?);
    pool.close().await;
    Ok(())
}
