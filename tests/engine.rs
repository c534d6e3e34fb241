//! The runtime engine against real databases: the guard's states, upgrades, downgrades,
//! failures, recovery and locking, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::time::Duration;

use calista::{
    DatabaseOptions, DowngradeTarget, Ensured, ErrorKind, Migrator, Recovery, SchemaState,
    UpgradeTarget,
};
use common::*;

const A: &str = "20250101_0000_create_a.sql";
const B: &str = "20250102_0000_create_b.sql";
const C: &str = "20250103_0000_create_c.sql";

fn abc() -> MigrationSet {
    MigrationSet::new(&[
        (A, &create_table("a")),
        (B, &create_table("b")),
        (C, &create_table("c")),
    ])
}

fn rev(text: &str) -> calista::Revision {
    calista::Revision::parse(text).unwrap()
}

both_backends! {
    async fn empty_database_is_behind_and_the_guard_refuses_without_auto_upgrade(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        let migrator = Migrator::new(&set, &handle);
        let err = migrator.ensure_schema().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Behind);
        let message = err.to_string();
        assert!(message.contains("empty (no revision)"), "{message}");
        assert!(message.contains("20250103_0000"), "{message}");
        assert!(message.contains("3 migrations are pending"), "{message}");
        // The library's own words are neutral: the application supplies its commands.
        assert!(message.contains("Upgrade the database to apply them"), "{message}");
        assert!(!message.to_lowercase().contains("calista"), "{message}");
        // The check wrote nothing: the tables are still missing.
        assert_eq!(migrator.check().await.unwrap(), SchemaState::Behind { current: None, head: rev("20250103_0000"), pending: 3 });
    }

    async fn upgrade_applies_all_migrations_and_records_history(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        let report = Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.from, None);
        assert_eq!(report.to, Some(rev("20250103_0000")));
        let files: Vec<&str> = report.steps.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(files, [A, B, C]);
        assert!(report.steps.iter().all(|s| s.attempts == 1), "{report:?}");
        assert_eq!(version(&handle).await.as_deref(), Some("20250103_0000"));
        let history = handle.history().await.unwrap();
        assert_eq!(history.len(), 3);
        assert!(history.iter().all(|r| r.finished && r.direction == calista::Direction::Up));
        assert_eq!(history[0].checksum, Some(set.as_slice()[0].checksum()));
        assert!(history[2].applied_at.ends_with('Z'), "{}", history[2].applied_at);
        assert_eq!(Migrator::new(&set, &handle).check().await.unwrap(), SchemaState::UpToDate { current: Some(rev("20250103_0000")) });
        assert_eq!(scalar(&handle, "SELECT count(*) FROM c").await, 0);
    }

    async fn auto_upgrade_runs_from_the_guard(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        let policy = calista::Policy { auto_upgrade: true, ..development() };
        match Migrator::new(&set, &handle).with_policy(policy.clone()).ensure_schema().await.unwrap() {
            Ensured::Upgraded(report) => assert_eq!(report.steps.len(), 3),
            other => panic!("expected an upgrade, got {other:?}"),
        }
        assert_eq!(
            Migrator::new(&set, &handle).with_policy(policy).ensure_schema().await.unwrap(),
            Ensured::UpToDate { current: Some(rev("20250103_0000")), notices: Vec::new() }
        );
    }

    async fn upgrade_to_a_revision_stops_there(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        let migrator = Migrator::new(&set, &handle).with_policy(development());
        let report = migrator.upgrade(UpgradeTarget::Revision(rev("20250102_0000"))).await.unwrap();
        assert_eq!(report.steps.len(), 2);
        assert_eq!(migrator.check().await.unwrap(), SchemaState::Behind { current: Some(rev("20250102_0000")), head: rev("20250103_0000"), pending: 1 });
        let err = migrator.upgrade(UpgradeTarget::Revision(rev("20250101_0000"))).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
    }

    async fn failing_migration_leaves_the_database_at_its_starting_revision_with_its_data(db: TestDb) {
        let set = abc();
        let handle = db.open();
        Migrator::new(&set.load(), &handle).with_policy(development()).upgrade(UpgradeTarget::Revision(rev("20250101_0000"))).await.unwrap();
        exec(&handle, "INSERT INTO a (id, note) VALUES (1, 'kept')").await.unwrap();
        // b succeeds, then c fails half-way: b's table and c's first statement must vanish too.
        set.write(C, "-- calista:up\nCREATE TABLE c (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n-- calista:down\nDROP TABLE c;\n");
        let failing = set.load();
        let err = Migrator::new(&failing, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failure);
        let message = err.to_string();
        assert!(message.contains(C) && message.contains("20250101_0000"), "{message}");
        assert!(std::error::Error::source(&err).is_some(), "the database error is kept as the source");
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
        assert_eq!(scalar(&handle, "SELECT count(*) FROM a WHERE note = 'kept'").await, 1);
        assert!(exec(&handle, "SELECT * FROM b").await.is_err(), "b was rolled back");
        assert!(exec(&handle, "SELECT * FROM c").await.is_err(), "c was rolled back");
        assert_eq!(handle.history().await.unwrap().len(), 1, "no history of the failed run");
        // The lock is free: the next upgrade does not wait for it.
        let quick = DatabaseOptions { lock_timeout: Duration::from_secs(2), ..in_calista() };
        let again = db.open_with(quick);
        set.write(C, &create_table("c"));
        let report = Migrator::new(&set.load(), &again).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.steps.len(), 2);
    }

    async fn per_migration_transactions_keep_what_succeeded(db: TestDb) {
        let set = abc();
        set.write(C, "-- calista:up\nINSERT INTO no_such_table VALUES (1);\n-- calista:down\nSELECT 1;\n");
        let handle = db.open();
        let policy = calista::Policy { transaction_mode: calista::TransactionMode::Each, ..development() };
        let err = Migrator::new(&set.load(), &handle).with_policy(policy).upgrade(UpgradeTarget::Head).await.unwrap_err();
        assert!(err.to_string().contains("at revision 20250102_0000"), "{err}");
        assert_eq!(version(&handle).await.as_deref(), Some("20250102_0000"));
    }

    async fn unknown_revision_is_ahead_and_names_the_version_that_applied_it(db: TestDb) {
        let newer = abc();
        let handle = db.open();
        let policy = calista::Policy { app_version: calista::semver::Version::parse("2.1.0").ok(), ..development() };
        Migrator::new(&newer.load(), &handle).with_policy(policy).upgrade(UpgradeTarget::Head).await.unwrap();
        newer.remove(C);
        let older = newer.load();
        let state = Migrator::new(&older, &handle).check().await.unwrap();
        assert_eq!(state, SchemaState::Ahead { current: "20250103_0000".into(), applied_by: Some("2.1.0".into()) });
        let err = Migrator::new(&older, &handle).with_policy(calista::Policy { auto_upgrade: true, ..development() }).ensure_schema().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsafe);
        assert!(err.to_string().contains("version 2.1.0"), "{err}");
        // The same version applied it: then a file went missing, and the message says so.
        let same = calista::Policy { app_version: calista::semver::Version::parse("2.1.0").ok(), ..development() };
        let err = Migrator::new(&older, &handle).with_policy(same).ensure_schema().await.unwrap_err();
        assert!(err.to_string().contains("deleted or renamed"), "{err}");
        // Never touched: an upgrade refuses too.
        assert!(Migrator::new(&older, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.is_err());
        assert_eq!(version(&handle).await.as_deref(), Some("20250103_0000"));
    }

    async fn edited_migration_is_modified(db: TestDb) {
        let set = abc();
        let handle = db.open();
        Migrator::new(&set.load(), &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        set.write(B, &create_table("b").replace("note TEXT", "note TEXT, extra TEXT"));
        let err = Migrator::new(&set.load(), &handle).ensure_schema().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsafe);
        assert!(err.to_string().contains(&format!("edited since: {B}")), "{err}");
    }

    async fn late_merged_migration_is_out_of_order(db: TestDb) {
        let set = MigrationSet::new(&[(A, &create_table("a")), (C, &create_table("c"))]);
        let handle = db.open();
        Migrator::new(&set.load(), &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        set.write(B, &create_table("b"));
        let state = Migrator::new(&set.load(), &handle).check().await.unwrap();
        assert_eq!(state, SchemaState::OutOfOrder { current: rev("20250103_0000"), unapplied: vec![(rev("20250102_0000"), B.into())] });
        let err = Migrator::new(&set.load(), &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap_err();
        assert!(err.to_string().contains("rename each to a new timestamp"), "{err}");
    }

    async fn hand_edited_version_table_gives_a_clear_error(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        let table = if handle.pool().as_postgres().is_some() { "calista.alembic_version" } else { "alembic_version" };
        let migrator = Migrator::new(&set, &handle);

        exec(&handle, &format!("INSERT INTO {table} VALUES ('20250102_0000')")).await.unwrap();
        let err = migrator.ensure_schema().await.unwrap_err();
        assert!(err.to_string().contains("several rows"), "{err}");

        exec(&handle, &format!("DELETE FROM {table}")).await.unwrap();
        let err = migrator.ensure_schema().await.unwrap_err();
        assert!(err.to_string().contains("alembic_version has no row"), "{err}");
        assert!(err.to_string().contains("20250103_0000"), "{err}");

        exec(&handle, &format!("INSERT INTO {table} VALUES ('not_a_revision')")).await.unwrap();
        let err = migrator.ensure_schema().await.unwrap_err();
        assert!(err.to_string().contains("not_a_revision") && err.to_string().contains("edited by hand"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Unsafe);
    }

    async fn downgrades_are_refused_in_production_and_run_in_development(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        let err = Migrator::new(&set, &handle).downgrade(DowngradeTarget::Steps(1)).await.unwrap_err();
        assert!(err.to_string().contains("forward-only"), "{err}");
        assert_eq!(version(&handle).await.as_deref(), Some("20250103_0000"));

        let dev = Migrator::new(&set, &handle).with_policy(development());
        let report = dev.downgrade(DowngradeTarget::Steps(1)).await.unwrap();
        assert_eq!((report.from, report.to), (Some(rev("20250103_0000")), Some(rev("20250102_0000"))));
        assert!(exec(&handle, "SELECT * FROM c").await.is_err());
        // The O(1) guard still verifies after a downgrade.
        assert!(matches!(dev.check().await.unwrap(), SchemaState::Behind { pending: 1, .. }));
        dev.downgrade(DowngradeTarget::Base).await.unwrap();
        assert_eq!(version(&handle).await, None);
        assert_eq!(dev.check().await.unwrap(), SchemaState::Behind { current: None, head: rev("20250103_0000"), pending: 3 });
        dev.upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(dev.check().await.unwrap(), SchemaState::UpToDate { current: Some(rev("20250103_0000")) });
        assert_eq!(handle.history().await.unwrap().len(), 3 + 3 + 3);
    }

    async fn irreversible_migration_stops_a_downgrade_before_anything_runs(db: TestDb) {
        let set = abc();
        set.write(B, "-- calista:irreversible\n-- calista:up\nCREATE TABLE b (id INTEGER);\n");
        let handle = db.open();
        let loaded = set.load();
        let dev = Migrator::new(&loaded, &handle).with_policy(development());
        dev.upgrade(UpgradeTarget::Head).await.unwrap();
        let err = dev.downgrade(DowngradeTarget::Base).await.unwrap_err();
        assert!(err.to_string().contains(B) && err.to_string().contains("irreversible"), "{err}");
        assert_eq!(version(&handle).await.as_deref(), Some("20250103_0000"));
        assert_eq!(scalar(&handle, "SELECT count(*) FROM c").await, 0, "c was not reverted either");
    }

    async fn failed_no_transaction_migration_is_interrupted_until_recovered(db: TestDb) {
        let set = MigrationSet::new(&[(A, &create_table("a"))]);
        set.write(B, "-- calista:no-transaction\n-- calista:allow index-without-concurrently -- a test table\n-- calista:up\nCREATE INDEX ix_a_note ON a (note);\nCREATE INDEX ix_gone ON gone (x);\n-- calista:down\nDROP INDEX ix_a_note;\n");
        let handle = db.open();
        let loaded = set.load();
        let dev = Migrator::new(&loaded, &handle).with_policy(development());
        let err = dev.upgrade(UpgradeTarget::Head).await.unwrap_err();
        assert!(err.to_string().contains("recorded as interrupted"), "{err}");
        let state = dev.check().await.unwrap();
        assert!(matches!(&state, SchemaState::Interrupted { revision, .. } if revision.to_string() == "20250102_0000"), "{state:?}");
        let err = dev.ensure_schema().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsafe);
        assert!(err.to_string().contains("retry (forget the attempt"), "{err}");

        // The operator undoes the partial change and fixes the cause, then retries.
        exec(&handle, "DROP INDEX ix_a_note").await.unwrap();
        exec(&handle, "CREATE TABLE gone (x INTEGER)").await.unwrap();
        dev.recover(Recovery::Retry).await.unwrap();
        dev.upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(dev.check().await.unwrap(), SchemaState::UpToDate { current: Some(rev("20250102_0000")) });
        assert!(matches!(dev.recover(Recovery::Retry).await.unwrap_err(), calista::Error::NothingToRecover));
    }

    async fn interrupted_migration_that_did_complete_can_be_marked_applied(db: TestDb) {
        let set = MigrationSet::new(&[(A, &create_table("a"))]);
        set.write(B, "-- calista:no-transaction\n-- calista:allow index-without-concurrently -- a test table\n-- calista:up\nCREATE INDEX ix_a_note ON a (note);\nSELECT * FROM gone;\n-- calista:down\nDROP INDEX ix_a_note;\n");
        let handle = db.open();
        let loaded = set.load();
        let dev = Migrator::new(&loaded, &handle).with_policy(development());
        assert!(dev.upgrade(UpgradeTarget::Head).await.is_err());
        dev.recover(Recovery::MarkApplied).await.unwrap();
        assert_eq!(dev.check().await.unwrap(), SchemaState::UpToDate { current: Some(rev("20250102_0000")) });
        assert_eq!(version(&handle).await.as_deref(), Some("20250102_0000"));
    }

    async fn sixteen_concurrent_upgraders_apply_each_migration_once(db: TestDb) {
        let set = abc().load();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let handle = db.open();
            let set = set.clone();
            tasks.push(tokio::spawn(async move {
                Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await
            }));
        }
        let mut applied = 0;
        for task in tasks {
            let report = task.await.unwrap().unwrap();
            applied += report.steps.len();
        }
        assert_eq!(applied, 3, "each migration applied by exactly one upgrader");
        let handle = db.open();
        assert_eq!(handle.history().await.unwrap().len(), 3);
        assert_eq!(version(&handle).await.as_deref(), Some("20250103_0000"));
    }

    async fn upgrade_script_changes_nothing(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        let migrator = Migrator::new(&set, &handle).with_policy(development());
        migrator.upgrade(UpgradeTarget::Revision(rev("20250101_0000"))).await.unwrap();
        let script = migrator.upgrade_script(UpgradeTarget::Head).await.unwrap();
        assert!(script.contains("CREATE TABLE b") && script.contains("CREATE TABLE c"), "{script}");
        assert!(!script.contains("CREATE TABLE a"), "{script}");
        assert!(script.contains("UPDATE") && script.contains("'20250103_0000'") && script.contains("COMMIT;"), "{script}");
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
        assert!(exec(&handle, "SELECT * FROM b").await.is_err());
    }

    async fn a_migration_with_its_own_lock_timeout_upgrades_on_either_backend(db: TestDb) {
        // `-- calista:lock-timeout` is PostgreSQL's per-attempt wait; SQLite waits in its busy
        // handler and has no such setting to send, so the directive changes nothing there.
        let set = MigrationSet::new(&[
            (A, &create_table("a")),
            (B, &format!("-- calista:lock-timeout 5s\n{}", create_table("b"))),
            (C, &create_table("c")),
        ]).load();
        let handle = db.open();
        let report = Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.steps.len(), 3);
        assert_eq!(version(&handle).await.as_deref(), Some("20250103_0000"));
    }

    async fn lock_timeout_names_the_holder(db: TestDb) {
        let set = abc().load();
        let handle = db.open();
        Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Revision(rev("20250101_0000"))).await.unwrap();
        // Hold the lock the way a running upgrade does, from another connection.
        let holder = hold_migration_lock(&db, "lock-holder-test").await;
        let impatient = db.open_with(DatabaseOptions { lock_timeout: Duration::from_millis(600), ..in_calista() });
        let err = Migrator::new(&set, &impatient).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LockTimeout);
        let message = err.to_string();
        assert!(message.contains("held by"), "{message}");
        if db.url_text().starts_with("postgres") {
            assert!(message.contains("pid") && message.contains("lock-holder-test"), "{message}");
        }
        drop(holder);
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
    }
}

