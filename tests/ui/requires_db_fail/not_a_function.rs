#[calista::requires_db]
struct Handler;

fn main() {}
