#[calista::requires_db(auto_upgrade)]
async fn list_events() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

fn main() {}
