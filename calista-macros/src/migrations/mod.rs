//! `migrations!()`: parse the call, check the folder with the shared rules, expand.

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let call = match parse::parse(input) {
        Ok(call) => call,
        Err(error) => return with_fallback(error.to_compile_error()),
    };
    // The same loader as `Migrations::from_dir`: one implementation of the rules.
    match calista_core::__private::source::read_dir(&call.dir, &call.shown_as) {
        Ok(files) => expand::expand(&call, &files),
        Err(source_error) => {
            let mut errors = Errors::default();
            for problem in source_error.problems {
                errors.push(syn::Error::new(call.span, problem));
            }
            match errors.finish() {
                Err(tokens) => with_fallback(tokens),
                Ok(()) => with_fallback(TokenStream::new()),
            }
        }
    }
}

/// The errors, followed by an empty set of the right type, so that the user sees the
/// errors about the migrations and not a cascade of type errors after them.
fn with_fallback(errors: TokenStream) -> TokenStream {
    quote! {{
        #errors
        ::calista::__private::migrations(&[], &[], ::core::option::Option::None, ::core::option::Option::None)
    }}
}
