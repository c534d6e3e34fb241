//! Sync and async handlers, with a custom error, `Box<dyn Error>` and a `Result` alias.

#[derive(Debug)]
enum AppError {
    Db(calista::Error),
}

impl From<calista::Error> for AppError {
    fn from(error: calista::Error) -> Self {
        AppError::Db(error)
    }
}

type AppResult<T> = Result<T, AppError>;

#[calista::requires_db]
async fn async_handler(stream: &str) -> Result<usize, AppError> {
    Ok(stream.len())
}

#[calista::requires_db]
fn sync_handler() -> AppResult<()> {
    Ok(())
}

#[calista::requires_db]
pub(crate) async fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

struct Commands;

impl Commands {
    #[calista::requires_db]
    fn method(&self) -> Result<u8, calista::Error> {
        Ok(1)
    }
}

fn main() {
    // Nothing is installed: each handler returns the guard's error through its own type.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let AppError::Db(error) = runtime.block_on(async_handler("s")).unwrap_err();
    assert!(error.to_string().contains("no application installed"), "{error}");
    assert!(sync_handler().is_err());
    assert!(runtime.block_on(boxed()).is_err());
    assert!(Commands.method().is_err());
}
