//! `calista db verify` end to end: the real binary, scratch databases it makes itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::process::Command;

use common::*;

/// Runs `calista` with a clean CALISTA_* environment; (exit code, stdout, stderr).
fn calista(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("run calista");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn verify_passes_on_calistas_own_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        calista(dir.path(), &["db", "verify", "--pg-url", &pg_admin_url()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("verified: 2 revisions on PostgreSQL and SQLite"),
        "{stdout}"
    );
    // Nothing was written where the program would otherwise keep its database.
    assert!(!dir.path().join("calista.db").exists());
}

#[test]
fn verify_names_the_revision_and_diff_and_exits_1_in_json_too() {
    let set = MigrationSet::new(&[
        ("20250101_0000_create_t.sql", &create_table("t")),
        (
            "20250102_0000_index_note.sql",
            "-- calista:allow index-without-concurrently -- a test table\n-- calista:up\nCREATE INDEX ix_t_note ON t (note);\n-- calista:down\nSELECT 1;\n",
        ),
    ]);
    let dir = set.dir.path().to_str().unwrap().to_owned();
    let (code, stdout, stderr) = calista(
        set.dir.path(),
        &[
            "db",
            "verify",
            "--migrations",
            &dir,
            "--pg-url",
            &pg_admin_url(),
        ],
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("problem: 20250102_0000_index_note.sql: on SQLite, up then down"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    + index ix_t_note on t: btree (note)"),
        "{stdout}"
    );
    assert!(stderr.contains("db verify found 2 problems"), "{stderr}");

    let (code, stdout, _) = calista(
        set.dir.path(),
        &[
            "db",
            "verify",
            "--migrations",
            &dir,
            "--pg-url",
            &pg_admin_url(),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["findings"][0]["kind"], "down_differs");
    assert_eq!(report["findings"][0]["revision"], "20250102_0000");
    assert_eq!(
        report["findings"][0]["diff"][0]["object"],
        "index ix_t_note on t"
    );
    assert_eq!(report["findings"][0]["diff"][0]["after"], "btree (note)");
}

#[test]
fn verify_without_a_postgresql_server_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = calista(dir.path(), &["db", "verify"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--pg-url"), "{stderr}");
}
