//! What a `#[calista::test]` function runs: a tokio runtime, a test database, the test's
//! body, and its outcome. A body that panics or returns `Err` fails the test while the
//! database is still held, so [`TestDatabase`]'s drop keeps it and prints its URL.

use std::any::Any;
use std::fmt::Debug;
use std::path::Path;

use sqlx::{PgPool, SqlitePool};

use super::{DEFAULT_PG_URL, PG_URL_VARIABLE, TestDatabase, TestOptions};
use crate::database::Database;
use crate::error::{Error, ServerMessage, with_causes};
use crate::migration::Migrations;
use crate::naming::Revision;
use crate::url::{DatabaseUrl, PostgresUrl};

/// The backend a test database is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A database on the server of `CALISTA_TEST_PG_URL`.
    Postgres,
    /// A file in the temporary folder.
    Sqlite,
}

impl TestDatabase {
    /// A database on `backend` made as `options` say: on PostgreSQL, on the server of
    /// `CALISTA_TEST_PG_URL` ([`TestDatabase::postgres_on`]); on SQLite, a file
    /// ([`TestDatabase::sqlite_with`]).
    pub async fn on(
        backend: Backend,
        migrations: &Migrations,
        options: TestOptions,
    ) -> Result<Self, Error> {
        match backend {
            Backend::Postgres => Self::postgres_on(migrations, &server_from_env()?, options).await,
            Backend::Sqlite => Self::sqlite_with(migrations, options).await,
        }
    }
}

/// The test server: `CALISTA_TEST_PG_URL`, or the default.
pub(super) fn server_from_env() -> Result<PostgresUrl, Error> {
    let text = std::env::var(PG_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    match DatabaseUrl::parse(&text, Path::new(".")) {
        Ok(DatabaseUrl::Postgres(server)) => Ok(server),
        _ => Err(Error::Setup(format!(
            "{PG_URL_VARIABLE} must be a PostgreSQL URL such as {DEFAULT_PG_URL}"
        ))),
    }
}

/// What a test function may return: `()`, or `Result<(), E>` where `E: Debug` (as for a
/// plain `#[test]`); an `Err` fails the test with the error's `Debug` form, except that a
/// database driver's error (`sqlx::Error`, also boxed) shows what the database said.
#[diagnostic::on_unimplemented(
    message = "a `#[calista::test]` function returns `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "not `()` or `Result<(), E>`",
    note = "return nothing, or `Result<(), Box<dyn std::error::Error>>` to use `?` in the test"
)]
pub trait TestOutcome {
    /// The failure to report, if the test failed.
    fn failure(self) -> Option<String>;
}

impl TestOutcome for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: Debug + 'static> TestOutcome for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|error| shown(&error))
    }
}

/// A test's error in its `Debug` form; a driver error as the database's message instead,
/// since its `Debug` form ends in the server's own source file, line and routine.
fn shown<E: Debug + 'static>(error: &E) -> String {
    let any: &dyn Any = error;
    let driver = any.downcast_ref::<sqlx::Error>().or_else(|| {
        any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
            .and_then(|e| e.downcast_ref::<sqlx::Error>())
            .or_else(|| {
                any.downcast_ref::<Box<dyn std::error::Error>>()
                    .and_then(|e| e.downcast_ref::<sqlx::Error>())
            })
    });
    match driver {
        Some(driver) => ServerMessage::of(driver).to_string(),
        None => format!("{error:?}"),
    }
}

/// Runs one test: makes the database on `backend` (at `revision`, or head), runs `body`
/// on it, and fails the test (a panic, as test failures are) when the database cannot be
/// made or the body panics or returns `Err`; the database is then kept and its URL
/// printed. A passing test's database is dropped.
///
/// The runtime is tokio's multi-thread runtime, as `#[tokio::main]` builds by default, so
/// that code under test that spawns tasks or calls `block_in_place` behaves as in the
/// application; two workers, as tests already run in parallel.
#[doc(hidden)]
pub fn run_test<R: TestOutcome>(
    backend: Backend,
    migrations: &Migrations,
    revision: Option<&str>,
    body: impl AsyncFnOnce(&TestDatabase) -> R,
) {
    let options = TestOptions {
        revision: revision.map(parse_revision),
        ..TestOptions::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start the test's tokio runtime: {e}"),
    };
    runtime.block_on(async {
        let test_db = match TestDatabase::on(backend, migrations, options).await {
            Ok(test_db) => test_db,
            Err(e) => panic!("{}", setup_failure(backend, &e)),
        };
        if let Some(failure) = body(&test_db).await.failure() {
            // Panicking while `test_db` is held keeps the database and prints its URL.
            panic!("the test returned an error: {failure}");
        }
        drop(test_db);
    });
}

/// [`run_test`] on PostgreSQL, for a body that takes the pool.
#[doc(hidden)]
pub fn run_test_postgres_pool<R: TestOutcome>(
    migrations: &Migrations,
    revision: Option<&str>,
    body: impl AsyncFnOnce(PgPool) -> R,
) {
    run_test_on_pool(
        Backend::Postgres,
        Database::postgres_pool,
        migrations,
        revision,
        body,
    );
}

/// [`run_test`] on SQLite, for a body that takes the pool.
#[doc(hidden)]
pub fn run_test_sqlite_pool<R: TestOutcome>(
    migrations: &Migrations,
    revision: Option<&str>,
    body: impl AsyncFnOnce(SqlitePool) -> R,
) {
    run_test_on_pool(
        Backend::Sqlite,
        Database::sqlite_pool,
        migrations,
        revision,
        body,
    );
}

/// [`run_test`] for a body that takes a handle on the test database's pool.
fn run_test_on_pool<P: Clone, R: TestOutcome>(
    backend: Backend,
    pool: fn(&Database) -> Option<&P>,
    migrations: &Migrations,
    revision: Option<&str>,
    body: impl AsyncFnOnce(P) -> R,
) {
    run_test(backend, migrations, revision, async |test_db| {
        let Some(pool) = pool(test_db.database()) else {
            panic!("the {backend:?} test database has no {backend:?} pool");
        };
        body(pool.clone()).await
    });
}

/// The attribute checked the revision's form at build time; this is the same check.
fn parse_revision(text: &str) -> Revision {
    match Revision::parse(text) {
        Ok(revision) => revision,
        Err(e) => panic!("the test's revision {text:?} is not YYYYMMDD_HHMM: {e}"),
    }
}

/// Why the test database could not be made, and for a server that does not answer, how
/// to start one.
fn setup_failure(backend: Backend, error: &Error) -> String {
    let unreachable = matches!(error, Error::Connect { .. } | Error::Timeout { .. });
    let error = with_causes(error);
    if backend == Backend::Postgres && unreachable {
        format!(
            "cannot make the test database: {error}\n\
             Start PostgreSQL (on Debian: `pg_ctlcluster --skip-systemctl-redirect 15 main start`), \
             or point {PG_URL_VARIABLE} at a server where this role may create databases \
             (default {DEFAULT_PG_URL})."
        )
    } else {
        format!("cannot make the test database: {error}")
    }
}
