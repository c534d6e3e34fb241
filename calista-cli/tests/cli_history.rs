//! `db repair`, `db adopt`, `db stamp` and `db history`'s kinds through the real program.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/pgbouncer.rs"]
mod pgbouncer;

use std::path::Path;
use std::process::Command;

use common::*;

/// What a run printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `calista` in `dir` on `db` with the migrations in `migrations`, a clean CALISTA_*
/// environment plus `env`.
fn calista(db: &TestDb, migrations: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    command
        .current_dir(db.scratch_dir())
        .arg("--migrations")
        .arg(migrations)
        .args(args)
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    command.env("CALISTA_DB_URL", db.url_text());
    command.envs(env.iter().copied());
    let output = command.output().expect("run calista");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const A: &str = "20250101_0000_create_a.sql";

both_backends! {
    async fn repair_needs_yes_in_production_and_history_shows_the_kind(db: TestDb) {
        let set = MigrationSet::new(&[(A, &create_table("a"))]);
        let dir = set.dir.path();
        let up = calista(&db, dir, &["db", "upgrade", "--no-backup"], &[]);
        assert_eq!(up.code, 0, "{up:?}");
        set.write(A, &format!("-- a holds the things\n{}", create_table("a")));
        let modified = calista(&db, dir, &["db", "check"], &[]);
        assert_eq!(modified.code, 4, "{modified:?}");
        assert!(modified.stderr.contains("calista db repair --accept"), "{modified:?}");

        let args = ["db", "repair", "--accept", "20250101_0000", "--reason", "a comment"];
        let refused = calista(&db, dir, &args, &[]);
        assert_eq!(refused.code, 2, "{refused:?}");
        assert!(refused.stderr.contains("--yes"), "{refused:?}");
        assert_eq!(calista(&db, dir, &["db", "check"], &[]).code, 4);

        let mut confirmed = args.to_vec();
        confirmed.push("--yes");
        let repaired = calista(&db, dir, &confirmed, &[]);
        assert_eq!(repaired.code, 0, "{repaired:?}");
        assert!(repaired.stdout.contains("repaired"), "{repaired:?}");
        assert_eq!(calista(&db, dir, &["db", "check"], &[]).code, 0);

        let history = calista(&db, dir, &["--format", "json", "db", "history"], &[]);
        let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
        assert_eq!(history[0]["kind"], "repaired");
        assert_eq!(history[0]["note"], "a comment");
        let human = calista(&db, dir, &["db", "history"], &[]);
        assert!(human.stdout.contains("KIND") && human.stdout.contains("repaired"), "{human:?}");
    }

    async fn repair_runs_without_yes_in_development(db: TestDb) {
        let set = MigrationSet::new(&[(A, &create_table("a"))]);
        let dir = set.dir.path();
        let dev = [("CALISTA_ENV", "development")];
        assert_eq!(calista(&db, dir, &["db", "upgrade"], &dev).code, 0);
        set.write(A, &format!("-- edited\n{}", create_table("a")));
        let repaired = calista(&db, dir, &["db", "repair", "--accept", "20250101_0000", "--reason", "comment"], &dev);
        assert_eq!(repaired.code, 0, "{repaired:?}");
        let empty_reason = calista(&db, dir, &["db", "repair", "--accept", "20250101_0000", "--reason", " "], &dev);
        assert_eq!(empty_reason.code, 2, "{empty_reason:?}");
    }
}

mod stamp_and_squash {
    use super::*;

    both_backends! {
        async fn stamp_refuses_a_differing_schema_naming_the_difference(db: TestDb) {
            let set = MigrationSet::new(&[(A, &create_table("a"))]);
            let dir = set.dir.path();
            let handle = db.open();
            let sql = match &db {
                TestDb::Postgres(_) => "CREATE SCHEMA calista; CREATE TABLE calista.a (id INTEGER PRIMARY KEY);",
                TestDb::Sqlite { file, .. } => {
                    std::fs::File::create(file).unwrap();
                    "CREATE TABLE a (id INTEGER PRIMARY KEY);"
                }
            };
            exec(&handle, sql).await.unwrap();
            handle.close().await;
            let refused = calista(&db, dir, &["db", "stamp", "20250101_0000", "--yes"], &[]);
            assert_eq!(refused.code, 2, "{refused:?}");
            assert!(refused.stderr.contains("column a.note"), "{refused:?}");
            let unconfirmed = calista(&db, dir, &["db", "stamp", "20250101_0000", "--force"], &[]);
            assert_eq!(unconfirmed.code, 2, "{unconfirmed:?}");
            assert!(unconfirmed.stderr.contains("--yes"), "{unconfirmed:?}");
            let forced = calista(&db, dir, &["db", "stamp", "20250101_0000", "--force", "--yes"], &[]);
            assert_eq!(forced.code, 0, "{forced:?}");
            assert!(forced.stdout.contains("stamped at 20250101_0000"), "{forced:?}");
            let history = calista(&db, dir, &["--format", "json", "db", "history"], &[]);
            let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
            assert_eq!(history[0]["kind"], "stamped");
        }
    }

    #[test]
    fn squash_writes_a_baseline_that_db_verify_passes() {
        let set = MigrationSet::new(&[
            (A, &create_table("a")),
            ("20250102_0000_create_b.sql", &create_table("b")),
            ("20250103_0000_create_c.sql", &create_table("c")),
        ]);
        let dir = set.dir.path();
        let db = TestDb::sqlite();
        let pg = [("CALISTA_VERIFY_PG_URL", pg_admin_url())];
        let env: Vec<(&str, &str)> = pg.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = calista(
            &db,
            dir,
            &[
                "db",
                "squash",
                "--through",
                "20250102_0000",
                "--release",
                "1.2.0",
            ],
            &env,
        );
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("replaces 2 files"), "{run:?}");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["20250102_0000_baseline.sql", "20250103_0000_create_c.sql"]
        );
        let verified = calista(&db, dir, &["db", "verify"], &env);
        assert_eq!(verified.code, 0, "{verified:?}");
        let no_server = calista(
            &db,
            dir,
            &[
                "db",
                "squash",
                "--through",
                "20250103_0000",
                "--release",
                "1.3.0",
            ],
            &[],
        );
        assert_eq!(no_server.code, 2, "{no_server:?}");
    }
}

