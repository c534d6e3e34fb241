#[calista::test(MIGRATIONS, revision = "20251301_0000")]
fn orders_start_empty<T>(url: String) {}

fn main() {}
