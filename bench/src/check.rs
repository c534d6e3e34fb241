//! B. check: the start-up check on an up-to-date database, in process, on a reused
//! connection (a pool of one), per call.

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::db::{Backend, Scratch};
use crate::sets::{self, Sets};
use crate::stats::Samples;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The checks measured, the floor first.
pub(crate) const NAMES: [&str; 5] = [
    "floor: SELECT version_num",
    "calista check()",
    "calista ensure_schema()",
    "sqlx Migrator::run (no-op)",
    "refinery run (no-op)",
];

/// Up-to-date databases, one per tool (their tables would collide in one).
struct Databases {
    calista: Scratch,
    sqlx: Scratch,
    refinery: Scratch,
}

/// The connections one session of measurements reuses.
struct Prepared {
    calista_db: calista::Database,
    floor_pg: Option<sqlx::PgConnection>,
    floor_sqlite: Option<sqlx::SqliteConnection>,
    sqlx_migrator: sqlx::migrate::Migrator,
    sqlx_pg: Option<sqlx::PgPool>,
    sqlx_sqlite: Option<sqlx::SqlitePool>,
    refinery_migrations: Vec<refinery::Migration>,
    refinery_sqlite: Option<rusqlite::Connection>,
    refinery_pg: Option<tokio_postgres::Client>,
}

async fn databases(
    backend: Backend,
    sets: &Sets,
    calista_set: &calista::Migrations,
) -> Result<Databases> {
    let calista = Scratch::new(backend).await?;
    let db =
        calista::Database::connect(&calista.calista_url()?, calista::DatabaseOptions::default())?;
    calista::Migrator::new(calista_set, &db)
        .with_policy(policy())
        .upgrade(calista::UpgradeTarget::Head)
        .await?;
    db.close().await;
    let sqlx = Scratch::new(backend).await?;
    let migrator = sqlx::migrate::Migrator::new(sets.sqlx.as_path()).await?;
    let refinery = Scratch::new(backend).await?;
    let migrations = sets::refinery(sets.n)?;
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&sqlx.url)
                .await?;
            migrator.run(&pool).await?;
            pool.close().await;
            let mut conn = rusqlite::Connection::open(refinery.file.clone().ok_or("no file")?)?;
            refinery::Runner::new(&migrations).run(&mut conn)?;
        }
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&sqlx.url)
                .await?;
            migrator.run(&pool).await?;
            pool.close().await;
            let (mut client, connection) =
                tokio_postgres::connect(&refinery.url, tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(connection);
            refinery::Runner::new(&migrations)
                .run_async(&mut client)
                .await?;
            drop(client);
            let _ = driver.await;
        }
    }
    Ok(Databases {
        calista,
        sqlx,
        refinery,
    })
}

async fn connect(backend: Backend, dbs: &Databases, sets: &Sets) -> Result<Prepared> {
    let options = calista::DatabaseOptions {
        max_connections: 1,
        ..calista::DatabaseOptions::default()
    };
    let mut prepared = Prepared {
        calista_db: calista::Database::connect(&dbs.calista.calista_url()?, options)?,
        floor_pg: None,
        floor_sqlite: None,
        sqlx_migrator: sqlx::migrate::Migrator::new(sets.sqlx.as_path()).await?,
        sqlx_pg: None,
        sqlx_sqlite: None,
        refinery_migrations: sets::refinery(sets.n)?,
        refinery_sqlite: None,
        refinery_pg: None,
    };
    match backend {
        Backend::Sqlite => {
            prepared.floor_sqlite = Some(sqlx::SqliteConnection::connect(&dbs.calista.url).await?);
            prepared.sqlx_sqlite = Some(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(&dbs.sqlx.url)
                    .await?,
            );
            prepared.refinery_sqlite = Some(rusqlite::Connection::open(
                dbs.refinery.file.clone().ok_or("no file")?,
            )?);
        }
        Backend::Postgres => {
            prepared.floor_pg = Some(sqlx::PgConnection::connect(&dbs.calista.url).await?);
            prepared.sqlx_pg = Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&dbs.sqlx.url)
                    .await?,
            );
            let (client, connection) =
                tokio_postgres::connect(&dbs.refinery.url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            prepared.refinery_pg = Some(client);
        }
    }
    Ok(prepared)
}

