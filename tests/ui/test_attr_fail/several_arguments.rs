#[calista::test(MIGRATIONS)]
async fn orders_start_empty(pool: sqlx::SqlitePool, other: sqlx::PgPool) {}

fn main() {}
