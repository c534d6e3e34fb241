//! `#[requires_db]`: acquire the database handle, which runs the guard once per process,
//! before a command handler's body; a guard error returns through the handler's own error type.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType, Stmt, Type};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse(args, item.clone()) {
        Ok(handler) => generate(handler),
        // The item is emitted unchanged beside the error, so the user sees one error.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item)
        }
    }
}

/// A function the attribute can go on, and its return type.
struct Handler {
    function: ItemFn,
    output: Box<Type>,
}

fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Handler> {
    if !args.is_empty() {
        return Err(syn::Error::new(
            args.span(),
            "#[requires_db] takes no arguments: the policy comes from the settings; write `#[calista::requires_db]`",
        ));
    }
    let function: ItemFn = syn::parse2(item.clone()).map_err(|_| {
        syn::Error::new(
            first_span(&item),
            "#[requires_db] goes on a command handler function (sync or async) that returns `Result<_, E>`, \
             e.g. `#[calista::requires_db] async fn list_events(...) -> Result<(), AppError>`",
        )
    })?;
    let signature = &function.sig;
    if let Some(constness) = &signature.constness {
        return Err(syn::Error::new(
            constness.span(),
            "#[requires_db] cannot go on a `const fn`: acquiring the database happens at run time; remove `const`",
        ));
    }
    let output = match &signature.output {
        ReturnType::Type(_, output) => output.clone(),
        ReturnType::Default => {
            return Err(syn::Error::new(
                signature.ident.span(),
                format!(
                    "#[requires_db] needs the handler to return a `Result`, so that a database error can be \
                     returned: write `fn {}(...) -> Result<(), YourError>` where `YourError: From<calista::Error>`",
                    signature.ident
                ),
            ));
        }
    };
    Ok(Handler { function, output })
}

fn generate(
    Handler {
        mut function,
        output,
    }: Handler,
) -> TokenStream {
    // The conversion's type is inferred from the return position, so that a return type
    // that cannot be named in a path (`Result<impl Trait, E>`) works; an unfit type is
    // reported on the return type.
    let convert = quote_spanned! {output.span()=>
        ::calista::__private::from_db_error(__calista_db_error)
    };
    let acquire = if function.sig.asyncness.is_some() {
        quote!(::calista::__private::require_db().await)
    } else {
        quote!(::calista::__private::require_db_blocking())
    };
    // The handler's own statements follow the check in the same block: nesting its block
    // would make a one-line body an "unnecessary braces" warning.
    let check: Stmt = syn::parse_quote! {
        if let ::core::result::Result::Err(__calista_db_error) = #acquire {
            return #convert;
        }
    };
    function.block.stmts.insert(0, check);
    quote!(#function)
}

fn first_span(item: &TokenStream) -> Span {
    item.clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}
