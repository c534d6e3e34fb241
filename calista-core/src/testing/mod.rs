//! A fresh database per test, at head (or a given revision) of the application's
//! migrations, on PostgreSQL or SQLite; dropped when the test passes, kept (and its URL
//! printed) when it panics.
//!
//! ```no_run
//! # async fn orders_start_empty() -> Result<(), Box<dyn std::error::Error>> {
//! use calista_core::sqlx;
//! use calista_core::testing::TestDatabase;
//!
//! // In an application: `static MIGRATIONS: calista::Migrations = calista::migrations!();`
//! let migrations = calista_core::Migrations::from_dir("migrations")?;
//! let test_db = TestDatabase::sqlite(&migrations).await?; // or ::postgres(&migrations)
//! let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
//!     .fetch_one(test_db.any_pool()) // the same SQL on either backend
//!     .await?;
//! assert_eq!(orders, 0);
//! # Ok(()) }
//! ```
//!
//! # Names
//!
//! Every database and file made here starts with its project's prefix ([`TestProject`]:
//! by default the name of the crate whose tests run, `my-app` giving `my_app`), so that
//! projects sharing a server and a temporary folder never use, nor clean up, each other's.
//! Below, `<prefix>` is that prefix.
//!
//! # Constant time
//!
//! The migrations run once per set, not once per test: the first test builds a *template*
//! keyed by the set's chained digest at the target revision (and the schema name) — a
//! PostgreSQL database `<prefix>_tpl_<key>`, a SQLite file `<prefix>_tpl_<key>.db` (and its
//! lock file, `.lock`) in the temporary folder. Editing, adding or removing a migration
//! changes the key, so a stale template is never used. The template is built under a lock
//! that holds across threads, test binaries and processes (a PostgreSQL advisory lock on
//! the server, an exclusive lock on the file beside the SQLite template), under another
//! name, renamed when complete, so a build that was interrupted is never used.
//!
//! Copying a template still costs time in proportion to its tables and indexes, so a
//! background thread keeps [`DEFAULT_SPARES`] complete copies of each template in use
//! ([`SPARES_VARIABLE`] sets how many; `0` turns them off): databases
//! `<prefix>_spare_<key>_…` made with `CREATE DATABASE … TEMPLATE`, or files
//! `<prefix>_spare_<key>_<n>.db` (with a lock file `<prefix>_spare_<key>_lock`). A test
//! *claims* one by renaming it to its own name, `<prefix>_test_…` — one catalog update, or
//! one file rename, whatever the schema; a rename succeeds for one claimant only, so tests
//! of several threads and test binaries never share one. A test that finds no spare copies
//! the template itself.
//!
//! # What is left behind
//!
//! A passing test's PostgreSQL database is renamed `<prefix>_trash_…` at once and dropped
//! behind it; its SQLite file is deleted. After a run, what stays is bounded whatever the
//! number of runs: per template in use, the template and its spares (which serve the next
//! run), and the `<prefix>_trash_…` databases the run ended too soon to drop. The first
//! test of the next run of the same project drops that trash, the spares of templates
//! unused for an hour and the templates unused for a week (a template's last use is
//! recorded in a comment on it, or in the file's modification time). A failed test's
//! database is kept, under its own name, until you drop it.
//!
//! PostgreSQL is reached through the project's variable (`MY_APP_TEST_PG_URL`), else
//! [`FALLBACK_PG_URL_VARIABLE`], else [`DEFAULT_PG_URL`] ([`TestProject::server`]), or the
//! URL given to [`TestDatabase::postgres_on`]; the role needs `CREATEDB`.

mod project;
pub(crate) mod run;

pub use project::{DEFAULT_PG_URL, FALLBACK_PG_URL_VARIABLE, TestProject};
pub use run::{Backend, TestOutcome};

use std::path::{Path, PathBuf};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, AssertSqlSafe, Connection, PgConnection};

