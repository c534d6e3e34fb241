//! Procedural macros of CALISTA schema migrations. Use them through the `calista` crate:
//! `calista::migrations!()`, `#[calista::requires_db]` and `#[calista::test]`.

use proc_macro::TokenStream;

mod errors;
mod migrations;
mod requires_db;
mod test_attr;

/// Embeds a folder of migration files as a `calista::Migrations`, checked at build time.
///
/// `migrations!()` reads `migrations/` beside the calling crate's `Cargo.toml`;
/// `migrations!("some/dir")` reads another folder, relative to that manifest. Every
/// violation of the file rules fails the build, all of them reported at once.
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    migrations::expand(input.into()).into()
}

/// Marks a command handler that needs the database.
///
/// Before the body runs, the database handle is acquired, which runs the schema guard
/// once per process with the policy installed by `calista::App::install`. A guard error
/// (schema behind, unsafe, unreachable database) is returned through the handler's own
/// error type, which must implement `From<calista::Error>`. Works on sync and async
/// functions returning `Result`.
#[proc_macro_attribute]
pub fn requires_db(args: TokenStream, item: TokenStream) -> TokenStream {
    requires_db::expand(args.into(), item.into()).into()
}

/// An async test that takes a fresh database at head of the application's migrations
/// (`calista::test`, with calista's `testing` feature).
///
/// The argument's type chooses the backend: `sqlx::PgPool` (PostgreSQL, on the server of
/// `CALISTA_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`),
/// `sqlx::SqlitePool` (a file in the temporary folder), or
/// `&calista::testing::TestDatabase` (both: two tests, `<name>::postgres` and
/// `<name>::sqlite`, in a module of the function's name). `revision = "YYYYMMDD_HHMM"`
/// stops the database at that revision instead of head. The function returns `()` or
/// `Result<(), E>` with `E: Debug`.
///
/// Each test runs on a multi-thread tokio runtime of its own. A passing test's database is
/// dropped; when the body panics or returns `Err`, the test fails and its database is
/// kept, its URL printed.
///
/// ```ignore
/// static MIGRATIONS: calista::Migrations = calista::migrations!();
///
/// #[calista::test(MIGRATIONS)]
/// async fn orders_start_empty(pool: calista::sqlx::SqlitePool) -> Result<(), calista::sqlx::Error> {
///     let n: i64 = calista::sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&pool).await?;
///     assert_eq!(n, 0);
///     Ok(())
/// }
///
/// #[calista::test(MIGRATIONS, revision = "20250101_0000")]
/// async fn before_the_index(db: &calista::testing::TestDatabase) {
///     assert!(db.url().contains("calista_test"));
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).into()
}
