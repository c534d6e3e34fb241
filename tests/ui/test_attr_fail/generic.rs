#[calista::test(MIGRATIONS)]
async fn orders_start_empty<P>(pool: sqlx::SqlitePool) {}

fn main() {}
