//! Benchmark f: a ready database per test (`calista::testing`) against applying every
//! migration per test (what `#[sqlx::test]` does) and against the floor: an empty
//! `CREATE DATABASE`, or an empty SQLite file.
//!
//! ```sh
//! cargo run --release -p calista-bench --bin test-db [-- --sizes 10,100,1000 --reps 10]
//! ```
//!
//! PostgreSQL from `CALISTA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Each measurement ends when the test holds a database at head that it can query; dropping
//! the database after the test is not counted (it is the same for every way).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use calista::backup::BackupPolicy;
use calista::testing::{TestDatabase, TestOptions, TestProject};
use calista::url::{DatabaseUrl, PostgresUrl, SqliteTarget};
use calista::{Database, DatabaseOptions, Migrations, Migrator, Policy, UpgradeTarget};
use sqlx::{Connection, PgConnection};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[path = "../sets.rs"]
#[allow(dead_code)]
mod sets;

fn policy() -> Policy {
    Policy {
        backup: BackupPolicy::Disabled {
            reason: "benchmark".to_owned(),
        },
        ..Policy::default()
    }
}

/// The test databases of project `calista`, whose names [`settle`] looks for.
fn options() -> TestOptions {
    TestOptions {
        project: TestProject::new("calista"),
        ..TestOptions::default()
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn show(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = value("--sizes")
        .unwrap_or_else(|| "10,100,1000".to_owned())
        .split(',')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let reps: usize = value("--reps").map_or(Ok(10), |r| r.parse())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&sizes, reps))
}

async fn run(sizes: &[usize], reps: usize) -> Result<()> {
    let text = std::env::var("CALISTA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let DatabaseUrl::Postgres(server) = DatabaseUrl::parse(&text, std::path::Path::new("."))?
    else {
        return Err("CALISTA_TEST_PG_URL must be a PostgreSQL URL".into());
    };
    println!(
        "| backend | N | floor (empty) | calista::testing | ratio to floor | apply all N per test | ratio to floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        sets::write_calista(dir.path(), n)?;
        let migrations = Migrations::from_dir(dir.path())?;
        // Applying 1000 migrations per test takes seconds: fewer repetitions of that.
        let apply_reps = if n >= 1000 { reps.min(3) } else { reps };

        // PostgreSQL. The first call builds the template (once per set, not counted).
        let first = TestDatabase::postgres_on(&migrations, &server, options()).await?;
        let template = first.template().to_owned();
        drop(first);
        let (mut floor, mut testing, mut clone, mut apply) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..reps {
            // Each figure on a quiet server: the spares made, the trash dropped.
            settle(&server, &template).await?;
            floor.push(pg_timed(&server, Made::Empty, i).await?);
            settle(&server, &template).await?;
            let started = Instant::now();
            let test_db = TestDatabase::postgres_on(&migrations, &server, options()).await?;
            ready(test_db.database()).await?;
            testing.push(started.elapsed());
            drop(test_db);
            settle(&server, &template).await?;
            clone.push(pg_timed(&server, Made::Clone(&template), i).await?);
            if i < apply_reps {
                settle(&server, &template).await?;
                apply.push(pg_timed(&server, Made::Applied(&migrations), i).await?);
            }
        }
        row("PostgreSQL", n, &floor, &testing, &apply);
        side_row("no spare ready: a clone of the template", &clone, &floor);

        // SQLite.
        let first = TestDatabase::sqlite_with(&migrations, options()).await?;
        let template = first.template().to_owned();
        drop(first);
        let (mut floor, mut testing, mut copy, mut open, mut apply) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..reps {
            settle_files(&template).await?;
            let file = dir.path().join(format!("floor_{i}.db"));
            let started = Instant::now();
            std::fs::File::create(&file)?;
            let db = Database::connect(
                &DatabaseUrl::Sqlite(SqliteTarget::File(file)),
                DatabaseOptions::default(),
            )?;
            ready(&db).await?;
            floor.push(started.elapsed());
            db.close().await;

            settle_files(&template).await?;
            let started = Instant::now();
            let test_db = TestDatabase::sqlite_with(&migrations, options()).await?;
            ready(test_db.database()).await?;
            testing.push(started.elapsed());
            drop(test_db);

            settle_files(&template).await?;
            let file = dir.path().join(format!("open_{i}.db"));
            std::fs::copy(&template, &file)?;
            let started = Instant::now();
            let db = Database::connect(
                &DatabaseUrl::Sqlite(SqliteTarget::File(file)),
                DatabaseOptions::default(),
            )?;
            ready(&db).await?;
            open.push(started.elapsed());
            db.close().await;

            let file = dir.path().join(format!("copy_{i}.db"));
            let started = Instant::now();
            std::fs::copy(&template, &file)?;
            let db = Database::connect(
                &DatabaseUrl::Sqlite(SqliteTarget::File(file)),
                DatabaseOptions::default(),
            )?;
            ready(&db).await?;
            copy.push(started.elapsed());
            db.close().await;

            if i < apply_reps {
                settle_files(&template).await?;
                let file = dir.path().join(format!("apply_{i}.db"));
                let started = Instant::now();
                let db = Database::connect(
                    &DatabaseUrl::Sqlite(SqliteTarget::File(file)),
                    DatabaseOptions::default(),
                )?;
                Migrator::new(&migrations, &db)
                    .with_policy(policy())
                    .upgrade(UpgradeTarget::Head)
                    .await?;
                ready(&db).await?;
                apply.push(started.elapsed());
                db.close().await;
            }
        }
        row("SQLite", n, &floor, &testing, &apply);
        side_row("no spare ready: a copy of the template", &copy, &floor);
        side_row(
            "for comparison: opening a database at head that exists",
            &open,
            &floor,
        );
    }
    Ok(())
}

fn row(backend: &str, n: usize, floor: &[Duration], testing: &[Duration], apply: &[Duration]) {
    let (floor, testing, apply) = (
        median(floor.to_vec()),
        median(testing.to_vec()),
        median(apply.to_vec()),
    );
    let ratio = |d: Duration| format!("{:.2}×", d.as_secs_f64() / floor.as_secs_f64());
    println!(
        "| {backend} | {n} | {} | {} | {} | {} | {} |",
        show(floor),
        show(testing),
        ratio(testing),
        show(apply),
        ratio(apply)
    );
}

/// A figure beside the main ones, with its ratio to the floor.
fn side_row(what: &str, samples: &[Duration], floor: &[Duration]) {
    let (samples, floor) = (median(samples.to_vec()), median(floor.to_vec()));
    println!(
        "|  |  | ({what}) | {} | {:.2}× |  |  |",
        show(samples),
        samples.as_secs_f64() / floor.as_secs_f64()
    );
}

/// The test's first query: the database is ready when it answers.
async fn ready(db: &Database) -> Result<()> {
    match db.pool() {
        calista::Pool::Postgres(pool) => {
            sqlx::query("SELECT 1").execute(pool).await?;
        }
        calista::Pool::Sqlite(pool) => {
            sqlx::query("SELECT 1").execute(pool).await?;
        }
    }
    Ok(())
}

/// Waits until the background work of `calista::testing` is done: the template's spares
/// made (as many as it keeps) and no trash left to drop.
async fn settle(server: &PostgresUrl, template: &str) -> Result<()> {
    let key = template.trim_start_matches("calista_tpl_");
    let prefix = format!("calista_spare_{}_", key.get(..16).unwrap_or(key));
    let mut admin = PgConnection::connect(server.expose_secret()).await?;
    for _ in 0..6000 {
        let (spares, trash): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE starts_with(datname, $1)), \
                    count(*) FILTER (WHERE starts_with(datname, 'calista_trash_')) \
             FROM pg_database",
        )
        .bind(&prefix)
        .fetch_one(&mut admin)
        .await?;
        if usize::try_from(spares)? >= calista::testing::DEFAULT_SPARES && trash == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the spares were not made within two minutes".into())
}

