//! What a `#[calista::test]` function runs: a tokio runtime, a test database, the test's
//! body, and its outcome. A body that panics or returns `Err` fails the test while the
//! database is still held, so [`TestDatabase`]'s drop keeps it and prints its URL.

use std::any::Any;
use std::fmt::Debug;

use sqlx::{PgPool, SqlitePool};

use super::{TestDatabase, TestOptions, TestProject};
use crate::database::Pool;
use crate::error::{Error, ServerMessage, with_causes};
use crate::migration::Migrations;
use crate::naming::Revision;

/// The backend a test database is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A database on the project's test server ([`TestProject::server`]).
    Postgres,
    /// A file in the temporary folder.
    Sqlite,
}

impl TestDatabase {
    /// A database on `backend` made as `options` say: on PostgreSQL, on the test server of
    /// `options.project` ([`TestDatabase::postgres_on`]); on SQLite, a file
    /// ([`TestDatabase::sqlite_with`]).
    pub async fn on(
        backend: Backend,
        migrations: &Migrations,
        options: TestOptions,
    ) -> Result<Self, Error> {
        match backend {
            Backend::Postgres => {
                let server = options.project.server()?;
                Self::postgres_on(migrations, &server, options).await
            }
            Backend::Sqlite => Self::sqlite_with(migrations, options).await,
        }
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

/// Runs one test: makes the database on `backend` (at `revision`, or head) with the names
/// and server of `project` (a crate's name, [`TestProject::new`]), runs `body` on it, and
/// fails the test (a panic, as test failures are) when the database cannot be made or the
/// body panics or returns `Err`; the database is then kept and its URL printed. A passing
/// test's database is dropped.
///
/// The failure's panic is reported at the caller, the test the attribute made, not here.
/// The runtime is tokio's multi-thread runtime, as `#[tokio::main]` builds by default, so
/// that code under test that spawns tasks or calls `block_in_place` behaves as in the
/// application; two workers, as tests already run in parallel.
#[track_caller]
pub fn run_test<R: TestOutcome>(
    backend: Backend,
    migrations: &Migrations,
    revision: Option<&str>,
    project: &str,
    body: impl AsyncFnOnce(&TestDatabase) -> R,
) {
    #[allow(clippy::manual_map)] // In a closure, the caller's location would be lost.
    let revision = match revision {
        Some(text) => Some(parse_revision(text)),
        None => None,
    };
    let options = TestOptions {
        revision,
        project: TestProject::new(project),
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
    // The database is dropped (or kept) in the runtime, where its pools live.
    let _in_runtime = runtime.enter();
    let hint = options.project.clone();
    let ran = runtime.block_on(async {
        let test_db = TestDatabase::on(backend, migrations, options)
            .await
            .map_err(|e| setup_failure(backend, &e, &hint))?;
        let failure = body(&test_db).await.failure();
        Ok::<_, String>((test_db, failure))
    });
    match ran {
        Err(setup) => panic!("{setup}"),
        Ok((test_db, Some(failure))) => {
            // Panicking while `test_db` is held keeps the database and prints its URL.
            let _held = test_db;
            panic!("the test returned an error: {failure}");
        }
        Ok((test_db, None)) => drop(test_db),
    }
}

/// [`run_test`] on PostgreSQL, for a body that takes the pool.
#[track_caller]
pub fn run_test_postgres_pool<R: TestOutcome>(
    migrations: &Migrations,
    revision: Option<&str>,
    project: &str,
    body: impl AsyncFnOnce(PgPool) -> R,
) {
    run_test_on_pool(
        Backend::Postgres,
        Pool::as_postgres,
        migrations,
        revision,
        project,
        body,
    );
}

/// [`run_test`] on SQLite, for a body that takes the pool.
#[track_caller]
pub fn run_test_sqlite_pool<R: TestOutcome>(
    migrations: &Migrations,
    revision: Option<&str>,
    project: &str,
    body: impl AsyncFnOnce(SqlitePool) -> R,
) {
    run_test_on_pool(
        Backend::Sqlite,
        Pool::as_sqlite,
        migrations,
        revision,
        project,
        body,
    );
}

/// [`run_test`] for a body that takes a handle on the test database's pool.
#[track_caller]
fn run_test_on_pool<P: Clone, R: TestOutcome>(
    backend: Backend,
    pool: fn(&Pool) -> Option<&P>,
    migrations: &Migrations,
    revision: Option<&str>,
    project: &str,
    body: impl AsyncFnOnce(P) -> R,
) {
    run_test(backend, migrations, revision, project, async |test_db| {
        let Some(pool) = pool(test_db.database().pool()) else {
            panic!("the {backend:?} test database has no {backend:?} pool");
        };
        body(pool.clone()).await
    });
}

/// The attribute checked the revision's form at build time; this is the same check.
#[track_caller]
fn parse_revision(text: &str) -> Revision {
    match Revision::parse(text) {
        Ok(revision) => revision,
        Err(e) => panic!("the test's revision {text:?} is not YYYYMMDD_HHMM: {e}"),
    }
}

/// Why the test database could not be made, and for a server that does not answer, how
/// to start one or which variable names another.
fn setup_failure(backend: Backend, error: &Error, project: &TestProject) -> String {
    let unreachable = matches!(error, Error::Connect { .. } | Error::Timeout { .. });
    let error = with_causes(error);
    if backend == Backend::Postgres && unreachable {
        format!(
            "cannot make the test database: {error}\n\
             Start PostgreSQL (on Debian: `pg_ctlcluster --skip-systemctl-redirect 15 main start`), \
             or {}.",
            project.server_hint()
        )
    } else {
        format!("cannot make the test database: {error}")
    }
}
