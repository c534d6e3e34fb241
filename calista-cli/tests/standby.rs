//! On a hot standby: the guard and the read commands work without writing; an upgrade is
//! refused before any backup or lock; a standby whose replay lags says so instead of
//! advising an upgrade there. Each test makes a throw-away primary and standby.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/fleet.rs"]
mod fleet;
#[path = "../../tests/common/pgbouncer.rs"]
mod pgbouncer;
#[path = "../../tests/common/standby.rs"]
mod standby;

use std::path::Path;
use std::process::Command;

use calista::{Ensured, ErrorKind};
use common::*;
use standby::Replicated;

/// The third of five migrations.
const MIDDLE: &str = "20250101_0002";
/// The fifth.
const HEAD: &str = "20250101_0004";

/// Five migrations, each creating a table.
fn five_tables() -> MigrationSet {
    fleet::migration_set(5)
}

fn calista(set: &MigrationSet, url: &str, args: &[&str]) -> Command {
    let mut command = program(env!("CARGO_BIN_EXE_calista"), set.dir.path());
    command
        .arg("--migrations")
        .arg(set.dir.path())
        .args(args)
        .env("CALISTA_DB_URL", url);
    command
}

fn succeeds(command: &mut Command) -> String {
    let output = command.output().expect("run calista");
    assert!(
        output.status.success(),
        "{command:?}:\n{}",
        printed(&output)
    );
    printed(&output)
}

/// The primary's database `app` upgraded to `to`, without a backup.
fn upgrade_primary(pair: &Replicated, set: &MigrationSet, to: &str) {
    succeeds(&mut calista(
        set,
        &pair.primary_url("app"),
        &["db", "upgrade", "--to", to, "--no-backup"],
    ));
}

async fn guard_on(url: &str, set: &MigrationSet) -> Result<Ensured, calista::Error> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap();
    // The program's tables are in schema `calista`: the application names it.
    let db = calista::Database::from_pool(&pool, in_calista()).unwrap();
    let migrations = set.load();
    let ensured = calista::Migrator::new(&migrations, &db)
        .ensure_schema()
        .await;
    pool.close().await;
    ensured
}

#[tokio::test]
async fn a_standby_serves_reads_and_the_guard_and_refuses_an_upgrade_before_any_backup_or_lock() {
    let pair = Replicated::start("standby_reads");
    pair.on_primary("CREATE DATABASE app").await;
    let set = five_tables();
    upgrade_primary(&pair, &set, MIDDLE);
    pair.wait_for_replay().await;
    let standby = pair.standby_url("app");

    // The read commands, on the replica.
    for args in [
        &["db", "status"][..],
        &["db", "current"],
        &["db", "history"],
    ] {
        let shown = succeeds(&mut calista(&set, &standby, args));
        assert!(shown.contains(MIDDLE), "{args:?}: {shown}");
    }
    // Behind there: the guard and `db check` say it is a standby and to upgrade the primary.
    let behind = guard_on(&standby, &set).await.unwrap_err();
    assert_eq!(behind.kind(), ErrorKind::Behind, "{behind}");
    let message = behind.to_string();
    assert!(message.contains("standby"), "{message}");
    assert!(message.contains("upgrade the primary"), "{message}");
    let check = calista(&set, &standby, &["db", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(3), "{}", printed(&check));
    assert!(printed(&check).contains("standby"), "{}", printed(&check));

    // An upgrade there, backups on (the production default): refused before any backup or
    // lock.
    let backups = tempfile::tempdir().unwrap();
    let backup_dir = backups.path().join("backups");
    let refused = calista(&set, &standby, &["db", "upgrade"])
        .env("CALISTA_BACKUP_DIR", &backup_dir)
        .output()
        .unwrap();
    let shown = printed(&refused);
    assert_eq!(refused.status.code(), Some(2), "{shown}");
    assert!(shown.contains("is a standby"), "{shown}");
    assert!(shown.contains("Connect to the primary"), "{shown}");
    assert!(!Path::new(&backup_dir).exists(), "no backup was started");
    let log = pair.standby_log();
    assert!(
        log.contains("pg_is_in_recovery()"),
        "the check reached the standby"
    );
    assert!(
        !log.contains("advisory"),
        "no lock was asked for on the standby:\n{log}"
    );

    // Once the primary is upgraded and the standby has replayed it, the guard passes there.
    upgrade_primary(&pair, &set, HEAD);
    pair.wait_for_replay().await;
    let ensured = guard_on(&standby, &set).await;
    assert!(
        matches!(ensured, Ok(Ensured::UpToDate { .. })),
        "{ensured:?}"
    );
    succeeds(&mut calista(&set, &standby, &["db", "check"]));
}

#[tokio::test]
async fn a_lagging_standby_says_its_replay_is_behind_instead_of_advising_an_upgrade() {
    let pair = Replicated::start("standby_lag");
    pair.on_primary("CREATE DATABASE app").await;
    let set = five_tables();
    upgrade_primary(&pair, &set, MIDDLE);
    pair.wait_for_replay().await;
    let standby = pair.standby_url("app");

    pair.on_standby("SELECT pg_wal_replay_pause()").await;
    upgrade_primary(&pair, &set, HEAD);
    pair.wait_for_receipt().await;

    let lagging = guard_on(&standby, &set).await.unwrap_err();
    assert_eq!(lagging.kind(), ErrorKind::Behind, "{lagging}");
    let message = lagging.to_string();
    assert!(
        message.contains(&format!("it is at revision {MIDDLE}")),
        "{message}"
    );
    assert!(message.contains("replay is paused"), "{message}");
    assert!(message.contains("not yet replayed"), "{message}");
    assert!(
        message.contains("wait for the standby to catch up"),
        "{message}"
    );
    assert!(!message.contains("upgrade the database"), "{message}");
    let check = calista(&set, &standby, &["db", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(3), "{}", printed(&check));
    assert!(
        printed(&check).contains("replay is paused"),
        "{}",
        printed(&check)
    );
    assert!(
        !printed(&check).contains("db upgrade"),
        "{}",
        printed(&check)
    );

    pair.on_standby("SELECT pg_wal_replay_resume()").await;
    pair.wait_for_replay().await;
    let ensured = guard_on(&standby, &set).await;
    assert!(
        matches!(ensured, Ok(Ensured::UpToDate { .. })),
        "{ensured:?}"
    );
}
