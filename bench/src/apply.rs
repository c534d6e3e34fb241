//! A. apply: all N migrations to an empty database, per tool.

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

use crate::db::{Backend, Scratch};
use crate::sets::{self, Sets};

/// The tools measured, the floor first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Floor,
    Calista,
    CalistaEach,
    Sqlx,
    Refinery,
}

pub(crate) const TOOLS: [Tool; 5] = [
    Tool::Floor,
    Tool::Calista,
    Tool::CalistaEach,
    Tool::Sqlx,
    Tool::Refinery,
];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Applies `sets` with `tool` to a fresh database; returns the time of the apply alone
/// (connecting and reading the files happen before the clock starts).
pub(crate) async fn once(
    tool: Tool,
    backend: Backend,
    sets: &Sets,
    calista_set: &calista::Migrations,
) -> Result<Duration> {
    let scratch = Scratch::new(backend).await?;
    let elapsed = match tool {
        Tool::Floor => floor(&scratch, sets.n).await?,
        Tool::Calista | Tool::CalistaEach => {
            let db = calista::Database::connect(&scratch.calista_url()?, program_options())?;
            db.current().await?;
            let mode = if tool == Tool::Calista {
                calista::TransactionMode::All
            } else {
                calista::TransactionMode::Each
            };
            let policy = calista::Policy {
                transaction_mode: mode,
                backup: calista::backup::BackupPolicy::Disabled {
                    reason: "benchmark".into(),
                },
                ..calista::Policy::default()
            };
            let migrator = calista::Migrator::new(calista_set, &db).with_policy(policy);
            let started = Instant::now();
            let report = migrator.upgrade(calista::UpgradeTarget::Head).await?;
            let elapsed = started.elapsed();
            if report.steps.len() != sets.n {
                return Err(format!(
                    "calista applied {} migrations, not {}",
                    report.steps.len(),
                    sets.n
                )
                .into());
            }
            db.close().await;
            elapsed
        }
        Tool::Sqlx => {
            let migrator = sqlx::migrate::Migrator::new(sets.sqlx.as_path()).await?;
            match backend {
                Backend::Sqlite => {
                    let pool = sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect(&scratch.url)
                        .await?;
                    let started = Instant::now();
                    migrator.run(&pool).await?;
                    let elapsed = started.elapsed();
                    pool.close().await;
                    elapsed
                }
                Backend::Postgres => {
                    let pool = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&scratch.url)
                        .await?;
                    let started = Instant::now();
                    migrator.run(&pool).await?;
                    let elapsed = started.elapsed();
                    pool.close().await;
                    elapsed
                }
            }
        }
        Tool::Refinery => {
            let migrations = sets::refinery(sets.n)?;
            let runner = refinery::Runner::new(&migrations);
            match backend {
                Backend::Sqlite => {
                    let file = scratch.file.clone().ok_or("no file")?;
                    let mut conn = rusqlite::Connection::open(file)?;
                    let started = Instant::now();
                    runner.run(&mut conn)?;
                    started.elapsed()
                }
                Backend::Postgres => {
                    let (mut client, connection) =
                        tokio_postgres::connect(&scratch.url, tokio_postgres::NoTls).await?;
                    let driver = tokio::spawn(connection);
                    let started = Instant::now();
                    runner.run_async(&mut client).await?;
                    let elapsed = started.elapsed();
                    drop(client);
                    let _ = driver.await;
                    elapsed
                }
            }
        }
    };
    scratch.drop_now().await;
    Ok(elapsed)
}

/// The floor: the same SQL, each migration one `execute`, all in one transaction.
async fn floor(scratch: &Scratch, n: usize) -> Result<Duration> {
    let statements: Vec<String> = (1..=n).map(sets::sql).collect();
    match scratch.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&scratch.url).await?;
            let started = Instant::now();
            let mut tx = conn.begin().await?;
            for sql in &statements {
                tx.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str())))
                    .await?;
            }
            tx.commit().await?;
            let elapsed = started.elapsed();
            conn.close().await?;
            Ok(elapsed)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&scratch.url).await?;
            let started = Instant::now();
            let mut tx = conn.begin().await?;
            for sql in &statements {
                tx.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str())))
                    .await?;
            }
            tx.commit().await?;
            let elapsed = started.elapsed();
            conn.close().await?;
            Ok(elapsed)
        }
    }
}

/// calista's options as the `calista` program's: its tables in schema `calista`, where the
/// floor's queries and the program measured in C look for them.
pub(crate) fn program_options() -> calista::DatabaseOptions {
    calista::DatabaseOptions {
        schema: Some(calista::SchemaName::calista()),
        ..calista::DatabaseOptions::default()
    }
}