#[test]
fn the_db_group_lists_adopt_stamp_repair_and_squash() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let help = calista(&db, dir.path(), &["db", "--help"], &[]);
    assert_eq!(help.code, 0, "{help:?}");
    for command in ["adopt", "stamp", "repair", "squash"] {
        assert!(help.stdout.contains(command), "{command}: {help:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_sqlx_made_is_refused_by_upgrade_and_adopted_by_db_adopt() {
    let db = TestDb::postgres().await;
    let handle = db.open();
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/import/sqlx");
    sqlx::migrate::Migrator::new(source.clone())
        .await
        .unwrap()
        .run(handle.pool().as_postgres().unwrap())
        .await
        .unwrap();
    handle.close().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("migrations");
    std::fs::create_dir(&folder).unwrap();
    let source = source.display().to_string();
    let import = calista(
        &db,
        &folder,
        &[
            "db",
            "import",
            "--from",
            "sqlx",
            &source,
            "--dialect",
            "postgres",
        ],
        &[],
    );
    assert_eq!(import.code, 0, "{import:?}");

    let refused = calista(&db, &folder, &["db", "upgrade", "--no-backup"], &[]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.contains("managed by sqlx") && refused.stderr.contains("db adopt"),
        "{refused:?}"
    );
    let unconfirmed = calista(&db, &folder, &["db", "adopt"], &[]);
    assert_eq!(unconfirmed.code, 2, "{unconfirmed:?}");
    let adopted = calista(&db, &folder, &["db", "adopt", "--yes"], &[]);
    assert_eq!(adopted.code, 0, "{adopted:?}");
    assert!(
        adopted
            .stdout
            .contains("12 migrations recorded as applied, none run"),
        "{adopted:?}"
    );
    assert_eq!(calista(&db, &folder, &["db", "check"], &[]).code, 0);
    let history = calista(&db, &folder, &["--format", "json", "db", "history"], &[]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "adopted"),
        "{history}"
    );
}