use crate::backend::postgres::describe;
use crate::backup::BackupPolicy;
use crate::database::{Database, DatabaseOptions, SchemaName};
use crate::engine::migrator::{Migrator, Policy};
use crate::engine::plan::UpgradeTarget;
use crate::error::Error;
use crate::migration::{Checksum, Migrations};
use crate::naming::Revision;
use crate::scratch;
use crate::url::{DatabaseUrl, PostgresUrl, SqliteTarget};

mod spare_files;
mod spares;
pub use spares::{DEFAULT_SPARES, SPARES_VARIABLE};

/// What a test database is made from.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// The revision to stop at; `None`: head.
    pub revision: Option<Revision>,
    /// Connection settings (the PostgreSQL schema, timeouts, pool size).
    pub database: DatabaseOptions,
    /// Whose databases: their names' prefix and the test server's variable (default: the
    /// crate whose tests run).
    pub project: TestProject,
}

/// A database made for one test. Dropping it drops the database, unless the thread is
/// panicking (a failed assertion): then it is kept, and its URL printed on stderr.
#[derive(Debug)]
pub struct TestDatabase {
    db: Database,
    /// The same database through sqlx's `Any` driver, connected when first used.
    any: AnyPool,
    scratch: Scratch,
    template: String,
}

#[derive(Debug)]
enum Scratch {
    Postgres {
        server: PostgresUrl,
        project: TestProject,
        name: String,
    },
    Sqlite {
        file: PathBuf,
    },
}

impl TestDatabase {
    /// A PostgreSQL database at head, on the test server of the crate whose tests run
    /// ([`TestProject::server`]: `MYAPP_TEST_PG_URL`, else `CALISTA_TEST_PG_URL`, else
    /// the default).
    pub async fn postgres(migrations: &Migrations) -> Result<Self, Error> {
        let options = TestOptions::default();
        Self::postgres_on(migrations, &options.project.server()?, options).await
    }

    /// A PostgreSQL database on `server`, made as `options` say.
    pub async fn postgres_on(
        migrations: &Migrations,
        server: &PostgresUrl,
        options: TestOptions,
    ) -> Result<Self, Error> {
        let project = &options.project;
        let key = template_key(migrations, &options)?;
        let template = project.template(&key);
        let name = scratch::unique_name(&project.test_name());
        // A spare exists only once its template does: claiming one needs no other check.
        if !spares::claim(server, project, &key, &name).await {
            let mut admin = scratch::admin(server).await?;
            ensure_postgres_template(&mut admin, server, migrations, &options, &template).await?;
            scratch::create_database(&mut admin, &name, Some(&template)).await?;
            let _ = admin.close().await;
        }
        spares::refill(server, project, &template, &key);
        let url = server.with_database(&name);
        let any = any_pool(&any_postgres_url(&url, options.database.schema.as_ref()))?;
        let scratch = Scratch::Postgres {
            server: server.clone(),
            project: project.clone(),
            name,
        };
        let db = Database::connect(&DatabaseUrl::Postgres(url), options.database)?;
        Ok(Self {
            db,
            any,
            scratch,
            template,
        })
    }

    /// A SQLite file at head, in the temporary folder.
    pub async fn sqlite(migrations: &Migrations) -> Result<Self, Error> {
        Self::sqlite_with(migrations, TestOptions::default()).await
    }

    /// A SQLite file made as `options` say.
    pub async fn sqlite_with(migrations: &Migrations, options: TestOptions) -> Result<Self, Error> {
        let project = &options.project;
        let key = template_key(migrations, &options)?;
        let template = std::env::temp_dir().join(format!("{}.db", project.template(&key)));
        let file = scratch::sqlite_path(&project.test_name());
        // A spare exists only once its template does: claiming one needs no other check.
        if !spare_files::claim(project, &key, &file) {
            ensure_sqlite_template(migrations, &options, &template).await?;
            std::fs::copy(&template, &file).map_err(|source| Error::ScratchFile {
                doing: format!(
                    "copy the template {} to {}",
                    template.display(),
                    file.display()
                ),
                source,
            })?;
        }
        spare_files::refill(project, &template, &key);
        let any = any_pool(&any_sqlite_url(&file))?;
        let db = Database::connect(
            &DatabaseUrl::Sqlite(SqliteTarget::File(file.clone())),
            options.database,
        )?;
        Ok(Self {
            db,
            any,
            scratch: Scratch::Sqlite { file },
            template: template.display().to_string(),
        })
    }

