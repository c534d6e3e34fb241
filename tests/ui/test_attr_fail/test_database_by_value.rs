#[calista::test(MIGRATIONS)]
async fn orders_start_empty(db: calista::testing::TestDatabase) {}

fn main() {}