/// A process waiting for the lock polls with `pg_try_advisory_lock` between short
/// statements, so it never holds a snapshot that the holder's `CREATE INDEX CONCURRENTLY`
/// would have to wait for (a waiter blocked inside `pg_advisory_lock` would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_lock_does_not_block_the_holders_create_index_concurrently() {
    let db = TestDb::postgres().await;
    let set = MigrationSet::new(&[
        (
            A,
            "-- calista:allow postgres-only -- this test runs on PostgreSQL only\n-- calista:up\nCREATE TABLE a (id INTEGER PRIMARY KEY, note TEXT);\nINSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 20000) g;\n-- calista:down\nDROP TABLE a;\n",
        ),
        (
            B,
            "-- calista:no-transaction\n-- calista:up postgres\nSELECT pg_sleep(1);\nCREATE INDEX CONCURRENTLY ix_a_note ON a (note);\n-- calista:up sqlite\nCREATE INDEX ix_a_note ON a (note);\n-- calista:down\nDROP INDEX ix_a_note;\n",
        ),
    ]);
    let migrations = set.load();
    let holder_db = db.open();
    let holder = {
        let migrations = migrations.clone();
        tokio::spawn(async move {
            Migrator::new(&migrations, &holder_db)
                .with_policy(development())
                .upgrade(UpgradeTarget::Head)
                .await
        })
    };
    // Start the waiter once the holder is inside the no-transaction migration.
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let mut admin = pg_admin().await;
    for _ in 0..500 {
        let sleeping: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'")
            .bind(&pg.name).fetch_one(&mut admin).await.unwrap();
        if sleeping > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let patient = db.open_with(DatabaseOptions {
        lock_timeout: Duration::from_secs(30),
        ..in_calista()
    });
    let waiter = Migrator::new(&migrations, &patient)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    let held = holder.await.unwrap().unwrap();
    assert_eq!(
        held.steps.len(),
        2,
        "the holder applied both, its concurrent index included"
    );
    assert!(
        waiter.steps.is_empty(),
        "the waiter found nothing left to do"
    );
    let valid = scalar(&patient, "SELECT count(*) FROM pg_index WHERE indexrelid = 'calista.ix_a_note'::regclass AND indisvalid").await;
    assert_eq!(valid, 1, "the concurrent index was built and is valid");
}

