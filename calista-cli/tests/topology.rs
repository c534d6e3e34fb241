//! Production topology: every command and the guard through PgBouncer in transaction mode
//! (with its usual `ignore_startup_parameters`), in session mode, and direct; concurrent
//! upgrades through it apply each migration once and leave no advisory lock behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/fleet.rs"]
mod fleet;
#[path = "../../tests/common/pgbouncer.rs"]
mod pgbouncer;

use std::path::Path;
use std::process::{Child, Command};

use calista::backup::BackupPolicy;
use calista::{ErrorKind, Policy};
use common::*;
use pgbouncer::{PgBouncer, PoolMode};
use sqlx::Connection;

/// Five migrations, each creating a table.
fn five_tables() -> MigrationSet {
    fleet::migration_set(5)
}

fn calista(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = program(env!("CARGO_BIN_EXE_calista"), dir);
    command.args(args).env("CALISTA_DB_URL", url);
    command
}

/// [`calista`] on the migrations of `set`, run in their folder.
fn calista_on(set: &MigrationSet, url: &str, args: &[&str]) -> Command {
    let folder = set.dir.path().to_str().unwrap();
    let mut all = vec!["--migrations", folder];
    all.extend_from_slice(args);
    calista(set.dir.path(), url, &all)
}

/// Runs the program; fails the test (with PgBouncer's log) unless it exits 0.
fn succeeds(command: &mut Command, bouncer: Option<&PgBouncer>) -> String {
    let output = command.output().expect("run calista");
    let shown = printed(&output);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{shown}\n{}",
        bouncer.map(PgBouncer::log).unwrap_or_default()
    );
    assert!(!shown.contains("prepared statement"), "{shown}");
    shown
}

/// Advisory locks held in the scratch database, looked at directly on the server.
async fn advisory_locks(pg: &ScratchPg) -> i64 {
    let mut conn = pg.connect().await;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    held
}

/// How many times each migration was applied, read directly on the server (the `calista`
/// program's tables, in schema `calista`).
async fn applied(pg: &ScratchPg) -> Vec<(String, i64)> {
    applied_in(pg, "calista").await
}

/// How many times each migration was applied, as the history in `schema` says.
async fn applied_in(pg: &ScratchPg, schema: &str) -> Vec<(String, i64)> {
    let mut conn = pg.connect().await;
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT revision::text, count(*) FROM \"{schema}\".schema_history \
         WHERE direction = 'up' GROUP BY revision ORDER BY revision"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    rows
}

fn each_once() -> Vec<(String, i64)> {
    (1..=5).map(|i| (fleet::revision(i), 1)).collect()
}

/// Where a test connects: through a PgBouncer of its own in `mode`, or direct.
fn route(pg: &ScratchPg, mode: Option<PoolMode>) -> (Option<PgBouncer>, String) {
    match mode {
        Some(mode) => {
            let bouncer = PgBouncer::start(&pg_admin_url(), mode);
            let url = bouncer.url_for(&pg.url);
            (Some(bouncer), url)
        }
        None => (None, pg.url.clone()),
    }
}

/// `db upgrade`, then `db status`, `db current`, `db check` and `db history`, and an upgrade
/// with nothing to do.
async fn upgrade_then_read_commands(mode: Option<PoolMode>) {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, mode);
    let set = five_tables();
    let run = |args: &[&str]| succeeds(&mut calista_on(&set, &url, args), bouncer.as_ref());
    let head = fleet::revision(5);
    let upgraded = run(&["db", "upgrade", "--no-backup"]);
    assert!(upgraded.contains(&head), "{upgraded}");
    for _ in 0..3 {
        let status = run(&["db", "status"]);
        assert!(status.contains(&head), "{status}");
        assert!(run(&["db", "current"]).contains(&head));
        run(&["db", "check"]);
        let history = run(&["db", "history"]);
        assert!(history.contains(&fleet::revision(1)), "{history}");
    }
    let again = run(&["db", "upgrade", "--no-backup"]);
    assert!(!again.contains("applied 2025"), "{again}");
    assert_eq!(applied(&pg).await, each_once());
    assert_eq!(advisory_locks(&pg).await, 0, "no advisory lock left");
    drop(bouncer);
}

#[tokio::test]
async fn every_command_works_through_pgbouncer_in_transaction_mode() {
    upgrade_then_read_commands(Some(PoolMode::Transaction)).await;
}

