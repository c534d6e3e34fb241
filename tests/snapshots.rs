//! Schema snapshots read from real databases, and their differences.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::schema::Schema;
use calista::{Migrations, Migrator, UpgradeTarget};
use common::*;

static CALISTA: Migrations = calista::migrations!();

async fn calista_at_head(db: &TestDb) -> calista::Database {
    let handle = db.open();
    Migrator::new(&CALISTA, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    handle
}

both_backends! {
    async fn snapshot_reads_tables_keys_and_indexes_but_not_our_own_tables(db: TestDb) {
        let handle = calista_at_head(&db).await;
        let schema = Schema::read(&handle).await.unwrap();
        assert_eq!(
            schema.tables.keys().collect::<Vec<_>>(),
            ["event_store", "stream_index"],
            "{schema:#?}"
        );
        let events = &schema.tables["event_store"];
        assert_eq!(events.primary_key, ["global_seq"]);
        assert!(events.uniques.contains(&vec!["stream_id".to_owned(), "version".to_owned()]));
        assert_eq!(
            events.indexes["ix_event_store_stream_id_global_seq"].columns,
            ["stream_id", "global_seq"]
        );
        assert!(!events.columns["payload"].nullable);
        assert!(events.columns["metadata"].nullable);
        assert!(events.checks.iter().any(|c| c.contains("version >= 1")), "{:?}", events.checks);
        assert!(!schema.triggers.is_empty());
        let index = &schema.tables["stream_index"];
        assert_eq!(index.primary_key, ["kind", "key"]);
        assert_eq!(index.columns["version"].default.as_deref(), Some("0"));
    }

    async fn a_snapshot_equals_itself_and_names_what_changed(db: TestDb) {
        let handle = calista_at_head(&db).await;
        let before = Schema::read(&handle).await.unwrap();
        assert!(before.diff(&Schema::read(&handle).await.unwrap()).is_empty());
        exec(&handle, "CREATE INDEX ix_stream_index_version ON stream_index (version); \
                       ALTER TABLE stream_index ADD COLUMN note TEXT NULL").await.unwrap();
        let after = Schema::read(&handle).await.unwrap();
        let diff = before.diff(&after).to_string();
        assert!(diff.contains("+ index ix_stream_index_version on stream_index:"), "{diff}");
        assert!(diff.contains("+ column stream_index.note: text NULL") || diff.contains("+ column stream_index.note: TEXT NULL"), "{diff}");
        assert_eq!(before.diff(&after).differences.len(), 2, "{diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calistas_schema_is_the_same_logical_schema_on_both_dialects() {
    let (pg, lite) = (TestDb::postgres().await, TestDb::sqlite());
    let pg_schema = Schema::read(&calista_at_head(&pg).await).await.unwrap();
    let lite_schema = Schema::read(&calista_at_head(&lite).await).await.unwrap();
    let diff = pg_schema.diff_logical(&lite_schema);
    assert!(diff.is_empty(), "{diff}");
    // The exact comparison sees the dialects' spellings.
    assert!(!pg_schema.diff(&lite_schema).is_empty());
}
