//! A small shop that embeds CALISTA's migrations for its own schema.
//!
//! ```sh
//! cargo run --example orders                                   # a SQLite file in the temp folder
//! ORDERS_DB_URL=postgres://postgres@127.0.0.1/shop cargo run --example orders
//! ```
//!
//! It checks the schema explicitly at start-up with `Migrator::ensure_schema` (upgrading,
//! since this example opts in), then serves two handlers marked `#[calista::requires_db]`.

use calista::url::DatabaseUrl;
use calista::{App, Ensured, Migrator, Policy, Pool};

/// The shop's migrations, checked at build time, from `examples/orders/migrations`.
static MIGRATIONS: calista::Migrations = calista::migrations!("examples/orders/migrations");

/// The shop's errors; a database error converts, so handlers can be `#[requires_db]`.
#[derive(Debug)]
enum ShopError {
    Db(calista::Error),
    Query(calista::sqlx::Error),
    Url(calista::url::UrlError),
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
            Self::Url(e) => write!(f, "{e}"),
        }
    }
}

/// Records an order.
#[calista::requires_db]
async fn place_order(customer: &str, total: f64) -> Result<(), ShopError> {
    let db = calista::db().await?;
    let sql = "INSERT INTO orders (customer, total) VALUES ($1, $2)";
    match db.pool() {
        Pool::Postgres(pool) => {
            calista::sqlx::query(sql)
                .bind(customer)
                .bind(total)
                .execute(pool)
                .await?;
        }
        Pool::Sqlite(pool) => {
            calista::sqlx::query(sql)
                .bind(customer)
                .bind(total)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// How many orders a customer has.
#[calista::requires_db]
async fn count_orders(customer: &str) -> Result<i64, ShopError> {
    let db = calista::db().await?;
    let sql = "SELECT count(*) FROM orders WHERE customer = $1";
    let count = match db.pool() {
        Pool::Postgres(pool) => {
            calista::sqlx::query_scalar(sql)
                .bind(customer)
                .fetch_one(pool)
                .await?
        }
        Pool::Sqlite(pool) => {
            calista::sqlx::query_scalar(sql)
                .bind(customer)
                .fetch_one(pool)
                .await?
        }
    };
    Ok(count)
}

fn show(revision: Option<calista::Revision>) -> String {
    revision.map_or_else(|| "base".to_owned(), |r| r.to_string())
}

#[tokio::main]
async fn main() -> Result<(), ShopError> {
    let default = format!(
        "sqlite:///{}",
        std::env::temp_dir()
            .join("calista-orders-example.db")
            .display()
    );
    let text = std::env::var("ORDERS_DB_URL").unwrap_or(default);
    let cwd = std::env::current_dir().unwrap_or_default();
    let url = DatabaseUrl::parse(&text, &cwd).map_err(ShopError::Url)?;
    println!("database: {url}");

    // Explicit check at start-up; this example opts in to upgrading (a shop's own choice).
    let db = calista::Database::connect(&url, calista::DatabaseOptions::default())?;
    let policy = Policy {
        auto_upgrade: true,
        ..Policy::default()
    };
    match Migrator::new(&MIGRATIONS, &db)
        .with_policy(policy.clone())
        .ensure_schema()
        .await?
    {
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
    db.close().await;

    // From here on, handlers acquire the database through #[requires_db].
    App::new(&MIGRATIONS, url).policy(policy).install()?;
    place_order("ada", 42.5).await?;
    place_order("ada", 7.0).await?;
    println!("ada has {} orders", count_orders("ada").await?);
    Ok(())
}
