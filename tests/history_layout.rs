//! `schema_history`'s layout: a database made by the released version (no `down_sql`, no
//! `attempts`) is upgraded in place, once, under the migration lock; the released version's
//! statements keep working on the new layout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::{Migrator, UpgradeTarget};
use common::*;

/// The tables exactly as the released version (0.1.0) creates them.
fn released_tables(db: &TestDb) -> String {
    let (p, id, applied_at, schema) = match db {
        TestDb::Postgres(_) => (
            "calista.",
            "BIGINT GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_schema_history PRIMARY KEY",
            "TIMESTAMPTZ  NOT NULL DEFAULT clock_timestamp()",
            "CREATE SCHEMA calista;\n",
        ),
        TestDb::Sqlite { .. } => (
            "",
            "INTEGER      NOT NULL CONSTRAINT pk_schema_history PRIMARY KEY AUTOINCREMENT",
            "TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            "",
        ),
    };
    format!(
        "{schema}CREATE TABLE {p}alembic_version (version_num VARCHAR(32) NOT NULL, \
         CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
CREATE TABLE {p}schema_history (
    id          {id},
    revision    VARCHAR(32)  NOT NULL,
    summary     VARCHAR(200) NOT NULL,
    direction   VARCHAR(4)   NOT NULL CONSTRAINT ck_schema_history_direction CHECK (direction IN ('up', 'down')),
    finished    BOOLEAN      NOT NULL,
    checksum    CHAR(64)     NOT NULL,
    chain       CHAR(64)     NULL,
    applied_at  {applied_at},
    duration_ms BIGINT       NOT NULL,
    app_version VARCHAR(64)  NOT NULL,
    backup      TEXT         NULL
)"
    )
}

fn history_table(db: &TestDb) -> &'static str {
    match db {
        TestDb::Postgres(_) => "calista.schema_history",
        TestDb::Sqlite { .. } => "schema_history",
    }
}

async fn column_count(db: &TestDb, handle: &calista::Database, name: &str) -> i64 {
    let sql = match db {
        TestDb::Postgres(_) => format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'calista' \
             AND table_name = 'schema_history' AND column_name = '{name}'"
        ),
        TestDb::Sqlite { .. } => {
            format!(
                "SELECT count(*) FROM pragma_table_info('schema_history') WHERE name = '{name}'"
            )
        }
    };
    scalar(handle, &sql).await
}

both_backends! {
    async fn a_released_layout_gains_down_sql_and_attempts_once_and_records_them(db: TestDb) {
        if let TestDb::Sqlite { file, .. } = &db {
            std::fs::File::create(file).unwrap();
        }
        let handle = db.open();
        exec(&handle, &released_tables(&db)).await.unwrap();
        let set = MigrationSet::new(&[("20250101_0000_create_a.sql", &create_table("a"))]);
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(column_count(&db, &handle, "down_sql").await, 1);
        assert_eq!(column_count(&db, &handle, "attempts").await, 1);
        let table = history_table(&db);
        assert_eq!(
            scalar(&handle, &format!("SELECT count(*) FROM {table} WHERE down_sql = 'DROP TABLE a;' AND attempts = 1")).await,
            1
        );

        // A second upgrade finds the layout current and changes nothing of it.
        set.write("20250102_0000_create_b.sql", &create_table("b"));
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(column_count(&db, &handle, "down_sql").await, 1);
        assert_eq!(scalar(&handle, &format!("SELECT count(*) FROM {table} WHERE down_sql IS NOT NULL")).await, 2);
    }

    async fn the_released_versions_statements_work_on_the_new_layout(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[("20250101_0000_create_a.sql", &create_table("a"))]);
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        let table = history_table(&db);
        // The released version names the columns it writes and reads.
        exec(&handle, &format!(
            "INSERT INTO {table} (revision, summary, direction, finished, checksum, chain, duration_ms, app_version, backup) \
             VALUES ('20250102_0000', 'create_b', 'up', TRUE, '{zero}', NULL, 3, '0.1.0', NULL)",
            zero = "0".repeat(64)
        )).await.unwrap();
        assert_eq!(
            scalar(&handle, &format!(
                "SELECT count(*) FROM (SELECT revision, summary, direction, finished, checksum, chain, applied_at, \
                 duration_ms, app_version, backup FROM {table} ORDER BY id DESC LIMIT 1) AS h \
                 WHERE revision = '20250102_0000'"
            )).await,
            1
        );
        assert_eq!(scalar(&handle, &format!("SELECT CAST(attempts AS BIGINT) FROM {table} WHERE revision = '20250102_0000'")).await, 1);
    }

    async fn a_reverted_or_irreversible_migration_records_no_down_sql(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[
            ("20250101_0000_create_a.sql", &create_table("a")),
            ("20250102_0000_seed.sql", "-- calista:irreversible\n-- calista:up\nINSERT INTO a (id, note) VALUES (1, 'x');\n"),
        ]);
        let migrations = set.load();
        let migrator = Migrator::new(&migrations, &handle).with_policy(development());
        migrator.upgrade(UpgradeTarget::Head).await.unwrap();
        let table = history_table(&db);
        assert_eq!(scalar(&handle, &format!("SELECT count(*) FROM {table} WHERE down_sql IS NULL")).await, 1);
        assert_eq!(scalar(&handle, &format!("SELECT count(*) FROM {table} WHERE revision = '20250102_0000' AND down_sql IS NULL")).await, 1);
    }

    async fn the_sql_script_adds_the_new_columns_to_a_released_layout_first(db: TestDb) {
        if let TestDb::Sqlite { file, .. } = &db {
            std::fs::File::create(file).unwrap();
        }
        let handle = db.open();
        exec(&handle, &released_tables(&db)).await.unwrap();
        let set = MigrationSet::new(&[("20250101_0000_create_a.sql", &create_table("a"))]);
        let migrations = set.load();
        let script = Migrator::new(&migrations, &handle)
            .with_policy(development())
            .upgrade_script(UpgradeTarget::Head)
            .await
            .unwrap();
        handle.close().await;
        apply_by_hand(&db, &script);
        let handle = db.open();
        assert_eq!(column_count(&db, &handle, "down_sql").await, 1, "{script}");
        assert_eq!(column_count(&db, &handle, "attempts").await, 1, "{script}");
        let table = history_table(&db);
        assert_eq!(
            scalar(&handle, &format!("SELECT count(*) FROM {table} WHERE down_sql = 'DROP TABLE a;'")).await,
            1
        );
    }
}

