#[calista::test(MIGRATIONS, revision = "2025-01-01")]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