async fn disconnect(mut prepared: Prepared) {
    prepared.calista_db.close().await;
    if let Some(conn) = prepared.floor_pg.take() {
        let _ = conn.close().await;
    }
    if let Some(conn) = prepared.floor_sqlite.take() {
        let _ = conn.close().await;
    }
    if let Some(pool) = prepared.sqlx_pg.take() {
        pool.close().await;
    }
    if let Some(pool) = prepared.sqlx_sqlite.take() {
        pool.close().await;
    }
}

fn policy() -> calista::Policy {
    calista::Policy {
        backup: calista::backup::BackupPolicy::Disabled {
            reason: "benchmark".into(),
        },
        ..calista::Policy::default()
    }
}

/// One call of check `which`.
async fn call(
    which: usize,
    p: &mut Prepared,
    calista_set: &calista::Migrations,
) -> Result<Duration> {
    let started = Instant::now();
    match which {
        0 => {
            if let Some(conn) = p.floor_pg.as_mut() {
                let _: String =
                    sqlx::query_scalar("SELECT version_num FROM calista.alembic_version")
                        .fetch_one(conn)
                        .await?;
            } else if let Some(conn) = p.floor_sqlite.as_mut() {
                let _: String = sqlx::query_scalar("SELECT version_num FROM alembic_version")
                    .fetch_one(conn)
                    .await?;
            }
        }
        1 => {
            let state = calista::Migrator::new(calista_set, &p.calista_db)
                .check()
                .await?;
            assert!(state.is_up_to_date());
        }
        2 => {
            calista::Migrator::new(calista_set, &p.calista_db)
                .with_policy(policy())
                .ensure_schema()
                .await?;
        }
        3 => {
            if let Some(pool) = &p.sqlx_pg {
                p.sqlx_migrator.run(pool).await?;
            } else if let Some(pool) = &p.sqlx_sqlite {
                p.sqlx_migrator.run(pool).await?;
            }
        }
        _ => {
            let runner = refinery::Runner::new(&p.refinery_migrations);
            if let Some(conn) = p.refinery_sqlite.as_mut() {
                runner.run(conn)?;
            } else if let Some(client) = p.refinery_pg.as_mut() {
                runner.run_async(client).await?;
            }
        }
    }
    Ok(started.elapsed())
}

/// Medians per check, over `sessions` independent sessions: each opens fresh
/// connections (where their threads run decides a lot at this scale, so one session's
/// luck must not decide the result), warms up, then measures blocks of consecutive calls
/// per check, in an order that rotates every round. Returns, per check, the median of the
/// session medians and the p90 of all calls.
pub(crate) async fn measure(
    backend: Backend,
    sets: &Sets,
    calista_set: &calista::Migrations,
    sessions: usize,
    calls_per_session: usize,
) -> Result<Vec<(Duration, Duration)>> {
    let dbs = databases(backend, sets, calista_set).await?;
    let mut medians = vec![Samples::default(); NAMES.len()];
    let mut all = vec![Samples::default(); NAMES.len()];
    let block = 100;
    for session in 0..sessions {
        let mut prepared = connect(backend, &dbs, sets).await?;
        for which in 0..NAMES.len() {
            for _ in 0..20 {
                call(which, &mut prepared, calista_set).await?;
            }
        }
        let mut samples = vec![Samples::default(); NAMES.len()];
        let rounds = calls_per_session.div_ceil(block);
        for round in 0..rounds {
            for k in 0..NAMES.len() {
                let which = (k + round + session) % NAMES.len();
                for _ in 0..block {
                    let sample = call(which, &mut prepared, calista_set).await?;
                    samples[which].push(sample);
                    all[which].push(sample);
                }
            }
        }
        for (median, session_samples) in medians.iter_mut().zip(&samples) {
            median.push(session_samples.median());
        }
        disconnect(prepared).await;
    }
    for scratch in [dbs.calista, dbs.sqlx, dbs.refinery] {
        scratch.drop_now().await;
    }
    Ok(medians
        .iter()
        .zip(&all)
        .map(|(m, a)| (m.median(), a.p90()))
        .collect())
}
