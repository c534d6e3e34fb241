#[calista::test(MIGRATIONS)]
async fn orders_start_empty() {}

fn main() {}
