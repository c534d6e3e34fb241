//! `calista::verify`: the stairway and one schema on two dialects, on scratch databases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::Migrations;
use calista::url::DatabaseUrl;
use calista::verify::{Finding, VerifyOptions, VerifyReport, verify};
use common::*;

static CALISTA: Migrations = calista::migrations!();

fn options() -> VerifyOptions {
    let DatabaseUrl::Postgres(server) =
        DatabaseUrl::parse(&pg_admin_url(), std::path::Path::new("/")).unwrap()
    else {
        panic!("CALISTA_TEST_PG_URL is not a PostgreSQL URL");
    };
    VerifyOptions {
        postgres: Some(server),
        ..VerifyOptions::default()
    }
}

async fn verified(files: &[(&str, &str)]) -> VerifyReport {
    let set = MigrationSet::new(files);
    verify(&set.load(), &options()).await.unwrap()
}

const TABLE: &str = "20250101_0000_create_t.sql";
const CREATE_T: &str = "-- calista:up\nCREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT NULL);\n-- calista:down\nDROP TABLE t;\n";

fn rendered(report: &VerifyReport) -> String {
    report
        .findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calistas_own_migrations_verify_clean_on_both_dialects() {
    let report = verify(&CALISTA, &options()).await.unwrap();
    assert!(report.is_clean(), "{}", rendered(&report));
    assert_eq!(report.dialects, ["PostgreSQL", "SQLite"]);
    assert!(report.dialects_compared);
    assert_eq!(report.revisions, CALISTA.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_that_forgets_an_index_is_named_with_its_revision_and_diff() {
    let report = verified(&[
        (TABLE, CREATE_T),
        (
            "20250102_0000_index_note.sql",
            "-- calista:allow index-without-concurrently -- a test table\n-- calista:up\nCREATE INDEX ix_t_note ON t (note);\n-- calista:down\nSELECT 1;\n",
        ),
    ])
    .await;
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    for finding in &report.findings {
        let Finding::DownDiffers {
            revision,
            file,
            diff,
            ..
        } = finding
        else {
            panic!("{finding}");
        };
        assert_eq!(revision, "20250102_0000");
        assert_eq!(file, "20250102_0000_index_note.sql");
        assert_eq!(diff.to_string(), "+ index ix_t_note on t: btree (note)");
    }
    let text = rendered(&report);
    assert!(
        text.contains("on SQLite") && text.contains("on PostgreSQL"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_that_drops_a_pre_existing_column_is_named_with_its_revision_and_diff() {
    let report = verified(&[
        (TABLE, CREATE_T),
        (
            "20250102_0000_add_extra.sql",
            "-- calista:up\nALTER TABLE t ADD COLUMN extra INTEGER NULL;\n\
             -- calista:down\nALTER TABLE t DROP COLUMN extra;\nALTER TABLE t DROP COLUMN note;\n",
        ),
    ])
    .await;
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    for finding in &report.findings {
        let Finding::DownDiffers { revision, diff, .. } = finding else {
            panic!("{finding}");
        };
        assert_eq!(revision, "20250102_0000");
        let diff = diff.to_string();
        assert!(diff.starts_with("- column t.note: "), "{diff}");
        assert_eq!(diff.lines().count(), 1, "{diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_column_nullable_where_postgres_is_not_parts_the_dialects() {
    let report = verified(&[
        (TABLE, CREATE_T),
        (
            "20250102_0000_create_people.sql",
            "-- calista:up postgres\nCREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL);\n\
             -- calista:up sqlite\nCREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n\
             -- calista:down\nDROP TABLE people;\n",
        ),
    ])
    .await;
    assert_eq!(report.findings.len(), 1, "{}", rendered(&report));
    let Finding::DialectsDiffer {
        revision,
        file,
        diff,
    } = &report.findings[0]
    else {
        panic!("{}", report.findings[0]);
    };
    assert_eq!(
        (revision.as_str(), file.as_str()),
        ("20250102_0000", "20250102_0000_create_people.sql")
    );
    assert_eq!(
        diff.to_string(),
        "~ column people.name: text NOT NULL  ->  text NULL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_difference_passes_and_is_listed_with_its_reason() {
    let report = verified(&[(
        "20250101_0000_create_docs.sql",
        "-- calista-verify: dialect-difference docs.body -- SQLite has no GIN; the search runs on PostgreSQL only\n\
         -- calista:up postgres\nCREATE TABLE docs (id BIGINT PRIMARY KEY, body TEXT NOT NULL, rank INTEGER NOT NULL);\n\
         CREATE INDEX ix_docs_body ON docs (body);\n\
         -- calista:up sqlite\nCREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL, rank INTEGER NOT NULL);\n\
         -- calista:down\nDROP TABLE docs;\n",
    )])
    .await;
    assert!(report.is_clean(), "{}", rendered(&report));
    assert_eq!(report.acknowledged.len(), 1);
    assert_eq!(report.acknowledged[0].object, "index on docs (body)");
    assert!(
        report.acknowledged[0]
            .reason
            .starts_with("SQLite has no GIN")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_without_a_reason_is_a_finding() {
    let report = verified(&[(
        TABLE,
        &format!("-- calista-verify: dialect-difference t\n{CREATE_T}"),
    )])
    .await;
    assert_eq!(report.findings.len(), 1, "{}", rendered(&report));
    assert!(
        rendered(&report).starts_with("20250101_0000_create_t.sql:1: the reason is required"),
        "{}",
        rendered(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_down_is_reported_not_raised() {
    let report = verified(&[(
        TABLE,
        "-- calista:up\nCREATE TABLE t (id INTEGER PRIMARY KEY);\n-- calista:down\nDROP TABLE missing_table;\n",
    )])
    .await;
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    assert!(matches!(&report.findings[0], Finding::StepFailed { step, .. } if step == "down"));
}
