#[calista::test(revision = "20250101_0000")]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