#[tokio::test]
async fn every_command_works_through_pgbouncer_in_session_mode() {
    upgrade_then_read_commands(Some(PoolMode::Session)).await;
}

#[tokio::test]
async fn every_command_works_direct() {
    upgrade_then_read_commands(None).await;
}

/// `processes` upgrades of `set` at once at `url`; each must succeed without a
/// prepared-statement error.
fn upgrades_at_once(set: &MigrationSet, url: &str, processes: usize, bouncer: Option<&PgBouncer>) {
    let children: Vec<Child> = (0..processes)
        .map(|_| {
            calista_on(set, url, &["db", "upgrade", "--no-backup"])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let shown = printed(&output);
        assert!(
            output.status.success(),
            "{shown}\n{}",
            bouncer.map(PgBouncer::log).unwrap_or_default()
        );
        assert!(!shown.contains("prepared statement"), "{shown}");
    }
}

/// Eight `db upgrade` processes at once on an empty database: each migration applied once,
/// no prepared-statement error, and no advisory lock left on any server connection.
async fn eight_concurrent_upgrades(mode: Option<PoolMode>) {
    for _round in 0..2 {
        let pg = ScratchPg::new().await;
        let (bouncer, url) = route(&pg, mode);
        upgrades_at_once(&five_tables(), &url, 8, bouncer.as_ref());
        assert_eq!(applied(&pg).await, each_once());
        // Looked at before PgBouncer stops: its server connections are still open.
        assert_eq!(advisory_locks(&pg).await, 0, "no advisory lock left");
        drop(bouncer);
    }
}

#[tokio::test]
async fn eight_concurrent_upgrades_through_pgbouncer_in_transaction_mode() {
    eight_concurrent_upgrades(Some(PoolMode::Transaction)).await;
}

#[tokio::test]
async fn eight_concurrent_upgrades_through_pgbouncer_in_session_mode() {
    eight_concurrent_upgrades(Some(PoolMode::Session)).await;
}

#[tokio::test]
async fn eight_concurrent_upgrades_direct() {
    eight_concurrent_upgrades(None).await;
}

fn no_backups() -> Policy {
    Policy {
        backup: BackupPolicy::Disabled {
            reason: "a test".into(),
        },
        ..Policy::default()
    }
}

/// The guard and an upgrade on the application's own pool, connected through the pooler:
/// behind is refused, upgraded, then up to date on every later check.
async fn guard_on_a_pool(mode: Option<PoolMode>) {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, mode);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let set = five_tables().load();
    let behind = set.ensure_schema(&pool).await.unwrap_err();
    assert_eq!(behind.kind(), ErrorKind::Behind, "{behind}");
    set.upgrade_with(&pool, &no_backups()).await.unwrap();
    for _ in 0..5 {
        let ensured = set.ensure_schema(&pool).await;
        assert!(ensured.is_ok(), "{ensured:?}");
    }
    // The application's pool still works, and our statements left none of theirs behind.
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    pool.close().await;
    // Where the application's pool looks: `public`.
    assert_eq!(applied_in(&pg, "public").await, each_once());
    assert_eq!(advisory_locks(&pg).await, 0);
    drop(bouncer);
}

#[tokio::test]
async fn guard_on_a_pool_through_pgbouncer_in_transaction_mode() {
    guard_on_a_pool(Some(PoolMode::Transaction)).await;
}

#[tokio::test]
async fn guard_on_a_pool_through_pgbouncer_in_session_mode() {
    guard_on_a_pool(Some(PoolMode::Session)).await;
}

/// The guard's reads through a pooler in transaction mode leave no prepared statement on a
/// server connection, where another client's statement of the same name would collide with
/// it: with one server connection for every client, the application's next transaction
/// finds none there.
#[tokio::test]
async fn checks_through_pgbouncer_in_transaction_mode_leave_no_prepared_statement() {
    let pg = ScratchPg::new().await;
    let bouncer = PgBouncer::start_with_pool_size(&pg_admin_url(), PoolMode::Transaction, 1);
    let url = bouncer.url_for(&pg.url);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let set = five_tables().load();
    set.upgrade_with(&pool, &no_backups()).await.unwrap();
    let db = calista::Database::from_pool(&pool, calista::DatabaseOptions::default()).unwrap();
    for _ in 0..5 {
        let state = calista::Migrator::new(&set, &db).check().await.unwrap();
        assert!(state.is_up_to_date(), "{state:?}");
    }
    db.close().await;
    let left: Vec<String> =
        sqlx::raw_sql("SELECT name || ': ' || statement FROM pg_prepared_statements")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get(row, 0))
            .collect();
    assert!(left.is_empty(), "left on the server connection: {left:?}");
    pool.close().await;
    drop(bouncer);
}

