//! `adopt`: a database another tool made and manages, made here by that real tool, is
//! recorded as applied from the imported files, with none of its SQL run (DESIGN §12).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::path::{Path, PathBuf};

use calista::history::HistoryKind;
use calista::import::{self, ImportRequest, SourceDialect};
use calista::origin::Tool;
use calista::{Migrations, Migrator, SchemaState, UpgradeTarget};
use common::*;
use sqlx::Row;

fn fixture(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(tool)
}

/// `db import --from sqlx` of the fixture folder, into a new folder.
fn imported_sqlx() -> (tempfile::TempDir, Migrations) {
    let request = ImportRequest::new(Tool::Sqlx, fixture("sqlx"), SourceDialect::Postgres);
    let plan = import::plan(&request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    import::write(&plan, dir.path()).unwrap();
    let migrations = Migrations::from_dir(dir.path()).unwrap();
    (dir, migrations)
}

/// Runs sqlx's own migrator on the fixture folder: the database sqlx makes.
async fn migrated_by_sqlx(handle: &calista::Database) {
    let pool = handle.pool().as_postgres().unwrap();
    let migrator = sqlx::migrate::Migrator::new(fixture("sqlx")).await.unwrap();
    migrator.run(pool).await.unwrap();
}

/// Every relation of `public` with its OID and file node: a statement that created,
/// dropped or rewrote one would change this.
async fn relations(handle: &calista::Database) -> Vec<String> {
    let pool = handle.pool().as_postgres().unwrap();
    sqlx::query(
        "SELECT c.relname || ' ' || c.oid || ' ' || c.relfilenode FROM pg_class AS c \
         JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect()
}

/// `_sqlx_migrations` as sqlx left it, every column.
async fn sqlx_rows(handle: &calista::Database) -> Vec<String> {
    let pool = handle.pool().as_postgres().unwrap();
    sqlx::query("SELECT CAST(m.* AS TEXT) FROM _sqlx_migrations AS m ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_sqlx_made_is_adopted_with_none_of_its_sql_run_and_upgrades_on_top() {
    let db = TestDb::postgres().await;
    let handle = db.open();
    migrated_by_sqlx(&handle).await;
    let (dir, migrations) = imported_sqlx();
    let applied_by_sqlx = sqlx_rows(&handle).await;
    assert!(applied_by_sqlx.len() >= 10, "{applied_by_sqlx:?}");
    assert!(migrations.iter().any(|m| m.no_transaction()));

    let migrator = Migrator::new(&migrations, &handle).with_policy(development());
    assert_eq!(
        migrator.check().await.unwrap(),
        SchemaState::Managed { tool: Tool::Sqlx }
    );
    // An upgrade never adopts: running sqlx's migrations again would fail.
    let refused = migrator.upgrade(UpgradeTarget::Head).await.unwrap_err();
    assert!(refused.to_string().contains("managed by sqlx"), "{refused}");
    assert!(refused.to_string().contains("never adopts"), "{refused}");
    assert_eq!(refused.kind(), calista::ErrorKind::Unsafe);

    let before = relations(&handle).await;
    let adopted = migrator.adopt().await.unwrap();
    assert_eq!(adopted.tool, Tool::Sqlx);
    assert_eq!(adopted.recorded.len(), applied_by_sqlx.len());
    assert_eq!(adopted.current, migrations.head().map(|m| m.revision()));
    assert_eq!(adopted.replaced_version, None);
    // None of their SQL ran, and sqlx's table is as sqlx left it.
    assert_eq!(relations(&handle).await, before);
    assert_eq!(sqlx_rows(&handle).await, applied_by_sqlx);

    assert!(migrator.check().await.unwrap().is_up_to_date());
    let history = handle.history().await.unwrap();
    assert_eq!(history.len(), applied_by_sqlx.len());
    assert!(
        history.iter().all(|r| r.kind == HistoryKind::Adopted),
        "{history:?}"
    );
    assert!(
        history[0].note.as_deref().unwrap().starts_with("sqlx 2023"),
        "{history:?}"
    );
    let again = migrator.adopt().await.unwrap_err();
    assert!(again.to_string().contains("nothing to adopt"), "{again}");

    // A new calista migration applies on top.
    std::fs::write(
        dir.path().join("20240101_0000_create_audit.sql"),
        "-- calista:up\nCREATE TABLE audit (id BIGINT PRIMARY KEY);\n-- calista:down\nDROP TABLE audit;\n",
    )
    .unwrap();
    let next = Migrations::from_dir(dir.path()).unwrap();
    let report = Migrator::new(&next, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 1);
    handle.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_a_differing_or_a_missing_migration_is_refused_by_name() {
    let db = TestDb::postgres().await;
    let handle = db.open();
    migrated_by_sqlx(&handle).await;
    let (dir, migrations) = imported_sqlx();
    let pool = handle.pool().as_postgres().unwrap().clone();
    let adopt = |migrations: Migrations| {
        let handle = &handle;
        async move {
            Migrator::new(&migrations, handle)
                .with_policy(development())
                .adopt()
                .await
                .unwrap_err()
                .to_string()
        }
    };

    let original: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 20230302110000")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET success = FALSE WHERE version = 20230302110000")
        .execute(&pool)
        .await
        .unwrap();
    let failed = adopt(migrations.clone()).await;
    assert!(
        failed.contains("20230302110000") && failed.contains("failed"),
        "{failed}"
    );
    sqlx::query("UPDATE _sqlx_migrations SET success = TRUE, checksum = '\\x00' WHERE version = 20230302110000")
        .execute(&pool)
        .await
        .unwrap();
    let differs = adopt(migrations.clone()).await;
    assert!(
        differs.contains("20230302_1100") && differs.contains("differs"),
        "{differs}"
    );

    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 20230302110000")
        .bind(original)
        .execute(&pool)
        .await
        .unwrap();

    // A migration sqlx applied that no file imports.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (20990101000000, 'from elsewhere', TRUE, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let missing = adopt(migrations).await;
    assert!(
        missing.contains("20990101000000") && missing.contains("from elsewhere"),
        "{missing}"
    );
    // Nothing was recorded.
    assert_eq!(
        scalar(
            &handle,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'calista'"
        )
        .await,
        0
    );
    drop(dir);
    handle.close().await;
}

/// The folder of fixture `name` of a database another tool made.
fn adopt_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/adopt")
        .join(name)
}

/// A fixture dump (made by the real tool, see its `generate.sh`) loaded into `handle`.
async fn load_dump(handle: &calista::Database, tool: &str, file: &str) {
    let path = adopt_fixture(tool).join(file);
    let sql = std::fs::read_to_string(&path).unwrap();
    exec(handle, &sql)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `db import --from alembic` of the fixture project's rendered SQL, into a new folder.
fn imported_alembic() -> (tempfile::TempDir, Migrations) {
    let request = ImportRequest::new(
        Tool::Alembic,
        fixture("alembic").join("upgrade.sql"),
        SourceDialect::Postgres,
    )
    .start(calista::Revision::parse("20210601_0900").unwrap())
    .alembic_downgrade(fixture("alembic").join("downgrade.sql"));
    let plan = import::plan(&request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    import::write(&plan, dir.path()).unwrap();
    let migrations = Migrations::from_dir(dir.path()).unwrap();
    (dir, migrations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_alembic_made_is_adopted_with_none_of_its_sql_run_and_upgrades_on_top() {
    let db = TestDb::postgres().await;
    let handle = db.open();
    load_dump(&handle, "alembic", "postgres.sql").await;
    let (dir, migrations) = imported_alembic();
    assert!(migrations.len() >= 10);
    assert!(migrations.iter().any(|m| m.no_transaction()));

    let migrator = Migrator::new(&migrations, &handle).with_policy(development());
    assert_eq!(
        migrator.check().await.unwrap(),
        SchemaState::Managed {
            tool: Tool::Alembic
        }
    );
    let before = relations(&handle).await;
    let adopted = migrator.adopt().await.unwrap();
    // Alembic keeps its head only: every revision up to it is recorded.
    assert_eq!(adopted.recorded.len(), migrations.len());
    assert_eq!(relations(&handle).await, before);
    assert_eq!(
        scalar(
            &handle,
            "SELECT count(*) FROM public.alembic_version WHERE version_num = '76ea4b4c3982'"
        )
        .await,
        1
    );
    assert!(migrator.check().await.unwrap().is_up_to_date());
    let history = handle.history().await.unwrap();
    assert_eq!(history.len(), migrations.len());
    assert!(history.iter().all(|r| r.kind == HistoryKind::Adopted));

    std::fs::write(
        dir.path().join("20240101_0000_create_audit.sql"),
        "-- calista:up\nCREATE TABLE audit (id BIGINT PRIMARY KEY);\n-- calista:down\nDROP TABLE audit;\n",
    )
    .unwrap();
    let next = Migrations::from_dir(dir.path()).unwrap();
    let report = Migrator::new(&next, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 1);
    handle.close().await;
}

/// Every object of the SQLite file but calista's, with the page its data starts at: a
/// statement that created, dropped or rebuilt one would change this.
async fn sqlite_objects(handle: &calista::Database) -> Vec<String> {
    let pool = handle.pool().as_sqlite().unwrap();
    sqlx::query(
        "SELECT type || ' ' || name || ' ' || rootpage FROM sqlite_master \
         WHERE tbl_name NOT IN ('alembic_version', 'schema_history', 'sqlite_sequence') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_sqlx_made_is_adopted_with_none_of_its_sql_run_and_upgrades_on_top() {
    let source = adopt_fixture("sqlx-sqlite");
    let db = TestDb::sqlite();
    if let TestDb::Sqlite { file, .. } = &db {
        std::fs::File::create(file).unwrap();
    }
    let handle = db.open();
    let pool = handle.pool().as_sqlite().unwrap().clone();
    sqlx::migrate::Migrator::new(source.clone())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    // A row the backfill would change if it ran again.
    exec(&handle, "INSERT INTO users (id, name) VALUES (1, 'a'); INSERT INTO orders (id, user_id, total_cents) VALUES (1, 1, 5)")
        .await
        .unwrap();
    let plan = import::plan(&ImportRequest::new(
        Tool::Sqlx,
        &source,
        SourceDialect::Sqlite,
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    import::write(&plan, dir.path()).unwrap();
    let migrations = Migrations::from_dir(dir.path()).unwrap();
    assert!(migrations.len() >= 10);
    assert!(migrations.iter().any(|m| m.no_transaction()));
    let sqlx_rows = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT version || ' ' || success || ' ' || hex(checksum) FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let applied_by_sqlx = sqlx_rows().await;

    let migrator = Migrator::new(&migrations, &handle).with_policy(development());
    assert_eq!(
        migrator.check().await.unwrap(),
        SchemaState::Managed { tool: Tool::Sqlx }
    );
    let before = sqlite_objects(&handle).await;
    let adopted = migrator.adopt().await.unwrap();
    assert_eq!(adopted.recorded.len(), applied_by_sqlx.len());
    assert_eq!(sqlite_objects(&handle).await, before);
    assert_eq!(sqlx_rows().await, applied_by_sqlx);
    assert_eq!(
        scalar(&handle, "SELECT count(*) FROM orders WHERE status IS NULL").await,
        1
    );
    assert!(migrator.check().await.unwrap().is_up_to_date());
    assert_eq!(handle.history().await.unwrap().len(), applied_by_sqlx.len());

    std::fs::write(
        dir.path().join("20240101_0000_create_audit.sql"),
        "-- calista:up\nCREATE TABLE audit (id INTEGER PRIMARY KEY);\n-- calista:down\nDROP TABLE audit;\n",
    )
    .unwrap();
    let next = Migrations::from_dir(dir.path()).unwrap();
    let report = Migrator::new(&next, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 1);
    handle.close().await;
}

/// The database `tool` made (the dump in fixture `dump`, made by the real tool: see its
/// `generate.sh`), loaded into `db` and adopted from the files `request` imports: every row
/// of its table recorded as applied (`expected`), none of its SQL run (no object created,
/// dropped or rewritten), its table untouched, and a new migration applies on top.
async fn adopts_the_dump(
    db: TestDb,
    dump: &str,
    request: ImportRequest,
    table_rows: &str,
    expected: usize,
) {
    let tool = request.tool;
    let postgres = matches!(db, TestDb::Postgres(_));
    if let TestDb::Sqlite { file, .. } = &db {
        std::fs::File::create(file).unwrap();
    }
    let handle = db.open();
    let objects = async |handle: &calista::Database| {
        if postgres {
            relations(handle).await
        } else {
            sqlite_objects(handle).await
        }
    };
    let file = if postgres {
        "postgres.sql"
    } else {
        "sqlite.sql"
    };
    load_dump(&handle, dump, file).await;
    let plan = import::plan(&request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    import::write(&plan, dir.path()).unwrap();
    let migrations = Migrations::from_dir(dir.path()).unwrap();
    assert!(migrations.len() >= 10, "{tool}");
    assert_eq!(
        scalar(&handle, table_rows).await,
        i64::try_from(expected).unwrap(),
        "{tool}"
    );

    let migrator = Migrator::new(&migrations, &handle).with_policy(development());
    assert_eq!(
        migrator.check().await.unwrap(),
        SchemaState::Managed { tool }
    );
    let before = objects(&handle).await;
    let adopted = migrator.adopt().await.unwrap();
    assert_eq!(adopted.recorded.len(), expected, "{tool}");
    assert_eq!(objects(&handle).await, before, "{tool}");
    assert_eq!(
        scalar(&handle, table_rows).await,
        i64::try_from(expected).unwrap(),
        "{tool}"
    );
    assert!(migrator.check().await.unwrap().is_up_to_date(), "{tool}");
    let history = handle.history().await.unwrap();
    assert_eq!(history.len(), expected, "{tool}");
    assert!(
        history.iter().all(|r| r.kind == HistoryKind::Adopted),
        "{tool}"
    );

    std::fs::write(
        dir.path().join("20300101_0000_create_audit_trail.sql"),
        "-- calista:up\nCREATE TABLE audit_trail (id INTEGER PRIMARY KEY);\n-- calista:down\nDROP TABLE audit_trail;\n",
    )
    .unwrap();
    let next = Migrations::from_dir(dir.path()).unwrap();
    let report = Migrator::new(&next, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 1, "{tool}");
    handle.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refinery_made_is_adopted_with_its_checksums_compared() {
    let request = ImportRequest::new(Tool::Refinery, fixture("refinery"), SourceDialect::Postgres)
        .start(calista::Revision::parse("20200101_0000").unwrap());
    adopts_the_dump(
        TestDb::postgres().await,
        "refinery",
        request,
        "SELECT count(*) FROM public.refinery_schema_history",
        11,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_diesel_made_is_adopted() {
    let request = ImportRequest::new(Tool::Diesel, fixture("diesel"), SourceDialect::Postgres);
    adopts_the_dump(
        TestDb::postgres().await,
        "diesel",
        request,
        "SELECT count(*) FROM public.__diesel_schema_migrations",
        11,
    )
    .await;
}

/// On SQLite, calista's version table is Alembic's own `alembic_version`: adopting moves
/// its row to calista's revision, and the Alembic revision stays in the history's note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_alembic_made_is_adopted_and_its_version_row_moves() {
    let source = adopt_fixture("alembic-sqlite");
    let db = TestDb::sqlite();
    if let TestDb::Sqlite { file, .. } = &db {
        std::fs::File::create(file).unwrap();
    }
    let handle = db.open();
    load_dump(&handle, "alembic-sqlite", "sqlite.sql").await;
    exec(&handle, "INSERT INTO accounts (id, name) VALUES (1, 'a'); INSERT INTO orders (id, account_id, total_cents) VALUES (1, 1, 5)")
        .await
        .unwrap();
    let request = ImportRequest::new(
        Tool::Alembic,
        source.join("upgrade.sql"),
        SourceDialect::Sqlite,
    )
    .start(calista::Revision::parse("20210601_0900").unwrap())
    .alembic_downgrade(source.join("downgrade.sql"));
    let plan = import::plan(&request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    import::write(&plan, dir.path()).unwrap();
    let migrations = Migrations::from_dir(dir.path()).unwrap();
    assert_eq!(migrations.len(), 11);

    let migrator = Migrator::new(&migrations, &handle).with_policy(development());
    assert_eq!(
        migrator.check().await.unwrap(),
        SchemaState::Managed {
            tool: Tool::Alembic
        }
    );
    let before = sqlite_objects(&handle).await;
    let adopted = migrator.adopt().await.unwrap();
    assert_eq!(adopted.recorded.len(), 11);
    assert_eq!(adopted.replaced_version.as_deref(), Some("1a2b3c4d5e11"));
    assert_eq!(sqlite_objects(&handle).await, before);
    assert_eq!(
        scalar(&handle, "SELECT count(*) FROM orders WHERE status IS NULL").await,
        1
    );
    let head = migrations.head().unwrap().revision().to_string();
    assert_eq!(version(&handle).await.as_deref(), Some(head.as_str()));
    let history = handle.history().await.unwrap();
    assert_eq!(
        history.last().unwrap().note.as_deref(),
        Some("alembic 1a2b3c4d5e11")
    );
    assert!(migrator.check().await.unwrap().is_up_to_date());
    handle.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_diesel_made_is_adopted() {
    let request = ImportRequest::new(
        Tool::Diesel,
        adopt_fixture("diesel-sqlite").join("migrations"),
        SourceDialect::Sqlite,
    );
    adopts_the_dump(
        TestDb::sqlite(),
        "diesel-sqlite",
        request,
        "SELECT count(*) FROM __diesel_schema_migrations",
        11,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_refinery_made_is_adopted_with_its_checksums_compared() {
    let request = ImportRequest::new(
        Tool::Refinery,
        adopt_fixture("refinery-sqlite").join("migrations"),
        SourceDialect::Sqlite,
    )
    .start(calista::Revision::parse("20200101_0000").unwrap());
    adopts_the_dump(
        TestDb::sqlite(),
        "refinery-sqlite",
        request,
        "SELECT count(*) FROM refinery_schema_history",
        11,
    )
    .await;
}
