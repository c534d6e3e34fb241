//! Reliability: processes killed at random moments of an upgrade, connections terminated by
//! the server, many processes at once, and hostile input. Each asserts the user-facing
//! outcome and that nothing was lost.
//!
//! `CALISTA_CRASH_TRIALS` sets the number of kill trials per backend (default 20).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Migrations with a slow data-filling step, so a kill lands at different points: before
/// the lock, during the backup, inside the migrations, around the commit.
fn slow_set() -> MigrationSet {
    MigrationSet::new(&[
        (
            "20250101_0000_create_fill.sql",
            "-- calista:up\nCREATE TABLE fill (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);\n-- calista:down\nDROP TABLE fill;\n",
        ),
        (
            "20250102_0000_fill_rows.sql",
            "-- calista:up postgres\nINSERT INTO fill (id, payload) SELECT g, md5(g::text) FROM generate_series(1, 200000) AS g;\n\
             -- calista:up sqlite\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)\n\
             INSERT INTO fill (id, payload) SELECT x, hex(randomblob(16)) FROM c;\n\
             -- calista:down\nDELETE FROM fill;\n",
        ),
        (
            "20250103_0000_index_fill.sql",
            "-- calista:allow index-without-concurrently -- a test table\n-- calista:up\nCREATE INDEX ix_fill_payload ON fill (payload);\n-- calista:down\nDROP INDEX ix_fill_payload;\n",
        ),
        ("20250104_0000_create_done.sql", &create_table("done")),
    ])
}

const START: &str = "20250101_0000";
const HEAD: &str = "20250104_0000";

fn calista(dir: &Path, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = program(env!("CARGO_BIN_EXE_calista"), dir);
    command
        .args(args)
        .env("CALISTA_DB_URL", db.url_text())
        .envs(env.iter().copied());
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("run calista")
}

/// Brings a database to `START`, with the first migration's table in place.
fn upgrade_to_start(dir: &Path, db: &TestDb, folder: &str) {
    let done = output(&mut calista(
        dir,
        db,
        &["--migrations", folder, "db", "upgrade", "--to", START],
        &[],
    ));
    assert!(done.status.success(), "{}", printed(&done));
}

fn trials() -> usize {
    std::env::var("CALISTA_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

async fn at_revision(db: &TestDb) -> Option<String> {
    let handle = db.open();
    let v = version(&handle).await;
    handle.close().await;
    v
}

/// Whether an upgrade holds the migration lock now, looked at from outside: the advisory
/// lock in `pg_locks`, or SQLite's write lock (a `BEGIN IMMEDIATE` that must not wait).
async fn migration_lock_is_held(db: &TestDb) -> bool {
    use sqlx::Connection;
    match db {
        TestDb::Postgres(pg) => {
            let mut conn = pg.connect().await;
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)",
            )
            .bind(calista::postgres_lock_key(&calista::SchemaName::calista()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            conn.close().await.ok();
            held
        }
        TestDb::Sqlite { file, .. } => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(file)
                .busy_timeout(Duration::ZERO);
            let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&options).await else {
                return true;
            };
            let held = sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .is_err();
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
            conn.close().await.ok();
            held
        }
    }
}

