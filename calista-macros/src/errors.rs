//! Collects every error of one macro call, so that a build reports all of them at once.

use proc_macro2::TokenStream;

/// Errors gathered during one expansion.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Adds one error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// `Ok` when nothing was pushed, else every error as `compile_error!` invocations.
    pub(crate) fn finish(self) -> Result<(), TokenStream> {
        match self.combined {
            None => Ok(()),
            Some(error) => Err(error.to_compile_error()),
        }
    }
}