/// Five tables, then an index built concurrently (a no-transaction migration).
fn with_an_index_built_concurrently() -> MigrationSet {
    let set = five_tables();
    set.write(
        "20250102_0000_index_t1.sql",
        "-- calista:no-transaction\n-- calista:up postgres\nCREATE INDEX CONCURRENTLY ix_t1_note ON t1 (name);\n\
         -- calista:up sqlite\nCREATE INDEX ix_t1_note ON t1 (name);\n\
         -- calista:down postgres\nDROP INDEX CONCURRENTLY ix_t1_note;\n\
         -- calista:down sqlite\nDROP INDEX ix_t1_note;\n",
    );
    set
}

async fn has_index(pg: &ScratchPg) -> bool {
    let mut conn = pg.connect().await;
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'calista' AND indexname = 'ix_t1_note')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    found
}

/// A no-transaction migration through a pooler in transaction mode is refused before it
/// runs, naming the pooler and the fix; the transactional ones before it are applied, and
/// the same upgrade on a direct connection finishes it.
#[tokio::test]
async fn no_transaction_migration_through_a_transaction_pooler_is_refused_naming_the_fix() {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, Some(PoolMode::Transaction));
    let set = with_an_index_built_concurrently();
    let args = ["db", "upgrade", "--no-backup"];
    let refused = calista_on(&set, &url, &args).output().unwrap();
    let shown = printed(&refused);
    assert_eq!(refused.status.code(), Some(2), "{shown}");
    assert!(shown.contains("20250102_0000_index_t1.sql"), "{shown}");
    assert!(shown.contains("pooler in transaction mode"), "{shown}");
    assert!(shown.contains("direct connection"), "{shown}");
    assert!(!has_index(&pg).await);
    assert_eq!(applied(&pg).await, each_once());
    assert_eq!(advisory_locks(&pg).await, 0);
    drop(bouncer);
    succeeds(&mut calista_on(&set, &pg.url, &args), None);
    assert!(has_index(&pg).await);
}

/// Through a pooler in session mode, and direct, a no-transaction migration runs under a
/// lock held apart, and concurrent upgrades still apply it once and leave no lock.
async fn no_transaction_migration_runs_once_with_concurrent_upgrades(mode: Option<PoolMode>) {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, mode);
    let set = with_an_index_built_concurrently();
    upgrades_at_once(&set, &url, 4, bouncer.as_ref());
    assert!(has_index(&pg).await);
    let mut expected = each_once();
    expected.push(("20250102_0000".to_owned(), 1));
    assert_eq!(applied(&pg).await, expected);
    assert_eq!(advisory_locks(&pg).await, 0);
    drop(bouncer);
}

#[tokio::test]
async fn no_transaction_migration_through_pgbouncer_in_session_mode() {
    no_transaction_migration_runs_once_with_concurrent_upgrades(Some(PoolMode::Session)).await;
}

#[tokio::test]
async fn no_transaction_migration_direct() {
    no_transaction_migration_runs_once_with_concurrent_upgrades(None).await;
}

/// A startup parameter of the URL's that the pooler refuses is named, with the fixes.
#[tokio::test]
async fn a_startup_parameter_the_pooler_refuses_is_named_with_the_fixes() {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, Some(PoolMode::Transaction));
    let set = five_tables();
    let with_options = format!("{url}&options=-c%20search_path%3Dapp");
    let refused = calista_on(&set, &with_options, &["db", "status"])
        .output()
        .unwrap();
    let shown = printed(&refused);
    assert_eq!(refused.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("refused the startup parameter `options`"),
        "{shown}"
    );
    assert!(shown.contains("ignore_startup_parameters"), "{shown}");
    assert!(shown.contains("connect to PostgreSQL directly"), "{shown}");
    drop(bouncer);
}

