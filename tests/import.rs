//! `calista::import`: other tools' migrations folders, as those tools lay them out
//! (tests/fixtures/import/<tool>), become calista files that the one parser accepts, in the
//! source's order, each saying where it came from; what cannot be imported is refused with
//! every reason, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::path::{Path, PathBuf};

use calista::import::{
    self, ImportError, ImportPlan, ImportProblemKind, ImportRequest, Note, SourceDialect, Tool,
};
use calista::origin::Origin;
use calista::{Migrations, Migrator, ProblemKind, Revision, UpgradeTarget};
use common::*;
use sha2::{Digest, Sha384};

fn fixture(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(tool)
}

fn rev(text: &str) -> Revision {
    Revision::parse(text).unwrap()
}

/// The fixture's request, with the start the tool needs (refinery and Alembic carry no
/// dates).
fn request(tool: Tool) -> ImportRequest {
    match tool {
        Tool::Sqlx => ImportRequest::new(tool, fixture("sqlx"), SourceDialect::Postgres),
        Tool::Diesel => ImportRequest::new(tool, fixture("diesel"), SourceDialect::Postgres),
        Tool::Refinery => ImportRequest::new(tool, fixture("refinery"), SourceDialect::Postgres)
            .start(rev("20200101_0000")),
        _ => ImportRequest::new(
            tool,
            fixture("alembic").join("upgrade.sql"),
            SourceDialect::Postgres,
        )
        .start(rev("20210601_0900"))
        .alembic_downgrade(fixture("alembic").join("downgrade.sql")),
    }
}

/// Plans and writes an import into a new temporary folder, and reads it back.
fn imported(request: &ImportRequest) -> (ImportPlan, tempfile::TempDir, Migrations) {
    let plan = import::plan(request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = import::write(&plan, dir.path()).unwrap();
    assert_eq!(written.len(), plan.files.len());
    let migrations = Migrations::from_dir(dir.path()).unwrap();
    (plan, dir, migrations)
}

fn notes_of<'a>(plan: &'a ImportPlan, source: &str) -> &'a [Note] {
    &plan
        .files
        .iter()
        .find(|f| f.sources.iter().any(|s| s.starts_with(source)))
        .unwrap_or_else(|| panic!("no file from {source}"))
        .notes
}

#[test]
fn every_fixture_imports_into_a_folder_the_parser_accepts_in_the_sources_order() {
    let expected = [
        (Tool::Sqlx, 12),
        (Tool::Diesel, 11),
        (Tool::Refinery, 11),
        (Tool::Alembic, 11),
    ];
    for (tool, count) in expected {
        let (plan, _dir, migrations) = imported(&request(tool));
        assert_eq!(migrations.len(), count, "{tool}");
        assert_eq!(plan.tool, tool);
        // The folder's order (by revision) is the plan's, which is the source's.
        let files: Vec<String> = migrations.iter().map(|m| m.file_name()).collect();
        let planned: Vec<String> = plan.files.iter().map(|f| f.file_name.clone()).collect();
        assert_eq!(files, planned, "{tool}");
        for migration in migrations.iter() {
            let origin = migration
                .imported()
                .expect("every file says where it came from");
            assert_eq!(origin.origin.tool(), tool);
        }
    }
}

#[test]
fn sqlx_keeps_versions_dates_and_the_checksum_sqlx_stored() {
    let (plan, _dir, migrations) = imported(&request(Tool::Sqlx));
    let first = migrations.iter().next().unwrap();
    assert_eq!(first.file_name(), "20230105_0930_create_users.sql");
    let up = fixture("sqlx").join("20230105093000_create_users.up.sql");
    let sum: [u8; 48] = Sha384::digest(std::fs::read(up).unwrap()).into();
    assert_eq!(
        first.imported().unwrap().origin,
        Origin::Sqlx {
            version: 20230105093000,
            checksum: sum
        }
    );
    assert_eq!(
        first.imported().unwrap().source,
        "20230105093000_create_users.up.sql"
    );
    // 09:30:45 is in the same minute as 09:30:00: the next free minute, order kept.
    let second = migrations.iter().nth(1).unwrap();
    assert_eq!(second.revision(), rev("20230105_0931"));
    assert_eq!(
        notes_of(&plan, "20230105093045"),
        [Note::Moved {
            dated: rev("20230105_0930")
        }]
    );
}