    /// The database: its typed pool (`database().pool()`, a [`crate::Pool`]) for the
    /// test's queries, and what the migrator takes.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The same database through sqlx's `Any` driver, so that one SQL text runs on either
    /// backend without a `match` per query:
    ///
    /// ```no_run
    /// # async fn t(db: &calista_core::testing::TestDatabase) -> Result<(), calista_core::sqlx::Error> {
    /// use calista_core::sqlx;
    ///
    /// sqlx::query("INSERT INTO orders (customer) VALUES ($1)").bind("ada").execute(db.any_pool()).await?;
    /// let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(db.any_pool()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// `$1`, `$2`, … bind on both backends (in order of appearance on SQLite). `Any` decodes
    /// booleans, integers, floats, text and bytes; other types (timestamps, UUIDs, numeric)
    /// need the typed pool, or a cast in the SQL. On PostgreSQL its sessions have the
    /// schema first on `search_path`, as the typed pool's do.
    pub fn any_pool(&self) -> &AnyPool {
        &self.any
    }

    /// Its URL, password redacted.
    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// What it was made from: the PostgreSQL template database's name, or the SQLite
    /// template file's path.
    pub fn template(&self) -> &str {
        &self.template
    }
}

impl Drop for TestDatabase {
    #[allow(clippy::print_stderr)] // A test's failure output is where a kept database is named.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "calista: the test failed; its database is kept: {}",
                self.db.url()
            );
            return;
        }
        match &self.scratch {
            Scratch::Sqlite { file } => scratch::remove_sqlite(file),
            Scratch::Postgres {
                server,
                project,
                name,
            } => {
                let (server, project, name) = (server.clone(), project.clone(), name.clone());
                // Drop may run inside a runtime or outside one: a thread of its own runs the
                // async work. Both ways end the test's pool connections first.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        if spares::discard(&server, &project, &name).await {
                            return Some(());
                        }
                        let mut admin = scratch::admin(&server).await.ok()?;
                        scratch::drop_database(&mut admin, &name).await.ok()
                    })
                })
                .join();
                if !matches!(dropped, Ok(Some(()))) {
                    tracing::warn!(url = %self.db.url(), "could not drop the test database");
                }
            }
        }
    }
}

/// A pool through sqlx's `Any` driver on `url`, connected when first used.
fn any_pool(url: &str) -> Result<AnyPool, Error> {
    sqlx::any::install_default_drivers();
    let options: AnyConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| Error::AnyUrl(e.into()))?;
    Ok(AnyPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(options))
}

/// The test database's URL for the `Any` driver: with the schema first on `search_path`,
/// as the typed pool has it.
fn any_postgres_url(url: &PostgresUrl, schema: Option<&SchemaName>) -> String {
    let url = url.expose_secret();
    let Some(schema) = schema else {
        return url.to_owned();
    };
    let search_path = encode(&format!("\"{schema}\", public"));
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options%5Bsearch_path%5D={search_path}")
}

/// A SQLite file's URL, as sqlx reads it.
fn any_sqlite_url(file: &Path) -> String {
    format!("sqlite://{}", encode(&file.to_string_lossy()))
}

/// `%XX` for everything but unreserved characters and `/`, which a path keeps.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The template's name part: the chained digest at the target revision, with the schema.
fn template_key(migrations: &Migrations, options: &TestOptions) -> Result<String, Error> {
    let index = match options.revision {
        None => migrations.len().checked_sub(1),
        Some(revision) => Some(
            migrations
                .position(revision)
                .ok_or(Error::UnknownRevision(revision))?,
        ),
    };
    let chain = index
        .and_then(|i| migrations.chain_at(i))
        .map_or_else(String::new, |c| c.to_string());
    let digest = Checksum::of_file(
        format!(
            "{chain}/{}",
            options
                .database
                .schema
                .as_ref()
                .map_or("", SchemaName::as_str)
        )
        .as_bytes(),
    );
    Ok(digest.to_string()[..24].to_owned())
}

