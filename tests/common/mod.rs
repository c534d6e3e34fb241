//! Test support: scratch PostgreSQL databases and SQLite files. The program's tests
//! (`calista-cli/tests`) include this module by path, so both packages share one copy.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// Where tests find PostgreSQL when `CALISTA_TEST_PG_URL` is not set: the library's.
pub use calista::testing::DEFAULT_PG_URL;

/// The URL of the server's maintenance database, as the library's test databases find it:
/// the crate's own variable, else `CALISTA_TEST_PG_URL`, else the default.
pub fn pg_admin_url() -> String {
    match calista::testing::TestProject::of_running_crate().server() {
        Ok(server) => server.expose_secret().to_owned(),
        Err(e) => panic!("{e}"),
    }
}

/// `url` with its database name replaced, as the library's URLs do it.
pub fn with_database(url: &str, database: &str) -> String {
    match calista::url::DatabaseUrl::parse(url, std::path::Path::new("/")) {
        Ok(calista::url::DatabaseUrl::Postgres(server)) => {
            server.with_database(database).expose_secret().to_owned()
        }
        _ => panic!("not a PostgreSQL URL: {url}"),
    }
}

/// A name no other test (or test process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
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
        as_admin(&format!("CREATE DATABASE {name}")).await;
        Self {
            url: with_database(&pg_admin_url(), &name),
            name,
        }
    }

    /// A new connection to it.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to scratch database")
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = apart(async move {
            let mut admin = PgConnection::connect(&pg_admin_url()).await.ok()?;
            admin.execute(sqlx::AssertSqlSafe(drop)).await.ok()
        });
        if dropped.is_none() {
            eprintln!("note: could not drop scratch database {}", self.name);
        }
    }
}

/// Runs one statement on the server's maintenance database, or fails the test.
async fn as_admin(sql: &str) {
    let mut admin = pg_admin().await;
    admin
        .execute(sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    admin.close().await.ok();
}

/// Runs `work` to its end on a thread and runtime of its own: a `Drop` may run inside a
/// runtime or outside one.
fn apart<T: Send + 'static>(
    work: impl std::future::Future<Output = Option<T>> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(work)
    })
    .join()
    .ok()
    .flatten()
}

/// A scratch database of either backend, for tests that run on both.
pub enum TestDb {
    /// A SQLite file in a temporary folder.
    Sqlite {
        dir: tempfile::TempDir,
        file: std::path::PathBuf,
    },
    /// A scratch PostgreSQL database.
    Postgres(ScratchPg),
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("app.db");
        Self::Sqlite { dir, file }
    }

    pub async fn postgres() -> Self {
        Self::Postgres(ScratchPg::new().await)
    }

    /// The URL in the form users write.
    pub fn url_text(&self) -> String {
        match self {
            Self::Sqlite { file, .. } => format!("sqlite:///{}", file.display()),
            Self::Postgres(pg) => pg.url.clone(),
        }
    }

    pub fn url(&self) -> calista::url::DatabaseUrl {
        calista::url::DatabaseUrl::parse(&self.url_text(), std::path::Path::new("/"))
            .expect("test URL parses")
    }

    /// A folder for files of this test (backups, migration sets).
    pub fn scratch_dir(&self) -> std::path::PathBuf {
        match self {
            Self::Sqlite { dir, .. } => dir.path().to_owned(),
            Self::Postgres(pg) => {
                let dir = std::env::temp_dir().join(&pg.name);
                std::fs::create_dir_all(&dir).expect("scratch dir");
                dir
            }
        }
    }

    /// A handle with calista's tables in schema `calista`, where the `calista` program
    /// keeps them, so that tests of the library and of the program read the same state.
    pub fn open(&self) -> calista::Database {
        self.open_with(in_calista())
    }

    pub fn open_with(&self, options: calista::DatabaseOptions) -> calista::Database {
        calista::Database::connect(&self.url(), options).expect("database handle")
    }
}

/// Options with calista's tables in schema `calista`, as the `calista` program has them.
pub fn in_calista() -> calista::DatabaseOptions {
    calista::DatabaseOptions {
        schema: Some(calista::SchemaName::calista()),
        ..calista::DatabaseOptions::default()
    }
}

/// Runs one statement that returns one integer.
pub async fn scalar(db: &calista::Database, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.pool() {
        calista::Pool::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
        calista::Pool::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
    }
    .expect("scalar query")
}

