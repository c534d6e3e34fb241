//! Test support: scratch PostgreSQL databases and SQLite files.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// Where tests find PostgreSQL when `CALISTA_TEST_PG_URL` is not set.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The URL of the server's maintenance database, from `CALISTA_TEST_PG_URL`.
pub fn pg_admin_url() -> String {
    std::env::var("CALISTA_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A name no other test (or test process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// Connects to the maintenance database, or fails the test saying how to start a server.
pub async fn pg_admin() -> PgConnection {
    let url = pg_admin_url();
    match PgConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "cannot reach the test PostgreSQL server ({e}).\n\
             Start one with `pg_ctlcluster --skip-systemctl-redirect 15 main start`, \
             or point CALISTA_TEST_PG_URL at a server where this role may create databases \
             (default {DEFAULT_PG_URL})."
        ),
    }
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct ScratchPg {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl ScratchPg {
    /// Creates a fresh, empty database.
    pub async fn new() -> Self {
        let name = unique_name("calista_test");
        let mut admin = pg_admin().await;
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create scratch database");
        admin.close().await.ok();
        Self { url: with_database(&pg_admin_url(), &name), name }
    }

    /// A new connection to it.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect to scratch database")
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&pg_admin_url()).await.ok()?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop scratch database {}", self.name);
        }
    }
}