/// Kills `calista db upgrade` at random moments; the database must always be at its old
/// revision or its new one, whole, and the next upgrade must succeed. Every other trial
/// waits until the upgrade holds the migration lock before its random delay, and each
/// trial looks, just before the kill, whether the lock is held: enough kills must land
/// mid-upgrade for the test to mean anything.
async fn kill_trials(make: impl AsyncFn() -> TestDb) {
    let set = slow_set();
    let folder = set.dir.path().display().to_string();
    let args = ["--migrations", folder.as_str(), "db", "upgrade"];
    let mut rng = Lcg::from_clock();
    let seed = rng.0;

    // How long a whole upgrade takes here, to spread the kills over it.
    let calibration = make().await;
    let dir = calibration.scratch_dir();
    upgrade_to_start(&dir, &calibration, &folder);
    let started = Instant::now();
    let full = output(&mut calista(&dir, &calibration, &args, &[]));
    assert!(full.status.success(), "{}", printed(&full));
    let span = started.elapsed().as_millis() as u64 + 50;

    let mut outcomes = (0, 0);
    let mut landed = 0;
    for trial in 0..trials() {
        let db = make().await;
        let dir = db.scratch_dir();
        // Start from a database with data, so the backup is part of what a kill can hit.
        upgrade_to_start(&dir, &db, &folder);
        let delay = Duration::from_millis(rng.next() % span);
        let mut child: Child = calista(&dir, &db, &args, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        if trial % 2 == 1 {
            while !migration_lock_is_held(&db).await
                && spawned.elapsed() < Duration::from_millis(span)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(delay.saturating_sub(spawned.elapsed()));
        let mid_upgrade = child.try_wait().unwrap().is_none() && migration_lock_is_held(&db).await;
        let _ = child.kill();
        let _ = child.wait();
        if mid_upgrade {
            landed += 1;
        }

        let revision = at_revision(&db).await;
        let context =
            format!("trial {trial}, kill after {delay:?} (seed {seed}), revision {revision:?}");
        match revision.as_deref() {
            Some(START) => outcomes.0 += 1,
            Some(HEAD) => outcomes.1 += 1,
            other => panic!("the database is between revisions ({other:?}): {context}"),
        }
        let handle = db.open();
        if revision.as_deref() == Some(HEAD) {
            assert_eq!(
                scalar(&handle, "SELECT count(*) FROM fill").await,
                200_000,
                "{context}"
            );
        } else {
            assert_eq!(
                scalar(&handle, "SELECT count(*) FROM fill").await,
                0,
                "{context}"
            );
        }
        if handle.pool().as_sqlite().is_some() {
            assert_eq!(
                scalar(
                    &handle,
                    "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"
                )
                .await,
                1,
                "{context}"
            );
        }
        handle.close().await;
        let again = output(&mut calista(&dir, &db, &args, &[]));
        assert!(
            again.status.success(),
            "the next upgrade fails after {context}: {}",
            printed(&again)
        );
        assert_eq!(at_revision(&db).await.as_deref(), Some(HEAD), "{context}");
    }
    eprintln!(
        "kill trials: {} ended at the old revision, {} at the new one, 0 in between; \
         {landed} killed while the upgrade held the migration lock",
        outcomes.0, outcomes.1
    );
    assert!(
        landed * 4 >= trials(),
        "only {landed} of {} kills landed mid-upgrade (seed {seed})",
        trials()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrade_killed_at_random_moments_is_old_or_new_never_between() {
    kill_trials(async || TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgrade_killed_at_random_moments_is_old_or_new_never_between() {
    kill_trials(async || TestDb::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_terminated_by_the_server_mid_upgrade_keeps_the_old_revision() {
    let db = TestDb::postgres().await;
    let set = slow_set();
    let folder = set.dir.path().display().to_string();
    let dir = db.scratch_dir();
    upgrade_to_start(&dir, &db, &folder);
    let child = calista(&dir, &db, &["--migrations", &folder, "db", "upgrade"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let mut admin = pg_admin().await;
    // Wait until the upgrade is inside its slow step, then end its session from the server.
    let mut terminated = false;
    for _ in 0..400 {
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name LIKE 'calista migrate%' AND query LIKE '%INSERT INTO fill%' AND state = 'active'",
        )
        .bind(&pg.name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if !killed.is_empty() {
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        terminated,
        "the upgrade's session was never seen running its slow step"
    );
    let result = child.wait_with_output().unwrap();
    assert_eq!(result.status.code(), Some(1), "{}", printed(&result));
    assert!(
        printed(&result).contains("20250102_0000_fill_rows.sql"),
        "{}",
        printed(&result)
    );
    assert_eq!(at_revision(&db).await.as_deref(), Some(START));
    // The lock went with the session: the next upgrade does not wait for it.
    let again = output(&mut calista(
        &dir,
        &db,
        &["--migrations", &folder, "db", "upgrade"],
        &[("CALISTA_LOCK_TIMEOUT", "5")],
    ));
    assert!(again.status.success(), "{}", printed(&again));
    assert_eq!(at_revision(&db).await.as_deref(), Some(HEAD));
}

both_backends! {
    async fn thirty_two_processes_with_auto_upgrade_apply_each_migration_once(db: TestDb) {
        let dir = db.scratch_dir();
        let children: Vec<Child> = (0..32)
            .map(|_| calista(&dir, &db, &["--auto-upgrade", "events", "list"], &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
            .collect();
        for child in children {
            let result = child.wait_with_output().unwrap();
            assert!(result.status.success(), "{}", printed(&result));
            assert!(String::from_utf8_lossy(&result.stdout).contains("no events"));
        }
        let handle = db.open();
        assert_eq!(handle.history().await.unwrap().len(), 2, "each migration applied exactly once");
        assert_eq!(version(&handle).await.as_deref(), Some("20250826_1045"));
    }

    async fn up_to_date_processes_never_wait_for_the_migration_lock(db: TestDb) {
        let dir = db.scratch_dir();
        assert!(output(&mut calista(&dir, &db, &["db", "upgrade"], &[])).status.success());
        // Another process holds the migration lock, as a long upgrade would…
        let holder = hold_migration_lock(&db, "lock-holder-test").await;
        // …and thirty-two processes that find nothing to do all run, with a lock timeout
        // that would fail any one of them that waited.
        let children: Vec<Child> = (0..32)
            .map(|_| calista(&dir, &db, &["--auto-upgrade", "events", "list"], &[("CALISTA_LOCK_TIMEOUT", "1")]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
            .collect();
        for child in children {
            let result = child.wait_with_output().unwrap();
            assert!(result.status.success(), "{}", printed(&result));
        }
        let upgrade = output(&mut calista(&dir, &db, &["db", "upgrade", "--to", "20250826_1045"], &[("CALISTA_LOCK_TIMEOUT", "1")]));
        assert!(upgrade.status.success(), "nothing pending: no lock needed: {}", printed(&upgrade));
        drop(holder);
    }
}

#[tokio::test]
async fn role_without_create_privilege_gets_a_clear_error_and_nothing_changes() {
    let db = TestDb::postgres().await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let role = unique_name("calista_limited");
    let mut admin = pg_admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = pg
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let dir = db.scratch_dir();
    let mut command = calista(&dir, &db, &["db", "upgrade"], &[]);
    command.env("CALISTA_DB_URL", &url);
    let result = output(&mut command);
    assert_eq!(result.status.code(), Some(1), "{}", printed(&result));
    assert!(
        printed(&result).contains("lacks a privilege") && printed(&result).contains("CREATE"),
        "{}",
        printed(&result)
    );
    let handle = db.open();
    assert_eq!(
        scalar(
            &handle,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'calista'"
        )
        .await,
        0
    );
    handle.close().await;
    drop(db);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn read_only_sqlite_file_gets_a_clear_error_and_nothing_changes() {
    let db = TestDb::sqlite();
    let dir = db.scratch_dir();
    assert!(
        output(&mut calista(
            &dir,
            &db,
            &["db", "upgrade", "--to", "20250826_1030"],
            &[]
        ))
        .status
        .success()
    );
    let TestDb::Sqlite { file, .. } = &db else {
        unreachable!()
    };
    let before = std::fs::read(file).unwrap();
    // Immutable: not even root may write it (permission bits do not stop root).
    let locked = Command::new("chattr")
        .arg("+i")
        .arg(file)
        .status()
        .expect("chattr (e2fsprogs) is needed for this test");
    assert!(
        locked.success(),
        "chattr +i failed: the test folder's filesystem must support it"
    );
    let result = output(&mut calista(
        &dir,
        &db,
        &["db", "upgrade"],
        &[("CALISTA_BACKUP", "0")],
    ));
    let _ = Command::new("chattr").arg("-i").arg(file).status();
    assert_eq!(result.status.code(), Some(1), "{}", printed(&result));
    assert!(
        printed(&result).contains("read-only"),
        "{}",
        printed(&result)
    );
    assert_eq!(
        std::fs::read(file).unwrap(),
        before,
        "the file is unchanged"
    );
}

/// A SQLite file whose disk fills up during a migration: SQLite rolls the transaction
/// back on its own, which is not the migration ending it (no COMMIT in its SQL): the error
/// is the migration's failure, with SQLite's words, and the database is at its revision.
/// With fewer rows, which SQLite keeps in memory until it commits, the disk fills up at
/// the COMMIT: the error says nothing was kept and the revision the database is at.
#[test]
fn a_sqlite_disk_filled_by_a_migration_is_its_failure_not_transaction_control() {
    let shown = fill_a_small_disk(2000);
    assert!(
        shown.contains("migration 20250102_0000_fill.sql failed (up)")
            && shown.contains("database or disk is full"),
        "{shown}"
    );
    assert!(
        shown.contains("the disk of the database file is full: free space on it")
            && shown.contains(
                "the database is at revision 20250101_0000: nothing of the failed transaction was kept"
            ),
        "{shown}"
    );
    assert!(
        !shown.contains("ended the migration transaction itself"),
        "{shown}"
    );
    let shown = fill_a_small_disk(600);
    assert!(
        shown.contains(
            "SQLite error while committing the migration transaction; the disk is full; \
             nothing of the transaction was kept: the database is at revision 20250101_0000"
        ),
        "{shown}"
    );
}

/// On a SQLite file of its own on a 1 MiB tmpfs, at its first migration, the upgrade by a
/// migration that adds `rows` rows of 2,000 bytes: what it printed. It must fail, and
/// leave the database at the first migration.
fn fill_a_small_disk(rows: u32) -> String {
    let disk = SmallDisk::mount(1024, false);
    let file = disk.path().join("app.db");
    let url = format!("sqlite:///{}", file.display());
    let fill = format!(
        "-- calista:up\nCREATE TABLE big (x TEXT);\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})\n\
         INSERT INTO big SELECT hex(randomblob(1000)) FROM n;\n-- calista:down\nDROP TABLE big;\n"
    );
    let set = MigrationSet::new(&[
        ("20250101_0000_create_a.sql", &create_table("a")),
        ("20250102_0000_fill.sql", &fill),
    ]);
    let folder = set.dir.path().display().to_string();
    upgrade_to_the_first(&url, &folder, disk.path());
    let result = upgrade(&url, &folder, disk.path(), None).output().unwrap();
    let shown = printed(&result);
    assert_eq!(result.status.code(), Some(1), "{shown}");
    let current = program(env!("CARGO_BIN_EXE_calista"), disk.path())
        .args(["--db-url", &url, "--migrations", &folder, "db", "current"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&current.stdout).trim(),
        "20250101_0000"
    );
    shown
}

#[tokio::test]
async fn file_that_is_not_a_database_gets_a_clear_error_and_is_left_alone() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite { file, .. } = &db else {
        unreachable!()
    };
    let garbage = b"this is a text file, not a SQLite database\n".repeat(200);
    std::fs::write(file, &garbage).unwrap();
    for args in [
        &["db", "status"][..],
        &["db", "upgrade"],
        &["events", "list"],
    ] {
        let result = output(&mut calista(&db.scratch_dir(), &db, args, &[]));
        assert_eq!(
            result.status.code(),
            Some(1),
            "{args:?}: {}",
            printed(&result)
        );
        assert!(
            printed(&result).contains("not a SQLite database"),
            "{args:?}: {}",
            printed(&result)
        );
    }
    assert_eq!(std::fs::read(file).unwrap(), garbage);
}

/// A SQLite file whose folder does not exist: the error names the file calista tried to
/// open (a URL's three slashes make a relative path, an easy slip), and nothing is created.
#[test]
fn a_sqlite_file_in_a_missing_folder_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let result = program(env!("CARGO_BIN_EXE_calista"), dir.path())
        .args([
            "--db-url",
            "sqlite:///no/such/folder/app.db",
            "db",
            "upgrade",
        ])
        .output()
        .unwrap();
    let shown = printed(&result);
    assert_eq!(result.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "opening the database file {}",
            dir.path().join("no/such/folder/app.db").display()
        )),
        "{shown}"
    );
    assert!(shown.contains("check that its folder exists"), "{shown}");
    assert!(!dir.path().join("no").exists());
}

#[cfg(unix)]
#[test]
fn migration_folder_with_a_symlink_loop_or_a_dangling_link_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("m");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("20250101_0000_ok.sql"), create_table("a")).unwrap();
    std::os::unix::fs::symlink(
        "20250102_0000_loop.sql",
        folder.join("20250102_0000_loop.sql"),
    )
    .unwrap();
    std::os::unix::fs::symlink("nowhere.sql", folder.join("20250103_0000_dangling.sql")).unwrap();
    let db = TestDb::sqlite();
    let result = output(&mut calista(
        dir.path(),
        &db,
        &["--migrations", "m", "db", "upgrade"],
        &[],
    ));
    assert_eq!(result.status.code(), Some(2), "{}", printed(&result));
    let message = printed(&result);
    assert!(
        message.contains("20250102_0000_loop.sql")
            && message.contains("20250103_0000_dangling.sql"),
        "{message}"
    );
    assert!(
        !db.scratch_dir().join("app.db").exists(),
        "nothing was created"
    );
}

/// A server that accepts connections and never answers.
#[test]
fn silent_server_is_a_bounded_wait() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in listener.incoming().take(4) {
            kept.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://calista:s3cr3t-pw@127.0.0.1:{port}/x?sslmode=disable");
    let result = Command::new(env!("CARGO_BIN_EXE_calista"))
        .current_dir(dir.path())
        .args(["db", "status"])
        .env("CALISTA_DB_URL", &url)
        .env("CALISTA_CONNECT_TIMEOUT", "1")
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1), "{}", printed(&result));
    assert!(
        printed(&result).contains("no answer") && printed(&result).contains("within 1s"),
        "{}",
        printed(&result)
    );
    assert!(!printed(&result).contains("s3cr3t-pw"));
    drop(held);
}

/// A server that asks for a password and refuses it, as PostgreSQL does for a wrong one.
#[test]
fn wrong_password_error_never_shows_the_password() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let _ = refuse_password(&mut stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgresql://calista:s3cr3t-pw@127.0.0.1:{port}/x?sslmode=disable");
    for args in [
        &["db", "status"][..],
        &["db", "upgrade"],
        &["events", "list"],
    ] {
        let result = Command::new(env!("CARGO_BIN_EXE_calista"))
            .current_dir(dir.path())
            .args(args)
            .env("CALISTA_DB_URL", &url)
            .output()
            .unwrap();
        assert_eq!(result.status.code(), Some(1), "{}", printed(&result));
        assert!(
            printed(&result).contains("password authentication failed"),
            "{}",
            printed(&result)
        );
        assert!(
            !printed(&result).contains("s3cr3t-pw"),
            "{}",
            printed(&result)
        );
    }
}

/// The PostgreSQL protocol, as far as refusing a cleartext password.
fn refuse_password(stream: &mut std::net::TcpStream) -> std::io::Result<()> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let mut startup = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
    stream.read_exact(&mut startup)?;
    // AuthenticationCleartextPassword.
    stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
    let mut header = [0u8; 5];
    stream.read_exact(&mut header)?;
    let mut password = vec![
        0u8;
        (u32::from_be_bytes([header[1], header[2], header[3], header[4]])
            as usize)
            .saturating_sub(4)
    ];
    stream.read_exact(&mut password)?;
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28P01"),
        (b'M', "password authentication failed for user \"calista\""),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(u32::try_from(fields.len() + 4).unwrap_or(0)).to_be_bytes());
    message.extend_from_slice(&fields);
    stream.write_all(&message)
}

/// A throw-away PostgreSQL cluster that a test may stop (`pg_createcluster`, the server's
/// TLS on with Debian's self-signed `ssl-cert-snakeoil` certificate); dropped with its data
/// on every path, a failed test's included.
struct ThrowAwayCluster {
    name: String,
    port: u16,
}

/// The PostgreSQL major version of the throw-away clusters (Debian's tools take it).
const CLUSTER_VERSION: &str = "15";

impl ThrowAwayCluster {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            name: unique_name("calista_lost"),
            port,
        };
        let created = Command::new("pg_createcluster")
            .args([CLUSTER_VERSION, &cluster.name, "-p", &port.to_string()])
            .args([
                "-o",
                "ssl=on",
                "-o",
                "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
                "-o",
                "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key",
                "--",
                "--auth=trust",
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!("pg_createcluster ({e}): install postgresql-common and PostgreSQL {CLUSTER_VERSION}, and run as root or postgres")
            });
        assert!(
            created.status.success(),
            "pg_createcluster failed (the snakeoil certificate comes with Debian's ssl-cert package): {}",
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.ctl(&["start"]);
        cluster
    }

    fn ctl(&self, action: &[&str]) {
        let done = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", CLUSTER_VERSION, &self.name])
            .args(action)
            .output()
            .expect("run pg_ctlcluster");
        assert!(
            done.status.success(),
            "pg_ctlcluster {action:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }

    /// Stops the server at once under the running `child`, which must then fail (exit 1);
    /// what it printed.
    fn stopped_under(&self, child: Child, sslmode: &str) -> String {
        self.ctl(&["stop", "-m", "immediate"]);
        let result = child.wait_with_output().unwrap();
        let shown = printed(&result);
        assert_eq!(result.status.code(), Some(1), "{sslmode}: {shown}");
        shown
    }

    /// The revision in calista's version table.
    async fn revision(&self) -> String {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("disable"))
            .await
            .unwrap();
        let at = sqlx::query_scalar("SELECT version_num FROM calista.alembic_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        at
    }

    /// Drops calista's schema, the migrations' tables with it, for a test's next round.
    async fn drop_calista(&self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("disable"))
            .await
            .unwrap();
        sqlx::raw_sql("DROP SCHEMA calista CASCADE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    }

    fn url(&self, sslmode: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode={sslmode}",
            self.port
        )
    }
}

impl Drop for ThrowAwayCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", CLUSTER_VERSION, &self.name])
            .output();
    }
}

/// The server stopped (`stop -m immediate`) while a migration runs: the error names the
/// lost connection and the migration, says the database kept its revision (COMMIT was not
/// sent, so the server rolls the transaction back), and shows no driver words; and the
/// database, once started again, is at that revision. Over TLS and over plain TCP, whose
/// drivers word a lost connection differently.
#[tokio::test]
async fn a_server_stopped_mid_upgrade_is_told_as_a_lost_connection_on_tls_and_plain_connections() {
    let cluster = ThrowAwayCluster::start();
    let set = MigrationSet::new(&[
        ("20250101_0000_create_a.sql", &create_table("a")),
        (
            "20250102_0000_slow.sql",
            "-- calista:up\nCREATE TABLE b (id INTEGER);\nSELECT pg_sleep(30);\n-- calista:down\nDROP TABLE b;\n",
        ),
    ]);
    let folder = set.dir.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    for sslmode in ["require", "disable"] {
        let url = cluster.url(sslmode);
        upgrade_to_the_first(&url, &folder, dir.path());
        let child = upgrade(&url, &folder, dir.path(), None).spawn().unwrap();
        // Wait until the slow migration runs, then stop the server under it.
        assert!(
            seen_within(
                &cluster,
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' \
                 AND state = 'active' AND pid <> pg_backend_pid())"
            )
            .await,
            "{sslmode}: the slow migration was never seen running"
        );
        let shown = cluster.stopped_under(child, sslmode);
        assert!(
            shown.contains(
                "the connection to the database was lost while running a migration (20250102_0000_slow.sql)"
            ),
            "{sslmode}: {shown}"
        );
        assert!(
            shown.contains("COMMIT had not been sent")
                && shown.contains("still at revision 20250101_0000"),
            "{sslmode}: {shown}"
        );
        assert_no_driver_words(&shown, sslmode, &["failed (up)", "nothing of the failed"]);
        // What the message says is what the database holds.
        cluster.ctl(&["start"]);
        assert_eq!(cluster.revision().await, "20250101_0000", "{sslmode}");
        cluster.drop_calista().await;
    }
}

/// `calista db upgrade --no-backup` of `folder` on `url`, run in `dir`, its output piped, no
/// CALISTA_ variable of the test's environment passed on.
fn upgrade(url: &str, folder: &str, dir: &Path, to: Option<&str>) -> Command {
    let mut command = upgrade_backing_up(url, folder, dir);
    command
        .arg("--no-backup")
        .args(to.map(|to| ["--to", to]).into_iter().flatten());
    command
}

/// `calista db upgrade` of `folder` on `url`, run in `dir`, with the backup the settings
/// ask for (production's, by default).
fn upgrade_backing_up(url: &str, folder: &str, dir: &Path) -> Command {
    let mut command = program(env!("CARGO_BIN_EXE_calista"), dir);
    command.args(["--db-url", url, "--migrations", folder, "db", "upgrade"]);
    command
}

/// Upgrades `folder` on `url` to its first revision, 20250101_0000; the test fails unless
/// that succeeds.
fn upgrade_to_the_first(url: &str, folder: &str, dir: &Path) {
    let first = upgrade(url, folder, dir, Some("20250101_0000"))
        .output()
        .unwrap();
    assert!(first.status.success(), "{url}: {}", printed(&first));
}

/// Asserts that `shown` holds none of the driver's words for a lost connection, nor `also`.
fn assert_no_driver_words(shown: &str, sslmode: &str, also: &[&str]) {
    for words in ["docs.rs", "http", "close_notify", "bytes at EOF"]
        .iter()
        .chain(also)
    {
        assert!(!shown.contains(words), "{sslmode}: `{words}` in {shown}");
    }
}

/// The server stopped while the program waits for the migration lock another session holds:
/// the error names the lost connection and what was being done, says the database was not
/// being changed, and shows no driver words; over TLS and plain TCP.
#[tokio::test]
async fn a_server_stopped_while_the_lock_is_awaited_is_told_as_a_lost_connection_that_changed_nothing()
 {
    use sqlx::Connection;
    let cluster = ThrowAwayCluster::start();
    let set = MigrationSet::new(&[("20250101_0000_create_a.sql", &create_table("a"))]);
    let folder = set.dir.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    for sslmode in ["require", "disable"] {
        let mut holder = sqlx::PgConnection::connect(&cluster.url("disable"))
            .await
            .unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(calista::postgres_lock_key(&calista::SchemaName::calista()))
            .execute(&mut holder)
            .await
            .unwrap();
        let child = upgrade(&cluster.url(sslmode), &folder, dir.path(), None)
            .spawn()
            .unwrap();
        assert!(
            seen_within(&cluster, WAITING_FOR_THE_LOCK).await,
            "{sslmode}: the upgrade was never seen waiting for the lock"
        );
        // The holder keeps the lock until the server stops under both sessions.
        let shown = cluster.stopped_under(child, sslmode);
        drop(holder);
        assert!(
            shown.contains(
                "the connection to the database was lost while taking the migration lock"
            ),
            "{sslmode}: {shown}"
        );
        assert!(
            shown.contains("was not changing the database"),
            "{sslmode}: {shown}"
        );
        assert_no_driver_words(&shown, sslmode, &["PostgreSQL error", "caused by"]);
        cluster.ctl(&["start"]);
    }
}

/// The upgrading program waits for the migration lock: between its tries its last query
/// is the `ROLLBACK` of the try that failed; its lock query shows only while it runs.
const WAITING_FOR_THE_LOCK: &str = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
     WHERE application_name LIKE 'calista migrate%' \
     AND (query LIKE '%pg_try_advisory_xact_lock%' OR query = 'ROLLBACK'))";

/// Polls `condition` (a boolean query) on the cluster every 10 ms for up to 6 s; whether it
/// became true.
async fn seen_within(cluster: &ThrowAwayCluster, condition: &'static str) -> bool {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&cluster.url("disable"))
        .await
        .unwrap();
    for _ in 0..600 {
        if sqlx::query_scalar::<_, bool>(condition)
            .fetch_one(&mut admin)
            .await
            .unwrap()
        {
            admin.close().await.ok();
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Two migrations: table a, then table b.
fn tables_a_then_b() -> MigrationSet {
    MigrationSet::new(&[
        ("20250101_0000_create_a.sql", &create_table("a")),
        ("20250102_0000_create_b.sql", &create_table("b")),
    ])
}

/// The server stopped while `pg_dump` takes the pre-upgrade backup (it waits for a table
/// lock another session holds): the error is the lost connection, during the backup, that
/// changed nothing; not a pg_dump that could not connect (which blames the URL and
/// pg_hba.conf) nor pg_dump's words for the loss. The backup folder holds nothing; the
/// database, started again, is at its revision. Over TLS and plain TCP.
#[tokio::test]
async fn a_server_stopped_during_the_backup_is_told_as_a_lost_connection_that_changed_nothing() {
    use sqlx::Connection;
    let cluster = ThrowAwayCluster::start();
    let set = tables_a_then_b();
    let folder = set.dir.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    for sslmode in ["require", "disable"] {
        let url = cluster.url(sslmode);
        upgrade_to_the_first(&url, &folder, dir.path());
        // pg_dump waits behind this lock until the server stops.
        let mut holder = sqlx::PgConnection::connect(&cluster.url("disable"))
            .await
            .unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE calista.a IN ACCESS EXCLUSIVE MODE")
            .execute(&mut holder)
            .await
            .unwrap();
        let child = upgrade_backing_up(&url, &folder, dir.path())
            .env("CALISTA_BACKUP_DIR", &backups)
            .spawn()
            .unwrap();
        assert!(
            seen_within(
                &cluster,
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_dump' \
                 AND wait_event_type = 'Lock')"
            )
            .await,
            "{sslmode}: pg_dump was never seen waiting"
        );
        let shown = cluster.stopped_under(child, sslmode);
        drop(holder);
        assert!(
            shown.contains("the connection to the database was lost while taking the backup; ")
                && shown.contains("was not changing the database"),
            "{sslmode}: {shown}"
        );
        assert_no_driver_words(
            &shown,
            sslmode,
            &[
                "pg_dump failed",
                "pg_hba.conf",
                "SSL SYSCALL",
                "unexpectedly",
            ],
        );
        assert_eq!(
            std::fs::read_dir(&backups).map_or(0, Iterator::count),
            0,
            "{sslmode}: no partial backup left"
        );
        cluster.ctl(&["start"]);
        assert_eq!(cluster.revision().await, "20250101_0000", "{sslmode}");
        cluster.drop_calista().await;
    }
}

/// One transaction per migration (`transaction = each`): the server stopped while the
/// upgrade waits for the migration lock again, between its first batch (committed) and its
/// second. The error says the database is at the first batch's revision, which is what it
/// holds once started again; over TLS and plain TCP.
#[tokio::test]
async fn a_server_stopped_between_batches_says_the_revision_the_committed_batches_reached() {
    use sqlx::Connection;
    let cluster = ThrowAwayCluster::start();
    let set = MigrationSet::new(&[
        ("20250101_0000_create_a.sql", &create_table("a")),
        (
            "20250102_0000_slow_b.sql",
            "-- calista:up postgres\nCREATE TABLE b (id INTEGER);\nSELECT pg_sleep(2);\n\
             -- calista:up sqlite\nCREATE TABLE b (id INTEGER);\n-- calista:down\nDROP TABLE b;\n",
        ),
        ("20250103_0000_create_c.sql", &create_table("c")),
    ]);
    let folder = set.dir.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let key = calista::postgres_lock_key(&calista::SchemaName::calista());
    for sslmode in ["require", "disable"] {
        let url = cluster.url(sslmode);
        // The holder races the upgrade for the lock between its batches; when the upgrade
        // wins, it finishes, and the race is run again.
        let mut raced = None;
        for _ in 0..10 {
            upgrade_to_the_first(&url, &folder, dir.path());
            let child = upgrade(&url, &folder, dir.path(), None)
                .env("CALISTA_TRANSACTION", "each")
                .spawn()
                .unwrap();
            assert!(
                seen_within(
                    &cluster,
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' \
                     AND state = 'active' AND pid <> pg_backend_pid())"
                )
                .await,
                "{sslmode}: the slow migration was never seen running"
            );
            // Takes the lock the moment the first batch's transaction lets it go.
            let mut holder = sqlx::PgConnection::connect(&cluster.url("disable"))
                .await
                .unwrap();
            sqlx::raw_sql(
                "CREATE FUNCTION pg_temp.grab(key bigint) RETURNS void LANGUAGE plpgsql AS \
                 $$ BEGIN LOOP EXIT WHEN pg_try_advisory_lock(key); END LOOP; END $$",
            )
            .execute(&mut holder)
            .await
            .unwrap();
            sqlx::query("SELECT pg_temp.grab($1)")
                .bind(key)
                .execute(&mut holder)
                .await
                .unwrap();
            if cluster.revision().await == "20250102_0000" {
                raced = Some((child, holder));
                break;
            }
            let done = child.wait_with_output().unwrap();
            assert!(done.status.success(), "{sslmode}: {}", printed(&done));
            holder.close().await.ok();
            cluster.drop_calista().await;
        }
        let (child, holder) = raced.expect("the holder never took the lock between the batches");
        assert!(
            seen_within(&cluster, WAITING_FOR_THE_LOCK).await,
            "{sslmode}: the upgrade was never seen waiting for the lock after its first batch"
        );
        let shown = cluster.stopped_under(child, sslmode);
        drop(holder);
        assert!(
            shown.contains(
                "the connection to the database was lost while taking the migration lock"
            ) && shown.contains("the database is still at revision 20250102_0000"),
            "{sslmode}: {shown}"
        );
        assert_no_driver_words(&shown, sslmode, &["PostgreSQL error"]);
        cluster.ctl(&["start"]);
        assert_eq!(cluster.revision().await, "20250102_0000", "{sslmode}");
        cluster.drop_calista().await;
    }
}

/// The server stopped while `db restore` streams a backup into it (psql in the middle of
/// the table's rows): the error is the lost connection, says the restore's transaction is
/// rolled back and nothing was changed, and shows none of psql's words for the loss, its
/// notices or its input's line numbers; started again, the database holds what it held
/// before the restore. Over TLS and plain TCP.
#[tokio::test]
async fn a_server_stopped_during_a_restore_is_told_as_a_lost_connection_that_changed_nothing() {
    use sqlx::Connection;
    let cluster = ThrowAwayCluster::start();
    let set = tables_a_then_b();
    let folder = set.dir.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    upgrade_to_the_first(&cluster.url("disable"), &folder, dir.path());
    // Rows enough that their COPY takes a while.
    let mut conn = sqlx::PgConnection::connect(&cluster.url("disable"))
        .await
        .unwrap();
    sqlx::raw_sql("INSERT INTO calista.a (id) SELECT g FROM generate_series(1000, 1000000) AS g")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let with_backup = upgrade_backing_up(&cluster.url("disable"), &folder, dir.path())
        .env("CALISTA_BACKUP_DIR", &backups)
        .output()
        .unwrap();
    assert!(with_backup.status.success(), "{}", printed(&with_backup));
    let backup = only_file_in(&backups);
    for sslmode in ["require", "disable"] {
        let child = program(env!("CARGO_BIN_EXE_calista"), dir.path())
            .args(["--db-url", &cluster.url(sslmode), "--migrations", &folder])
            .args(["db", "restore", "--yes"])
            .arg(&backup)
            .spawn()
            .unwrap();
        assert!(
            seen_within(
                &cluster,
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY calista.a %' \
                 AND state = 'active')"
            )
            .await,
            "{sslmode}: the restore was never seen copying rows"
        );
        let shown = cluster.stopped_under(child, sslmode);
        assert!(
            shown.contains(
                "cannot restore: the connection to the database was lost while restoring; "
            ) && shown.contains("nothing was changed"),
            "{sslmode}: {shown}"
        );
        assert_no_driver_words(
            &shown,
            sslmode,
            &[
                "SSL SYSCALL",
                "unexpectedly",
                "invalid socket",
                "<stdin>",
                "NOTICE",
                "psql failed",
            ],
        );
        cluster.ctl(&["start"]);
        // What the restore would have replaced is still there: the revision after it.
        assert_eq!(cluster.revision().await, "20250102_0000", "{sslmode}");
    }
}
