//! One database URL names one database for an application's sqlx pool and for its
//! `myapp db` commands: each SQLite form in `MYAPP_DB_URL` is given to the application's
//! own `SqlitePool::connect(url)` and to `myapp db upgrade` and `myapp db check`, in a
//! child process of this binary that runs in a folder of its own (relative paths are
//! relative to it), and they must meet in one file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use calista::cli::{ConfigArgs, Db, DbArgs};
use calista::sqlx::{self, SqlitePool};
use clap::{Parser, Subcommand};
use common::run_ignored_tests;

static MIGRATIONS: calista::Migrations = calista::migrations!("../migrations");

/// The variable the child's application reads, as an application's own code would.
const URL_VARIABLE: &str = "MYAPP_DB_URL";

/// The application's command line: the library's `db` and `config` groups.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Subcommand)]
enum AppCommand {
    Db(DbArgs),
    Config(ConfigArgs),
}

async fn myapp_db(command: &str) -> ExitCode {
    let AppCommand::Db(args) = Cli::try_parse_from(["myapp", "db", command])
        .unwrap()
        .command
    else {
        unreachable!("a db command")
    };
    Db::new(&MIGRATIONS, "myapp").run(args).await
}

/// The application's `myapp config show`. Run by the test below.
#[test]
#[ignore = "run by myapp_config_show_prints_the_url_the_db_commands_use_and_its_source"]
fn child_config_show() {
    let AppCommand::Config(args) = Cli::try_parse_from(["myapp", "config", "show"])
        .unwrap()
        .command
    else {
        unreachable!("a config command")
    };
    let code = Db::new(&MIGRATIONS, "myapp").run_config(args.command, &args.options);
    assert_eq!(code, ExitCode::SUCCESS);
}

/// `myapp config show` is the library's too: it prints the URL the `db` commands use and
/// the application's variable it came from, never the password.
#[test]
fn myapp_config_show_prints_the_url_the_db_commands_use_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = run_ignored_tests(&["child_config_show", "--exact"], |command| {
        command
            .current_dir(dir.path())
            .env(URL_VARIABLE, "postgresql://ada:hunter2@db.example/shop")
            .env("NO_COLOR", "1");
    });
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|line| line.contains("db.example/shop"))
        .unwrap_or_else(|| panic!("no URL in: {text}"));
    assert!(line.contains(URL_VARIABLE), "{line}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// The application: `myapp db upgrade` on `MYAPP_DB_URL`, then its own pool on the same
/// variable sees the tables, and `myapp db check` finds the schema up to date. Run by the
/// tests below, each time in a folder of its own.
#[tokio::test]
#[ignore = "run by each_sqlite_url_opens_one_file_for_the_applications_pool_and_its_db_commands"]
async fn child_application_on_its_url() {
    let Ok(url) = std::env::var(URL_VARIABLE) else {
        return;
    };
    assert_eq!(myapp_db("upgrade").await, ExitCode::SUCCESS, "{url}");
    let pool = SqlitePool::connect(&url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{url}: the application's pool sees no upgrade: {e}"));
    assert_eq!(events, 0);
    assert_eq!(myapp_db("check").await, ExitCode::SUCCESS, "{url}");
    pool.close().await;
}

/// Runs the child application in `dir` with `MYAPP_DB_URL=url`.
fn run_application(dir: &Path, url: &str) -> (bool, String) {
    run_ignored_tests(&["child_application_on_its_url", "--exact"], |command| {
        command
            .current_dir(dir)
            .env(URL_VARIABLE, url)
            .env("NO_COLOR", "1");
    })
}

/// The SQLite files in `dir` and its folders.
fn database_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(database_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "db") {
            files.push(path);
        }
    }
    files
}