/// The tables as the build before `kind`, `note` and `replaced_checksum` made them.
fn tables_before_kinds(db: &TestDb) -> String {
    released_tables(db).replacen(
        "    backup      TEXT         NULL\n)",
        "    backup      TEXT         NULL,\n    down_sql    TEXT         NULL,\n    attempts    INTEGER      NOT NULL DEFAULT 1\n)",
        1,
    )
}

mod kinds {
    use super::*;

    both_backends! {
        async fn a_layout_before_kinds_gains_kind_note_and_replaced_checksum_and_old_rows_read_as_applied(db: TestDb) {
            if let TestDb::Sqlite { file, .. } = &db {
                std::fs::File::create(file).unwrap();
            }
            let handle = db.open();
            let tables = tables_before_kinds(&db);
            assert!(tables.contains("attempts"), "{tables}");
            exec(&handle, &tables).await.unwrap();
            let set = MigrationSet::new(&[("20250101_0000_create_a.sql", &create_table("a"))]);
            let migrations = set.load();
            Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
            // Before this build's first write, the rows it reads are an older build's.
            let table = history_table(&db);
            for column in ["kind", "note", "replaced_checksum"] {
                assert_eq!(column_count(&db, &handle, column).await, 1, "{column}");
            }
            // A row an older build writes (naming its columns) reads as applied.
            exec(&handle, &format!(
                "INSERT INTO {table} (revision, summary, direction, finished, checksum, chain, duration_ms, app_version, backup) \
                 VALUES ('20250102_0000', 'create_b', 'up', TRUE, '{zero}', NULL, 3, '0.1.0', NULL)",
                zero = "0".repeat(64)
            )).await.unwrap();
            let history = handle.history().await.unwrap();
            assert_eq!(history.len(), 2);
            assert!(history.iter().all(|r| r.kind == calista::history::HistoryKind::Applied), "{history:?}");
            assert_eq!(scalar(&handle, &format!("SELECT count(*) FROM {table} WHERE kind = 'applied'")).await, 2);
        }

        async fn a_history_of_the_released_layout_reads_without_the_new_columns(db: TestDb) {
            if let TestDb::Sqlite { file, .. } = &db {
                std::fs::File::create(file).unwrap();
            }
            let handle = db.open();
            exec(&handle, &released_tables(&db)).await.unwrap();
            let table = history_table(&db);
            exec(&handle, &format!(
                "INSERT INTO {table} (revision, summary, direction, finished, checksum, chain, duration_ms, app_version, backup) \
                 VALUES ('20250101_0000', 'create_a', 'up', TRUE, '{zero}', NULL, 3, '0.1.0', NULL)",
                zero = "0".repeat(64)
            )).await.unwrap();
            let history = handle.history().await.unwrap();
            assert_eq!(history.len(), 1);
            assert_eq!(history[0].kind, calista::history::HistoryKind::Applied);
            assert_eq!(history[0].note, None);
        }
    }
}