/// Runs SQL, returning the database's error message if it fails.
pub async fn exec(db: &calista::Database, sql: &str) -> Result<(), String> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    let done = match db.pool() {
        calista::Pool::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        calista::Pool::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    };
    done.map_err(|e| e.to_string())
}

/// The revision in alembic_version, or None, as the library reads it.
pub async fn version(db: &calista::Database) -> Option<String> {
    db.current().await.expect("version").into_iter().next()
}

/// A folder of migration files written by a test.
pub struct MigrationSet {
    pub dir: tempfile::TempDir,
}

impl MigrationSet {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).expect("write migration");
        }
        Self { dir }
    }

    pub fn write(&self, name: &str, body: &str) {
        std::fs::write(self.dir.path().join(name), body).expect("write migration");
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove migration");
    }

    pub fn load(&self) -> calista::Migrations {
        calista::Migrations::from_dir(self.dir.path()).expect("valid migration set")
    }
}

/// A simple reversible migration creating table `name`.
pub fn create_table(name: &str) -> String {
    format!(
        "-- calista:up\nCREATE TABLE {name} (id INTEGER PRIMARY KEY, note TEXT);\n-- calista:down\nDROP TABLE {name};\n"
    )
}

/// A policy for development: downgrades allowed, no backups.
pub fn development() -> calista::Policy {
    calista::Policy {
        downgrades: calista::Downgrades::Allowed,
        backup: calista::backup::BackupPolicy::Disabled {
            reason: "development".into(),
        },
        ..calista::Policy::default()
    }
}

/// Declares one async test per backend: `both_backends!(async fn name(db: TestDb) { ... });`
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = TestDb::sqlite();
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = TestDb::postgres().await;
                    $body
                }
            )*
        }
    };
}

/// Holds the migration lock from a separate connection, as a running upgrade does, until
/// dropped. On PostgreSQL the connection carries `application_name`.
pub async fn hold_migration_lock(
    db: &TestDb,
    application_name: &str,
) -> Box<dyn std::any::Any + Send> {
    match db {
        TestDb::Postgres(pg) => {
            let separator = if pg.url.contains('?') { '&' } else { '?' };
            let url = format!("{}{separator}application_name={application_name}", pg.url);
            let mut conn = PgConnection::connect(&url).await.expect("connect");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(calista::postgres_lock_key(&calista::SchemaName::calista()))
                .execute(&mut conn)
                .await
                .expect("advisory lock");
            Box::new(conn)
        }
        TestDb::Sqlite { file, .. } => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                .await
                .expect("connect");
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .expect("write lock");
            Box::new(conn)
        }
    }
}