fn policy() -> Policy {
    Policy {
        backup: BackupPolicy::Disabled {
            reason: "a test template".to_owned(),
        },
        ..Policy::default()
    }
}

/// Upgrades the template being built at `url` to the target revision.
async fn upgrade(
    url: &DatabaseUrl,
    migrations: &Migrations,
    options: &TestOptions,
) -> Result<(), Error> {
    let db = Database::connect(url, options.database.clone())?;
    let target = options
        .revision
        .map_or(UpgradeTarget::Head, UpgradeTarget::Revision);
    let upgraded = Migrator::new(migrations, &db)
        .with_policy(policy())
        .upgrade(target)
        .await;
    db.close().await;
    upgraded.map(drop)
}

/// Builds the PostgreSQL template unless it exists, under an advisory lock on the server.
async fn ensure_postgres_template(
    admin: &mut PgConnection,
    server: &PostgresUrl,
    migrations: &Migrations,
    options: &TestOptions,
    template: &str,
) -> Result<(), Error> {
    let key = crate::backend::postgres::lock_key(template);
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *admin)
        .await
        .map_err(|e| describe(e, "taking the test template lock"))?;
    let built = build_postgres_template(admin, server, migrations, options, template).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *admin)
        .await
        .map_err(|e| describe(e, "releasing the test template lock"));
    built.and(unlocked.map(drop))
}

async fn build_postgres_template(
    admin: &mut PgConnection,
    server: &PostgresUrl,
    migrations: &Migrations,
    options: &TestOptions,
    template: &str,
) -> Result<(), Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template)
            .fetch_one(&mut *admin)
            .await
            .map_err(|e| describe(e, "looking for the test template"))?;
    if exists {
        return Ok(());
    }
    // Built under another name, renamed when complete: an interrupted build is never cloned.
    let building = format!("{template}_building");
    scratch::drop_database(admin, &building).await?;
    scratch::create_database(admin, &building, None).await?;
    upgrade(
        &DatabaseUrl::Postgres(server.with_database(&building)),
        migrations,
        options,
    )
    .await?;
    // The template's connections are closed; the server may not have seen them go yet.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&building)
        .execute(&mut *admin)
        .await
        .map_err(|e| describe(e, "closing the test template's connections"))?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
    )))
    .execute(&mut *admin)
    .await
    .map_err(|e| describe(e, "renaming the test template"))?;
    spares::mark_used(admin, template).await
}

/// Builds the SQLite template file unless it exists, under a lock on a file beside it.
async fn ensure_sqlite_template(
    migrations: &Migrations,
    options: &TestOptions,
    template: &Path,
) -> Result<(), Error> {
    if template.exists() {
        return Ok(());
    }
    let setup = |what: &str, source: std::io::Error| Error::ScratchFile {
        doing: format!("{what} for the test template {}", template.display()),
        source,
    };
    let lock_path = template.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| setup("create the lock file", e))?;
    // Polled, so that a test waiting for another's build never blocks a runtime thread
    // the build itself may need.
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(setup("lock the lock file", e)),
        }
    }
    let built = async {
        if template.exists() {
            return Ok(());
        }
        let building = template.with_extension("building");
        scratch::remove_sqlite(&building);
        upgrade(
            &DatabaseUrl::Sqlite(SqliteTarget::File(building.clone())),
            migrations,
            options,
        )
        .await?;
        // An empty set writes nothing; the template is then an empty file.
        if !building.exists() {
            std::fs::File::create(&building).map_err(|e| setup("create", e))?;
        }
        std::fs::rename(&building, template).map_err(|e| setup("rename the built file", e))
    }
    .await;
    let _ = lock.unlock();
    built
}
