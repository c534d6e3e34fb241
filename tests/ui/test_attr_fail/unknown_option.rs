#[calista::test(MIGRATIONS, schema = "app")]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
