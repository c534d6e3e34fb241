//! `#[calista::test]`: a test that takes a fresh database of CALISTA's own migrations, on
//! the backend its argument names. What happens when such a test fails (its database is
//! kept and named) is checked by running the failing test in a child process of this
//! binary: the `child_*` tests below are ignored, and do their part only when the parent
//! sets `CALISTA_TEST_CHILD`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::error::Error;

use calista::testing::TestDatabase;
use calista::{Migrations, Migrator, SchemaState};
use common::*;

static CALISTA: Migrations = calista::migrations!();

/// The variable that makes the `child_*` tests do their part.
const CHILD: &str = "CALISTA_TEST_CHILD";

#[calista::test(CALISTA)]
async fn a_sqlite_pool_test_starts_at_head_and_empty(
    pool: sqlx::SqlitePool,
) -> Result<(), Box<dyn Error>> {
    CALISTA.ensure_schema(&pool).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store")
        .fetch_one(&pool)
        .await?;
    assert_eq!(events, 0);
    Ok(())
}

#[calista::test(CALISTA)]
async fn a_postgres_pool_test_starts_at_head_and_empty(pool: sqlx::PgPool) {
    CALISTA.ensure_schema(&pool).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

// Two tests: `a_test_database_argument_runs_on_both_backends::{postgres, sqlite}`.
#[calista::test(CALISTA, revision = "20250826_1030")]
async fn a_test_database_argument_runs_on_both_backends(db: &TestDatabase) {
    let state = Migrator::new(&CALISTA, db.database()).check().await;
    // The revision's migration is applied, the one after it is not.
    assert!(
        matches!(state, Ok(SchemaState::Behind { pending: 1, .. })),
        "{state:?}"
    );
    assert!(db.url().contains("calista_test"), "{}", db.url());
}

/// Runs one ignored test of this binary as a child; its exit and its whole output.
fn run_child(filter: &str, env: &[(&str, &str)]) -> (bool, String) {
    run_ignored_tests(&[filter, "--test-threads=1"], |command| {
        command.env(CHILD, "1").envs(env.iter().copied());
    })
}

/// The URLs that the output names after `marker`.
fn urls_after<'a>(output: &'a str, marker: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter_map(|line| line.split_once(marker))
        .map(|(_, url)| url.trim())
        .collect()
}

