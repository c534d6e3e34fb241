//! A throw-away primary and hot standby of a test's own: two PostgreSQL 15 clusters on free
//! ports (trust authentication on localhost, the standby streaming from the primary, every
//! statement it receives logged), both dropped when the pair is dropped, a failed test
//! included. Included by path beside `common`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

const VERSION: &str = "15";

/// A primary and its hot standby; both clusters are dropped when it is.
pub struct Replicated {
    primary: Cluster,
    standby: Cluster,
}

struct Cluster {
    name: String,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", VERSION, &self.name])
            .output();
    }
}

impl Replicated {
    /// Creates and starts both, or fails the test saying what is missing.
    pub fn start(tag: &str) -> Self {
        let stem = format!("calista_{tag}_{}", std::process::id());
        let primary = create(&format!("{stem}_p"), &[]);
        start(&primary);
        // The standby's own settings, with every statement it receives in its log.
        let standby = create(&format!("{stem}_s"), &["log_statement=all"]);
        let data = data_dir(&standby);
        for entry in std::fs::read_dir(&data).expect("the standby's data folder") {
            let path = entry.expect("a data folder entry").path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.expect("empty the standby's data folder");
        }
        let port = primary.port.to_string();
        let mut basebackup = as_postgres("pg_basebackup");
        basebackup.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-D",
            data.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ]);
        run(&mut basebackup);
        start(&standby);
        let pair = Self { primary, standby };
        pair.wait_until_streaming();
        pair
    }

    /// The URL of database `database` on the primary.
    pub fn primary_url(&self, database: &str) -> String {
        url(self.primary.port, database)
    }

    /// The URL of database `database` on the standby.
    pub fn standby_url(&self, database: &str) -> String {
        url(self.standby.port, database)
    }

    /// The standby's server log.
    pub fn standby_log(&self) -> String {
        std::fs::read_to_string(format!(
            "/var/log/postgresql/postgresql-{VERSION}-{}.log",
            self.standby.name
        ))
        .unwrap_or_default()
    }

    /// Runs SQL on the primary's maintenance database.
    pub async fn on_primary(&self, sql: &str) {
        run_sql(&self.primary_url("postgres"), sql).await;
    }

    /// Runs SQL on the standby's maintenance database.
    pub async fn on_standby(&self, sql: &str) {
        run_sql(&self.standby_url("postgres"), sql).await;
    }

    /// Waits until the standby has replayed everything the primary has written so far.
    pub async fn wait_for_replay(&self) {
        self.wait_for_standby("pg_last_wal_replay_lsn()").await;
    }

    /// Waits until `position` (a WAL position of the standby's) reaches the primary's now.
    async fn wait_for_standby(&self, position: &str) {
        let mut primary = PgConnection::connect(&self.primary_url("postgres"))
            .await
            .unwrap();
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut primary)
            .await
            .unwrap();
        primary.close().await.ok();
        let mut standby = PgConnection::connect(&self.standby_url("postgres"))
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let caught_up: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {position} >= CAST($1 AS pg_lsn)"
            )))
            .bind(&lsn)
            .fetch_one(&mut standby)
            .await
            .unwrap();
            if caught_up {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the standby's {position} did not reach {lsn} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        standby.close().await.ok();
    }

    /// Waits until the standby has received (not necessarily replayed) everything the
    /// primary has written so far.
    pub async fn wait_for_receipt(&self) {
        self.wait_for_standby("pg_last_wal_receive_lsn()").await;
    }

    fn wait_until_streaming(&self) {
        let started = Instant::now();
        loop {
            let out = Command::new("psql")
                .args([
                    "-Atc",
                    "SELECT pg_is_in_recovery()",
                    &self.standby_url("postgres"),
                ])
                .output()
                .expect("run psql");
            if String::from_utf8_lossy(&out.stdout).trim() == "t" {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the standby did not start: {}",
                self.standby_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn run_sql(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}?sslmode=disable")
}

/// A new cluster on a free port, trusting local connections (replication included).
fn create(name: &str, settings: &[&str]) -> Cluster {
    let port = super::pgbouncer::free_port();
    let mut command = Command::new("pg_createcluster");
    command.args([VERSION, name, "-p", &port.to_string(), "-o", "fsync=off"]);
    for setting in settings {
        command.args(["-o", setting]);
    }
    command.args(["--", "--auth=trust", "--no-sync"]);
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run pg_createcluster ({e}): these tests make throw-away clusters with \
             Debian's postgresql-common (`apt-get install -y postgresql`)"
        )
    });
    assert!(
        output.status.success(),
        "pg_createcluster {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Cluster {
        name: name.to_owned(),
        port,
    }
}

fn start(cluster: &Cluster) {
    run(Command::new("pg_ctlcluster").args([
        "--skip-systemctl-redirect",
        VERSION,
        &cluster.name,
        "start",
    ]));
}

fn data_dir(cluster: &Cluster) -> PathBuf {
    PathBuf::from(format!("/var/lib/postgresql/{VERSION}/{}", cluster.name))
}

/// `program`, run as the `postgres` user when this is root (the data folder is theirs).
fn as_postgres(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
