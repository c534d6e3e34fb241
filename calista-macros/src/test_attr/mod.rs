//! `#[calista::test]`: an async test function that takes a fresh database at head (or a
//! revision) of the application's migrations; the backend comes from the argument's type.

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, item.clone()) {
        Ok(test) => expand::generate(test),
        // The function is left out beside the errors: emitted as it is, an async fn without a
        // runtime would only add errors of its own (and an unused-function warning).
        Err(errors) => quote!(#errors),
    }
}
