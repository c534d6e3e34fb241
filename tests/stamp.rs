//! `stamp`: a database whose schema was made some other way is marked as at a revision once
//! its live schema matches what the migrations up to it build (DESIGN §12), on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::history::HistoryKind;
use calista::{Migrator, Revision, SchemaState, UpgradeTarget};
use common::*;

const A: &str = "20250101_0000_create_a.sql";
const B: &str = "20250102_0000_create_b.sql";
const C: &str = "20250103_0000_create_c.sql";

fn three() -> MigrationSet {
    MigrationSet::new(&[
        (A, &create_table("a")),
        (B, &create_table("b")),
        (C, &create_table("c")),
    ])
}

/// The SQL of `create_table(name)`'s up section, run by hand.
fn by_hand(name: &str) -> String {
    let text = create_table(name);
    let up = text.split("-- calista:up").nth(1).unwrap();
    up.split("-- calista:down")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// The application's tables live in the schema calista uses; made by hand there.
fn in_schema(db: &TestDb, sql: &str) -> String {
    match db {
        TestDb::Postgres(_) => {
            format!("CREATE SCHEMA IF NOT EXISTS calista; SET search_path TO calista; {sql}")
        }
        TestDb::Sqlite { .. } => sql.to_owned(),
    }
}

both_backends! {
    async fn a_matching_schema_is_stamped_and_upgrades_from_there(db: TestDb) {
        if let TestDb::Sqlite { file, .. } = &db {
            std::fs::File::create(file).unwrap();
        }
        let handle = db.open();
        exec(&handle, &in_schema(&db, &format!("{} {}", by_hand("a"), by_hand("b")))).await.unwrap();
        let set = three();
        let migrations = set.load();
        let migrator = Migrator::new(&migrations, &handle).with_policy(development());
        let b = Revision::parse("20250102_0000").unwrap();
        let stamped = migrator.stamp(b, false).await.unwrap();
        assert_eq!(stamped.recorded.len(), 2);
        assert!(stamped.forced.is_empty());
        assert!(matches!(migrator.check().await.unwrap(), SchemaState::Behind { pending: 1, .. }));
        let history = handle.history().await.unwrap();
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|r| r.kind == HistoryKind::Stamped));
        // Nothing ran: the next upgrade runs only c.
        let report = migrator.upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.steps.len(), 1);
        let again = migrator.stamp(b, false).await.unwrap_err();
        assert!(again.to_string().contains("nothing to stamp"), "{again}");
    }

    async fn a_differing_schema_is_refused_naming_the_difference_unless_forced(db: TestDb) {
        if let TestDb::Sqlite { file, .. } = &db {
            std::fs::File::create(file).unwrap();
        }
        let handle = db.open();
        // Table b by hand lacks its column `note`.
        exec(&handle, &in_schema(&db, &format!("{} CREATE TABLE b (id INTEGER PRIMARY KEY);", by_hand("a")))).await.unwrap();
        let set = three();
        let migrations = set.load();
        let migrator = Migrator::new(&migrations, &handle).with_policy(development());
        let b = Revision::parse("20250102_0000").unwrap();
        let refused = migrator.stamp(b, false).await.unwrap_err();
        let message = refused.to_string();
        assert!(message.contains("column b.note"), "{message}");
        assert_eq!(refused.kind(), calista::ErrorKind::Usage);
        // Nothing was recorded.
        assert!(handle.history().await.unwrap().is_empty());

        let forced = migrator.stamp(b, true).await.unwrap();
        assert_eq!(forced.forced.differences.len(), 1, "{}", forced.forced);
        let history = handle.history().await.unwrap();
        assert!(history[1].note.as_deref().unwrap().contains("column b.note"), "{history:?}");
    }
}
