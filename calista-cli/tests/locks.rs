//! An upgrade on a busy PostgreSQL server: each attempt waits a short time for its table
//! locks, rolls back and tries again, and gives up (exit 5, nothing changed) naming who
//! blocks it; meanwhile the application's queries wait no longer than about one attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use calista::{DatabaseOptions, ErrorKind, Migrator, UpgradeTarget};
use common::*;
use sqlx::{Connection, PgConnection};

const CREATE: &str = "20250101_0000_create_t.sql";
const ALTER: &str = "20250102_0000_add_note.sql";

fn set(alter_directives: &str) -> MigrationSet {
    MigrationSet::new(&[
        (CREATE, &create_table("t")),
        (
            ALTER,
            &format!(
                "{alter_directives}-- calista:up\nALTER TABLE t ADD COLUMN extra INTEGER;\n\
                 -- calista:down\nALTER TABLE t DROP COLUMN extra;\n"
            ),
        ),
    ])
}

/// A session that read `t` in a transaction it keeps open: it holds ACCESS SHARE on `t`,
/// which `ALTER TABLE` must wait for. Returns the connection and its pid.
async fn reader_in_a_transaction(pg: &ScratchPg, application_name: &str) -> (PgConnection, i32) {
    let mut conn = pg.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET application_name = '{application_name}'; BEGIN; SELECT count(*) FROM calista.t"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    (conn, pid)
}

async fn has_extra_column(pg: &ScratchPg) -> bool {
    let mut conn = pg.connect().await;
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_schema = 'calista' AND table_name = 't' AND column_name = 'extra')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

fn scratch(db: &TestDb) -> &ScratchPg {
    match db {
        TestDb::Postgres(pg) => pg,
        TestDb::Sqlite { .. } => unreachable!("these tests are PostgreSQL's"),
    }
}

/// A scratch database, at the first revision.
async fn at_first_revision(files: &MigrationSet) -> TestDb {
    let db = TestDb::postgres().await;
    let set = files.load();
    Migrator::new(&set, &db.open())
        .with_policy(development())
        .upgrade(UpgradeTarget::Revision(
            calista::Revision::parse("20250101_0000").unwrap(),
        ))
        .await
        .unwrap();
    db
}

/// Ends `blocker`'s transaction after `after`, from a task; the task returns the connection.
fn released_after(
    mut blocker: PgConnection,
    after: Duration,
) -> tokio::task::JoinHandle<PgConnection> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
        blocker
    })
}

/// A handle on `db` whose upgrades give up after `budget` of lock waits.
fn with_lock_timeout(db: &TestDb, budget: Duration) -> calista::Database {
    db.open_with(DatabaseOptions {
        lock_timeout: budget,
        ..in_calista()
    })
}