/// Migrations made without the file rules' checks (as `migrations!()` embeds checked ones),
/// so that the run-time defences are tested whatever the build-time checks refuse: each is
/// `(revision, summary, up SQL)` with a trivial down section.
fn unchecked(files: &[(&str, &str, &str)]) -> calista::Migrations {
    let migrations: Vec<calista::Migration> = files
        .iter()
        .map(|(revision, summary, up)| {
            let head = "-- a migration made in the test\n-- calista:up\n";
            let text = format!("{head}{up}\n-- calista:down\nSELECT 1;\n");
            let up_start = head.len() as u32;
            let up_end = up_start + up.len() as u32;
            let down_start = text.len() as u32 - "SELECT 1;\n".len() as u32;
            let spans: &'static [(u8, u32, u32, u32)] = Box::leak(Box::new([
                (0, 2, up_start, up_end),
                (
                    1,
                    2 + up.lines().count() as u32 + 1,
                    down_start,
                    down_start + 9,
                ),
            ]));
            let text: &'static str = Box::leak(text.into_boxed_str());
            let summary: &'static str = Box::leak(summary.to_string().into_boxed_str());
            calista::__private::migration(
                rev(revision),
                summary,
                text,
                spans,
                false,
                false,
                calista::Checksum::of_file(text.as_bytes()),
            )
        })
        .collect();
    let chains = calista_core::__private::chain_digests(&migrations);
    calista::__private::migrations(
        Box::leak(migrations.into_boxed_slice()),
        Box::leak(chains.into_boxed_slice()),
        None,
        None,
    )
}

