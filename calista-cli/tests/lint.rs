//! `calista db lint` reports what `migrations!()` reports: the same findings, in the same
//! words, as the lint compile-fail cases' checked-in `.stderr`; and it exits 0 only when clean.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::macro_messages;
use std::path::Path;
use std::process::{Command, Output};

/// The lint compile-fail cases (tests/ui/fail/<case>.rs, fixture tests/ui/fixtures/<case>).
const FAILING: &[&str] = &[
    "lint_data_loss",
    "lint_locks",
    "lint_portability",
    "lint_allow_mistakes",
];

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui/fixtures")
}

/// `calista db lint` run in the fixtures folder, so that files are named `<case>/<file>`.
fn db_lint(case: &str, json: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    command
        .current_dir(fixtures())
        .args(["db", "lint", "--migrations", case])
        .env_remove("CALISTA_DB_URL")
        .env_remove("CALISTA_CONFIG");
    if json {
        command.args(["--format", "json"]);
    }
    command.output().unwrap()
}

#[test]
fn db_lint_reports_what_the_macro_reports_on_the_same_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui/fail");
    for case in FAILING {
        let stderr = std::fs::read_to_string(root.join(format!("{case}.stderr"))).unwrap();
        let expected: Vec<String> = macro_messages(&stderr)
            .into_iter()
            .map(|m| {
                m.replacen("ui-fixtures/", "", 1)
                    .replace("\n         fix:", "\n  fix:")
            })
            .collect();
        assert!(!expected.is_empty(), "{case}: no error in its .stderr");
        let run = db_lint(case, false);
        assert_eq!(run.status.code(), Some(2), "{case}: {run:?}");
        let stdout = String::from_utf8(run.stdout).unwrap();
        assert_eq!(stdout.trim_end(), expected.join("\n"), "{case}");
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert!(
            stderr.contains("-- calista:allow <rule> -- <reason>"),
            "{stderr}"
        );
    }
}

#[test]
fn db_lint_exits_0_on_a_clean_folder_and_the_acknowledged_one() {
    for case in [
        "lint_acknowledged",
        "../../../migrations",
        "../../fixtures/mixed",
    ] {
        let run = db_lint(case, false);
        assert_eq!(run.status.code(), Some(0), "{case}: {run:?}");
        assert!(
            String::from_utf8(run.stdout)
                .unwrap()
                .ends_with(": clean\n")
        );
    }
}

#[test]
fn db_lint_json_names_each_findings_rule() {
    let run = db_lint("lint_portability", true);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["clean"], false);
    let rows = doc["problems"].as_array().unwrap();
    let seen: Vec<(&str, u64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap(),
                r["line"].as_u64().unwrap(),
                r["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "lint_portability/20250101_0000_postgres_types.sql",
                3,
                "postgres-only"
            ),
            (
                "lint_portability/20250101_0000_postgres_types.sql",
                4,
                "postgres-only"
            ),
            (
                "lint_portability/20250101_0000_postgres_types.sql",
                8,
                "postgres-only"
            ),
            (
                "lint_portability/20250101_0001_sqlite_autoincrement.sql",
                2,
                "sqlite-only"
            ),
        ]
    );
    assert!(
        rows[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("lint postgres-only: `JSONB` is PostgreSQL-only")
    );
    assert!(
        rows[1]["fix"]
            .as_str()
            .unwrap()
            .contains("-- calista:up postgres")
    );

    let clean = db_lint("lint_acknowledged", true);
    assert_eq!(clean.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(doc, serde_json::json!({ "clean": true, "problems": [] }));
}

#[test]
fn a_non_lint_problem_has_no_rule_in_json() {
    let run = db_lint("lint_allow_mistakes", true);
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let rules: Vec<_> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].clone())
        .collect();
    assert_eq!(
        rules,
        [
            serde_json::Value::Null,
            "drop-table".into(),
            serde_json::Value::Null,
            "delete-without-where".into(),
            serde_json::Value::Null,
            // The dialect-difference mistakes: not lint findings either.
            serde_json::Value::Null,
            serde_json::Value::Null,
            serde_json::Value::Null,
        ]
    );
}
