//! The development edit loop: `redo`, and downgrades of edited migrations, with the down
//! SQL recorded when each migration was applied.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use calista::{DowngradeTarget, ErrorKind, Migrator, SchemaState, UpgradeTarget};
use common::*;

const A: &str = "20250101_0000_create_a.sql";
const B: &str = "20250102_0000_create_b.sql";
const B_EDITED: &str = "-- calista:up\nCREATE TABLE b2 (id INTEGER PRIMARY KEY, extra TEXT);\n-- calista:down\nDROP TABLE b2;\n";

async fn tables(handle: &calista::Database) -> Vec<String> {
    let schema = calista::schema::Schema::read(handle).await.unwrap();
    schema.tables.keys().cloned().collect()
}

both_backends! {
    async fn redo_reverts_the_newest_with_its_recorded_down_sql_and_applies_the_edited_file(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[(A, &create_table("a")), (B, &create_table("b"))]);
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();

        // The file's new down (DROP TABLE b2) could not revert what was applied (table b).
        set.write(B, B_EDITED);
        let edited = set.load();
        let migrator = Migrator::new(&edited, &handle).with_policy(development());
        assert!(matches!(migrator.check().await.unwrap(), SchemaState::Modified { .. }));
        let report = migrator.redo().await.unwrap();
        assert_eq!(report.recorded_down_sql, [edited.as_slice()[1].revision()]);
        assert_eq!(report.steps.len(), 1);
        assert_eq!(tables(&handle).await, ["a", "b2"]);
        assert!(migrator.check().await.unwrap().is_up_to_date());

        // Unchanged since: redo runs its own down, the one now recorded.
        let again = migrator.redo().await.unwrap();
        assert!(again.recorded_down_sql.is_empty());
        assert_eq!(tables(&handle).await, ["a", "b2"]);
        assert!(migrator.check().await.unwrap().is_up_to_date());
    }

    async fn redo_is_refused_in_production(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[(A, &create_table("a"))]);
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        let error = Migrator::new(&migrations, &handle).redo().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(error.to_string().contains("forward-only"), "{error}");
        assert_eq!(tables(&handle).await, ["a"]);
    }

    async fn a_downgrade_of_an_edited_migration_uses_the_recorded_down_sql_and_says_so(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[(A, &create_table("a")), (B, &create_table("b"))]);
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        set.write(B, B_EDITED);
        let edited = set.load();
        let migrator = Migrator::new(&edited, &handle).with_policy(development());
        let report = migrator.downgrade(DowngradeTarget::Steps(1)).await.unwrap();
        assert_eq!(report.recorded_down_sql, [edited.as_slice()[1].revision()]);
        assert_eq!(report.to, Some(edited.as_slice()[0].revision()));
        assert_eq!(tables(&handle).await, ["a"]);
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
        // Behind again, with the edited file pending.
        migrator.upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(tables(&handle).await, ["a", "b2"]);
    }

    async fn a_downgrade_that_keeps_an_edited_migration_is_refused(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[(A, &create_table("a")), (B, &create_table("b"))]);
        let migrations = set.load();
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        set.write(A, "-- calista:up\nCREATE TABLE a (id INTEGER PRIMARY KEY);\n-- calista:down\nDROP TABLE a;\n");
        let edited = set.load();
        let error = Migrator::new(&edited, &handle).with_policy(development())
            .downgrade(DowngradeTarget::Steps(1)).await.unwrap_err();
        assert!(error.to_string().contains("20250101_0000 changed since it was applied and this downgrade keeps it"), "{error}");
        assert_eq!(tables(&handle).await, ["a", "b"]);
    }
}

#[test]
fn db_redo_says_what_it_did_and_production_refuses_it() {
    let set = MigrationSet::new(&[(A, &create_table("a")), (B, &create_table("b"))]);
    let dir = set.dir.path();
    let work = tempfile::tempdir().unwrap();
    let run = |env: &str, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_calista"));
        command
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .env("CALISTA_ENV", env);
        command.args([
            "--db-url",
            "sqlite:///app.db",
            "--migrations",
            dir.to_str().unwrap(),
        ]);
        command.args(args);
        let output = command.output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(run("development", &["db", "upgrade"]).0, 0);
    set.write(B, B_EDITED);
    let (code, stdout, stderr) = run("production", &["db", "redo"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("downgrades are refused in production"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run("development", &["db", "redo"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("redone 20250102_0000_create_b.sql: reverted with the down SQL recorded when it was applied (the file changed since), then applied as it is now"),
        "{stdout}"
    );
}