/// Adopt, stamp's refusal and repair through PgBouncer in transaction mode: simple queries
/// only, the lock a transaction's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_and_repair_work_through_pgbouncer_in_transaction_mode() {
    use pgbouncer::{PgBouncer, PoolMode};
    let pg = ScratchPg::new().await;
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/import/sqlx");
    let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
    sqlx::migrate::Migrator::new(source.clone())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bouncer = PgBouncer::start(&pg_admin_url(), PoolMode::Transaction);
    let url = bouncer.url_for(&pg.url);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("migrations");
    std::fs::create_dir(&folder).unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_calista"))
            .current_dir(dir.path())
            .env_remove("CALISTA_ENV")
            .env("CALISTA_DB_URL", &url)
            .env("NO_COLOR", "1")
            .arg("--migrations")
            .arg(&folder)
            .args(args)
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!shown.contains("prepared statement"), "{shown}");
        (output.status.code().unwrap_or(-1), shown)
    };
    let source = source.display().to_string();
    let (code, shown) = run(&[
        "db",
        "import",
        "--from",
        "sqlx",
        &source,
        "--dialect",
        "postgres",
    ]);
    assert_eq!(code, 0, "{shown}");
    let (code, shown) = run(&["db", "adopt", "--yes"]);
    assert_eq!(code, 0, "{shown}\n{}", bouncer.log());
    assert_eq!(run(&["db", "check"]).0, 0);

    let first = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, format!("-- Who may sign in.\n{text}")).unwrap();
    assert_eq!(run(&["db", "check"]).0, 4);
    let revision = first.file_name().unwrap().to_str().unwrap()[..13].to_owned();
    let (code, shown) = run(&[
        "db",
        "repair",
        "--accept",
        &revision,
        "--reason",
        "a comment",
        "--yes",
    ]);
    assert_eq!(code, 0, "{shown}\n{}", bouncer.log());
    assert_eq!(run(&["db", "check"]).0, 0);
}

/// `db stamp` through PgBouncer in transaction mode: the scratch database it compares the
/// live schema with is made and dropped through the pooler too, and the stamp is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamp_works_through_pgbouncer_in_transaction_mode() {
    use pgbouncer::{PgBouncer, PoolMode};
    use sqlx::Connection;
    let pg = ScratchPg::new().await;
    let mut conn = pg.connect().await;
    sqlx::raw_sql(
        "CREATE SCHEMA calista; CREATE TABLE calista.a (id INTEGER PRIMARY KEY, note TEXT);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    let bouncer = PgBouncer::start(&pg_admin_url(), PoolMode::Transaction);
    let url = bouncer.url_for(&pg.url);
    let set = MigrationSet::new(&[(A, &create_table("a"))]);
    let output = common::program(env!("CARGO_BIN_EXE_calista"), set.dir.path())
        .env("CALISTA_DB_URL", &url)
        .args(["--migrations"])
        .arg(set.dir.path())
        .args(["db", "stamp", "20250101_0000", "--yes"])
        .output()
        .unwrap();
    let shown = common::printed(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}\n{}", bouncer.log());
    assert!(shown.contains("stamped at 20250101_0000"), "{shown}");
    assert!(!shown.contains("prepared statement"), "{shown}");
    let mut conn = pg.connect().await;
    let stamped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM calista.schema_history WHERE revision = '20250101_0000'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(stamped, 1);
    let scratch: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'calista_stamp%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(scratch, 0, "the scratch database is dropped");
    conn.close().await.ok();
}
