//! `Migrations::from_dir` reports what `migrations!()` reports for the statement checks:
//! the same problems, in the same words, as the compile-fail cases' checked-in `.stderr`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use common::macro_messages;
use std::path::Path;

use calista::{Migrations, ProblemKind};

/// The compile-fail cases of the statement checks (tests/ui/fail/<case>.rs, whose fixture is
/// tests/ui/fixtures/<case>).
const CASES: &[&str] = &[
    "tx_begin",
    "tx_start_transaction",
    "tx_commit",
    "tx_end",
    "tx_rollback",
    "tx_abort",
    "tx_prepare_transaction",
    "tx_commit_prepared",
    "tx_rollback_prepared",
    "not_in_transaction_block",
    "comment_only_section",
];

#[test]
fn from_dir_reports_the_problems_migrations_reports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    for case in CASES {
        let stderr = std::fs::read_to_string(root.join(format!("fail/{case}.stderr"))).unwrap();
        let expected = macro_messages(&stderr);
        assert!(!expected.is_empty(), "{case}: no error in its .stderr");
        let folder = root.join("fixtures").join(case);
        let error = Migrations::from_dir(&folder).unwrap_err();
        let shown = folder.display().to_string();
        let got: Vec<String> = error
            .problems
            .iter()
            .map(|p| {
                p.to_string()
                    .replacen(&shown, &format!("ui-fixtures/{case}"), 1)
                    .replace("\n  fix:", "\n         fix:")
            })
            .collect();
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn each_transaction_control_case_names_its_statement_and_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/fixtures");
    for case in CASES.iter().filter(|c| c.starts_with("tx_")) {
        let error = Migrations::from_dir(root.join(case)).unwrap_err();
        let [problem] = error.problems.as_slice() else {
            panic!("{case}: {error}");
        };
        assert_eq!(problem.line, Some(3), "{case}");
        assert!(
            matches!(problem.kind, ProblemKind::TransactionControl { .. }),
            "{case}: {problem}"
        );
    }
}
