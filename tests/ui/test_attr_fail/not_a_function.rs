#[calista::test(MIGRATIONS)]
struct Orders;

fn main() {}
