#[calista::test(MIGRATIONS, prefix = "__")]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
