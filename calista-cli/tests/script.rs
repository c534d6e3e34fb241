//! `calista db upgrade --sql` prints the statements the upgrade runs: applied by hand with
//! `psql` or `sqlite3`, the script builds exactly the schema the upgrade builds, and the
//! guard then agrees the database is up to date.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;

use calista::{Migrator, SchemaState, UpgradeTarget};
use common::*;

/// A table, a no-transaction index (concurrent on PostgreSQL) and a second table.
fn files() -> MigrationSet {
    MigrationSet::new(&[
        ("20250101_0000_create_a.sql", &create_table("a")),
        (
            "20250102_0000_index_a_note.sql",
            "-- calista:no-transaction\n\
             -- calista:up postgres\nCREATE INDEX CONCURRENTLY ix_a_note ON a (note);\n\
             -- calista:up sqlite\nCREATE INDEX ix_a_note ON a (note);\n\
             -- calista:down\nDROP INDEX ix_a_note;\n",
        ),
        (
            "20250103_0000_create_c.sql",
            "-- calista:up\nCREATE TABLE c (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));\n\
             CREATE VIEW c_with_a AS SELECT c.id, a.note FROM c JOIN a ON a.id = c.a_id;\n\
             -- calista:down\nDROP VIEW c_with_a;\nDROP TABLE c;\n",
        ),
    ])
}

/// The schema as the database's own tool dumps it, without comments and settings.
fn schema_dump(db: &TestDb) -> String {
    let output = match db {
        TestDb::Postgres(pg) => Command::new("pg_dump")
            .args([
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                "-d",
                &pg.url,
            ])
            .output()
            .unwrap(),
        TestDb::Sqlite { file, .. } => Command::new("sqlite3")
            .arg(file)
            .arg(".schema")
            .output()
            .unwrap(),
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        // Comments, and pg_dump's `\restrict` lines, which carry a random key.
        .filter(|line| {
            !line.trim().is_empty() && !line.starts_with("--") && !line.starts_with('\\')
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `calista db check` on a database: its exit code and output.
fn db_check(db: &TestDb, migrations: &std::path::Path) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    let output = command
        .current_dir(db.scratch_dir())
        .arg("--migrations")
        .arg(migrations)
        .args(["db", "check"])
        .env("CALISTA_DB_URL", db.url_text())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// Upgrades `by_script` with the printed script and `by_upgrade` with the upgrade, both
/// from `start` (None: empty), and checks that they end the same.
async fn script_matches_upgrade(by_script: TestDb, by_upgrade: TestDb, start: Option<&str>) {
    let folder = files();
    let set = folder.load();
    let scripted = by_script.open();
    let upgraded = by_upgrade.open();
    if let Some(start) = start {
        let to = UpgradeTarget::Revision(calista::Revision::parse(start).unwrap());
        for handle in [&scripted, &upgraded] {
            Migrator::new(&set, handle)
                .with_policy(development())
                .upgrade(to)
                .await
                .unwrap();
        }
    }
    let script = Migrator::new(&set, &scripted)
        .with_policy(development())
        .upgrade_script(UpgradeTarget::Head)
        .await
        .unwrap();
    scripted.close().await;
    apply_by_hand(&by_script, &script);
    Migrator::new(&set, &upgraded)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    upgraded.close().await;

    let (expected, found) = (schema_dump(&by_upgrade), schema_dump(&by_script));
    assert!(
        found.contains("ix_a_note") && found.contains("c_with_a"),
        "{found}"
    );
    if matches!(by_script, TestDb::Postgres(_)) {
        assert!(
            found.contains("CREATE TABLE calista.c "),
            "the migrations' tables are in the schema: {found}"
        );
    }
    assert_eq!(
        found, expected,
        "the script built another schema than the upgrade\n{script}"
    );

    // `db check` agrees, and the history is the upgrade's.
    let (code, text) = db_check(&by_script, folder.dir.path());
    assert_eq!(code, Some(0), "{text}");
    let scripted = by_script.open();
    assert!(matches!(
        Migrator::new(&set, &scripted).check().await.unwrap(),
        SchemaState::UpToDate { .. }
    ));
    let histories = [
        scripted.history().await.unwrap(),
        by_upgrade.open().history().await.unwrap(),
    ];
    let [history, upgraded_history] = histories.map(|h| {
        h.iter()
            .map(|r| (r.revision.clone(), r.finished, r.checksum, r.chain))
            .collect::<Vec<_>>()
    });
    assert_eq!(history, upgraded_history);
    assert_eq!(version(&scripted).await.as_deref(), Some("20250103_0000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_script_on_an_empty_database_builds_what_the_upgrade_builds() {
    script_matches_upgrade(TestDb::sqlite(), TestDb::sqlite(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_script_on_a_database_a_revision_behind_builds_what_the_upgrade_builds() {
    script_matches_upgrade(TestDb::sqlite(), TestDb::sqlite(), Some("20250101_0000")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_script_on_an_empty_database_builds_what_the_upgrade_builds() {
    script_matches_upgrade(TestDb::postgres().await, TestDb::postgres().await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_script_on_a_database_a_revision_behind_builds_what_the_upgrade_builds() {
    script_matches_upgrade(
        TestDb::postgres().await,
        TestDb::postgres().await,
        Some("20250101_0000"),
    )
    .await;
}
