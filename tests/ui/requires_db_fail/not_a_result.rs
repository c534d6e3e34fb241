#[calista::requires_db]
fn count_events() -> i64 {
    0
}

fn main() {}