fn quick(attempt: Duration) -> calista::Policy {
    calista::Policy {
        lock_attempt_timeout: attempt,
        ..development()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_blocked_for_a_few_seconds_succeeds_on_a_retry() {
    let files = set("");
    let db = at_first_revision(&files).await;
    let pg = scratch(&db);
    let (blocker, _) = reader_in_a_transaction(pg, "busy-reader").await;
    let release = released_after(blocker, Duration::from_secs(3));
    let handle = with_lock_timeout(&db, Duration::from_secs(30));
    let migrations = files.load();
    let report = Migrator::new(&migrations, &handle)
        .with_policy(quick(Duration::from_millis(500)))
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    release.await.unwrap().close().await.unwrap();
    assert_eq!(report.steps.len(), 1);
    assert!(report.steps[0].attempts > 1, "{report:?}");
    assert!(has_extra_column(pg).await);
    assert_eq!(version(&handle).await.as_deref(), Some("20250102_0000"));
    // schema_history records the attempts the report shows.
    let mut conn = pg.connect().await;
    let recorded: i32 = sqlx::query_scalar(
        "SELECT attempts FROM calista.schema_history WHERE revision = '20250102_0000'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(i64::from(recorded), i64::from(report.steps[0].attempts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_that_never_ends_gives_a_lock_timeout_naming_it_and_nothing_changes() {
    // The migration's own directive sets the attempt's wait.
    let files = set("-- calista:lock-timeout 300ms\n");
    let db = at_first_revision(&files).await;
    let pg = scratch(&db);
    let (blocker, pid) = reader_in_a_transaction(pg, "stuck-report").await;
    let handle = with_lock_timeout(&db, Duration::from_secs(3));
    let migrations = files.load();
    let started = Instant::now();
    let err = Migrator::new(&migrations, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    let message = err.to_string();
    let calista::Error::TableLockTimeout {
        attempts,
        attempt_timeout,
        blockers,
        ..
    } = &err
    else {
        panic!("{message}")
    };
    assert!(*attempts > 2, "{message}");
    assert_eq!(*attempt_timeout, Duration::from_millis(300));
    assert_eq!(
        blockers.iter().map(|b| b.pid).collect::<Vec<_>>(),
        [pid],
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "pid {pid} (application 'stuck-report', transaction open for"
        )),
        "{message}"
    );
    assert!(
        message.contains(ALTER) && message.contains("nothing was changed"),
        "{message}"
    );
    assert!(
        !message.contains("count(*)"),
        "never the blocker's query text: {message}"
    );
    assert!(took < Duration::from_secs(6), "gave up after {took:?}");
    // Untouched: the revision, the history, the table.
    assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
    assert_eq!(handle.history().await.unwrap().len(), 1);
    assert!(!has_extra_column(pg).await);
    blocker.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_exits_5_naming_the_blocker() {
    let files = set("");
    let db = at_first_revision(&files).await;
    let pg = scratch(&db);
    let (blocker, pid) = reader_in_a_transaction(pg, "stuck-report").await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    let output = command
        .current_dir(dir.path())
        .args([
            "--migrations",
            files.dir.path().to_str().unwrap(),
            "db",
            "upgrade",
        ])
        .env("CALISTA_DB_URL", db.url_text())
        .env("CALISTA_ENV", "development")
        .env("CALISTA_LOCK_TIMEOUT", "3")
        .env("CALISTA_LOCK_ATTEMPT_TIMEOUT", "400ms")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {pid} (application 'stuck-report'")),
        "{stderr}"
    );
    assert!(stderr.contains("attempt(s) of 0.4s each"), "{stderr}");
    let handle = db.open();
    assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
    assert!(!has_extra_column(pg).await);
    blocker.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_reader_waits_no_longer_than_about_one_attempt() {
    let attempt = Duration::from_millis(800);
    let files = set("");
    let db = at_first_revision(&files).await;
    let pg = scratch(&db);
    let (mut blocker, _) = reader_in_a_transaction(pg, "long-report").await;
    let handle = with_lock_timeout(&db, Duration::from_secs(30));
    let migrations = files.load();
    let upgrade = tokio::spawn(async move {
        let result = Migrator::new(&migrations, &handle)
            .with_policy(quick(attempt))
            .upgrade(UpgradeTarget::Head)
            .await;
        (result.map(|r| r.steps[0].attempts), handle)
    });
    // While the upgrade retries, the application keeps reading the table; each read may
    // queue behind one attempt's lock request, never behind the whole wait.
    let mut reader = PgConnection::connect(&pg.url).await.unwrap();
    let mut longest = Duration::ZERO;
    let reading = Instant::now();
    while reading.elapsed() < Duration::from_secs(5) {
        let started = Instant::now();
        sqlx::query("SELECT count(*) FROM calista.t")
            .execute(&mut reader)
            .await
            .unwrap();
        longest = longest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
    let (attempts, handle) = upgrade.await.unwrap();
    let attempts = attempts.unwrap();
    assert!(
        attempts > 2,
        "the upgrade retried while the reader read ({attempts})"
    );
    assert!(
        longest < attempt + Duration::from_millis(500),
        "a read waited {longest:?}, more than one attempt ({attempt:?})"
    );
    assert!(
        longest > Duration::from_millis(100),
        "some read did queue behind an attempt ({longest:?})"
    );
    assert!(has_extra_column(pg).await);
    assert_eq!(version(&handle).await.as_deref(), Some("20250102_0000"));
    blocker.close().await.unwrap();
    reader.close().await.unwrap();
}

static WITH_DIRECTIVE: calista::Migrations = calista::migrations!("tests/fixtures/lock_timeout");

#[test]
fn the_macro_embeds_the_lock_timeout_directive_as_the_runtime_reads_it() {
    assert_eq!(
        WITH_DIRECTIVE.as_slice()[0].lock_timeout(),
        Some(Duration::from_secs(30))
    );
    let read = calista::Migrations::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lock_timeout"
    ))
    .unwrap();
    assert_eq!(read, WITH_DIRECTIVE);
}

fn no_transaction_set() -> MigrationSet {
    MigrationSet::new(&[
        (CREATE, &create_table("t")),
        (
            ALTER,
            "-- calista:no-transaction\n-- calista:lock-timeout 300ms\n-- calista:up\n\
             ALTER TABLE t ADD COLUMN extra INTEGER;\nCREATE TABLE after_alter (id INTEGER);\n\
             -- calista:down\nDROP TABLE after_alter;\nALTER TABLE t DROP COLUMN extra;\n",
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_transaction_statement_is_retried_until_its_lock_is_free() {
    let files = no_transaction_set();
    let db = at_first_revision(&files).await;
    let pg = scratch(&db);
    let (blocker, _) = reader_in_a_transaction(pg, "busy-reader").await;
    let release = released_after(blocker, Duration::from_secs(2));
    let handle = with_lock_timeout(&db, Duration::from_secs(30));
    let migrations = files.load();
    let report = Migrator::new(&migrations, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    release.await.unwrap().close().await.unwrap();
    assert!(
        report.steps[0].no_transaction && report.steps[0].attempts > 1,
        "{report:?}"
    );
    assert!(has_extra_column(pg).await);
    // Its tables went to the application's schema.
    let mut conn = pg.connect().await;
    let schema: String = sqlx::query_scalar(
        "SELECT schemaname::text FROM pg_tables WHERE tablename = 'after_alter'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(schema, "calista");
    assert_eq!(version(&handle).await.as_deref(), Some("20250102_0000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_transaction_migration_whose_first_statement_never_gets_its_lock_leaves_nothing_behind()
 {
    let files = no_transaction_set();
    let db = at_first_revision(&files).await;
    let pg = scratch(&db);
    let (blocker, pid) = reader_in_a_transaction(pg, "stuck-report").await;
    let handle = with_lock_timeout(&db, Duration::from_secs(2));
    let migrations = files.load();
    let migrator = Migrator::new(&migrations, &handle).with_policy(development());
    let err = migrator.upgrade(UpgradeTarget::Head).await.unwrap_err();
    let message = err.to_string();
    assert_eq!(err.kind(), ErrorKind::LockTimeout, "{message}");
    assert!(
        message.contains(&format!("pid {pid}")) && message.contains("nothing was changed"),
        "{message}"
    );
    // Not interrupted: the started record is gone, the guard sees the database behind.
    assert!(matches!(
        migrator.check().await.unwrap(),
        calista::SchemaState::Behind { .. }
    ));
    assert_eq!(handle.history().await.unwrap().len(), 1);
    assert!(!has_extra_column(pg).await);
    blocker.close().await.unwrap();
}
