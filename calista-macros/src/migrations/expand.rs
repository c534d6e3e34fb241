//! Turns checked migration files into a `static`-ready `Migrations` expression.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use calista_core::source::SourceFile;
use calista_core::{Checksum, Dialect, Direction, Section};

use super::parse::Call;

pub(crate) fn expand(call: &Call, files: &[SourceFile]) -> TokenStream {
    let migrations: Vec<_> = files.iter().map(|f| &f.migration).cloned().collect();
    let chains = calista_core::migration::chain_digests(&migrations)
        .into_iter()
        .map(checksum);

    // Reading each file with include_bytes! makes editing it rebuild the crate.
    let tracked = files.iter().map(|f| {
        let path = f.path.to_string_lossy();
        quote! { const _: &[u8] = ::core::include_bytes!(#path); }
    });
    // Named statics, not `&[...]` temporaries: `Migration` owns `Cow`s, and temporaries
    // with drop glue inside a call are not promoted to 'static.
    let section_statics = migrations.iter().enumerate().map(|(i, m)| {
        let name = format_ident!("__CALISTA_SECTIONS_{i}");
        let count = m.sections().len();
        let sections = m.sections().iter().map(section);
        quote! { static #name: [::calista::__private::Section; #count] = [#(#sections),*]; }
    });
    let items = migrations.iter().enumerate().map(|(i, m)| {
        let sections = format_ident!("__CALISTA_SECTIONS_{i}");
        let (date, time) = m.revision().packed();
        let summary = m.summary();
        let no_transaction = m.no_transaction();
        let irreversible = m.irreversible();
        let sum = checksum(m.checksum());
        quote! {
            ::calista::__private::Migration::from_static(
                ::calista::__private::Revision::from_packed_unchecked(#date, #time),
                #summary,
                &#sections,
                #no_transaction,
                #irreversible,
                #sum,
            )
        }
    });
    let count = migrations.len();
    let dir = call.dir.to_string_lossy();
    quote! {{
        #(#tracked)*
        #(#section_statics)*
        static __CALISTA_MIGRATIONS: [::calista::__private::Migration; #count] = [#(#items),*];
        static __CALISTA_CHAINS: [::calista::__private::Checksum; #count] = [#(#chains),*];
        ::calista::__private::Migrations::from_static(
            &__CALISTA_MIGRATIONS,
            &__CALISTA_CHAINS,
            // Debug builds remember the folder, to warn about files added since the build.
            if ::core::cfg!(debug_assertions) {
                ::core::option::Option::Some(#dir)
            } else {
                ::core::option::Option::None
            },
            ::core::option::Option::Some(::core::env!("CARGO_PKG_VERSION")),
        )
    }}
}

fn section(section: &Section) -> TokenStream {
    let direction = match section.direction() {
        Direction::Up => quote!(::calista::__private::Direction::Up),
        Direction::Down => quote!(::calista::__private::Direction::Down),
    };
    let dialect = match section.dialect() {
        None => quote!(::core::option::Option::None),
        Some(Dialect::Postgres) => quote!(::core::option::Option::Some(
            ::calista::__private::Dialect::Postgres
        )),
        Some(Dialect::Sqlite) => quote!(::core::option::Option::Some(
            ::calista::__private::Dialect::Sqlite
        )),
    };
    let line = section.line();
    let sql = section.sql();
    quote!(::calista::__private::Section::from_static(#direction, #dialect, #line, #sql))
}

fn checksum(sum: Checksum) -> TokenStream {
    let bytes = sum.as_bytes();
    quote!(::calista::__private::Checksum::from_bytes([#(#bytes),*]))
}
