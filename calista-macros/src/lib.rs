//! Procedural macros of CALISTA schema migrations. Use them through the `calista` crate:
//! `calista::migrations!()` and `#[calista::requires_db]`.

use proc_macro::TokenStream;

mod errors;
mod migrations;

/// Embeds a folder of migration files as a `calista::Migrations`, checked at build time.
///
/// `migrations!()` reads `migrations/` beside the calling crate's `Cargo.toml`;
/// `migrations!("some/dir")` reads another folder, relative to that manifest. Every
/// violation of the file rules fails the build, all of them reported at once.
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    migrations::expand(input.into()).into()
}
