//! The attribute's input: the migrations static, an optional revision and prefix, and a
//! function the attribute can go on. Every mistake is reported, all at once, with what to
//! write.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, Lit, LitStr, Meta, Token, Type};

use crate::errors::Errors;

/// How the migrations argument is written, for messages.
const USAGE: &str = "write `#[calista::test(MIGRATIONS)]` (or `#[calista::test(MIGRATIONS, revision = \"20250101_0000\")]`) \
     where `static MIGRATIONS: calista::Migrations = calista::migrations!();`";

/// What the function's one argument asks for, and so the backend(s) it runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Argument {
    /// `sqlx::PgPool`: PostgreSQL.
    PgPool,
    /// `sqlx::SqlitePool`: SQLite.
    SqlitePool,
    /// `&calista::testing::TestDatabase`: both, as two tests.
    TestDatabase,
}

/// A test the attribute can make.
pub(crate) struct Test {
    pub(crate) function: ItemFn,
    pub(crate) migrations: syn::Path,
    pub(crate) revision: Option<LitStr>,
    /// The start of its databases' names; `None`: the crate's name.
    pub(crate) prefix: Option<LitStr>,
    pub(crate) argument: Argument,
}

/// What the attribute's arguments say.
struct Options {
    migrations: syn::Path,
    revision: Option<LitStr>,
    prefix: Option<LitStr>,
}

pub(crate) fn parse(args: TokenStream, item: TokenStream) -> Result<Test, TokenStream> {
    let mut errors = Errors::default();
    let options = parse_args(args, &mut errors);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => Some(function),
        Err(_) => {
            errors.push(syn::Error::new(
                first_span(&item),
                "#[calista::test] goes on an `async fn` that takes the test's database, e.g. \
                 `#[calista::test(MIGRATIONS)] async fn orders_start_empty(pool: sqlx::SqlitePool) { … }`",
            ));
            None
        }
    };
    let argument = function
        .as_ref()
        .and_then(|f| check_function(f, &mut errors));
    errors.finish()?;
    match (options, function, argument) {
        (Some(options), Some(function), Some(argument)) => Ok(Test {
            function,
            migrations: options.migrations,
            revision: options.revision,
            prefix: options.prefix,
            argument,
        }),
        // Every `None` above pushed an error, so `finish` returned them.
        _ => Err(TokenStream::new()),
    }
}

/// `MIGRATIONS`, then optionally `revision = "YYYYMMDD_HHMM"` and `prefix = "…"`.
fn parse_args(args: TokenStream, errors: &mut Errors) -> Option<Options> {
    if args.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("#[calista::test] needs the application's migrations: {USAGE}"),
        ));
        return None;
    }
    let items = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args.clone()) {
        Ok(items) => items,
        Err(_) => {
            errors.push(syn::Error::new(
                first_span(&args),
                format!("#[calista::test] takes the name of a migrations static: {USAGE}"),
            ));
            return None;
        }
    };
    let mut items = items.into_iter();
    let migrations = match items.next() {
        Some(Meta::Path(path)) => Some(path),
        Some(other) => {
            errors.push(syn::Error::new(
                other.span(),
                format!("#[calista::test] takes the migrations static first: {USAGE}"),
            ));
            None
        }
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!("#[calista::test] needs the application's migrations: {USAGE}"),
            ));
            None
        }
    };
    let mut revision: Option<LitStr> = None;
    let mut prefix: Option<LitStr> = None;
    for item in items {
        match item {
            Meta::NameValue(pair) if pair.path.is_ident("prefix") => {
                if prefix.is_some() {
                    errors.push(syn::Error::new(
                        pair.span(),
                        "#[calista::test] takes one `prefix`; remove the others",
                    ));
                } else if let Some(literal) = checked_prefix(pair.value, errors) {
                    prefix = Some(literal);
                }
            }
            Meta::NameValue(pair) if pair.path.is_ident("revision") => {
                if revision.is_some() {
                    errors.push(syn::Error::new(
                        pair.span(),
                        "#[calista::test] takes one `revision`; remove the others",
                    ));
                } else if let Some(literal) = checked_revision(pair.value, errors) {
                    revision = Some(literal);
                }
            }
            other => errors.push(syn::Error::new(
                other.span(),
                "#[calista::test] takes the migrations static and, optionally, `revision = \"YYYYMMDD_HHMM\"` \
                 (the revision the test's database stops at) and `prefix = \"myapp\"` (how its test \
                 databases' names start; by default the crate's name); nothing else",
            )),
        }
    }
    migrations.map(|migrations| Options {
        migrations,
        revision,
        prefix,
    })
}

