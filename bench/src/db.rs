//! Scratch databases: a SQLite file, or a PostgreSQL database created and dropped.

use std::path::PathBuf;

use sqlx::{Connection, Executor};

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// The PostgreSQL server, from `CALISTA_TEST_PG_URL`.
pub(crate) fn pg_admin_url() -> String {
    std::env::var("CALISTA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(url: &str, database: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let cut = base.rfind('/').unwrap_or(base.len());
    format!("{}/{database}", &base[..cut])
}

/// A fresh, empty database.
pub(crate) struct Scratch {
    pub(crate) backend: Backend,
    /// The URL in the form sqlx and calista read.
    pub(crate) url: String,
    /// The SQLite file.
    pub(crate) file: Option<PathBuf>,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Scratch {
    pub(crate) async fn new(backend: Backend) -> Result<Self, Box<dyn std::error::Error>> {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let file = dir.path().join("bench.db");
                Ok(Self {
                    backend,
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    file: Some(file),
                    name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let name = format!("calista_bench_{}_{n}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                // Creating a database writes its template to the WAL; a checkpoint now,
                // outside any measurement, keeps the next one from landing inside a run.
                admin.execute("CHECKPOINT").await?;
                admin.close().await?;
                Ok(Self {
                    backend,
                    url: with_database(&pg_admin_url(), &name),
                    file: None,
                    name: Some(name),
                    _dir: None,
                })
            }
        }
    }

    /// The URL as calista's settings read it.
    pub(crate) fn calista_url(
        &self,
    ) -> Result<calista::url::DatabaseUrl, Box<dyn std::error::Error>> {
        let text = match &self.file {
            Some(file) => format!("sqlite:///{}", file.display()),
            None => self.url.clone(),
        };
        Ok(calista::url::DatabaseUrl::parse(
            &text,
            std::path::Path::new("/"),
        )?)
    }

    pub(crate) async fn drop_now(self) {
        if let Some(name) = &self.name
            && let Ok(mut admin) = sqlx::PgConnection::connect(&pg_admin_url()).await
        {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
            let _ = admin.close().await;
        }
    }
}
