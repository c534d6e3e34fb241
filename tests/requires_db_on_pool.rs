//! `#[requires_db]` handlers on the application's own pool, handed over with
//! `App::from_pool`: one pool for the handlers and the guard, the guard once per process,
//! a refusal returned through the handler's own error type, and the pool left as it was.
//! An application is installed once per process, so each case runs in a child process of
//! this binary: the `child_*` tests are ignored, and do their part only when the parent
//! sets `CALISTA_TEST_CHILD`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::{App, DatabaseOptions, Ensured, ErrorKind, Migrations, Policy};
use common::*;
use sqlx::{PgPool, SqlitePool};

static CALISTA: Migrations = calista::migrations!();

/// The variable that makes the `child_*` tests do their part: a scratch database's URL
/// for the PostgreSQL case, anything for the SQLite one.
const CHILD: &str = "CALISTA_TEST_CHILD";

/// The application's errors: the guard's refusal converts, as does a query's failure.
#[derive(Debug)]
enum AppError {
    Db(calista::Error),
    #[allow(dead_code)] // Shown through `Debug` when a test fails.
    Query(sqlx::Error),
}

impl From<calista::Error> for AppError {
    fn from(error: calista::Error) -> Self {
        Self::Db(error)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::Query(error)
    }
}

#[calista::requires_db]
async fn count_events(pool: &SqlitePool) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM event_store")
        .fetch_one(pool)
        .await?)
}

#[calista::requires_db]
async fn count_events_pg(pool: &PgPool) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM shop.event_store")
        .fetch_one(pool)
        .await?)
}

#[calista::requires_db]
fn synchronous_handler() -> Result<&'static str, AppError> {
    Ok("ran")
}

fn no_backup() -> Policy {
    Policy {
        backup: calista::backup::BackupPolicy::Disabled {
            reason: "a test".into(),
        },
        ..Policy::default()
    }
}

/// Runs one ignored test of this binary as a child with `CHILD=value`.
fn run_child(name: &str, value: &str) -> (bool, String) {
    run_ignored_tests(&[name, "--exact"], |command| {
        command.env(CHILD, value);
    })
}

/// On an in-memory SQLite pool, which no other pool can reach: the guard can only have
/// read and written the application's own pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by handlers_and_the_guard_share_the_applications_sqlite_pool"]
async fn child_on_an_in_memory_sqlite_pool() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    App::from_pool(&CALISTA, &pool)
        .policy(no_backup())
        .install()
        .unwrap();

    // Behind, without auto-upgrade: refused, through the handler's own error type.
    let Err(AppError::Db(refusal)) = count_events(&pool).await else {
        panic!("a database that is behind was not refused");
    };
    assert_eq!(refusal.kind(), ErrorKind::Behind, "{refusal}");
    assert!(calista::startup().is_none());
    assert!(synchronous_handler().is_err());

    // The application upgrades its pool; then the handlers run.
    CALISTA.upgrade_with(&pool, &no_backup()).await.unwrap();
    assert_eq!(count_events(&pool).await.unwrap(), 0);
    assert!(
        matches!(calista::startup(), Some(Ensured::UpToDate { .. })),
        "{:?}",
        calista::startup()
    );
    // Once per process: the version row removed by hand now is not read again.
    sqlx::query("DELETE FROM alembic_version")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(count_events(&pool).await.unwrap(), 0);
    assert_eq!(synchronous_handler().unwrap(), "ran");
    // The process's handle is the application's pool, open and usable.
    let calista::Pool::Sqlite(handle) = calista::db().await.unwrap().pool() else {
        panic!("not the SQLite pool");
    };
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM alembic_version")
        .fetch_one(handle)
        .await
        .unwrap();
    assert_eq!(
        rows, 0,
        "the handle is another database than the application's pool"
    );
    assert!(!pool.is_closed());
    println!("child done");
}

#[test]
fn handlers_and_the_guard_share_the_applications_sqlite_pool() {
    let (passed, output) = run_child("child_on_an_in_memory_sqlite_pool", "1");
    assert!(passed, "{output}");
    assert!(output.contains("child done"), "{output}");
}

/// On a PostgreSQL pool, with auto-upgrade: the first handler upgrades, once; the pool's
/// sessions keep their `search_path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_guard_upgrades_the_applications_postgres_pool_once"]
async fn child_on_a_postgres_pool() {
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let search_path = || async {
        sqlx::query_scalar::<_, String>("SHOW search_path")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = search_path().await;
    let policy = Policy {
        auto_upgrade: true,
        ..no_backup()
    };
    let options = DatabaseOptions {
        schema: Some(calista::SchemaName::new("shop").unwrap()),
        ..DatabaseOptions::default()
    };
    App::from_pool(&CALISTA, &pool)
        .options(options)
        .policy(policy)
        .install()
        .unwrap();
    assert_eq!(count_events_pg(&pool).await.unwrap(), 0);
    let Some(Ensured::Upgraded(report)) = calista::startup() else {
        panic!("not upgraded at start-up: {:?}", calista::startup());
    };
    assert_eq!(report.steps.len(), CALISTA.len());
    sqlx::query("DELETE FROM shop.alembic_version")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(count_events_pg(&pool).await.unwrap(), 0);
    assert_eq!(
        search_path().await,
        before,
        "the application's pool was changed"
    );
    println!("child done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_upgrades_the_applications_postgres_pool_once() {
    let database = ScratchPg::new().await;
    let (passed, output) = run_child("child_on_a_postgres_pool", &database.url);
    assert!(passed, "{output}");
    assert!(output.contains("child done"), "{output}");
}
