#[calista::test(MIGRATIONS, prefix = shop)]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