/// The program's own event commands through `mode`: an upgrade with the program's
/// migrations, then appending to and reading the event store, three times over, each a
/// process of its own.
async fn event_commands(mode: Option<PoolMode>) {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, mode);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| succeeds(&mut calista(dir.path(), &url, args), bouncer.as_ref());
    run(&["db", "upgrade", "--no-backup"]);
    for round in 1..=3 {
        let payload = format!(r#"{{"round": {round}}}"#);
        let append = run(&[
            "events",
            "append",
            "--stream",
            "order-1",
            "--type",
            "created",
            "--payload",
            &payload,
        ]);
        assert!(append.contains(&format!("order-1@{round}")), "{append}");
        let list = run(&["--format", "json", "events", "list"]);
        let listed: serde_json::Value = serde_json::from_str(list.trim()).expect(&list);
        assert_eq!(listed.as_array().map(Vec::len), Some(round), "{list}");
    }
    assert_eq!(advisory_locks(&pg).await, 0, "no advisory lock left");
    drop(bouncer);
}

#[tokio::test]
async fn event_commands_work_through_pgbouncer_in_transaction_mode() {
    event_commands(Some(PoolMode::Transaction)).await;
}

#[tokio::test]
async fn event_commands_work_through_pgbouncer_in_session_mode() {
    event_commands(Some(PoolMode::Session)).await;
}

#[tokio::test]
async fn event_commands_work_direct() {
    event_commands(None).await;
}

/// A backup taken and restored through PgBouncer in transaction mode: pg_dump, pg_restore
/// and psql pass no startup parameter the pooler refuses, and the database is back at the
/// backup's revision with its rows.
#[tokio::test]
async fn backup_and_restore_work_through_pgbouncer_in_transaction_mode() {
    let pg = ScratchPg::new().await;
    let (bouncer, url) = route(&pg, Some(PoolMode::Transaction));
    let set = five_tables();
    let place = tempfile::tempdir().unwrap();
    let backups = place.path().join("backups");
    let run = |args: &[&str]| {
        let mut command = calista_on(&set, &url, args);
        command.env("CALISTA_BACKUP_DIR", &backups);
        succeeds(&mut command, bouncer.as_ref())
    };
    let first = fleet::revision(1);
    run(&["db", "upgrade", "--to", &first]);
    let mut conn = pg.connect().await;
    sqlx::raw_sql("INSERT INTO calista.t1 (id, name) VALUES (1, 'kept')")
        .execute(&mut conn)
        .await
        .unwrap();
    run(&["db", "upgrade"]);
    let taken: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let backup = taken[0].to_str().unwrap();
    let restored = run(&["db", "restore", backup, "--yes"]);
    assert!(restored.contains(&format!("at {first}")), "{restored}");
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM calista.t1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(names, ["kept"]);
    conn.close().await.ok();
    assert_eq!(advisory_locks(&pg).await, 0, "no advisory lock left");
    drop(bouncer);
}

/// `db verify` with a seed, its scratch databases reached through PgBouncer in
/// transaction mode: the seed fills the tables where the migrations put them, the rows are
/// read back after each down, and nothing asks the pooler for a start-up parameter.
#[tokio::test]
async fn verify_with_a_seed_works_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start(&pg_admin_url(), PoolMode::Transaction);
    let server = bouncer.url_for(&pg_admin_url());
    let set = MigrationSet::new(&[(
        "20250101_0000_create_a.sql",
        "-- calista:up\nCREATE TABLE a (id INTEGER NOT NULL PRIMARY KEY, note TEXT);\n\
         -- calista:down\nDROP TABLE a;\n",
    )]);
    let place = tempfile::tempdir().unwrap();
    let seeds = place.path().join("seeds");
    std::fs::create_dir(&seeds).unwrap();
    std::fs::write(
        seeds.join("20250101_0000.sql"),
        "INSERT INTO a (id, note) VALUES (1, 'one'), (2, NULL);",
    )
    .unwrap();
    let folder = set.dir.path().to_str().unwrap();
    let mut command = program(env!("CARGO_BIN_EXE_calista"), place.path());
    command
        .env("CALISTA_ENV", "development")
        .args(["--migrations", folder, "db", "verify", "--pg-url", &server])
        .arg("--seed")
        .arg(&seeds);
    let shown = succeeds(&mut command, Some(&bouncer));
    assert!(shown.contains("1 seed"), "{shown}");
    drop(bouncer);
}
