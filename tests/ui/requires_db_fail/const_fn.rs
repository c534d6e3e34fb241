#[calista::requires_db]
const fn list_events() -> Result<(), calista::Error> {
    Ok(())
}

fn main() {}
