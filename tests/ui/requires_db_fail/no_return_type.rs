#[calista::requires_db]
async fn list_events() {}

fn main() {}