async fn pg_database_exists(name: &str) -> bool {
    let mut admin = pg_admin().await;
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

async fn drop_pg_database(name: &str) {
    let mut admin = pg_admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

const KEPT: &str = "its database is kept: ";

/// The line of this file that holds `text`.
fn line_of(text: &str) -> usize {
    include_str!("testing_attr.rs")
        .lines()
        .position(|line| line.contains(text))
        .unwrap()
        + 1
}

#[calista::test(CALISTA)]
#[ignore = "run by a_test_that_returns_err_fails_and_keeps_its_database"]
async fn child_returns_err(pool: sqlx::SqlitePool) -> Result<(), String> {
    if std::env::var_os(CHILD).is_none() {
        return Ok(());
    }
    sqlx::query("INSERT INTO stream_index (kind, key, stream_id) VALUES ('k', 'v', 's')")
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    Err("the orders do not add up".to_owned())
}

#[test]
fn a_test_that_returns_err_fails_and_keeps_its_database() {
    let (passed, output) = run_child("child_returns_err", &[]);
    assert!(!passed, "{output}");
    assert!(
        output.contains("the test returned an error: \"the orders do not add up\""),
        "{output}"
    );
    // The panic points at the test, not at calista's runner.
    let line = line_of("async fn child_returns_err(");
    assert!(
        output.contains(&format!("panicked at tests/testing_attr.rs:{line}:")),
        "{output}"
    );
    let kept = urls_after(&output, KEPT);
    assert_eq!(kept.len(), 1, "{output}");
    let file = std::path::PathBuf::from(kept[0].trim_start_matches("sqlite://"));
    assert!(file.exists(), "{} was deleted", file.display());
    // The kept database is the test's own, with what the test wrote.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows: i64 = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let rows = sqlx::query_scalar("SELECT count(*) FROM stream_index")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    });
    assert_eq!(rows, 1);
    std::fs::remove_file(file).unwrap();
}

#[calista::test(CALISTA)]
#[ignore = "run by a_test_that_panics_fails_and_keeps_its_database"]
async fn child_panics(pool: sqlx::PgPool) {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 42, "the event count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_that_panics_fails_and_keeps_its_database() {
    let (passed, output) = run_child("child_panics", &[]);
    assert!(!passed, "{output}");
    assert!(output.contains("the event count"), "{output}");
    let kept = urls_after(&output, KEPT);
    assert_eq!(kept.len(), 1, "{output}");
    let name = kept[0].rsplit('/').next().unwrap();
    assert!(pg_database_exists(name).await, "{name} was dropped");
    drop_pg_database(name).await;
}

#[calista::test(CALISTA)]
#[ignore = "run by passing_tests_drop_their_databases_on_both_backends"]
async fn child_passes(db: &TestDatabase) {
    if std::env::var_os(CHILD).is_some() {
        println!("child database: {}", db.url());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_tests_drop_their_databases_on_both_backends() {
    let (passed, output) = run_child("child_passes::", &[]);
    assert!(passed, "{output}");
    assert!(output.contains("2 passed"), "{output}");
    let urls = urls_after(&output, "child database: ");
    assert_eq!(urls.len(), 2, "{output}");
    for url in urls {
        if let Some(file) = url.strip_prefix("sqlite://") {
            assert!(!std::path::Path::new(file).exists(), "{file} was kept");
        } else {
            let name = url.rsplit('/').next().unwrap();
            assert!(!pg_database_exists(name).await, "{name} was kept");
        }
    }
}

#[calista::test(CALISTA)]
#[ignore = "run by an_unreachable_server_fails_the_test_saying_how_to_start_one"]
async fn child_on_a_closed_port(pool: sqlx::PgPool) {
    if std::env::var_os(CHILD).is_some() {
        pool.close().await;
    }
}

#[test]
fn an_unreachable_server_fails_the_test_saying_how_to_start_one() {
    let (passed, output) = run_child(
        "child_on_a_closed_port",
        &[(
            "CALISTA_TEST_PG_URL",
            "postgres://postgres@127.0.0.1:9/postgres",
        )],
    );
    assert!(!passed, "{output}");
    assert!(
        output.contains("cannot make the test database: cannot connect to"),
        "{output}"
    );
    assert!(output.contains("Start PostgreSQL"), "{output}");
    assert!(
        output.contains("point CALISTA_TEST_PG_URL at a server"),
        "{output}"
    );
}

#[calista::test(CALISTA, prefix = "shop")]
#[ignore = "run by an_applications_tests_read_its_own_server_variable_and_name_it"]
async fn child_of_the_shop_on_a_closed_port(pool: sqlx::PgPool) {
    if std::env::var_os(CHILD).is_some() {
        pool.close().await;
    }
}

#[test]
fn an_applications_tests_read_its_own_server_variable_and_name_it() {
    let closed = "postgres://postgres@127.0.0.1:9/postgres";
    // Its own variable wins over calista's.
    let (passed, output) = run_child(
        "child_of_the_shop_on_a_closed_port",
        &[
            ("SHOP_TEST_PG_URL", closed),
            ("CALISTA_TEST_PG_URL", &pg_admin_url()),
        ],
    );
    assert!(!passed, "{output}");
    assert!(
        output.contains("cannot make the test database: cannot connect to"),
        "{output}"
    );
    assert!(
        output.contains(
            "point SHOP_TEST_PG_URL at a server where this role may create databases \
             (without it: CALISTA_TEST_PG_URL, then postgres://postgres@127.0.0.1:5432/postgres)"
        ),
        "{output}"
    );
    // Without it, calista's variable is read, and the message still names the shop's.
    let (passed, output) = run_child(
        "child_of_the_shop_on_a_closed_port",
        &[("SHOP_TEST_PG_URL", ""), ("CALISTA_TEST_PG_URL", closed)],
    );
    assert!(!passed, "{output}");
    assert!(
        output.contains("point SHOP_TEST_PG_URL at a server"),
        "{output}"
    );
}

#[calista::test(CALISTA, prefix = "shop")]
async fn a_prefix_names_the_test_databases(db: &TestDatabase) {
    assert!(db.url().contains("/shop_test_"), "{}", db.url());
    assert!(db.template().contains("shop_tpl_"), "{}", db.template());
}

#[calista::test(CALISTA)]
async fn one_sql_text_runs_on_either_backend(db: &TestDatabase) -> Result<(), sqlx::Error> {
    let pool = db.any_pool();
    sqlx::query("INSERT INTO stream_index (kind, key, stream_id) VALUES ($1, $2, $3)")
        .bind("customer")
        .bind("ada")
        .bind("s-1")
        .execute(pool)
        .await?;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, key FROM stream_index WHERE stream_id = $1")
            .bind("s-1")
            .fetch_all(pool)
            .await?;
    assert_eq!(rows, [("customer".to_owned(), "ada".to_owned())]);
    // The typed pool sees the same database.
    assert_eq!(
        scalar(db.database(), "SELECT count(*) FROM stream_index").await,
        1
    );
    Ok(())
}
