//! The split between the library and the program, read from the dependency graph: a plain
//! `calista` dependency compiles none of the program's crates and makes no TLS choice (the
//! application's sqlx features decide it); `cli` adds the `db` group's; the program
//! (`calista-cli`) chooses TLS and is built on the library alone. Offline: `cargo tree`
//! reads the lock file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// What only the program compiles.
const PROGRAM_ONLY: &[&str] = &["tracing-subscriber", "ulid"];
/// What the `db` command group compiles.
const CLI: &[&str] = &["clap", "indicatif", "serde_json"];
/// A TLS implementation, chosen through sqlx's features.
const TLS: &[&str] = &[
    "rustls",
    "rustls-native-certs",
    "webpki-roots",
    "native-tls",
    "openssl",
];

/// The names of the packages in `package`'s graph of normal dependencies, with `args`.
fn graph(package: &str, args: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "--prefix", "none", "-e", "normal"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .args(["-p", package])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: BTreeSet<String> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        names.contains(package),
        "not a graph of {package}: {stdout}"
    );
    names
}

/// Those of `crates` in the graph.
fn present<'a>(names: &BTreeSet<String>, crates: &[&'a str]) -> Vec<&'a str> {
    crates
        .iter()
        .copied()
        .filter(|name| names.contains(*name))
        .collect()
}

/// Fails naming each of `crates` that is in the graph.
fn assert_absent(names: &BTreeSet<String>, crates: &[&str]) {
    let found = present(names, crates);
    assert!(found.is_empty(), "in the graph: {found:?}");
}

#[test]
fn a_plain_dependency_compiles_no_program_crates_and_chooses_no_tls() {
    let names = graph("calista", &[]);
    assert!(names.contains("sqlx"), "{names:?}");
    assert_absent(&names, PROGRAM_ONLY);
    assert_absent(&names, CLI);
    assert_absent(&names, TLS);
}

#[test]
fn the_cli_feature_adds_the_command_group_and_nothing_of_the_program() {
    let names = graph("calista", &["--features", "cli"]);
    assert_eq!(present(&names, CLI), CLI);
    assert_absent(&names, PROGRAM_ONLY);
    assert_absent(&names, TLS);
}

#[test]
fn the_program_chooses_rustls_and_is_built_on_the_library_alone() {
    let names = graph("calista-cli", &[]);
    assert_eq!(present(&names, PROGRAM_ONLY), PROGRAM_ONLY);
    assert!(names.contains("rustls-native-certs"), "{names:?}");
    let direct = graph("calista-cli", &["--depth", "1"]);
    assert!(direct.contains("calista"), "{direct:?}");
    assert!(!direct.contains("calista-core"), "{direct:?}");
}

/// A fresh application crate, written as the README's first example: `calista` as a plain
/// path dependency (no feature lines), one migration, and a `main` that hands its own
/// pools to `MIGRATIONS.upgrade(&pool)` and then queries its table through them.
const FRESH_MANIFEST: &str = r#"[package]
name = "fresh_app"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
calista = { path = "WORKSPACE" }
tokio = { version = "1", features = ["rt", "macros"] }

[workspace]
"#;

const FRESH_MIGRATION: &str = "-- Customers.

-- calista:up postgres
CREATE TABLE customers (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);
-- calista:up sqlite
CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);

-- calista:down
DROP TABLE customers;
";

const FRESH_MAIN: &str = r#"use calista::sqlx::{self, PgPool, SqlitePool};

static MIGRATIONS: calista::Migrations = calista::migrations!();

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pg = PgPool::connect(&std::env::var("FRESH_PG_URL")?).await?;
    MIGRATIONS.upgrade(&pg).await?;
    sqlx::query("INSERT INTO customers (name) VALUES ('ada')").execute(&pg).await?;
    let on_pg: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&pg).await?;

    let lite = SqlitePool::connect(&std::env::var("FRESH_SQLITE_URL")?).await?;
    MIGRATIONS.upgrade(&lite).await?;
    sqlx::query("INSERT INTO customers (name) VALUES ('ada')").execute(&lite).await?;
    let on_sqlite: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&lite).await?;

    println!("postgres {on_pg} sqlite {on_sqlite}");
    Ok(())
}
"#;

/// Writes the fresh crate into `dir`, pinned to the workspace's lock file so that it builds
/// offline with the same versions.
fn write_fresh_crate(dir: &Path) {
    let workspace = env!("CARGO_MANIFEST_DIR");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        FRESH_MANIFEST.replace("WORKSPACE", workspace),
    )
    .unwrap();
    std::fs::copy(
        Path::new(workspace).join("Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), FRESH_MAIN).unwrap();
    std::fs::write(
        dir.join("migrations/20250101_0900_create_customers.sql"),
        FRESH_MIGRATION,
    )
    .unwrap();
}

/// The done-when of a plain dependency: it compiles no clap or tracing-subscriber, and an
/// application's `MIGRATIONS.upgrade(&pool)` puts the tables where that same pool's queries
/// find them, on PostgreSQL (its `current_schema()`, with no search_path option) and
/// SQLite. The first run compiles the crate's dependencies once, into a folder of the
/// workspace's target that later runs reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_crate_upgrades_and_queries_through_its_own_pools() {
    let dir = tempfile::tempdir().unwrap();
    write_fresh_crate(dir.path());
    let manifest = dir.path().join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());

    let tree = Command::new(&cargo)
        .args(["tree", "--offline", "--prefix", "none", "-e", "normal"])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8(tree.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(names.contains("calista"), "{names:?}");
    assert_absent(&names, &["clap", "tracing-subscriber"]);

    let pg = common::ScratchPg::new().await;
    let sqlite = dir.path().join("app.db");
    let run = Command::new(&cargo)
        .args(["run", "--offline", "--quiet"])
        .arg("--manifest-path")
        .arg(&manifest)
        .env(
            "CARGO_TARGET_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/fresh-crate"),
        )
        .env("FRESH_PG_URL", &pg.url)
        .env(
            "FRESH_SQLITE_URL",
            format!("sqlite://{}?mode=rwc", sqlite.display()),
        )
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the fresh crate failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "postgres 1 sqlite 1"
    );
    // On PostgreSQL, everything is in the pool's schema, `public`: nothing in `calista`.
    let mut conn = pg.connect().await;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT table_schema::text FROM information_schema.tables \
         WHERE table_name IN ('alembic_version', 'schema_history', 'customers')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(schemas, ["public"]);
}
