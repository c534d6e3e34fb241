#[calista::test(MIGRATIONS)]
#[test]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
