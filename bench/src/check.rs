//! B. check: the start-up check on an up-to-date database, in process, on a reused
//! connection (a pool of one), per call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::db::{Backend, Scratch};
use crate::sets::{self, Sets};
use crate::stats::Samples;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How B measures: `sessions` sessions of `calls` calls per check, with `gap` of idleness
/// before each call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protocol {
    pub(crate) sessions: usize,
    pub(crate) calls: usize,
    /// A start-up check is one call on an idle connection, not one of a burst: each call
    /// waits this long first, so the driver's thread and the server are asleep when it
    /// starts, for every tool alike. Zero measures back-to-back calls.
    pub(crate) gap: Duration,
}

/// `--show-sessions`: print each session's medians on stderr.
pub(crate) static SHOW_SESSIONS: AtomicBool = AtomicBool::new(false);

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
    let db = calista::Database::connect(&calista.calista_url()?, crate::apply::program_options())?;
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

/// Opens every tool's connection for one session. The order rotates with `session`:
/// where the kernel places a connection's threads (or its server process) depends on
/// when it is opened, and no tool should always be first.
async fn connect(
    backend: Backend,
    dbs: &Databases,
    sets: &Sets,
    session: usize,
) -> Result<Prepared> {
    let options = calista::DatabaseOptions {
        max_connections: 1,
        ..crate::apply::program_options()
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
    for step in 0..4 {
        match ((step + session) % 4, backend) {
            // The guard opens its connection on its first read.
            (0, _) => {
                prepared.calista_db.current().await?;
            }
            (1, Backend::Sqlite) => {
                prepared.floor_sqlite =
                    Some(sqlx::SqliteConnection::connect(&dbs.calista.url).await?);
            }
            (1, Backend::Postgres) => {
                prepared.floor_pg = Some(sqlx::PgConnection::connect(&dbs.calista.url).await?);
            }
            (2, Backend::Sqlite) => {
                prepared.sqlx_sqlite = Some(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect(&dbs.sqlx.url)
                        .await?,
                );
            }
            (2, Backend::Postgres) => {
                prepared.sqlx_pg = Some(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&dbs.sqlx.url)
                        .await?,
                );
            }
            (_, Backend::Sqlite) => {
                prepared.refinery_sqlite = Some(rusqlite::Connection::open(
                    dbs.refinery.file.clone().ok_or("no file")?,
                )?);
            }
            (_, Backend::Postgres) => {
                let (client, connection) =
                    tokio_postgres::connect(&dbs.refinery.url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                prepared.refinery_pg = Some(client);
            }
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
            if !state.is_up_to_date() {
                return Err(format!("calista's check found {state:?}, not up to date").into());
            }
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

/// Per check of [`NAMES`]: the median of the session medians and the p90 of all calls
/// (see [`run_sessions`]).
pub(crate) async fn measure(
    backend: Backend,
    sets: &Sets,
    calista_set: &calista::Migrations,
    protocol: Protocol,
) -> Result<Vec<(Duration, Duration)>> {
    let dbs = databases(backend, sets, calista_set).await?;
    let (medians, all) = run_sessions(
        backend,
        &dbs,
        sets,
        NAMES.len(),
        protocol,
        async |which, p| call(which, p, calista_set).await,
    )
    .await;
    for scratch in [dbs.calista, dbs.sqlx, dbs.refinery] {
        scratch.drop_now().await;
    }
    Ok(medians?
        .iter()
        .zip(&all)
        .map(|(m, a)| (m.median(), a.p90()))
        .collect())
}

/// `sessions` independent sessions of `variants` measurements: each session opens fresh
/// connections (where their threads run decides a lot at this scale, so one session's
/// luck must not decide the result), warms up, then measures blocks of 100 consecutive
/// calls per variant, in an order that rotates every round. Returns, per variant, the
/// session medians and all calls.
async fn run_sessions(
    backend: Backend,
    dbs: &Databases,
    sets: &Sets,
    variants: usize,
    protocol: Protocol,
    mut call: impl AsyncFnMut(usize, &mut Prepared) -> Result<Duration>,
) -> (Result<Vec<Samples>>, Vec<Samples>) {
    let mut medians = vec![Samples::default(); variants];
    let mut all = vec![Samples::default(); variants];
    let block = 100;
    for session in 0..protocol.sessions {
        let mut prepared = match connect(backend, dbs, sets, session).await {
            Ok(prepared) => prepared,
            Err(e) => return (Err(e), all),
        };
        let mut samples = vec![Samples::default(); variants];
        let mut measured = async || -> Result<()> {
            for which in 0..variants {
                for _ in 0..20 {
                    call(which, &mut prepared).await?;
                }
            }
            for round in 0..protocol.calls.div_ceil(block) {
                for k in 0..variants {
                    let which = (k + round + session) % variants;
                    for _ in 0..block {
                        if !protocol.gap.is_zero() {
                            // Let the drivers' background tasks run, then sit idle.
                            tokio::task::yield_now().await;
                            std::thread::sleep(protocol.gap);
                        }
                        let sample = call(which, &mut prepared).await?;
                        samples[which].push(sample);
                        all[which].push(sample);
                    }
                }
            }
            Ok(())
        };
        let outcome = measured().await;
        disconnect(prepared).await;
        if let Err(e) = outcome {
            return (Err(e), all);
        }
        if SHOW_SESSIONS.load(Ordering::Relaxed) {
            let line: Vec<String> = samples
                .iter()
                .map(|s| crate::stats::show(s.median()))
                .collect();
            eprintln!("session {session}: {}", line.join(" | "));
        }
        for (median, session_samples) in medians.iter_mut().zip(&samples) {
            median.push(session_samples.median());
        }
    }
    (Ok(medians), all)
}

/// Where the time of calista's check goes, all on the floor's connection (so all see the
/// same thread placement): the floor's SQL both ways, calista's query sent the way calista
/// sends it, the newest history row alone (the read the floor does not do), the query
/// calista sent before, and the other dialect's shape of the query. The SQL is a copy of
/// `read_state_brief` in calista-core/src/backend/ (sqlite.rs, postgres.rs).
pub(crate) const BREAKDOWN: [&str; 6] = [
    "floor (fetch_one)",
    "floor SQL, fetch_all",
    "calista's query, as calista sends it",
    "newest history row alone (fetch_one)",
    "previous query (subquery join, fetch_all)",
    "the other dialect's shape",
];

/// How a breakdown query is fetched.
#[derive(Clone, Copy)]
enum Fetch {
    One,
    All,
}

/// The SQL and fetch of each [`BREAKDOWN`] variant, in its order: built once, so that
/// no call (nor a profiled loop) formats SQL.
fn breakdown_queries(backend: Backend) -> Vec<(String, Fetch)> {
    let p = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "\"calista\".",
    };
    // calista's two shapes (calista-core/src/backend/): one row with a count, fetched as
    // one row, on SQLite; up to two rows, all fetched, on PostgreSQL.
    let one_row = (
        format!(
            "SELECT v.n, v.version_num, h.revision, h.finished, h.chain \
             FROM (SELECT count(*) AS n, min(version_num) AS version_num FROM {p}alembic_version) AS v \
             LEFT JOIN {p}schema_history AS h ON h.id = (SELECT max(id) FROM {p}schema_history)"
        ),
        Fetch::One,
    );
    let two_rows = (
        format!(
            "SELECT 1, v.version_num, h.revision, h.finished, h.chain FROM {p}alembic_version AS v \
             LEFT JOIN (SELECT revision, finished, chain FROM {p}schema_history ORDER BY id DESC LIMIT 1) AS h \
             ON 1 = 1 LIMIT 2"
        ),
        Fetch::All,
    );
    let (calista, other) = match backend {
        Backend::Sqlite => (one_row, two_rows),
        Backend::Postgres => (two_rows, one_row),
    };
    let floor = format!("SELECT version_num FROM {p}alembic_version");
    vec![
        (floor.clone(), Fetch::One),
        (floor, Fetch::All),
        calista,
        (
            format!(
                "SELECT revision, finished, chain FROM {p}schema_history ORDER BY id DESC LIMIT 1"
            ),
            Fetch::One,
        ),
        (
            format!(
                "SELECT v.version_num, h.revision, h.finished, h.chain FROM {p}alembic_version AS v \
                 LEFT JOIN (SELECT revision, finished, chain FROM {p}schema_history ORDER BY id DESC LIMIT 1) AS h \
                 ON 1 = 1 LIMIT 2"
            ),
            Fetch::All,
        ),
        other,
    ]
}

async fn breakdown_call(query: &(String, Fetch), p: &mut Prepared) -> Result<Duration> {
    let (text, fetch) = (sqlx::AssertSqlSafe(query.0.as_str()), query.1);
    let started = Instant::now();
    if let Some(conn) = p.floor_pg.as_mut() {
        match fetch {
            Fetch::One => drop(sqlx::query(text).fetch_optional(conn).await?),
            Fetch::All => drop(sqlx::query(text).fetch_all(conn).await?),
        }
    } else if let Some(conn) = p.floor_sqlite.as_mut() {
        match fetch {
            Fetch::One => drop(sqlx::query(text).fetch_optional(conn).await?),
            Fetch::All => drop(sqlx::query(text).fetch_all(conn).await?),
        }
    }
    Ok(started.elapsed())
}

/// Medians per variant of [`BREAKDOWN`], each the median of `sessions` session medians.
pub(crate) async fn breakdown(
    backend: Backend,
    sets: &Sets,
    calista_set: &calista::Migrations,
    protocol: Protocol,
) -> Result<Vec<Duration>> {
    let dbs = databases(backend, sets, calista_set).await?;
    let queries = breakdown_queries(backend);
    let (medians, _) = run_sessions(
        backend,
        &dbs,
        sets,
        BREAKDOWN.len(),
        protocol,
        async |which, p| breakdown_call(&queries[which], p).await,
    )
    .await;
    for scratch in [dbs.calista, dbs.sqlx, dbs.refinery] {
        scratch.drop_now().await;
    }
    Ok(medians?.iter().map(Samples::median).collect())
}

/// For profilers: `calls` calls of one check in a loop, after the set-up, in a function of
/// its own (`callgrind --toggle-collect='*profiled_loop*'` measures the loop alone).
/// `which` is `floor`, `sql` (calista's query through sqlx, as calista sends it),
/// `alternative` (the other dialect's shape of it), `check` or `ensure`. Returns the mean
/// time per call.
pub(crate) async fn profile(
    backend: Backend,
    sets: &Sets,
    calista_set: &calista::Migrations,
    which: &str,
    calls: usize,
) -> Result<Duration> {
    let dbs = databases(backend, sets, calista_set).await?;
    let mut prepared = connect(backend, &dbs, sets, 0).await?;
    let variant = match which {
        "floor" => Variant::Breakdown(0),
        "sql" => Variant::Breakdown(2),
        "alternative" => Variant::Breakdown(5),
        "check" => Variant::Check(1),
        "ensure" => Variant::Check(2),
        other => {
            return Err(format!(
                "--profile takes floor, sql, alternative, check or ensure, not {other}"
            )
            .into());
        }
    };
    let queries = breakdown_queries(backend);
    for _ in 0..100 {
        variant.call(&queries, &mut prepared, calista_set).await?;
    }
    let elapsed = profiled_loop(variant, &queries, &mut prepared, calista_set, calls).await?;
    disconnect(prepared).await;
    for scratch in [dbs.calista, dbs.sqlx, dbs.refinery] {
        scratch.drop_now().await;
    }
    Ok(elapsed / u32::try_from(calls.max(1))?)
}

#[derive(Clone, Copy)]
enum Variant {
    Breakdown(usize),
    Check(usize),
}

impl Variant {
    async fn call(
        self,
        queries: &[(String, Fetch)],
        p: &mut Prepared,
        calista_set: &calista::Migrations,
    ) -> Result<Duration> {
        match self {
            Self::Breakdown(k) => breakdown_call(&queries[k], p).await,
            Self::Check(k) => call(k, p, calista_set).await,
        }
    }
}

#[inline(never)]
async fn profiled_loop(
    variant: Variant,
    queries: &[(String, Fetch)],
    p: &mut Prepared,
    calista_set: &calista::Migrations,
    calls: usize,
) -> Result<Duration> {
    let started = Instant::now();
    for _ in 0..calls {
        variant.call(queries, p, calista_set).await?;
    }
    Ok(started.elapsed())
}
