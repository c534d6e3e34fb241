#[calista::test(MIGRATIONS)]
async fn orders_start_empty(pool: &sqlx::PgPool) {}

fn main() {}