/// The error and its causes, as the program prints them.
/// The error and its causes as the program prints them: a cause the message already
/// quotes is not repeated.
fn chain(error: &calista::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(source) = cause {
        let line = source.to_string();
        if !text.contains(&line) {
            text.push_str(&format!("\n  caused by: {line}"));
        }
        cause = source.source();
    }
    text
}

async fn table_exists(db: &calista::Database, table: &str) -> bool {
    exec(db, &format!("SELECT 1 FROM {table}")).await.is_ok()
}

/// Migrations that end their transaction, and failed statements, on both backends.
mod statements {
    use super::*;

    /// Upgrades `set` to its first migration, then to its head, which must fail with
    /// `TransactionEnded`: the handle, the error and its message.
    async fn ended_after_the_first(
        db: &TestDb,
        set: &calista::Migrations,
    ) -> (calista::Database, calista::Error, String) {
        let handle = db.open();
        let migrator = Migrator::new(set, &handle).with_policy(development());
        migrator
            .upgrade(UpgradeTarget::Revision(rev("20250101_0000")))
            .await
            .unwrap();
        let err = migrator.upgrade(UpgradeTarget::Head).await.unwrap_err();
        let message = chain(&err);
        assert!(
            matches!(err, calista::Error::TransactionEnded { .. }),
            "{message}"
        );
        (handle, err, message)
    }

