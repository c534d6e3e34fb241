//! What the database said, shown as it said it: every error that shows a server's error
//! shows its message (with DETAIL and HINT), never the server's own C source location
//! (` at line 412`, `namespace.c`, `RangeVarGetCreationNamespace`), which reads like a line
//! of the user's file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::path::Path;

use calista::testing::TestOutcome;
use calista::{DriverError, Migrator, UpgradeTarget};
use common::*;
use sqlx::Connection;

/// Fails when `text` holds a server's source location: the line sqlx's `Display` appends,
/// or the file and routine its `Debug` shows.
fn assert_no_server_location(text: &str) {
    for location in [" at line ", ".c:", ".c\"", "routine", "line: Some"] {
        assert!(!text.contains(location), "{location:?} in: {text}");
    }
}

/// An error's whole chain, and its `Debug` form, hold no server location.
fn assert_shown_without_location(error: &calista::Error) {
    assert_no_server_location(&with_causes(error));
    assert_no_server_location(&format!("{error:?}"));
}

/// A real error of the test server, from running `sql`.
async fn server_error(sql: &str) -> sqlx::Error {
    let mut conn = pg_admin().await;
    let error = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_err();
    conn.close().await.ok();
    error
}

/// An upgrade of `handle` to a one-table set, which the test expects to fail.
async fn upgrade_fails(handle: &calista::Database) -> calista::Error {
    let migrations = MigrationSet::new(&[("20250101_0000_a.sql", &create_table("a"))]).load();
    Migrator::new(&migrations, handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_server_error_shows_its_message_detail_and_hint_and_no_source_line() {
    let exists = server_error("CREATE SCHEMA public").await;
    // What sqlx shows, and this test exists for.
    assert!(exists.to_string().contains(" at line "), "{exists}");
    let shown = DriverError::from(exists);
    assert_eq!(shown.to_string(), "schema \"public\" already exists");
    assert_no_server_location(&format!("{shown:?}"));
    assert!(
        shown.database_error().as_database_error().is_some(),
        "the driver's error stays reachable"
    );

    let detailed = DriverError::from(
        server_error("CREATE TEMP TABLE one (id int PRIMARY KEY); INSERT INTO one VALUES (1), (1)")
            .await,
    );
    assert_eq!(
        detailed.to_string(),
        "duplicate key value violates unique constraint \"one_pkey\"\n    DETAIL: Key (id)=(1) already exists."
    );
    let hinted = DriverError::from(server_error("SELECT no_such_function(1)").await).to_string();
    assert!(
        hinted.starts_with("function no_such_function(integer) does not exist\n    HINT: "),
        "{hinted}"
    );
    assert_no_server_location(&hinted);
}

#[tokio::test]
async fn connecting_to_a_database_that_does_not_exist_says_so_without_a_source_line() {
    let name = unique_name("calista_missing");
    let url = with_database(&pg_admin_url(), &name);
    let url = calista::url::DatabaseUrl::parse(&url, Path::new("/")).unwrap();
    let handle = calista::Database::connect(&url, in_calista()).unwrap();
    let migrations = MigrationSet::new(&[("20250101_0000_a.sql", &create_table("a"))]).load();
    let error = Migrator::new(&migrations, &handle)
        .check()
        .await
        .unwrap_err();
    assert!(matches!(error, calista::Error::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("cannot connect to "), "{message}");
    assert!(
        !message.contains("does not exist"),
        "the cause is in source() only: {message}"
    );
    let chain = with_causes(&error);
    assert_eq!(
        chain
            .matches(&format!("database \"{name}\" does not exist"))
            .count(),
        1,
        "{chain}"
    );
    assert_shown_without_location(&error);
}

/// A role that may connect but not create the schema: the upgrade's own statements fail
/// on the server, and the error says what to grant, with the server's words as its cause.
#[tokio::test]
async fn a_role_that_may_not_create_the_schema_gets_the_servers_words_without_a_source_line() {
    let db = TestDb::postgres().await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let role = LoginRole::new(pg, "SELECT 1 -- {role} needs no grant").await;
    let url = calista::url::DatabaseUrl::parse(&role.url(pg), Path::new("/")).unwrap();
    let handle = calista::Database::connect(&url, in_calista()).unwrap();
    let error = upgrade_fails(&handle).await;
    let chain = with_causes(&error);
    assert!(chain.contains("lacks a privilege"), "{chain}");
    assert!(
        chain.contains(&format!("permission denied for database {}", pg.name)),
        "{chain}"
    );
    assert_shown_without_location(&error);
    handle.close().await;
}

/// Something already in the schema under the name of one of calista's tables (a domain
/// named `schema_history`): the server refuses to create the table, and says so.
#[tokio::test]
async fn a_name_taken_in_the_schema_is_reported_without_a_source_line() {
    let db = TestDb::postgres().await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let mut conn = pg.connect().await;
    sqlx::raw_sql("CREATE SCHEMA calista; CREATE DOMAIN calista.schema_history AS integer")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let handle = db.open();
    let error = upgrade_fails(&handle).await;
    let chain = with_causes(&error);
    assert!(
        chain.contains("type \"schema_history\" already exists"),
        "{chain}"
    );
    assert_shown_without_location(&error);
    handle.close().await;
}

/// A `#[calista::test]` that returns the driver's error fails with the database's words.
#[tokio::test]
async fn a_test_that_returns_a_driver_error_fails_with_the_servers_words() {
    let error = server_error("CREATE SCHEMA public").await;
    let plain: Result<(), sqlx::Error> = Err(error);
    let failure = plain.failure().unwrap();
    assert_eq!(failure, "schema \"public\" already exists");

    let boxed: Result<(), Box<dyn std::error::Error + Send + Sync>> =
        Err(Box::new(server_error("CREATE SCHEMA public").await));
    let failure = boxed.failure().unwrap();
    assert_eq!(failure, "schema \"public\" already exists");

    // Any other error keeps its Debug form, as a plain #[test] shows it.
    let other: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
    assert!(other.failure().unwrap().contains("disk on fire"));
}
