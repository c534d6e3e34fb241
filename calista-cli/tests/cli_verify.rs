//! `calista db verify` end to end: the real binary, scratch databases it makes itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
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

/// Runs `db verify` on `set` with a seed folder holding `seeds`; (exit code, stdout, stderr).
fn verify_seeded(set: &MigrationSet, seeds: &[(&str, &str)], json: bool) -> (i32, String, String) {
    let seed_dir = set.dir.path().join("seeds");
    std::fs::create_dir_all(&seed_dir).unwrap();
    for (name, sql) in seeds {
        std::fs::write(seed_dir.join(name), sql).unwrap();
    }
    let migrations = set.dir.path().join("migrations");
    let mut args = vec![
        "db".to_owned(),
        "verify".to_owned(),
        "--migrations".to_owned(),
        migrations.to_str().unwrap().to_owned(),
        "--pg-url".to_owned(),
        pg_admin_url(),
        "--seed".to_owned(),
        seed_dir.to_str().unwrap().to_owned(),
    ];
    if json {
        args.extend(["--format".to_owned(), "json".to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    calista(set.dir.path(), &args)
}

/// A set in `<dir>/migrations`: table t, then a migration adding a column whose down is `down`.
fn set_with_down(down: &str) -> MigrationSet {
    let set = MigrationSet::new(&[]);
    let folder = set.dir.path().join("migrations");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("20250101_0000_create_t.sql"), create_table("t")).unwrap();
    std::fs::write(
        folder.join("20250102_0000_add_extra.sql"),
        format!(
            "-- calista:up\nALTER TABLE t ADD COLUMN extra INTEGER NULL;\n-- calista:down\n{down}"
        ),
    )
    .unwrap();
    set
}

const SEED: (&str, &str) = (
    "20250101_0000.sql",
    "INSERT INTO t (id, note) VALUES (1, 'kept'), (2, NULL);\n",
);

#[test]
fn verify_with_seeds_passes_when_the_rows_survive() {
    let set = set_with_down("ALTER TABLE t DROP COLUMN extra;\n");
    let (code, stdout, stderr) = verify_seeded(&set, &[SEED], false);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("verified: 2 revisions on PostgreSQL and SQLite, 1 seed:"),
        "{stdout}"
    );
}

#[test]
fn verify_names_seeded_rows_a_down_loses_and_exits_1_in_json_too() {
    let set = set_with_down("DELETE FROM t;\nALTER TABLE t DROP COLUMN extra;\n");
    let (code, stdout, stderr) = verify_seeded(&set, &[SEED], false);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "problem: 20250102_0000_add_extra.sql: on PostgreSQL, up then down does not give back the rows of t"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("    - (id=1, note='kept')\n    - (id=2, note=NULL)"),
        "{stdout}"
    );
    assert!(stderr.contains("db verify found 2 problems"), "{stderr}");

    let (code, stdout, _) = verify_seeded(&set, &[SEED], true);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["seeds"], 1);
    let finding = &report["findings"][0];
    assert_eq!(finding["kind"], "rows_changed");
    assert_eq!(finding["revision"], "20250102_0000");
    assert_eq!(finding["table"], "t");
    assert_eq!(finding["removed"][0], "(id=1, note='kept')");
    assert_eq!(finding["removed_count"], 2);
    assert_eq!(finding["added_count"], 0);
}

#[test]
fn a_seed_folder_with_another_file_or_an_unknown_revision_is_a_usage_error() {
    let set = set_with_down("ALTER TABLE t DROP COLUMN extra;\n");
    for (file, says) in [
        ("notes.txt", "`notes.txt` is not a seed file"),
        (
            "20250101_0000_people.sql",
            "`20250101_0000_people.sql` is not a seed file",
        ),
        (
            "20990101_0000.sql",
            "no migration has revision 20990101_0000",
        ),
    ] {
        let (code, stdout, stderr) = verify_seeded(&set, &[SEED, (file, "SELECT 1;")], false);
        assert_eq!(code, 2, "{file}: {stdout}\n{stderr}");
        assert!(stderr.contains(says), "{file}: {stderr}");
        assert!(
            stderr.contains("name each seed file `<revision>.sql` (e.g. `20250101_0000.sql`)"),
            "{file}: {stderr}"
        );
        std::fs::remove_file(set.dir.path().join("seeds").join(file)).unwrap();
    }
}

#[test]
fn verify_reports_an_acknowledgement_that_covers_nothing() {
    let set = set_with_down("ALTER TABLE t DROP COLUMN extra;\n");
    std::fs::write(
        set.dir.path().join("migrations/20250103_0000_create_u.sql"),
        format!(
            "-- calista:allow dialect-difference u -- stale: both dialects agree\n{}",
            create_table("u")
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = verify_seeded(&set, &[], true);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["findings"][0]["kind"], "unused_acknowledgement");
    assert_eq!(report["findings"][0]["line"], 1);
    assert_eq!(report["findings"][0]["target"], "u");
}