#[test]
fn sqlx_no_transaction_and_one_file_migrations_keep_their_meaning() {
    let (_plan, _dir, migrations) = imported(&request(Tool::Sqlx));
    let index = migrations.get(rev("20230215_1200")).unwrap();
    assert!(index.no_transaction());
    assert!(
        index.irreversible(),
        "a one-file sqlx migration has no down"
    );
    assert_eq!(
        index.script(calista::Direction::Up, calista::Dialect::Postgres),
        "CREATE INDEX CONCURRENTLY ix_orders_user_id ON orders (user_id);"
    );
    let users = migrations.get(rev("20230105_0930")).unwrap();
    assert!(!users.no_transaction() && !users.irreversible());
    assert_eq!(
        users.script(calista::Direction::Down, calista::Dialect::Postgres),
        "DROP TABLE users;"
    );
}

#[test]
fn the_other_dialect_fails_on_purpose_and_both_shares_the_sql() {
    let (_plan, _dir, migrations) = imported(&request(Tool::Sqlx));
    let users = migrations.get(rev("20230105_0930")).unwrap();
    assert_eq!(
        users.script(calista::Direction::Up, calista::Dialect::Sqlite),
        "-- sqlx ran this migration on PostgreSQL only, so it has no SQLite SQL. Running it on\n\
         -- SQLite fails here, on purpose: write its SQLite SQL in place of this statement.\n\
         SELECT calista_imported_for_postgres_only();"
    );
    let portable = source(&[
        (
            "20230101120000_create_tags.up.sql",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        ),
        ("20230101120000_create_tags.down.sql", "DROP TABLE tags;\n"),
    ]);
    let both = ImportRequest::new(Tool::Sqlx, portable.path(), SourceDialect::Both);
    let (_plan, _dir, shared) = imported(&both);
    let tags = shared.get(rev("20230101_1200")).unwrap();
    assert!(tags.sections().all(|s| s.dialect().is_none()));
    assert_eq!(
        tags.script(calista::Direction::Down, calista::Dialect::Sqlite),
        "DROP TABLE tags;"
    );
    // PostgreSQL's dollar quotes are no strings to SQLite: a PostgreSQL project's functions
    // are refused as shared SQL, at their lines.
    let refused = problems(&ImportRequest::new(
        Tool::Diesel,
        fixture("diesel"),
        SourceDialect::Both,
    ));
    assert!(
        refused
            .iter()
            .all(|(file, _, _)| file == "00000000000000_diesel_initial_setup/up.sql"),
        "{refused:?}"
    );
}

#[test]
fn diesel_versions_metadata_and_empty_downs_are_read_as_diesel_reads_them() {
    let (plan, _dir, migrations) = imported(&request(Tool::Diesel));
    // `00000000000000` is no date: it counts back from the first dated migration.
    let setup = migrations.iter().next().unwrap();
    assert_eq!(setup.file_name(), "20230105_0929_diesel_initial_setup.sql");
    assert_eq!(
        setup.imported().unwrap().origin,
        Origin::Diesel {
            version: "00000000000000"
        }
    );
    let users = migrations.get(rev("20230105_0930")).unwrap();
    assert_eq!(
        users.imported().unwrap().origin,
        Origin::Diesel {
            version: "20230105093000"
        }
    );
    assert_eq!(
        users.imported().unwrap().source,
        "2023-01-05-093000_create_users/up.sql"
    );
    assert!(
        migrations
            .get(rev("20230210_1200"))
            .unwrap()
            .no_transaction()
    );
    let publish = migrations.get(rev("20230315_1430")).unwrap();
    assert!(publish.irreversible());
    assert_eq!(notes_of(&plan, "2023-03-15"), [Note::EmptyDown]);
    // A folder named without dashes is read too, and sorts by its version.
    assert!(migrations.get(rev("20230401_1100")).is_some());
}

