#[calista::test(calista::migrations!())]
async fn orders_start_empty(pool: sqlx::SqlitePool) {}

fn main() {}
