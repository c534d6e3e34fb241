//! The tests: a `#[test]` function per backend that holds the user's function and hands
//! it to the runner in `calista::__private`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ReturnType, Visibility};

use super::parse::{Argument, Test};

pub(crate) fn generate(
    Test {
        mut function,
        migrations,
        revision,
        prefix,
        argument,
    }: Test,
) -> TokenStream {
    let attrs = std::mem::take(&mut function.attrs);
    function.vis = Visibility::Inherited;
    let revision = match revision {
        Some(literal) => quote!(::core::option::Option::Some(#literal)),
        None => quote!(::core::option::Option::None),
    };
    // The project whose names and test server the databases take: the crate's own.
    let project = match prefix {
        Some(literal) => quote!(#literal),
        None => quote!(::core::env!("CARGO_PKG_NAME")),
    };
    // Errors about the function's result, and the panic of a failed test, point at its
    // return type (the runner reports its panics at its caller).
    let result_span = match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => function.sig.ident.span(),
    };
    let name = function.sig.ident.clone();
    // `runner` is the function in `calista::__private`, `lead` its arguments before the
    // migrations.
    let one_test = |test_name: &str, runner: &str, lead: TokenStream, migrations: &syn::Path| {
        let test_name = Ident::new(test_name, name.span());
        let runner = Ident::new(runner, Span::call_site());
        let migrations = quote_spanned!(migrations.span()=> &#migrations);
        let call = quote_spanned! {result_span=>
            ::calista::__private::#runner(#lead #migrations, #revision, #project, #name)
        };
        quote! {
            #(#attrs)*
            #[test]
            fn #test_name() {
                #function
                #call;
            }
        }
    };
    match argument {
        Argument::PgPool => one_test(
            &name.to_string(),
            "run_test_postgres_pool",
            quote!(),
            &migrations,
        ),
        Argument::SqlitePool => one_test(
            &name.to_string(),
            "run_test_sqlite_pool",
            quote!(),
            &migrations,
        ),
        Argument::TestDatabase => {
            // One test per backend, in a module of the function's name.
            let migrations = from_child_module(migrations);
            let postgres = one_test(
                "postgres",
                "run_test",
                quote!(::calista::__private::TestBackend::Postgres,),
                &migrations,
            );
            let sqlite = one_test(
                "sqlite",
                "run_test",
                quote!(::calista::__private::TestBackend::Sqlite,),
                &migrations,
            );
            quote! {
                mod #name {
                    #[allow(unused_imports)]
                    use super::*;
                    #postgres
                    #sqlite
                }
            }
        }
    }
}

/// The migrations path as the module of the two tests sees it: `self::` and `super::`
/// move up one level; other paths resolve through `use super::*`.
fn from_child_module(mut path: syn::Path) -> syn::Path {
    let first = path.segments.first().map(|s| s.ident.to_string());
    match first.as_deref() {
        Some("self") => {
            if let Some(segment) = path.segments.first_mut() {
                segment.ident = Ident::new("super", segment.ident.span());
            }
            path
        }
        Some("super") => {
            let mut moved: syn::Path = syn::parse_quote!(super);
            moved.segments.extend(path.segments);
            moved
        }
        _ => path,
    }
}
