//! `calista::verify`: the stairway and one schema on two dialects, on scratch databases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::Migrations;
use calista::Revision;
use calista::url::DatabaseUrl;
use calista::verify::{Finding, Seed, VerifyOptions, VerifyReport, verify};
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
        "-- calista:allow dialect-difference docs.body -- SQLite has no GIN; the search runs on PostgreSQL only\n\
         -- calista:up postgres\nCREATE TABLE docs (id BIGINT PRIMARY KEY, body TEXT NOT NULL, rank INTEGER NOT NULL);\n\
         CREATE INDEX ix_docs_body ON docs (body);\n\
         -- calista:up sqlite\nCREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL, rank INTEGER NOT NULL);\n\
         -- calista:down\nDROP TABLE docs;\n",
    )])
    .await;
    assert!(report.is_clean(), "{}", rendered(&report));
    assert_eq!(report.acknowledged.len(), 1);
    assert_eq!(report.acknowledged[0].object, "index on docs (body)");
    assert_eq!(report.acknowledged[0].file, "20250101_0000_create_docs.sql");
    assert!(
        report.acknowledged[0]
            .reason
            .starts_with("SQLite has no GIN")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_that_covers_nothing_is_a_finding() {
    let report = verified(&[
        (TABLE, CREATE_T),
        (
            "20250102_0000_create_u.sql",
            "-- calista:allow dialect-difference t.note -- it was text on one side once\n\
             -- calista:allow dialect-difference u -- u is the same on both, this one is stale\n\
             -- calista:up\nCREATE TABLE u (id INTEGER PRIMARY KEY);\n-- calista:down\nDROP TABLE u;\n",
        ),
    ])
    .await;
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    let lines: Vec<_> = report
        .findings
        .iter()
        .map(|finding| match finding {
            Finding::UnusedAcknowledgement {
                revision,
                file,
                line,
                target,
            } => {
                assert_eq!(revision, "20250102_0000");
                assert_eq!(file, "20250102_0000_create_u.sql");
                (*line, target.as_str())
            }
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(lines, [(1, "t.note"), (2, "u")]);
    assert!(
        rendered(&report).starts_with(
            "20250102_0000_create_u.sql:1: `-- calista:allow dialect-difference t.note` acknowledges nothing"
        ),
        "{}",
        rendered(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_are_not_judged_unused_when_the_comparison_stopped_early() {
    let report = verified(&[
        (
            TABLE,
            "-- calista:allow dialect-difference later -- made in the next revision\n\
             -- calista:up\nCREATE TABLE t (id INTEGER PRIMARY KEY);\n-- calista:down\nSELECT 1;\n",
        ),
        ("20250102_0000_create_later.sql", &create_table("later")),
    ])
    .await;
    // The first down leaves t behind: the stairway stops there on both dialects.
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    assert!(
        report
            .findings
            .iter()
            .all(|f| matches!(f, Finding::DownDiffers { .. })),
        "{}",
        rendered(&report)
    );
}

fn seed(after: &str, sql: &str) -> Seed {
    Seed::new(Revision::parse(after).unwrap(), sql)
}

async fn seeded(files: &[(&str, &str)], seeds: Vec<Seed>) -> VerifyReport {
    let set = MigrationSet::new(files);
    let options = VerifyOptions { seeds, ..options() };
    verify(&set.load(), &options).await.unwrap()
}

const SEED_T: &str = "INSERT INTO t (id, note) VALUES (1, 'kept'), (2, NULL);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_that_loses_seeded_rows_names_them_on_both_dialects() {
    // PostgreSQL's down deletes the rows; SQLite's rebuilds the table without copying them.
    let report = seeded(
        &[
            (TABLE, CREATE_T),
            (
                "20250102_0000_add_extra.sql",
                "-- calista:up\nALTER TABLE t ADD COLUMN extra INTEGER NULL;\n\
                 -- calista:down postgres\nDELETE FROM t;\nALTER TABLE t DROP COLUMN extra;\n\
                 -- calista:down sqlite\nCREATE TABLE t_old (id INTEGER PRIMARY KEY, note TEXT NULL);\n\
                 DROP TABLE t;\nALTER TABLE t_old RENAME TO t;\n",
            ),
        ],
        vec![seed("20250101_0000", SEED_T)],
    )
    .await;
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    assert_eq!(report.seeds, 1);
    let mut dialects = Vec::new();
    for finding in &report.findings {
        let Finding::RowsChanged {
            revision,
            file,
            dialect,
            table,
            removed,
            removed_count,
            added,
            added_count,
        } = finding
        else {
            panic!("{finding}");
        };
        assert_eq!(revision, "20250102_0000");
        assert_eq!(file, "20250102_0000_add_extra.sql");
        assert_eq!(table, "t");
        assert_eq!(removed, &["(id=1, note='kept')", "(id=2, note=NULL)"]);
        assert_eq!((*removed_count, added.len(), *added_count), (2, 0, 0));
        dialects.push(dialect.as_str());
    }
    assert_eq!(dialects, ["SQLite", "PostgreSQL"]);
    let text = rendered(&report);
    assert!(
        text.contains(
            "20250102_0000_add_extra.sql: on SQLite, up then down does not give back the rows of t \
             (2 removed, 0 added;"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n    - (id=1, note='kept')\n    - (id=2, note=NULL)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_changed_and_not_changed_back_is_one_removed_and_one_added_null_apart_from_empty() {
    let report = seeded(
        &[
            (TABLE, CREATE_T),
            (
                "20250102_0000_fill_notes.sql",
                "-- calista:up\nUPDATE t SET note = '' WHERE note IS NULL;\n\
                 -- calista:down\nSELECT 1; -- the empty notes stay\n",
            ),
        ],
        vec![seed("20250101_0000", SEED_T)],
    )
    .await;
    assert_eq!(report.findings.len(), 2, "{}", rendered(&report));
    for finding in &report.findings {
        let Finding::RowsChanged { removed, added, .. } = finding else {
            panic!("{finding}");
        };
        assert_eq!(removed, &["(id=2, note=NULL)"]);
        assert_eq!(added, &["(id=2, note='')"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_migration_keeps_seeded_rows_and_passes() {
    let report = seeded(
        &[
            (TABLE, CREATE_T),
            (
                "20250102_0000_add_extra.sql",
                "-- calista:up\nALTER TABLE t ADD COLUMN extra INTEGER NULL;\n\
                 INSERT INTO t (id, note, extra) VALUES (3, 'from the migration', 7);\n\
                 -- calista:down\nDELETE FROM t WHERE id = 3;\nALTER TABLE t DROP COLUMN extra;\n",
            ),
            ("20250103_0000_create_u.sql", &create_table("u")),
        ],
        vec![
            seed("20250101_0000", SEED_T),
            seed(
                "20250102_0000",
                "INSERT INTO t (id, note, extra) VALUES (4, 'seeded later', NULL);",
            ),
        ],
    )
    .await;
    assert!(report.is_clean(), "{}", rendered(&report));
    assert_eq!(report.seeds, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_seed_and_a_seed_for_no_revision_are_findings() {
    let report = seeded(
        &[(TABLE, CREATE_T)],
        vec![
            seed(
                "20250101_0000",
                "INSERT INTO missing_table (id) VALUES (1);",
            ),
            seed("20990101_0000", SEED_T),
        ],
    )
    .await;
    assert_eq!(report.findings.len(), 3, "{}", rendered(&report));
    assert_eq!(
        report.findings[0],
        Finding::SeedWithoutRevision {
            seed: "seed after 20990101_0000".into(),
            revision: "20990101_0000".into()
        }
    );
    for finding in &report.findings[1..] {
        let Finding::SeedFailed {
            seed,
            revision,
            error,
            ..
        } = finding
        else {
            panic!("{finding}");
        };
        assert_eq!(
            (seed.as_str(), revision.as_str()),
            ("seed after 20250101_0000", "20250101_0000")
        );
        assert!(error.contains("missing_table"), "{error}");
    }
    assert_eq!(report.seeds, 0);
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