/// A prefix: a string with at least one ASCII letter or digit (the runtime makes the rest
/// of it lowercase letters, digits and `_`).
fn checked_prefix(value: Expr, errors: &mut Errors) -> Option<LitStr> {
    let literal = match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(literal),
            ..
        }) => literal,
        other => {
            errors.push(syn::Error::new(
                other.span(),
                "the prefix is a string that starts the names of the test's databases: `prefix = \"myapp\"`",
            ));
            return None;
        }
    };
    if !literal.value().chars().any(|c| c.is_ascii_alphanumeric()) {
        errors.push(syn::Error::new(
            literal.span(),
            "the prefix needs ASCII letters or digits (it starts database names): `prefix = \"myapp\"`",
        ));
        return None;
    }
    Some(literal)
}

/// A revision string in the form of a migration's file name, which the set must hold.
fn checked_revision(value: Expr, errors: &mut Errors) -> Option<LitStr> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(literal),
        ..
    }) = value
    else {
        errors.push(syn::Error::new(
            value.span(),
            "the revision is a string of the form YYYYMMDD_HHMM, as in the migration's file name: \
             `revision = \"20250101_0000\"`",
        ));
        return None;
    };
    match calista_core::Revision::parse(&literal.value()) {
        Ok(_) => Some(literal),
        Err(e) => {
            errors.push(syn::Error::new(
                literal.span(),
                format!(
                    "{e}; the revision is YYYYMMDD_HHMM, as in the migration's file name: \
                     `revision = \"20250101_0000\"`"
                ),
            ));
            None
        }
    }
}

/// An `async fn` without `self` or generics, taking one argument of a type the attribute
/// knows; returns what that argument asks for.
fn check_function(function: &ItemFn, errors: &mut Errors) -> Option<Argument> {
    let sig = &function.sig;
    let name = &sig.ident;
    for attr in &function.attrs {
        if attr
            .path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "test")
        {
            errors.push(syn::Error::new(
                attr.span(),
                "#[calista::test] makes the test and its runtime itself; remove this attribute",
            ));
        }
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            format!(
                "#[calista::test] goes on an `async fn`, run on a tokio runtime it starts: write `async fn {name}(…)`"
            ),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span(),
            "#[calista::test] cannot go on a `const fn`; remove `const`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "a #[calista::test] function cannot be generic: the test runner calls it with one \
             concrete argument; remove the generic parameters",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        errors.push(syn::Error::new(
            receiver.span(),
            "a #[calista::test] function is a free function, not a method: remove `self`, and \
             take the database as the only argument",
        ));
        return None;
    }
    let argument_help = format!(
        "a #[calista::test] function takes one argument, the test's database: `pool: sqlx::PgPool` \
         (PostgreSQL), `pool: sqlx::SqlitePool` (SQLite), or `db: &calista::testing::TestDatabase` \
         (both: two tests, `{name}::postgres` and `{name}::sqlite`)"
    );
    let mut inputs = sig.inputs.iter();
    let (Some(FnArg::Typed(argument)), None) = (inputs.next(), inputs.next()) else {
        let span = if sig.inputs.is_empty() {
            sig.paren_token.span.join()
        } else {
            sig.inputs.span()
        };
        errors.push(syn::Error::new(span, argument_help));
        return None;
    };
    let argument = match classify(&argument.ty) {
        Some(Ok(argument)) => argument,
        Some(Err(message)) => {
            errors.push(syn::Error::new(argument.ty.span(), message));
            return None;
        }
        None => {
            errors.push(syn::Error::new(argument.ty.span(), argument_help));
            return None;
        }
    };
    Some(argument)
}

/// The argument by its type's name (the attribute sees no types, only how they are
/// written): `None` for a type it does not know, `Err` for a known type taken wrongly.
fn classify(ty: &Type) -> Option<Result<Argument, &'static str>> {
    match ty {
        Type::Reference(reference) => match last_name(&reference.elem)?.as_str() {
            "TestDatabase" if reference.mutability.is_none() => Some(Ok(Argument::TestDatabase)),
            "TestDatabase" => Some(Err(
                "take the test database by shared reference: `db: &calista::testing::TestDatabase`",
            )),
            "PgPool" => Some(Err(
                "take the pool by value (a handle on the test database's pool): `pool: sqlx::PgPool`",
            )),
            "SqlitePool" => Some(Err(
                "take the pool by value (a handle on the test database's pool): `pool: sqlx::SqlitePool`",
            )),
            _ => None,
        },
        _ => match last_name(ty)?.as_str() {
            "PgPool" => Some(Ok(Argument::PgPool)),
            "SqlitePool" => Some(Ok(Argument::SqlitePool)),
            "TestDatabase" => Some(Err(
                "take the test database by reference, `db: &calista::testing::TestDatabase`: the test \
                 runner holds it, so that it is kept when the test fails",
            )),
            _ => None,
        },
    }
}

fn last_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            last.arguments.is_none().then(|| last.ident.to_string())
        }
        _ => None,
    }
}

fn first_span(tokens: &TokenStream) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}