/// What refinery 0.9 (`refinery_core::Migration::unapplied(..).checksum()`) computes for
/// the fixture's files: the value refinery stores in `refinery_schema_history.checksum`.
const REFINERY_CHECKSUMS: &[(&str, u64)] = &[
    ("V1__create_accounts.sql", 9473000316419870508),
    ("V2__create_ledger.sql", 9205672823154990284),
    ("V3__index_ledger_by_account.sql", 239236589976769487),
    ("V4__add_accounts_currency.sql", 13069725468331320919),
    ("V5__create_balances_view.sql", 10446534630663592897),
    ("V6__create_transfers.sql", 8764904277921153125),
    ("V7__add_ledger_memo.sql", 9481599144990052619),
    ("V8__backfill_ledger_memo.sql", 457551627449516475),
    ("V9__create_audit_trigger.sql", 2648021631716599787),
    (
        "later/V10__add_accounts_closed_at.sql",
        12216241035173100881,
    ),
    ("later/V11__drop_ledger_memo.sql", 808409803187710510),
];

#[test]
fn refinery_needs_a_start_and_keeps_its_order_and_checksums() {
    let without_start =
        ImportRequest::new(Tool::Refinery, fixture("refinery"), SourceDialect::Postgres);
    assert!(matches!(
        import::plan(&without_start),
        Err(ImportError::NeedsStart {
            tool: Tool::Refinery
        })
    ));
    let (_plan, _dir, migrations) = imported(&request(Tool::Refinery));
    let ids: Vec<String> = migrations
        .iter()
        .map(|m| m.revision().to_string())
        .collect();
    assert_eq!(ids.first().map(String::as_str), Some("20200101_0000"));
    assert_eq!(ids.last().map(String::as_str), Some("20200101_0010"));
    let last = migrations.iter().last().unwrap();
    assert_eq!(
        last.imported().unwrap().source,
        "later/V11__drop_ledger_memo.sql"
    );
    assert!(migrations.iter().all(|m| m.irreversible()));
    assert_eq!(REFINERY_CHECKSUMS.len(), migrations.len());
    for (source, checksum) in REFINERY_CHECKSUMS {
        let migration = migrations
            .iter()
            .find(|m| m.imported().unwrap().source == *source)
            .unwrap();
        assert!(
            matches!(migration.imported().unwrap().origin, Origin::Refinery { checksum: c, .. } if c == *checksum),
            "{source}"
        );
    }
}

