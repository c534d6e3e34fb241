//! Turns checked migration files into a `static`-ready `Migrations` expression.

use proc_macro2::TokenStream;
use quote::quote;

use calista_core::__private::source::SourceFile;
use calista_core::Checksum;

use super::parse::Call;

pub(crate) fn expand(call: &Call, files: &[SourceFile]) -> TokenStream {
    let migrations: Vec<_> = files.iter().map(|f| &f.migration).cloned().collect();
    let chains = calista_core::__private::chain_digests(&migrations)
        .into_iter()
        .map(checksum);
    let items = files.iter().map(|file| {
        let m = &file.migration;
        // include_str! both embeds the file and makes editing it rebuild the crate; the
        // sections are spans of that text, plain integers, cheap to compile by the thousand.
        let path = file.path.to_string_lossy();
        let spans = calista_core::__private::spans(m)
            .iter()
            .map(|(kind, line, start, end)| quote!((#kind, #line, #start, #end)));
        let (date, time) = calista_core::__private::revision_parts(m.revision());
        let summary = m.summary();
        let no_transaction = m.no_transaction();
        let irreversible = m.irreversible();
        let sum = checksum(m.checksum());
        let migration = quote! {
            __c::migration(
                __c::revision(#date, #time),
                #summary,
                ::core::include_str!(#path),
                &[#(#spans),*],
                #no_transaction,
                #irreversible,
                #sum,
            )
        };
        match m.lock_timeout() {
            Some(timeout) => {
                let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                quote!(__c::with_lock_timeout(#migration, ::core::time::Duration::from_millis(#millis)))
            }
            None => migration,
        }
    });
    let dir = call.dir.to_string_lossy();
    // Inline `const` blocks make the arrays 'static (a plain `&[...]` argument would be a
    // temporary, which `Migration`'s `Cow`s keep from being promoted).
    quote! {{
        use ::calista::__private as __c;
        __c::migrations(
            const { &[#(#items),*] },
            const { &[#(#chains),*] },
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

fn checksum(sum: Checksum) -> TokenStream {
    // One byte-string token, not 32 integer tokens: a thousand migrations compile faster.
    let bytes = proc_macro2::Literal::byte_string(sum.as_bytes());
    quote!(__c::checksum(*#bytes))
}
