#[calista::test(MIGRATIONS)]
async fn orders_start_empty(url: String) {}

fn main() {}
