//! An application hands over the pool it already has: `MIGRATIONS.ensure_schema(&pool)`
//! and `MIGRATIONS.upgrade(&pool)`, on PostgreSQL and SQLite, leave that pool as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::{Ensured, ErrorKind, Hints, Migrations, Policy, Pool};
use common::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

static MIXED: Migrations = calista::migrations!("tests/fixtures/mixed");

/// The application's own pool, one connection, so every query sees the same session.
async fn applications_pool(db: &TestDb) -> Pool {
    match db {
        TestDb::Sqlite { file, .. } => Pool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(file)
                        .create_if_missing(true),
                )
                .await
                .unwrap(),
        ),
        TestDb::Postgres(pg) => Pool::Postgres(
            PgPoolOptions::new()
                .max_connections(1)
                .connect(&pg.url)
                .await
                .unwrap(),
        ),
    }
}

/// What the application's own connection sees: its search_path (PostgreSQL), and the
/// tables it can name without a schema.
async fn applications_view(pool: &Pool) -> (String, Vec<String>) {
    match pool {
        Pool::Postgres(pool) => {
            let path: String = sqlx::query_scalar("SHOW search_path")
                .fetch_one(pool)
                .await
                .unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            (path, tables)
        }
        Pool::Sqlite(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            (String::new(), tables)
        }
    }
}

/// Production defaults, without the backup (these tests are about the pool).
fn no_backup() -> Policy {
    Policy {
        backup: calista::backup::BackupPolicy::Disabled {
            reason: "a test".into(),
        },
        ..Policy::default()
    }
}

