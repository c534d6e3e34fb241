//! `repair`: accepting an intended edit of an applied migration, and the checksum rule that
//! leaves formatting out (DESIGN §12), on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::history::HistoryKind;
use calista::{Migrator, SchemaState, UpgradeTarget};
use common::*;

const A: &str = "20250101_0000_create_a.sql";
const B: &str = "20250102_0000_create_b.sql";

fn history_table(db: &TestDb) -> &'static str {
    match db {
        TestDb::Postgres(_) => "calista.schema_history",
        TestDb::Sqlite { .. } => "schema_history",
    }
}

both_backends! {
    async fn a_repaired_edit_keeps_both_checksums_and_the_reason_and_the_guard_passes(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[(A, &create_table("a")), (B, &create_table("b"))]);
        let applied = set.load();
        Migrator::new(&applied, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        let old = applied.as_slice()[0].checksum();

        // An intended edit of an applied migration: a comment explaining it.
        set.write(A, &format!("-- Table a holds the things.\n{}", create_table("a")));
        let edited = set.load();
        let migrator = Migrator::new(&edited, &handle).with_policy(development());
        assert!(matches!(migrator.check().await.unwrap(), SchemaState::Modified { .. }));

        let repaired = migrator.repair(edited.as_slice()[0].revision(), "documented table a").await.unwrap();
        assert_eq!(repaired.replaced, old);
        assert_eq!(repaired.checksum, edited.as_slice()[0].checksum());
        assert!(migrator.check().await.unwrap().is_up_to_date());

        let history = handle.history().await.unwrap();
        let row = history.last().unwrap();
        assert_eq!(row.kind, HistoryKind::Repaired);
        assert_eq!(row.revision, "20250101_0000");
        assert_eq!(row.note.as_deref(), Some("documented table a"));
        assert_eq!(row.replaced_checksum, Some(old));
        assert_eq!(row.checksum, Some(edited.as_slice()[0].checksum()));
        assert!(!row.applied_at.is_empty());
        // The migrations ran once each: the repair ran none.
        assert_eq!(history.iter().filter(|r| r.kind == HistoryKind::Applied).count(), 2);

        // Nothing more to accept; the next migration applies on top.
        let again = migrator.repair(edited.as_slice()[0].revision(), "again").await.unwrap_err();
        assert!(again.to_string().contains("nothing to repair"), "{again}");
        set.write("20250103_0000_create_c.sql", &create_table("c"));
        let next = set.load();
        let report = Migrator::new(&next, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.steps.len(), 1);
    }

    async fn a_repair_is_refused_naming_another_changed_migration(db: TestDb) {
        let handle = db.open();
        let set = MigrationSet::new(&[(A, &create_table("a")), (B, &create_table("b"))]);
        let applied = set.load();
        Migrator::new(&applied, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        set.write(A, &format!("-- edited\n{}", create_table("a")));
        set.write(B, &format!("-- edited too\n{}", create_table("b")));
        let edited = set.load();
        let migrator = Migrator::new(&edited, &handle).with_policy(development());
        let refused = migrator.repair(edited.as_slice()[1].revision(), "b only").await.unwrap_err();
        assert!(refused.to_string().contains(A), "{refused}");
        assert_eq!(refused.kind(), calista::ErrorKind::Unsafe);
        let table = history_table(&db);
        assert_eq!(scalar(&handle, &format!("SELECT count(*) FROM {table}")).await, 2);
    }

    async fn formatting_only_edits_never_count_as_edits(db: TestDb) {
        let handle = db.open();
        let body = create_table("a");
        let set = MigrationSet::new(&[(A, &body)]);
        let applied = set.load();
        Migrator::new(&applied, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        // Trailing spaces, CRLF, no final newline, blank lines at the end.
        let untidy = body.trim_end().replace('\n', "  \r\n");
        set.write(A, &format!("{untidy}\r\n\r\n   "));
        let reformatted = set.load();
        assert!(Migrator::new(&reformatted, &handle).check().await.unwrap().is_up_to_date());
        set.write(A, untidy.trim_end());
        assert!(Migrator::new(&set.load(), &handle).check().await.unwrap().is_up_to_date());
    }

    async fn a_history_recorded_under_the_earlier_checksum_rule_reads_as_unmodified(db: TestDb) {
        let handle = db.open();
        // A file with trailing whitespace and no final newline: the two rules differ on it.
        let untidy = format!("{}   ", create_table("a").trim_end().replace('\n', " \n"));
        let set = MigrationSet::new(&[(A, &untidy), (B, &create_table("b"))]);
        let migrations = set.load();
        let a = &migrations.as_slice()[0];
        assert_ne!(a.checksum(), a.checksum_before_whitespace_rule());
        Migrator::new(&migrations, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        // Rewrite the history as the earlier releases wrote it: their checksums and chains.
        let table = history_table(&db);
        for (i, m) in migrations.iter().enumerate() {
            let chain = migrations.chain_before_whitespace_rule_at(i).unwrap();
            exec(&handle, &format!(
                "UPDATE {table} SET checksum = '{}', chain = '{chain}' WHERE revision = '{}'",
                m.checksum_before_whitespace_rule(),
                m.revision()
            )).await.unwrap();
        }
        let migrator = Migrator::new(&migrations, &handle).with_policy(development());
        assert!(migrator.check().await.unwrap().is_up_to_date());
        // And a newer migration applies on top of it.
        set.write("20250103_0000_create_c.sql", &create_table("c"));
        let next = set.load();
        let report = Migrator::new(&next, &handle).with_policy(development()).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.steps.len(), 1);
        assert!(Migrator::new(&next, &handle).check().await.unwrap().is_up_to_date());
    }
}
