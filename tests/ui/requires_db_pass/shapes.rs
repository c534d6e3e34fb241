//! Every handler shape builds without a warning: one-line bodies, `impl Trait` in the
//! return type, generics, methods, a body that only returns, `where` clauses.
#![deny(warnings)]

use std::fmt::Display;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[calista::requires_db]
fn one_line() -> Result<u8, calista::Error> { Ok(1) }

#[calista::requires_db]
async fn one_line_async() -> Result<u8, calista::Error> { Ok(2) }

#[calista::requires_db]
fn returns_impl_trait() -> Result<impl Display, Error> {
    Ok("shown")
}

#[calista::requires_db]
async fn returns_impl_trait_async() -> Result<impl Display + use<>, Error> {
    Ok(3)
}

#[calista::requires_db]
fn generic<T: Display>(value: T) -> Result<String, Error> {
    Ok(value.to_string())
}

#[calista::requires_db]
async fn generic_where<T>(value: T) -> Result<T, Error>
where
    T: Send,
{
    Ok(value)
}

#[calista::requires_db]
fn early_return(flag: bool) -> Result<u8, Error> {
    if flag {
        return Ok(1);
    }
    Ok(0)
}

#[calista::requires_db]
fn empty_result() -> Result<(), Error> {
    Ok(())
}

struct Commands {
    name: String,
}

impl Commands {
    #[calista::requires_db]
    fn method(&self) -> Result<&str, Error> { Ok(&self.name) }

    #[calista::requires_db]
    async fn async_method(&mut self, suffix: &str) -> Result<usize, Error> {
        self.name.push_str(suffix);
        Ok(self.name.len())
    }

    #[calista::requires_db]
    fn generic_method<T: Into<String>>(&self, other: T) -> Result<String, Error> {
        Ok(format!("{}{}", self.name, other.into()))
    }
}

fn main() {
    // Nothing is installed: each handler returns the guard's error through its own type.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(one_line().is_err());
    assert!(runtime.block_on(one_line_async()).is_err());
    assert!(returns_impl_trait().is_err());
    assert!(runtime.block_on(returns_impl_trait_async()).is_err());
    assert!(generic(1).is_err());
    assert!(runtime.block_on(generic_where(1)).is_err());
    assert!(early_return(true).is_err());
    assert!(empty_result().is_err());
    let mut commands = Commands { name: "c".into() };
    assert!(commands.method().is_err());
    assert!(runtime.block_on(commands.async_method("d")).is_err());
    assert!(commands.generic_method("e").is_err());
}