both_backends! {
    async fn upgrade_on_the_applications_pool_leaves_its_search_path_as_it_was(db: TestDb) {
        let pool = applications_pool(&db).await;
        let (path_before, _) = applications_view(&pool).await;
        let report = MIXED.upgrade_with(&pool, &no_backup()).await.unwrap();
        assert_eq!(report.steps.len(), 3);
        let (path_after, tables) = applications_view(&pool).await;
        assert_eq!(path_after, path_before, "the application's search_path is untouched");
        match &pool {
            Pool::Postgres(_) => {
                assert_eq!(path_after, "\"$user\", public");
                // calista's tables and the migrations' tables, all where the pool's
                // queries look: its current_schema(), `public`.
                assert!(tables.contains(&"public.alembic_version".to_owned()), "{tables:?}");
                assert!(tables.contains(&"public.schema_history".to_owned()), "{tables:?}");
                assert!(tables.contains(&"public.accounts".to_owned()), "{tables:?}");
                assert!(!tables.iter().any(|t| t.starts_with("calista.")), "{tables:?}");
            }
            Pool::Sqlite(_) => {
                assert!(tables.contains(&"alembic_version".to_owned()), "{tables:?}");
                assert!(tables.contains(&"accounts".to_owned()), "{tables:?}");
            }
        }
        // The pool is the application's: still open, still usable.
        let (_, again) = applications_view(&pool).await;
        assert_eq!(again, tables);
        // And the guard on it now finds the schema up to date.
        let ensured = MIXED.ensure_schema(&pool).await.unwrap();
        assert!(matches!(ensured, Ensured::UpToDate { current: Some(_), .. }), "{ensured:?}");
    }

    async fn ensure_schema_on_the_applications_pool_refuses_behind_with_its_hint(db: TestDb) {
        let pool = applications_pool(&db).await;
        let mut hints = Hints::default();
        hints.upgrade = "run `shop migrate` to apply them".into();
        let policy = Policy { hints, ..no_backup() };
        let error = MIXED.ensure_schema_with(&pool, &policy).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Behind);
        // The program's documented code, for an application that exits on it.
        assert_eq!(error.exit_code(), 3);
        let text = error.to_string();
        assert!(text.contains("3 migrations are pending. Run `shop migrate` to apply them"), "{text}");
        assert!(!text.to_lowercase().contains("calista"), "{text}");
        // Refusing wrote nothing.
        let (_, tables) = applications_view(&pool).await;
        assert!(!tables.iter().any(|t| t.ends_with("alembic_version")), "{tables:?}");
    }

    async fn ensure_schema_with_auto_upgrade_upgrades_the_applications_database(db: TestDb) {
        let pool = applications_pool(&db).await;
        let policy = Policy { auto_upgrade: true, ..no_backup() };
        let ensured = MIXED.ensure_schema_with(&pool, &policy).await.unwrap();
        let Ensured::Upgraded(report) = &ensured else { panic!("expected an upgrade: {ensured:?}") };
        assert_eq!(report.steps.len(), 3);
        // The skipped backup is a notice in the result, not only a log line.
        assert!(
            ensured.notices().iter().any(|n| n.to_string() == "backup skipped: a test"),
            "{:?}",
            ensured.notices()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_the_applications_sqlite_pool_lands_beside_its_file() {
    let db = TestDb::sqlite();
    let pool = applications_pool(&db).await;
    // Something to back up: the first migration, then the rest with the default policy.
    let first = calista::Database::from_pool(&pool, calista::DatabaseOptions::default()).unwrap();
    calista::Migrator::new(&MIXED, &first)
        .with_policy(no_backup())
        .upgrade(calista::UpgradeTarget::Revision(
            calista::Revision::parse("20250101_0900").unwrap(),
        ))
        .await
        .unwrap();
    first.close().await;
    let report = MIXED.upgrade(&pool).await.unwrap();
    let Some(calista::backup::BackupOutcome::Taken(backup)) = &report.backup else {
        panic!("expected a backup: {report:?}");
    };
    assert!(
        backup.path.starts_with(db.scratch_dir()),
        "{}",
        backup.path.display()
    );
    assert!(backup.path.exists());
}

/// The application's pool on PostgreSQL, its connections' `search_path` set by the
/// application, as a pool of an application with a schema of its own is.
async fn pool_looking_in(pg: &ScratchPg, search_path: &str) -> sqlx::PgPool {
    let options: sqlx::postgres::PgConnectOptions = pg.url.parse().unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", search_path)]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_go_where_the_pools_search_path_looks() {
    let pg = ScratchPg::new().await;
    let admin = pool_looking_in(&pg, "public").await;
    sqlx::raw_sql("CREATE SCHEMA shop")
        .execute(&admin)
        .await
        .unwrap();
    let pool = pool_looking_in(&pg, "shop, public").await;
    MIXED.upgrade_with(&pool, &no_backup()).await.unwrap();
    // The application's queries name no schema, and find the migrations' tables.
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(accounts, 0);
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT table_schema::text FROM information_schema.tables \
         WHERE table_name IN ('alembic_version', 'schema_history', 'accounts')",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(schemas, ["shop"]);
    let db = calista::Database::from_pool(&pool, calista::DatabaseOptions::default()).unwrap();
    assert_eq!(db.schema().await.unwrap().unwrap().as_str(), "shop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_named_in_the_options_holds_the_tables_as_before() {
    let pg = ScratchPg::new().await;
    let pool = pool_looking_in(&pg, "public").await;
    let options = calista::DatabaseOptions {
        schema: Some(calista::SchemaName::new("billing").unwrap()),
        ..calista::DatabaseOptions::default()
    };
    let db = calista::Database::from_pool(&pool, options).unwrap();
    calista::Migrator::new(&MIXED, &db)
        .with_policy(no_backup())
        .upgrade(calista::UpgradeTarget::Head)
        .await
        .unwrap();
    let (_, tables) = applications_view(&Pool::Postgres(pool)).await;
    assert!(
        tables.contains(&"billing.alembic_version".to_owned()),
        "{tables:?}"
    );
    assert!(
        tables.contains(&"billing.accounts".to_owned()),
        "{tables:?}"
    );
    assert!(
        !tables.iter().any(|t| t.starts_with("public.")),
        "{tables:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_in_schema_calista_are_never_installed_a_second_time_where_the_pool_looks() {
    let pg = ScratchPg::new().await;
    // A database the `calista` program (or an older version) upgraded: tables in `calista`.
    let db = TestDb::Postgres(pg);
    let program = db.open();
    calista::Migrator::new(&MIXED, &program)
        .with_policy(no_backup())
        .upgrade(calista::UpgradeTarget::Head)
        .await
        .unwrap();
    program.close().await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let pool = pool_looking_in(pg, "\"$user\", public").await;
    for error in [
        MIXED.upgrade_with(&pool, &no_backup()).await.unwrap_err(),
        MIXED
            .ensure_schema_with(&pool, &no_backup())
            .await
            .unwrap_err(),
    ] {
        let calista::Error::StateInOtherSchema { current, found } = &error else {
            panic!("expected a refusal naming both schemas: {error:?}");
        };
        assert_eq!((current.as_str(), found.as_str()), ("public", "calista"));
        assert_eq!(error.kind(), ErrorKind::Usage);
        let text = error.to_string();
        assert!(
            text.contains("`calista`") && text.contains("`public`"),
            "{text}"
        );
    }
    let (_, tables) = applications_view(&Pool::Postgres(pool)).await;
    assert!(
        !tables.iter().any(|t| t.starts_with("public.")),
        "nothing installed: {tables:?}"
    );
}