/// Runs a script the way a DBA would, stopping at the first error.
pub fn apply_by_hand(db: &TestDb, script: &str) {
    let file = db.scratch_dir().join("upgrade.sql");
    std::fs::write(&file, script).unwrap();
    let output = match db {
        TestDb::Postgres(pg) => std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &pg.url, "-f"])
            .arg(&file)
            .output()
            .unwrap(),
        TestDb::Sqlite { file: database, .. } => {
            let mut child = std::process::Command::new("sqlite3")
                .arg("-bail")
                .arg(database)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    assert!(
        output.status.success(),
        "the script failed: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The messages of a `.stderr`: each `error:` line with the lines that continue it, up to
/// the ` --> ` line that points at the call.
pub fn macro_messages(stderr: &str) -> Vec<String> {
    let mut messages = Vec::new();
    let mut current: Option<String> = None;
    for line in stderr.lines() {
        if let Some(message) = line.strip_prefix("error: ") {
            messages.extend(current.replace(message.to_owned()));
        } else if line.starts_with(" --> ") {
            messages.extend(current.take());
        } else if let Some(message) = current.as_mut() {
            message.push('\n');
            message.push_str(line);
        }
    }
    messages.extend(current);
    messages
}

/// An error and its causes, joined by ": ", as a program that shows the whole chain prints
/// it: each error says what happened once, and its cause is the next in the chain.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// A login role of the test server, with no privileges but those a test grants, dropped
/// (with everything granted to it in `database`) when the guard is.
pub struct LoginRole {
    /// Its name.
    pub name: String,
    database: String,
}

impl LoginRole {
    /// Creates the role; `grants` run in `database` (as the admin) and name it `{role}`.
    pub async fn new(database: &ScratchPg, grants: &str) -> Self {
        let name = unique_name("calista_role");
        as_admin(&format!("CREATE ROLE {name} LOGIN")).await;
        let mut conn = database.connect().await;
        conn.execute(sqlx::AssertSqlSafe(grants.replace("{role}", &name)))
            .await
            .expect("grant");
        Self {
            name,
            database: database.url.clone(),
        }
    }

    /// The URL of `database` as this role, with no password (the test server trusts
    /// local connections).
    pub fn url(&self, database: &ScratchPg) -> String {
        let url = &database.url;
        let start = url.find("://").map_or(0, |i| i + 3);
        let host_end = url[start..].find('/').map_or(url.len(), |i| start + i);
        let host_start = url[start..host_end]
            .rfind('@')
            .map_or(start, |i| start + i + 1);
        format!("{}{}@{}", &url[..start], self.name, &url[host_start..])
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        let (name, database) = (self.name.clone(), self.database.clone());
        // What was granted to it goes first: a role with privileges cannot be dropped.
        let dropped = apart(async move {
            let mut conn = PgConnection::connect(&database).await.ok()?;
            conn.execute(sqlx::AssertSqlSafe(format!("DROP OWNED BY {name}")))
                .await
                .ok()?;
            let mut admin = PgConnection::connect(&pg_admin_url()).await.ok()?;
            admin
                .execute(sqlx::AssertSqlSafe(format!("DROP ROLE {name}")))
                .await
                .ok()
        });
        if dropped.is_none() {
            eprintln!("note: could not drop the test role {}", self.name);
        }
    }
}

/// Runs ignored tests of this test binary in a child process, with `args` (a filter,
/// `--exact`, …) and set up by `configure` (its variables, its folder): whether they
/// passed, and all they printed.
pub fn run_ignored_tests(
    args: &[&str],
    configure: impl FnOnce(&mut std::process::Command),
) -> (bool, String) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(args).args(["--ignored", "--nocapture"]);
    configure(&mut command);
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A small deterministic generator for tests that pick random moments; print its seed with
/// every failure, so a failing run can be replayed.
pub struct Lcg(pub u64);

impl Lcg {
    /// Seeded from the clock.
    pub fn from_clock() -> Self {
        Self(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        )
    }

    /// The next value (31 bits).
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// The program at `binary` (a test's `env!("CARGO_BIN_EXE_calista")`) run in `dir`, with its
/// output piped, no colour, and none of the test environment's `CALISTA_` variables but the
/// test server's URL.
pub fn program(binary: &str, dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") && key != "CALISTA_TEST_PG_URL" {
            command.env_remove(key);
        }
    }
    command
}

/// What a finished program printed: its stdout, then its stderr.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The one file in `dir` (the first listed, if there are more).
pub fn only_file_in(dir: impl AsRef<std::path::Path>) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .expect("a file in the folder")
        .unwrap()
        .path()
}

/// A small file system of its own (a tmpfs) mounted on a new folder, and unmounted when
/// dropped: a folder whose disk really fills up, or is really read-only.
///
/// Mounting needs root (CAP_SYS_ADMIN), as the tests run in CI; elsewhere these tests fail
/// saying so, rather than pass without having run. Nothing without root gives a real full
/// disk: a file-size limit fails with EFBIG, not ENOSPC, and `/dev/full` is not a folder.
#[cfg(target_os = "linux")]
pub struct SmallDisk {
    point: std::path::PathBuf,
    _parent: tempfile::TempDir,
}

#[cfg(target_os = "linux")]
impl SmallDisk {
    /// A disk of `kib` KiB; `read_only` mounts it so.
    pub fn mount(kib: u32, read_only: bool) -> Self {
        Self::mount_with(kib, if read_only { "ro," } else { "" })
    }

    /// A disk of `kib` KiB mounted with `options` too (each followed by a comma).
    pub fn mount_with(kib: u32, options: &str) -> Self {
        let parent = tempfile::tempdir().unwrap();
        let point = parent.path().join("disk");
        std::fs::create_dir(&point).unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("{options}size={kib}k,mode=0755"),
            ])
            .arg("calista-test")
            .arg(&point)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Self {
                point,
                _parent: parent,
            },
            other => panic!(
                "this test needs a disk that really fills up: it mounts a {kib} KiB tmpfs, which needs root \
                 (CAP_SYS_ADMIN). Run the tests as root (or in a container allowed to mount); mount said: {other:?}"
            ),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.point
    }
}

#[cfg(target_os = "linux")]
impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.point)
            .output();
    }
}
