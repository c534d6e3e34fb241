//! `squash`: fifty migrations, forty of them replaced by one baseline that builds a
//! byte-identical canonical schema on PostgreSQL and SQLite (DESIGN §12).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::squash;
use calista::url::{DatabaseUrl, PostgresUrl};
use calista::verify::{self, VerifyOptions};
use calista::{Migrations, Migrator, Revision, SchemaState, UpgradeTarget};
use common::*;

const THROUGH: usize = 40;

fn revision(i: usize) -> String {
    format!("202501{:02}_{:02}00", 1 + i / 24, i % 24)
}

/// Fifty migrations: tables, each with an index, a column added later, a view, and one
/// no-transaction index.
fn fifty() -> MigrationSet {
    let set = MigrationSet::new(&[]);
    for i in 0..50 {
        let (summary, body) = match i % 5 {
            0..=2 => (
                format!("create_t{i}"),
                format!(
                    "-- calista:up\nCREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);\n\
                     CREATE INDEX ix_t{i}_name ON t{i} (name);\n-- calista:down\nDROP TABLE t{i};\n"
                ),
            ),
            3 => (
                format!("add_t{}_note", i - 1),
                format!(
                    "-- calista:up\nALTER TABLE t{p} ADD COLUMN note TEXT;\n-- calista:down\nALTER TABLE t{p} DROP COLUMN note;\n",
                    p = i - 1
                ),
            ),
            _ if i == 9 => (
                "index_t7_n".to_owned(),
                "-- calista:no-transaction\n-- calista:up postgres\nCREATE INDEX CONCURRENTLY ix_t7_n ON t7 (n);\n\
                 -- calista:up sqlite\nCREATE INDEX ix_t7_n ON t7 (n);\n-- calista:down\nDROP INDEX ix_t7_n;\n"
                    .to_owned(),
            ),
            _ => (
                format!("view_t{}", i - 4),
                format!(
                    "-- calista:up\nCREATE VIEW v{i} AS SELECT id, name FROM t{p};\n-- calista:down\nDROP VIEW v{i};\n",
                    p = i - 4
                ),
            ),
        };
        set.write(&format!("{}_{summary}.sql", revision(i)), &body);
    }
    set
}

fn server() -> PostgresUrl {
    match DatabaseUrl::parse(&pg_admin_url(), std::path::Path::new("/")).unwrap() {
        DatabaseUrl::Postgres(url) => url,
        DatabaseUrl::Sqlite(_) => panic!("the test server's URL is not PostgreSQL"),
    }
}