    both_backends! {
        async fn a_commit_inside_a_migration_then_a_failure_records_nothing_false(db: TestDb) {
            let set = unchecked(&[
                ("20250101_0000", "create_z", "CREATE TABLE z (id INTEGER);"),
                ("20250102_0000", "create_a", "CREATE TABLE a (id INTEGER);"),
                ("20250103_0000", "commit_then_fail", "CREATE TABLE b (id INTEGER);\nCOMMIT;\nCREATE TABLE c (id INTEGER);\nINSERT INTO missing_table VALUES (1);"),
            ]);
            let (handle, _, message) = ended_after_the_first(&db, &set).await;
            assert!(message.contains("20250103_0000_commit_then_fail.sql ended the migration transaction itself"), "{message}");
            // The COMMIT is on line 4 of the file.
            assert!(message.contains("line 4 (`COMMIT`)"), "{message}");
            assert!(message.contains("missing_table"), "{message}");
            assert!(!message.contains("nothing of the failed transaction was kept"), "{message}");
            assert!(message.contains("alembic_version still says 20250101_0000"), "{message}");
            // Nothing false recorded: the version and the history are where they were.
            assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
            assert_eq!(handle.history().await.unwrap().len(), 1);
            assert!(matches!(Migrator::new(&set, &handle).check().await.unwrap(), SchemaState::Behind { .. }));
            // And it says so truthfully: what the COMMIT committed is there.
            assert!(table_exists(&handle, "a").await && table_exists(&handle, "b").await);
        }

        async fn a_rollback_in_the_middle_of_a_batch_fails_and_keeps_the_version_true(db: TestDb) {
            let set = unchecked(&[
                ("20250101_0000", "create_z", "CREATE TABLE z (id INTEGER);"),
                ("20250102_0000", "create_a", "CREATE TABLE a (id INTEGER);"),
                ("20250103_0000", "rollback_then_b", "ROLLBACK;\nCREATE TABLE b (id INTEGER);"),
            ]);
            let (handle, err, message) = ended_after_the_first(&db, &set).await;
            assert_eq!(err.kind(), ErrorKind::Failure);
            assert!(message.contains("20250103_0000_rollback_then_b.sql") && message.contains("line 3 (`ROLLBACK`)"), "{message}");
            // Before: PostgreSQL reported success and alembic_version named 20250103_0000.
            assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
            assert_eq!(handle.history().await.unwrap().len(), 1);
            assert!(!table_exists(&handle, "a").await, "the ROLLBACK undid migration a");
            assert_eq!(
                Migrator::new(&set, &handle).check().await.unwrap(),
                SchemaState::Behind { current: Some(rev("20250101_0000")), head: rev("20250103_0000"), pending: 2 }
            );
        }

        // The last migration of a batch is sent with the check of its transaction (PostgreSQL):
        // a line comment ending its SQL must not swallow the check, nor hide a COMMIT.
        async fn a_last_migration_ending_in_a_line_comment_is_recorded(db: TestDb) {
            let set = unchecked(&[
                ("20250101_0000", "create_a", "CREATE TABLE a (id INTEGER);"),
                ("20250102_0000", "create_b", "CREATE TABLE b (id INTEGER); -- the last line, a comment"),
            ]);
            let handle = db.open();
            let report = Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
            assert_eq!(report.steps.len(), 2);
            assert_eq!(version(&handle).await.as_deref(), Some("20250102_0000"));
            assert_eq!(handle.history().await.unwrap().len(), 2);
            assert!(table_exists(&handle, "b").await);
        }

        async fn a_commit_ending_the_last_migration_before_a_comment_is_found(db: TestDb) {
            let set = unchecked(&[
                ("20250101_0000", "create_z", "CREATE TABLE z (id INTEGER);"),
                ("20250102_0000", "create_a", "CREATE TABLE a (id INTEGER);"),
                ("20250103_0000", "commit_last", "CREATE TABLE b (id INTEGER);\nCOMMIT; -- ends the transaction"),
            ]);
            let (handle, _, message) = ended_after_the_first(&db, &set).await;
            assert!(message.contains("20250103_0000_commit_last.sql") && message.contains("line 4 (`COMMIT`)"), "{message}");
            assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
            assert_eq!(handle.history().await.unwrap().len(), 1);
        }

        async fn a_failed_statement_is_named_with_its_file_line_and_text_and_the_message_once(db: TestDb) {
            let set = unchecked(&[
                ("20250101_0000", "create_t", "CREATE TABLE t (id INTEGER PRIMARY KEY);"),
                ("20250102_0000", "bad_insert", "-- fill it\nINSERT INTO t VALUES (1);\n\nINSERT INTO missing_table VALUES (2);"),
            ]);
            let handle = db.open();
            let err = Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap_err();
            let message = chain(&err);
            assert!(matches!(err, calista::Error::Migration { .. }), "{message}");
            // The file's line 6 (two lines of head, the comment, the first insert, a blank line).
            assert!(message.contains("migration 20250102_0000_bad_insert.sql failed (up) at line 6"), "{message}");
            assert!(message.contains("(`INSERT INTO missing_table VALUES (2)`)"), "{message}");
            if db.url_text().starts_with("postgres") {
                // PostgreSQL points at the relation: column 13.
                assert!(message.contains("at line 6:13 "), "{message}");
                assert_eq!(message.matches("relation \"missing_table\" does not exist").count(), 1, "{message}");
            } else {
                assert_eq!(message.matches("no such table: missing_table").count(), 1, "{message}");
            }
            // Only our "at line": not the server's C source line.
            assert_eq!(message.matches("at line").count(), 1, "{message}");
            assert!(!table_exists(&handle, "t").await, "nothing of the transaction was kept");
        }

        async fn a_unique_violation_shows_the_servers_detail_and_the_statement(db: TestDb) {
            let set = unchecked(&[
                ("20250101_0000", "dup", "CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (1);"),
            ]);
            let handle = db.open();
            let err = Migrator::new(&set, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap_err();
            let message = chain(&err);
            assert!(message.contains("at line 5 (`INSERT INTO t VALUES (1)`)"), "{message}");
            if db.url_text().starts_with("postgres") {
                assert!(message.contains("DETAIL: Key (id)=(1) already exists."), "{message}");
                assert!(message.contains("SQLSTATE 23505"), "{message}");
            } else {
                assert!(message.contains("UNIQUE constraint failed: t.id"), "{message}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_concurrently_in_a_transaction_says_to_mark_the_file_no_transaction() {
    let db = TestDb::postgres().await;
    let set = unchecked(&[
        ("20250101_0000", "create_t", "CREATE TABLE t (id INTEGER);"),
        (
            "20250102_0000",
            "index_t",
            "CREATE INDEX CONCURRENTLY ix_t ON t (id);",
        ),
    ]);
    let handle = db.open();
    let err = Migrator::new(&set, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err();
    let message = chain(&err);
    assert!(
        message.contains("20250102_0000_index_t.sql failed (up) at line 3"),
        "{message}"
    );
    assert!(
        message.contains("mark the file `-- calista:no-transaction`"),
        "{message}"
    );
    assert!(
        message.contains("cannot run inside a transaction block"),
        "{message}"
    );
    assert!(
        !table_exists(&handle, "t").await,
        "nothing of the transaction was kept"
    );
}
