//! `calista::testing`: a database per test, cloned from a template built once per set.
//! (The package's dev-dependency on itself turns its `testing` feature on for its tests.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::time::Instant;

use calista::testing::{TestDatabase, TestOptions};
use calista::{Migrations, Migrator, SchemaState};
use common::*;

static CALISTA: Migrations = calista::migrations!();

async fn at_head_and_empty(test_db: &TestDatabase) {
    let state = Migrator::new(&CALISTA, test_db.database())
        .check()
        .await
        .unwrap();
    assert!(matches!(state, SchemaState::UpToDate { .. }), "{state:?}");
    assert_eq!(
        scalar(test_db.database(), "SELECT count(*) FROM event_store").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_test_database_is_at_head_and_private_to_its_test() {
    let (one, two) = (
        TestDatabase::sqlite(&CALISTA).await.unwrap(),
        TestDatabase::sqlite(&CALISTA).await.unwrap(),
    );
    at_head_and_empty(&one).await;
    exec(
        one.database(),
        "INSERT INTO stream_index (kind, key, stream_id) VALUES ('k', 'v', 's')",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(two.database(), "SELECT count(*) FROM stream_index").await,
        0
    );
    let file = one.database().sqlite_file().unwrap().to_owned();
    drop(one);
    assert!(!file.exists(), "a passing test's database is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_test_database_is_at_head_and_dropped_after() {
    let test_db = TestDatabase::postgres(&CALISTA).await.unwrap();
    at_head_and_empty(&test_db).await;
    let name = test_db.url().rsplit('/').next().unwrap().to_owned();
    drop(test_db);
    let mut admin = pg_admin().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} was not dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_can_stop_at_a_revision() {
    let options = TestOptions {
        revision: Some(CALISTA.as_slice()[0].revision()),
        ..TestOptions::default()
    };
    let test_db = TestDatabase::sqlite_with(&CALISTA, options).await.unwrap();
    let state = Migrator::new(&CALISTA, test_db.database())
        .check()
        .await
        .unwrap();
    assert!(
        matches!(state, SchemaState::Behind { pending: 1, .. }),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tests_on_both_backends_share_the_sets_template_safely() {
    let files: Vec<(String, String)> = (0..20)
        .map(|i| {
            (
                format!("20250101_{:02}{:02}_create_t{i}.sql", i / 60, i % 60),
                create_table(&format!("t{i}")),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_str()))
        .collect();
    let set = MigrationSet::new(&refs);
    let migrations: &'static Migrations = Box::leak(Box::new(set.load()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(async move {
                let test_db = if i % 2 == 0 {
                    TestDatabase::postgres(migrations).await.unwrap()
                } else {
                    TestDatabase::sqlite(migrations).await.unwrap()
                };
                let state = Migrator::new(migrations, test_db.database())
                    .check()
                    .await
                    .unwrap();
                assert!(state.is_up_to_date(), "{state:?}");
                scalar(test_db.database(), "SELECT count(*) FROM t19").await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0);
    }
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn a_failing_tests_database_is_kept() {
    let kept = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let test_db = runtime.block_on(TestDatabase::sqlite(&CALISTA)).unwrap();
        let file = test_db.database().sqlite_file().unwrap().to_owned();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = test_db;
            panic!("the test's assertion failed");
        }));
        assert!(outcome.is_err());
        file
    })
    .join()
    .unwrap();
    assert!(kept.exists(), "{} was deleted", kept.display());
    std::fs::remove_file(kept).unwrap();
}