/// Waits until the SQLite template's spare copies are made.
async fn settle_files(template: &str) -> Result<()> {
    let key = template
        .rsplit("calista_tpl_")
        .next()
        .unwrap_or_default()
        .trim_end_matches(".db");
    let prefix = format!("calista_spare_{}_", key.get(..16).unwrap_or(key));
    for _ in 0..6000 {
        let spares = std::fs::read_dir(std::env::temp_dir())?
            .filter_map(std::result::Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&prefix) && name.ends_with(".db")
            })
            .count();
        if spares >= calista::testing::DEFAULT_SPARES {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the spare files were not made within two minutes".into())
}

/// How a database is made in [`pg_timed`].
enum Made<'a> {
    /// An empty `CREATE DATABASE`: the floor.
    Empty,
    /// A clone of the template: what a test waits for when no spare is ready.
    Clone(&'a str),
    /// An empty database, then every migration: `#[sqlx::test]`'s way.
    Applied(&'a Migrations),
}

/// The time until a database made as `made` says answers a query.
async fn pg_timed(server: &PostgresUrl, made: Made<'_>, i: usize) -> Result<Duration> {
    let name = format!("calista_bench_{}_{i}", std::process::id());
    let create = match made {
        Made::Clone(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        Made::Empty | Made::Applied(_) => format!("CREATE DATABASE {name}"),
    };
    // The server connection that creates databases is open before the clock starts, for
    // every way: `#[sqlx::test]` keeps one per process, and so does `calista::testing`.
    let mut admin = PgConnection::connect(server.expose_secret()).await?;
    let started = Instant::now();
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await?;
    let db = Database::connect(
        &DatabaseUrl::Postgres(server.with_database(&name)),
        DatabaseOptions::default(),
    )?;
    if let Made::Applied(migrations) = made {
        Migrator::new(migrations, &db)
            .with_policy(policy())
            .upgrade(UpgradeTarget::Head)
            .await?;
    }
    ready(&db).await?;
    let elapsed = started.elapsed();
    db.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(elapsed)
}