fn rev(text: &str) -> Revision {
    Revision::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_migrations_squash_into_a_baseline_with_the_replays_schema_on_both_dialects() {
    let set = fifty();
    let migrations = set.load();
    assert_eq!(migrations.len(), 50);
    let through = rev(&revision(THROUGH - 1));
    let plan = squash::plan(&migrations, through, "1.4.0").unwrap();
    assert_eq!(plan.replaced.len(), THROUGH);
    let checks = squash::check(&migrations, &plan, Some(&server()))
        .await
        .unwrap();
    assert_eq!(checks.len(), 2);
    for check in &checks {
        assert!(
            check.matches(),
            "{:?}:\n{}\n---\n{}",
            check.dialect,
            check.replayed,
            check.baseline
        );
        assert!(check.replayed.contains("ix_t0_name"), "{}", check.replayed);
    }

    squash::write(&plan, set.dir.path()).unwrap();
    let squashed = set.load();
    assert_eq!(squashed.len(), 50 - THROUGH + 1);
    assert!(squashed.as_slice()[0].baseline().is_some());
    let report = verify::verify(
        &squashed,
        &VerifyOptions {
            postgres: Some(server()),
            ..VerifyOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Databases before the squash: one at the baseline's revision runs nothing of it and
/// keeps its history; one part-way is refused naming the release; a new one runs it.
async fn databases_meet_the_squashed_set(db: TestDb) {
    let set = fifty();
    let old = set.load();
    let through = rev(&revision(THROUGH - 1));
    let handle = db.open();
    let migrator = Migrator::new(&old, &handle).with_policy(development());
    migrator
        .upgrade(UpgradeTarget::Revision(through))
        .await
        .unwrap();
    let other = TestDb::sqlite();
    let part_way = other.open();
    Migrator::new(&old, &part_way)
        .with_policy(development())
        .upgrade(UpgradeTarget::Revision(rev(&revision(19))))
        .await
        .unwrap();

    let plan = squash::plan(&old, through, "1.4.0").unwrap();
    squash::write(&plan, set.dir.path()).unwrap();
    let squashed: Migrations = set.load();

    let migrator = Migrator::new(&squashed, &handle).with_policy(development());
    assert_eq!(
        migrator.check().await.unwrap(),
        SchemaState::Behind {
            current: Some(through),
            head: rev(&revision(49)),
            pending: 10
        }
    );
    let report = migrator.upgrade(UpgradeTarget::Head).await.unwrap();
    assert_eq!(report.steps.len(), 10);
    assert!(report.steps.iter().all(|s| !s.file.contains("baseline")));
    assert_eq!(handle.history().await.unwrap().len(), 50);

    let refused = Migrator::new(&squashed, &part_way).check().await.unwrap();
    assert!(
        matches!(&refused, SchemaState::BelowBaseline { release, .. } if release == "1.4.0"),
        "{refused:?}"
    );
    let error = Migrator::new(&squashed, &part_way)
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("release 1.4.0"), "{error}");

    let fresh = TestDb::sqlite();
    let fresh_handle = fresh.open();
    let report = Migrator::new(&squashed, &fresh_handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 11);
    let history = fresh_handle.history().await.unwrap();
    assert_eq!(history[0].kind, calista::history::HistoryKind::Baseline);
    assert_eq!(history[1].kind, calista::history::HistoryKind::Applied);
    handle.close().await;
    part_way.close().await;
    fresh_handle.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_databases_meet_the_squashed_set() {
    databases_meet_the_squashed_set(TestDb::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_databases_meet_the_squashed_set() {
    databases_meet_the_squashed_set(TestDb::sqlite()).await;
}

/// A database an earlier release brought to the baseline's revision recorded the digest of
/// the earlier checksum rule: the baseline carries that one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_recorded_under_the_earlier_checksum_rule_meets_the_baseline_as_unmodified() {
    let untidy = format!("{}   ", create_table("a").trim_end().replace('\n', " \n"));
    let set = MigrationSet::new(&[
        ("20250101_0000_create_a.sql", &untidy),
        ("20250102_0000_create_b.sql", &create_table("b")),
        ("20250103_0000_create_c.sql", &create_table("c")),
    ]);
    let old = set.load();
    let db = TestDb::sqlite();
    let handle = db.open();
    Migrator::new(&old, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Revision(rev("20250102_0000")))
        .await
        .unwrap();
    for (i, m) in old.iter().take(2).enumerate() {
        exec(
            &handle,
            &format!(
                "UPDATE schema_history SET checksum = '{}', chain = '{}' WHERE revision = '{}'",
                m.checksum_before_whitespace_rule(),
                old.chain_before_whitespace_rule_at(i).unwrap(),
                m.revision()
            ),
        )
        .await
        .unwrap();
    }
    let plan = squash::plan(&old, rev("20250102_0000"), "1.1.0").unwrap();
    assert!(plan.text.contains(" legacy:"), "{}", plan.text);
    squash::write(&plan, set.dir.path()).unwrap();
    let squashed = set.load();
    assert!(matches!(
        Migrator::new(&squashed, &handle).check().await.unwrap(),
        SchemaState::Behind { pending: 1, .. }
    ));
    handle.close().await;
}

/// A baseline built into the binary: `migrations!()` reads its directive and continues the
/// chain of the files it replaced, as the runtime loader does.
static SQUASHED: Migrations = calista::migrations!("tests/fixtures/squashed");

#[test]
fn the_build_and_the_loader_agree_on_a_baseline() {
    let loaded = Migrations::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/squashed"
    ))
    .unwrap();
    assert_eq!(SQUASHED.chains(), loaded.chains());
    let replaced = MigrationSet::new(&[("20250101_0000_create_a.sql", &create_table("a"))]).load();
    // The baseline's link is the replaced file's.
    assert_eq!(SQUASHED.chain_at(0), replaced.chain_at(0));
    assert!(SQUASHED.as_slice()[0].baseline().is_some());
}
