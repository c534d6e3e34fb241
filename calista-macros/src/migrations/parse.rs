//! The macro's input: nothing, or a string literal naming the folder.

use std::path::PathBuf;

use proc_macro2::{Span, TokenStream};
use syn::LitStr;

/// The default folder, beside the calling crate's `Cargo.toml`.
const DEFAULT_DIR: &str = "migrations";

/// A parsed `migrations!(...)` call.
pub(crate) struct Call {
    /// The folder on disk.
    pub(crate) dir: PathBuf,
    /// The folder as the user wrote it: what messages show, the same on every machine.
    pub(crate) shown_as: String,
    /// Where errors point.
    pub(crate) span: Span,
}

pub(crate) fn parse(input: TokenStream) -> syn::Result<Call> {
    let (relative, span) = if input.is_empty() {
        (DEFAULT_DIR.to_owned(), Span::call_site())
    } else {
        let literal: LitStr = syn::parse2(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the migrations folder as a string literal, relative to Cargo.toml, \
                 like `migrations!(\"db/migrations\")`, or nothing for `migrations/`",
            )
        })?;
        (literal.value(), literal.span())
    };
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Err(syn::Error::new(
            span,
            "CARGO_MANIFEST_DIR is not set: `migrations!()` must be built by Cargo, which sets it",
        ));
    };
    Ok(Call {
        dir: PathBuf::from(manifest_dir).join(&relative),
        shown_as: relative,
        span,
    })
}