#[test]
fn each_sqlite_url_opens_one_file_for_the_applications_pool_and_its_db_commands() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    // (URL, the file both must open relative to the folder, whether it exists before: sqlx
    // opens only an existing file unless the URL says `mode=rwc`)
    let forms = [
        ("sqlite://second.db".to_owned(), "second.db", true),
        ("sqlite:second.db".to_owned(), "second.db", true),
        ("sqlite://second.db?mode=rwc".to_owned(), "second.db", false),
        (
            "sqlite://./data/second.db?mode=rwc".to_owned(),
            "data/second.db",
            false,
        ),
        // Three slashes: absolute, as sqlx reads it (the calista program reads it relative).
        (format!("sqlite://{root}/absolute.db"), "absolute.db", true),
        (
            format!("sqlite:{root}/short.db?mode=rwc&cache=shared"),
            "short.db",
            false,
        ),
    ];
    for (url, file, exists_before) in &forms {
        let folder = tempfile::tempdir_in(dir.path()).unwrap();
        std::fs::create_dir(folder.path().join("data")).unwrap();
        // An absolute URL names a file under `dir`; a relative one, under the child's folder.
        let base = if url.contains(root.as_str()) {
            dir.path()
        } else {
            folder.path()
        };
        let expected = base.join(file);
        if *exists_before {
            std::fs::File::create(&expected).unwrap();
        }
        let (passed, output) = run_application(folder.path(), url);
        assert!(passed, "{url}:\n{output}");
        let mut files = database_files(folder.path());
        if base == dir.path() {
            files.push(expected.clone());
        }
        assert_eq!(
            files,
            std::slice::from_ref(&expected),
            "{url}: one file, the same for both"
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let version: String = runtime.block_on(async {
            let pool = SqlitePool::connect(&format!("sqlite://{}", expected.display()))
                .await
                .unwrap();
            let version = sqlx::query_scalar("SELECT version_num FROM alembic_version")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            version
        });
        assert_eq!(version, "20250826_1045", "{url}");
        let _ = std::fs::remove_file(&expected);
    }
}

#[test]
fn a_url_that_sqlx_and_sqlalchemy_read_differently_is_refused_with_both_readings() {
    let dir = tempfile::tempdir().unwrap();
    let (passed, output) = run_application(dir.path(), "sqlite:///:memory:");
    assert!(!passed, "{output}");
    assert!(output.contains("a file named `:memory:`"), "{output}");
    assert!(output.contains("an in-memory database"), "{output}");
    assert!(output.contains("write sqlite::memory:"), "{output}");
    assert!(database_files(dir.path()).is_empty(), "{output}");
}

/// The application on PostgreSQL: `myapp db upgrade` puts the tables where its own pool on
/// the same URL finds them, with no search_path of its own, and `myapp db verify` names the
/// application's variable. Run by the test below.
#[tokio::test]
#[ignore = "run by myapp_db_on_postgres_puts_the_tables_where_the_applications_pool_looks"]
async fn child_application_on_postgres() {
    let Ok(url) = std::env::var(URL_VARIABLE) else {
        return;
    };
    assert_eq!(myapp_db("upgrade").await, ExitCode::SUCCESS, "{url}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{url}: the application's pool sees no upgrade: {e}"));
    assert_eq!(events, 0);
    pool.close().await;
    assert_eq!(myapp_db("check").await, ExitCode::SUCCESS, "{url}");
    // No server named: a usage error that names the application's own variable.
    assert_eq!(myapp_db("verify").await, ExitCode::from(2));
}

#[test]
fn myapp_db_on_postgres_puts_the_tables_where_the_applications_pool_looks() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pg = runtime.block_on(common::ScratchPg::new());
    let dir = tempfile::tempdir().unwrap();
    let (passed, output) =
        run_ignored_tests(&["child_application_on_postgres", "--exact"], |command| {
            command
                .current_dir(dir.path())
                .env(URL_VARIABLE, &pg.url)
                .env_remove("MYAPP_VERIFY_PG_URL")
                .env_remove("CALISTA_VERIFY_PG_URL")
                .env("NO_COLOR", "1");
        });
    assert!(passed, "{output}");
    assert!(output.contains("set MYAPP_VERIFY_PG_URL"), "{output}");
    assert!(!output.contains("CALISTA_VERIFY_PG_URL"), "{output}");
    drop(pg);
}