#[test]
fn alembic_revisions_lose_alembics_bookkeeping_and_pair_with_their_downgrades() {
    let (plan, _dir, migrations) = imported(&request(Tool::Alembic));
    let revisions: Vec<_> = migrations
        .iter()
        .map(|m| match m.imported().unwrap().origin {
            Origin::Alembic { revision } => revision.to_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    // The down_revision chain, as `alembic upgrade --sql` ran it.
    assert_eq!(revisions.first().map(String::as_str), Some("7e180c4cda38"));
    assert_eq!(revisions.last().map(String::as_str), Some("76ea4b4c3982"));
    assert_eq!(
        migrations.iter().next().unwrap().revision(),
        rev("20210601_0900")
    );
    for migration in migrations.iter() {
        assert!(
            !migration.text().contains("alembic_version")
                && !migration.text().contains("BEGIN;")
                && !migration.text().contains("COMMIT;"),
            "{}",
            migration.text()
        );
        assert!(!migration.irreversible(), "{}", migration.file_name());
    }
    let concurrently = migrations.get(rev("20210601_0907")).unwrap();
    assert!(concurrently.no_transaction());
    assert_eq!(
        concurrently.script(calista::Direction::Down, calista::Dialect::Postgres),
        "DROP INDEX CONCURRENTLY ix_accounts_email;"
    );
    assert_eq!(
        notes_of(&plan, "upgrade.sql (67afd3937394)"),
        [Note::NoTransaction]
    );
    // Without the downgrade file, every revision is irreversible.
    let mut up_only = request(Tool::Alembic);
    up_only.alembic_downgrade = None;
    let (_plan, _dir, migrations) = imported(&up_only);
    assert!(migrations.iter().all(|m| m.irreversible()));
}

#[test]
fn imported_files_are_not_linted_but_the_same_sql_written_by_hand_is() {
    let (_plan, dir, migrations) = imported(&request(Tool::Sqlx));
    let drop = migrations.get(rev("20230501_1200")).unwrap();
    assert!(drop.text().contains("DROP COLUMN user_agent"));
    let by_hand: String = drop
        .text()
        .lines()
        .filter(|line| !line.starts_with("-- calista:imported"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(dir.path().join(drop.file_name()), by_hand).unwrap();
    let problems = Migrations::from_dir(dir.path()).unwrap_err().problems;
    assert!(
        problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::Lint { .. })),
        "{problems:?}"
    );
}

/// A source folder written by a test.
fn source(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir
}

fn problems(request: &ImportRequest) -> Vec<(String, Option<u32>, ImportProblemKind)> {
    match import::plan(request) {
        Err(ImportError::Source { problems }) => problems
            .into_iter()
            .map(|p| (p.file, p.line, p.kind))
            .collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn refinery_unversioned_and_rust_migrations_are_all_named_and_nothing_is_planned() {
    let dir = source(&[
        ("V1__create_a.sql", "CREATE TABLE a (id INT);\n"),
        ("U2__tidy.sql", "DELETE FROM a WHERE id < 0;\n"),
        (
            "more/V3__build.rs",
            "fn migration() -> String { String::new() }\n",
        ),
        ("V4__x.sql", "CREATE TABLE x (id INT);\n"),
        ("notes.txt", "not a migration\n"),
    ]);
    let request = ImportRequest::new(Tool::Refinery, dir.path(), SourceDialect::Postgres)
        .start(rev("20200101_0000"));
    assert_eq!(
        problems(&request),
        [
            (
                "U2__tidy.sql".to_owned(),
                None,
                ImportProblemKind::Unversioned
            ),
            (
                "more/V3__build.rs".to_owned(),
                None,
                ImportProblemKind::RustMigration
            ),
        ]
    );
    let shown = import::plan(&request).unwrap_err().to_string();
    assert!(
        shown.starts_with("2 source files cannot be imported; nothing was written:"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "U2__tidy.sql: an unversioned (`U`) refinery migration cannot be imported\n  fix: "
        ),
        "{shown}"
    );
    assert!(
        shown.contains("more/V3__build.rs: a Rust migration cannot be imported"),
        "{shown}"
    );
}

#[test]
fn sql_calista_refuses_is_placed_at_its_line_in_the_source_file() {
    let dir = source(&[(
        "20230101120000_own_transaction.sql",
        "-- no-transaction\nBEGIN;\nCREATE TABLE t (id INT);\nCOMMIT;\n",
    )]);
    let request = ImportRequest::new(Tool::Sqlx, dir.path(), SourceDialect::Postgres);
    let found = problems(&request);
    let placed: Vec<_> = found
        .iter()
        .map(|(file, line, _)| (file.as_str(), *line))
        .collect();
    assert_eq!(
        placed,
        [
            ("20230101120000_own_transaction.sql", Some(2)),
            ("20230101120000_own_transaction.sql", Some(4))
        ]
    );
    assert!(matches!(
        &found[0].2,
        ImportProblemKind::Format(ProblemKind::TransactionControl { statement }) if statement == "BEGIN"
    ));
}

#[test]
fn broken_sources_are_refused_with_every_reason() {
    let sqlx = source(&[
        ("1_a.sql", "CREATE TABLE a (id INT);\n"),
        ("1_b.sql", "CREATE TABLE b (id INT);\n"),
        ("2_c.down.sql", "DROP TABLE c;\n"),
        ("x3_d.sql", "SELECT 1;\n"),
    ]);
    let found = problems(&ImportRequest::new(
        Tool::Sqlx,
        sqlx.path(),
        SourceDialect::Sqlite,
    ));
    let kinds: Vec<_> = found
        .iter()
        .map(|(file, _, kind)| (file.as_str(), kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "1_b.sql",
                ImportProblemKind::DuplicateVersion {
                    other: "1_a.sql".into()
                }
            ),
            (
                "x3_d.sql",
                ImportProblemKind::BadVersion { found: "x3".into() }
            ),
            ("2_c.down.sql", ImportProblemKind::DownWithoutUp),
        ]
    );
    let diesel = source(&[
        ("2023-01-01-000000_a/up.sql", "CREATE TABLE a (id INT);\n"),
        (
            "2023-01-01-000000_a/metadata.toml",
            "run_in_transaction = nope\n",
        ),
        ("2023-01-02-000000_b/down.sql", "DROP TABLE b;\n"),
    ]);
    let found = problems(&ImportRequest::new(
        Tool::Diesel,
        diesel.path(),
        SourceDialect::Postgres,
    ));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        matches!(&found[0], (file, None, ImportProblemKind::BadMetadata { .. }) if file == "2023-01-01-000000_a/metadata.toml")
    );
    assert_eq!(
        found[1],
        (
            "2023-01-02-000000_b".into(),
            None,
            ImportProblemKind::NoUpFile
        )
    );
    let alembic = source(&[(
        "upgrade.sql",
        "BEGIN;\nSET lock_timeout = '5s';\n\n-- Running upgrade  -> abc\n\nCREATE TABLE a (id INT);\n\nCOMMIT;\n",
    )]);
    let request = ImportRequest::new(
        Tool::Alembic,
        alembic.path().join("upgrade.sql"),
        SourceDialect::Postgres,
    )
    .start(rev("20200101_0000"));
    assert_eq!(
        problems(&request),
        [(
            "upgrade.sql".to_owned(),
            Some(2),
            ImportProblemKind::OutsideRevision {
                statement: "SET lock_timeout = '5s'".into()
            }
        )]
    );
}

#[test]
fn sqlx_integer_versions_and_empty_files_get_ids_and_an_explicit_no_op() {
    let dir = source(&[
        ("1_first.sql", "CREATE TABLE a (id INT);\n"),
        ("2_Nothing Yet.sql", "-- Add migration script here\n"),
        ("3_third.up.sql", "CREATE TABLE c (id INT);\n"),
    ]);
    let request =
        ImportRequest::new(Tool::Sqlx, dir.path(), SourceDialect::Both).start(rev("20190101_0000"));
    let (plan, _dir, migrations) = imported(&request);
    let names: Vec<_> = migrations.iter().map(|m| m.file_name()).collect();
    assert_eq!(
        names,
        [
            "20190101_0000_first.sql",
            "20190101_0001_nothing_yet.sql",
            "20190101_0002_third.sql"
        ]
    );
    assert_eq!(notes_of(&plan, "2_"), [Note::EmptyUp]);
    assert_eq!(notes_of(&plan, "3_"), [Note::NoDown]);
    assert!(
        migrations
            .get(rev("20190101_0001"))
            .unwrap()
            .script(calista::Direction::Up, calista::Dialect::Sqlite)
            .ends_with("SELECT 1; -- the sqlx migration holds no statement")
    );
}

#[test]
fn writing_never_overwrites_and_refuses_a_revision_already_taken() {
    let plan = import::plan(&request(Tool::Sqlx)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let taken = "20230105_0930_something_else.sql";
    std::fs::write(dir.path().join(taken), "-- calista:up\nSELECT 1;\n").unwrap();
    match import::write(&plan, dir.path()) {
        Err(ImportError::Exists { existing, .. }) => assert_eq!(existing, [taken]),
        other => panic!("{other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing written");
    // Importing twice into the same folder is refused the same way.
    let empty = tempfile::tempdir().unwrap();
    import::write(&plan, empty.path()).unwrap();
    assert!(matches!(
        import::write(&plan, empty.path()),
        Err(ImportError::Exists { existing, .. }) if existing.len() == plan.files.len()
    ));
}

/// The imported files run on PostgreSQL: the SQL is the source's, the no-transaction
/// migrations run alone, and the bookkeeping of Alembic is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_applies_on_postgresql() {
    for tool in Tool::ALL {
        let (_plan, _dir, migrations) = imported(&request(tool));
        let db = TestDb::postgres().await;
        let handle = db.open();
        let report = Migrator::new(&migrations, &handle)
            .with_policy(development())
            .upgrade(UpgradeTarget::Head)
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_eq!(report.steps.len(), migrations.len(), "{tool}");
        assert_eq!(
            scalar(
                &handle,
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alembic_version' AND table_schema = 'public'"
            )
            .await,
            0,
            "{tool}"
        );
        handle.close().await;
    }
}

/// On SQLite, the PostgreSQL-only history stops at the placeholder, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_only_import_refuses_to_run_on_sqlite() {
    let (_plan, _dir, migrations) = imported(&request(Tool::Sqlx));
    let db = TestDb::sqlite();
    let handle = db.open();
    let error = Migrator::new(&migrations, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err();
    let shown = format!("{error:#}");
    assert!(
        std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
            .any(|e| e.to_string().contains("calista_imported_for_postgres_only")),
        "{shown}"
    );
    assert_eq!(
        scalar(
            &handle,
            "SELECT count(*) FROM sqlite_master WHERE name = 'users'"
        )
        .await,
        0
    );
}
