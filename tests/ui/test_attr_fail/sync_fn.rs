#[calista::test(MIGRATIONS)]
fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
