#[derive(Debug)]
struct AppError(String);

#[calista::requires_db]
async fn list_events() -> Result<(), AppError> {
    Ok(())
}

fn main() {}
