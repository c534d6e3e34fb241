//! `calista db import` end to end: the real binary, in a temporary folder, on the fixture
//! folders of tests/fixtures/import; no database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/import")
        .join(tool)
}

/// Runs `calista` in `dir`, without any CALISTA_* setting of the caller's.
fn calista(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run calista");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn import_writes_the_migrations_folder_lists_each_source_and_the_folder_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("sqlx");
    let (code, stdout, stderr) = calista(
        dir.path(),
        &[
            "db",
            "import",
            "--from",
            "sqlx",
            source.to_str().unwrap(),
            "--dialect",
            "postgres",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let written = files_in(&dir.path().join("migrations"));
    assert_eq!(written.len(), 12, "{written:?}");
    assert!(
        stdout.contains(
            "20230105093000_create_users.up.sql, 20230105093000_create_users.down.sql -> migrations/20230105_0930_create_users.sql"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("20230215120000_index_orders_by_user.sql -> migrations/20230215_1200_index_orders_by_user.sql\n    note: it ran outside a transaction"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped README.md: sqlx reads only"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with("imported 12 sqlx migration(s) into migrations"),
        "{stdout}"
    );
    assert!(
        stderr.contains("The SQLite sections fail on purpose"),
        "{stderr}"
    );
    // The lint, which would refuse the DROP COLUMN, leaves history alone.
    let (code, stdout, stderr) = calista(dir.path(), &["db", "lint"]);
    assert_eq!((code, stdout.trim()), (0, "migrations: clean"), "{stderr}");
}

#[test]
fn import_refuses_to_overwrite_and_writes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("diesel");
    let args = [
        "db",
        "import",
        "--from",
        "diesel",
        source.to_str().unwrap(),
        "--dialect",
        "postgres",
        "--into",
        "db",
    ];
    assert_eq!(calista(dir.path(), &args).0, 0);
    let before = files_in(&dir.path().join("db"));
    let (code, _, stderr) = calista(dir.path(), &args);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("11 files in db would be overwritten"),
        "{stderr}"
    );
    assert_eq!(files_in(&dir.path().join("db")), before);
}

#[test]
fn a_source_that_cannot_be_imported_is_refused_with_each_file_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("refinery");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("V1__a.sql"), "CREATE TABLE a (id INT);\n").unwrap();
    std::fs::write(source.join("U2__b.sql"), "CREATE TABLE b (id INT);\n").unwrap();
    std::fs::write(
        source.join("V3__c.rs"),
        "fn migration() -> String { String::new() }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = calista(
        dir.path(),
        &[
            "db",
            "import",
            "--from",
            "refinery",
            "refinery",
            "--dialect",
            "sqlite",
            "--start",
            "20200101_0000",
        ],
    );
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("2 source files cannot be imported; nothing was written"),
        "{stderr}"
    );
    assert!(
        stderr.contains("U2__b.sql: an unversioned (`U`) refinery migration"),
        "{stderr}"
    );
    assert!(
        stderr.contains("V3__c.rs: a Rust migration cannot be imported"),
        "{stderr}"
    );
    assert!(!dir.path().join("migrations").exists());
}

#[test]
fn alembic_needs_a_start_and_then_imports_with_its_downgrades_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let upgrade = fixture("alembic").join("upgrade.sql");
    let downgrade = fixture("alembic").join("downgrade.sql");
    let mut args = vec![
        "db",
        "import",
        "--from",
        "alembic",
        upgrade.to_str().unwrap(),
        "--alembic-downgrade",
        downgrade.to_str().unwrap(),
        "--dialect",
        "postgres",
        "--format",
        "json",
    ];
    let (code, _, stderr) = calista(dir.path(), &args);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("pass the revision id the first file gets, e.g. `--start 20200101_0000`"),
        "{stderr}"
    );
    args.extend(["--start", "20210601_0900"]);
    let (code, stdout, stderr) = calista(dir.path(), &args);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 11);
    assert_eq!(files[0]["revision"], "20210601_0900");
    assert_eq!(files[0]["sources"][0], "upgrade.sql (7e180c4cda38)");
    assert_eq!(report["tool"], "alembic");
}
