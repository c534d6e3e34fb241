//! CALISTA's own schema, applied and reverted through the engine on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::{DowngradeTarget, Migrations, Migrator, UpgradeTarget};
use common::*;

static CALISTA: Migrations = calista::migrations!();

const EVENT: &str = "INSERT INTO event_store (stream_id, stream_type, version, event_id, event_type, payload, metadata) \
                     VALUES ('order-1', 'order', 1, '01JAZ3Q5T7V9X1B3D5F7H9K1M3', 'order_created', '{\"total\": 42}', NULL)";

async fn upgraded(db: &TestDb) -> calista::Database {
    let handle = db.open();
    let report = Migrator::new(&CALISTA, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), CALISTA.len());
    handle
}

both_backends! {
    async fn event_store_accepts_events_with_defaults(db: TestDb) {
        let handle = upgraded(&db).await;
        exec(&handle, EVENT).await.unwrap();
        assert_eq!(scalar(&handle, "SELECT global_seq FROM event_store").await, 1);
        assert_eq!(scalar(&handle, "SELECT count(*) FROM event_store WHERE recorded_at IS NOT NULL AND metadata IS NULL").await, 1);
        exec(&handle, &EVENT.replace("order-1', 'order', 1, '01JAZ3Q5T7V9X1B3D5F7H9K1M3", "order-1', 'order', 2, '01JAZ3Q5T7V9X1B3D5F7H9K1M4")).await.unwrap();
        assert_eq!(scalar(&handle, "SELECT max(global_seq) FROM event_store").await, 2);
    }

    async fn event_store_is_append_only(db: TestDb) {
        let handle = upgraded(&db).await;
        exec(&handle, EVENT).await.unwrap();
        let update = exec(&handle, "UPDATE event_store SET event_type = 'changed'").await.unwrap_err();
        assert!(update.contains("append-only") && update.contains("UPDATE"), "{update}");
        let delete = exec(&handle, "DELETE FROM event_store").await.unwrap_err();
        assert!(delete.contains("append-only") && delete.contains("DELETE"), "{delete}");
        assert_eq!(scalar(&handle, "SELECT count(*) FROM event_store WHERE event_type = 'order_created'").await, 1);
    }

    async fn event_store_constraints_hold(db: TestDb) {
        let handle = upgraded(&db).await;
        exec(&handle, EVENT).await.unwrap();
        let duplicate_version = EVENT.replace("H9K1M3", "H9K1M4");
        let err = exec(&handle, &duplicate_version).await.unwrap_err();
        // PostgreSQL names the constraint; SQLite names its columns.
        assert!(err.contains("uq_event_store_stream_version") || err.contains("event_store.stream_id, event_store.version"), "{err}");
        let duplicate_event_id = EVENT.replace("'order', 1,", "'order', 2,");
        assert!(exec(&handle, &duplicate_event_id).await.is_err(), "event_id is unique");
        let version_zero = EVENT.replace("'order', 1,", "'order', 0,").replace("H9K1M3", "H9K1M5");
        assert!(exec(&handle, &version_zero).await.unwrap_err().contains("ck_event_store_version_positive"));
        let short_id = EVENT.replace("01JAZ3Q5T7V9X1B3D5F7H9K1M3", "01JAZ3").replace("'order', 1,", "'order', 3,");
        assert!(exec(&handle, &short_id).await.unwrap_err().contains("ck_event_store_event_id_ulid_length"));
        let no_payload = "INSERT INTO event_store (stream_id, stream_type, version, event_id, event_type) \
                          VALUES ('s', 't', 1, '01JAZ3Q5T7V9X1B3D5F7H9K1M9', 'e')";
        assert!(exec(&handle, no_payload).await.is_err(), "payload is NOT NULL");
        let bad_json = EVENT.replace("{\"total\": 42}", "not json").replace("'order', 1,", "'order', 4,").replace("H9K1M3", "H9K1M6");
        assert!(exec(&handle, &bad_json).await.is_err(), "payload must be JSON");
        let long_stream = EVENT.replace("order-1", &"x".repeat(201)).replace("H9K1M3", "H9K1M7");
        let too_long = exec(&handle, &long_stream).await;
        if db.url_text().starts_with("postgres") {
            assert!(too_long.is_err(), "stream_id is VARCHAR(200)");
        }
    }

    async fn stream_index_has_its_key_and_default_version(db: TestDb) {
        let handle = upgraded(&db).await;
        exec(&handle, "INSERT INTO stream_index (kind, key, stream_id) VALUES ('order', 'ext-1', '01JAZ3Q5T7V9X1B3D5F7H9K1M3')").await.unwrap();
        assert_eq!(scalar(&handle, "SELECT CAST(version AS BIGINT) FROM stream_index").await, 0);
        assert!(exec(&handle, "INSERT INTO stream_index (kind, key, stream_id) VALUES ('order', 'ext-1', '01JAZ3Q5T7V9X1B3D5F7H9K1M4')").await.is_err(), "primary key (kind, key)");
        assert!(exec(&handle, "INSERT INTO stream_index (kind, key, stream_id) VALUES ('order', 'ext-2', '01JAZ3Q5T7V9X1B3D5F7H9K1M3')").await.is_err(), "stream_id is unique");
        exec(&handle, "UPDATE stream_index SET version = 3").await.unwrap();
    }

    async fn downgrade_to_base_leaves_nothing(db: TestDb) {
        let handle = upgraded(&db).await;
        exec(&handle, EVENT).await.unwrap();
        Migrator::new(&CALISTA, &handle).with_policy(development()).downgrade(DowngradeTarget::Base).await.unwrap();
        let left = if handle.pool().as_postgres().is_some() {
            scalar(&handle, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                             WHERE n.nspname = 'calista' AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc', \
                             'schema_history', 'schema_history_id_seq', 'pk_schema_history')").await
                + scalar(&handle, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'calista'").await
        } else {
            scalar(&handle, "SELECT count(*) FROM sqlite_master WHERE name NOT IN ('alembic_version', 'schema_history', 'sqlite_sequence') \
                             AND name NOT LIKE 'sqlite_autoindex_%'").await
        };
        assert_eq!(left, 0, "every table, index, trigger and function of the schema is gone");
        assert_eq!(version(&handle).await, None);
    }
}

#[tokio::test]
async fn postgres_has_gin_indexes_on_the_json_columns() {
    let db = TestDb::postgres().await;
    let handle = upgraded(&db).await;
    let gin = scalar(
        &handle,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'calista' AND tablename = 'event_store' AND indexdef LIKE '%USING gin%'",
    )
    .await;
    assert_eq!(gin, 2);
    let jsonb = scalar(
        &handle,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'calista' AND table_name = 'event_store' \
         AND column_name IN ('payload', 'metadata') AND data_type = 'jsonb'",
    )
    .await;
    assert_eq!(jsonb, 2);
    assert_eq!(
        scalar(&handle, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'event_store'").await,
        0,
        "the tables live in the calista schema, not public"
    );
}
