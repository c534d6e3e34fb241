//! Procedural macros of CALISTA schema migrations. Use them through the `calista` crate:
//! `calista::migrations!()`, `#[calista::requires_db]` and `#[calista::test]`.

use proc_macro::TokenStream;

mod errors;
mod migrations;
mod requires_db;
mod test_attr;

/// Embeds a folder of migration files as a `calista::Migrations`, checked at build time.
///
/// `migrations!()` reads `migrations/` beside the calling crate's `Cargo.toml`;
/// `migrations!("some/dir")` reads another folder, relative to that manifest. Every
/// violation of the file rules fails the build, all of them reported at once.
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    migrations::expand(input.into()).into()
}

/// Marks a command handler that needs the database.
///
/// Before the body runs, the database handle is acquired, which runs the schema guard
/// once per process with the policy installed by `calista::App::install`. A guard error
/// (schema behind, unsafe, unreachable database) is returned through the handler's own
/// error type, which must implement `From<calista::Error>`. Works on sync and async
/// functions returning `Result`.
#[proc_macro_attribute]
pub fn requires_db(args: TokenStream, item: TokenStream) -> TokenStream {
    requires_db::expand(args.into(), item.into()).into()
}

/// (This attribute is used through the `calista` crate, as `#[calista::test]`, with its
/// `testing` feature.)
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).into()
}
