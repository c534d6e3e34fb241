//! `calista::testing`: a database per test, cloned from a template built once per set.
//! (The package's dev-dependency on itself turns its `testing` feature on for its tests.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use std::time::Instant;

use calista::testing::{Backend, TestDatabase, TestOptions};
use calista::{Migrations, Migrator, SchemaState};
use common::*;

static CALISTA: Migrations = calista::migrations!();

async fn at_head_and_empty(test_db: &TestDatabase) {
    let state = Migrator::new(&CALISTA, test_db.database())
        .check()
        .await
        .unwrap();
    assert!(matches!(state, SchemaState::UpToDate { .. }), "{state:?}");
    assert_eq!(
        scalar(test_db.database(), "SELECT count(*) FROM event_store").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_test_database_is_at_head_and_private_to_its_test() {
    let (one, two) = (
        TestDatabase::sqlite(&CALISTA).await.unwrap(),
        TestDatabase::sqlite(&CALISTA).await.unwrap(),
    );
    at_head_and_empty(&one).await;
    exec(
        one.database(),
        "INSERT INTO stream_index (kind, key, stream_id) VALUES ('k', 'v', 's')",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(two.database(), "SELECT count(*) FROM stream_index").await,
        0
    );
    let file = one.database().sqlite_file().unwrap().to_owned();
    drop(one);
    assert!(!file.exists(), "a passing test's database is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_test_database_is_at_head_and_dropped_after() {
    let test_db = TestDatabase::postgres(&CALISTA).await.unwrap();
    at_head_and_empty(&test_db).await;
    let name = test_db.url().rsplit('/').next().unwrap().to_owned();
    drop(test_db);
    let mut admin = pg_admin().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} was not dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_can_stop_at_a_revision() {
    let options = TestOptions {
        revision: Some(CALISTA.as_slice()[0].revision()),
        ..TestOptions::default()
    };
    let test_db = TestDatabase::sqlite_with(&CALISTA, options).await.unwrap();
    let state = Migrator::new(&CALISTA, test_db.database())
        .check()
        .await
        .unwrap();
    assert!(
        matches!(state, SchemaState::Behind { pending: 1, .. }),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tests_on_both_backends_share_the_sets_template_safely() {
    let set = tables_set("", 20);
    let migrations: &'static Migrations = Box::leak(Box::new(set.load()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(async move {
                let test_db = if i % 2 == 0 {
                    TestDatabase::postgres(migrations).await.unwrap()
                } else {
                    TestDatabase::sqlite(migrations).await.unwrap()
                };
                let state = Migrator::new(migrations, test_db.database())
                    .check()
                    .await
                    .unwrap();
                assert!(state.is_up_to_date(), "{state:?}");
                scalar(test_db.database(), "SELECT count(*) FROM t19").await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0);
    }
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn a_failing_tests_database_is_kept() {
    let kept = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let test_db = runtime.block_on(TestDatabase::sqlite(&CALISTA)).unwrap();
        let file = test_db.database().sqlite_file().unwrap().to_owned();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = test_db;
            panic!("the test's assertion failed");
        }));
        assert!(outcome.is_err());
        file
    })
    .join()
    .unwrap();
    assert!(kept.exists(), "{} was deleted", kept.display());
    std::fs::remove_file(kept).unwrap();
}

/// `count` migrations (at most 60), each creating a table `<prefix>t<i>`.
fn tables_set(prefix: &str, count: usize) -> MigrationSet {
    let files: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                format!("20250101_00{i:02}_create_t{i}.sql"),
                create_table(&format!("{prefix}t{i}")),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_str()))
        .collect();
    MigrationSet::new(&refs)
}

/// A set of its own (its own template and spares), so that other tests' claims do not
/// interfere; and the name of its first table.
fn own_set(tables: usize) -> (&'static Migrations, String) {
    let prefix = format!("{}_", unique_name("s"));
    let set = tables_set(&prefix, tables);
    (Box::leak(Box::new(set.load())), format!("{prefix}t0"))
}

/// The spares of `test_db`'s template: name and oid.
async fn spares_of(test_db: &TestDatabase) -> Vec<(String, u32)> {
    let key = test_db.template().trim_start_matches("calista_tpl_");
    let prefix = format!("calista_spare_{}_", &key[..16]);
    let rows: Vec<(String, sqlx::postgres::types::Oid)> =
        sqlx::query_as("SELECT datname::text, oid FROM pg_database WHERE starts_with(datname, $1)")
            .bind(prefix)
            .fetch_all(&mut pg_admin().await)
            .await
            .unwrap();
    rows.into_iter().map(|(name, oid)| (name, oid.0)).collect()
}

/// Waits (at most a minute) until `test_db`'s template has `count` spares.
async fn wait_for_spares(test_db: &TestDatabase, count: usize) -> Vec<(String, u32)> {
    for _ in 0..600 {
        let spares = spares_of(test_db).await;
        if spares.len() >= count {
            return spares;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{} never had {count} spares", test_db.template());
}

async fn own_oid(test_db: &TestDatabase) -> u32 {
    let pool = test_db.database().pool().as_postgres().unwrap();
    let oid: sqlx::postgres::types::Oid =
        sqlx::query_scalar("SELECT oid FROM pg_database WHERE datname = current_database()")
            .fetch_one(pool)
            .await
            .unwrap();
    oid.0
}

async fn database_with_oid_exists(oid: u32) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE oid = $1)")
        .bind(sqlx::postgres::types::Oid(oid))
        .fetch_one(&mut pg_admin().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tests_claim_spares_made_ahead_each_its_own() {
    let (set, table) = own_set(3);
    let first = TestDatabase::postgres(set).await.unwrap();
    let spares = wait_for_spares(&first, calista::testing::DEFAULT_SPARES).await;
    let spare_oids: Vec<u32> = spares.iter().map(|(_, oid)| *oid).collect();

    let claimed = claim_in_parallel(set, &table, Backend::Postgres, spare_oids.len()).await;
    let mut oids = Vec::new();
    for test_db in &claimed {
        oids.push(own_oid(test_db).await);
    }
    assert!(
        oids.iter().any(|oid| spare_oids.contains(oid)),
        "no test claimed a spare: {oids:?} vs {spare_oids:?}"
    );
    oids.sort_unstable();
    oids.dedup();
    assert_eq!(oids.len(), claimed.len(), "two tests shared a database");
}

/// A test database on each of `backends`, all made at once; each is at head.
async fn made_at_once(
    set: &'static Migrations,
    backends: impl IntoIterator<Item = Backend>,
) -> Vec<TestDatabase> {
    let made: Vec<_> = backends
        .into_iter()
        .map(|backend| {
            tokio::spawn(async move {
                TestDatabase::on(backend, set, TestOptions::default())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut databases = Vec::new();
    for test_db in made {
        let test_db = test_db.await.unwrap();
        let state = Migrator::new(set, test_db.database())
            .check()
            .await
            .unwrap();
        assert!(state.is_up_to_date(), "{state:?}");
        databases.push(test_db);
    }
    databases
}

/// `count` test databases made at once: each is at head and private to its test.
async fn claim_in_parallel(
    set: &'static Migrations,
    table: &str,
    backend: Backend,
    count: usize,
) -> Vec<TestDatabase> {
    let claimed = made_at_once(set, std::iter::repeat_n(backend, count)).await;
    exec(
        claimed[0].database(),
        &format!("INSERT INTO {table} (id) VALUES (1)"),
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(
            claimed[1].database(),
            &format!("SELECT count(*) FROM {table}")
        )
        .await,
        0
    );
    claimed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_postgres_tests_database_is_gone_at_once_and_dropped_behind_it() {
    let test_db = TestDatabase::postgres(own_set(1).0).await.unwrap();
    let oid = own_oid(&test_db).await;
    let name = test_db.url().rsplit('/').next().unwrap().to_owned();
    drop(test_db);
    let under_its_name: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut pg_admin().await)
            .await
            .unwrap();
    assert_eq!(under_its_name, 0, "{name} is still there");
    for _ in 0..600 {
        if !database_with_oid_exists(oid).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the database of oid {oid} was never dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_spares_templates_and_trash_are_cleaned_up() {
    let mut admin = pg_admin().await;
    // Three keys of the shape calista uses (24 hex digits), unlike any real one.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let key = |which: char| {
        format!(
            "{:014x}f{which}00000000",
            u64::from(nanos) << 20 | u64::from(std::process::id())
        )
    };
    let day = 24 * 60 * 60;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let comment =
        |seconds_ago: u64| format!("calista test template; last used {}", now - seconds_ago);
    // (name, comment, whether the clean-up must drop it)
    let databases = [
        (
            format!("calista_tpl_{}", key('a')),
            Some(comment(8 * day)),
            true,
        ),
        (
            format!("calista_tpl_{}", key('b')),
            Some(comment(2 * 60 * 60)),
            false,
        ),
        (format!("calista_spare_{}_1", &key('b')[..16]), None, true),
        (
            format!("calista_tpl_{}", key('c')),
            Some(comment(60)),
            false,
        ),
        (format!("calista_spare_{}_1", &key('c')[..16]), None, false),
        (format!("calista_spare_{}_1", &key('d')[..16]), None, true),
        (format!("calista_trash_{}", key('e')), None, true),
    ];
    for (name, comment, _) in &databases {
        exec_admin(&mut admin, &format!("CREATE DATABASE \"{name}\"")).await;
        if let Some(comment) = comment {
            exec_admin(
                &mut admin,
                &format!("COMMENT ON DATABASE \"{name}\" IS '{comment}'"),
            )
            .await;
        }
    }
    // The clean-up runs once per server URL and process: this URL is new to the process.
    let url = format!(
        "{}?application_name=calista_cleanup_{}",
        pg_admin_url(),
        key('x')
    );
    let calista::url::DatabaseUrl::Postgres(server) =
        calista::url::DatabaseUrl::parse(&url, std::path::Path::new(".")).unwrap()
    else {
        panic!("not a PostgreSQL URL");
    };
    let (set, _) = own_set(1);
    drop(
        TestDatabase::postgres_on(set, &server, TestOptions::default())
            .await
            .unwrap(),
    );
    let exists = |name: String| async move {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(name)
        .fetch_one(&mut pg_admin().await)
        .await
        .unwrap()
    };
    for _ in 0..600 {
        let mut gone = true;
        for (name, _, dropped) in &databases {
            if *dropped {
                gone &= !exists(name.clone()).await;
            }
        }
        if gone {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (name, _, dropped) in &databases {
        assert_eq!(!exists(name.clone()).await, *dropped, "{name}");
        exec_admin(&mut admin, &format!("DROP DATABASE IF EXISTS \"{name}\"")).await;
    }
}

async fn exec_admin(admin: &mut sqlx::PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tests_claim_spare_files_made_ahead_each_its_own() {
    use std::os::unix::fs::MetadataExt;
    let (set, table) = own_set(3);
    let first = TestDatabase::sqlite(set).await.unwrap();
    let key = first
        .template()
        .rsplit("calista_tpl_")
        .next()
        .unwrap()
        .trim_end_matches(".db")
        .to_owned();
    let prefix = format!("calista_spare_{}_", &key[..16]);
    let spare_inodes = || -> Vec<u64> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&prefix) && name.ends_with(".db")
            })
            .map(|e| e.metadata().unwrap().ino())
            .collect()
    };
    let mut spares = spare_inodes();
    for _ in 0..600 {
        if spares.len() >= calista::testing::DEFAULT_SPARES {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        spares = spare_inodes();
    }
    assert!(
        spares.len() >= calista::testing::DEFAULT_SPARES,
        "{spares:?}"
    );

    let claimed = claim_in_parallel(set, &table, Backend::Sqlite, spares.len()).await;
    let inodes: Vec<u64> = claimed
        .iter()
        .map(|test_db| {
            let file = test_db.database().sqlite_file().unwrap();
            std::fs::metadata(file).unwrap().ino()
        })
        .collect();
    assert!(
        inodes.iter().any(|inode| spares.contains(inode)),
        "no test claimed a spare"
    );
    let mut distinct = inodes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), claimed.len(), "two tests shared a file");
}

/// Set by the parent of [`child_makes_test_databases`]: the folder of the set to use.
const CHILD_SET: &str = "CALISTA_TEST_CHILD_SET";

#[test]
fn several_test_binaries_share_a_sets_template_and_spares_safely() {
    let set = tables_set(&format!("{}_", unique_name("p")), 5);
    // Three processes at once, each making three databases on each backend at once; the
    // template is built by whichever comes first, the others wait for it.
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "child_makes_test_databases",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_SET, set.dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut oids = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "a child failed:\n{text}");
        oids.extend(
            text.lines()
                .filter_map(|line| line.strip_prefix("postgres oid: "))
                .map(|oid| oid.trim().parse::<u32>().unwrap()),
        );
    }
    assert_eq!(oids.len(), 9, "{oids:?}");
    oids.sort_unstable();
    oids.dedup();
    assert_eq!(oids.len(), 9, "two processes' tests shared a database");
}

/// One process of [`several_test_binaries_share_a_sets_template_and_spares_safely`]: its
/// databases are at head, and each holds only the row this test wrote in it, while the
/// other processes write theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by several_test_binaries_share_a_sets_template_and_spares_safely"]
async fn child_makes_test_databases() {
    let Ok(dir) = std::env::var(CHILD_SET) else {
        return;
    };
    let set: &'static Migrations = Box::leak(Box::new(Migrations::from_dir(&dir).unwrap()));
    let table = set.as_slice()[0]
        .text()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .to_owned();
    let backends = [Backend::Postgres, Backend::Sqlite]
        .into_iter()
        .flat_map(|backend| std::iter::repeat_n(backend, 3));
    let databases = made_at_once(set, backends).await;
    for test_db in &databases {
        exec(
            test_db.database(),
            &format!("INSERT INTO {table} (id) VALUES (1)"),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for test_db in &databases {
        let rows = scalar(test_db.database(), &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(rows, 1, "{} holds another test's row", test_db.url());
        if test_db.database().pool().as_postgres().is_some() {
            println!("postgres oid: {}", own_oid(test_db).await);
        }
    }
}

/// Set by the parent of [`child_runs_a_projects_tests`]: the project's name.
const CHILD_PROJECT: &str = "CALISTA_TEST_CHILD_PROJECT";

/// The spares kept per template in this process.
fn spares_wanted() -> usize {
    std::env::var(calista::testing::SPARES_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(calista::testing::DEFAULT_SPARES)
}

/// What the project whose names start with `prefix` left: its databases and its files in
/// the temporary folder, by name.
async fn left_by(prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("{prefix}_"))
            .fetch_all(&mut pg_admin().await)
            .await
            .unwrap();
    let mut files: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&format!("{prefix}_")))
        .collect();
    databases.sort();
    files.sort();
    (databases, files)
}

/// One `cargo test` run of a project: three tests on each backend, which pass. It ends
/// once the background work is done (the spares made, the trash dropped), as a longer run
/// would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by repeated_runs_leave_a_bounded_set_named_by_the_project"]
async fn child_runs_a_projects_tests() {
    let (Ok(project), Ok(dir)) = (std::env::var(CHILD_PROJECT), std::env::var(CHILD_SET)) else {
        return;
    };
    let set: &'static Migrations = Box::leak(Box::new(Migrations::from_dir(&dir).unwrap()));
    let options = TestOptions {
        project: calista::testing::TestProject::new(&project),
        ..TestOptions::default()
    };
    for backend in [Backend::Postgres, Backend::Sqlite] {
        for _ in 0..3 {
            let test_db = TestDatabase::on(backend, set, options.clone())
                .await
                .unwrap();
            assert!(test_db.url().contains(&format!("{project}_test_")));
            drop(test_db);
        }
    }
    for _ in 0..600 {
        let (databases, files) = left_by(&project).await;
        let count = |names: &[String], part: &str, end: &str| {
            names
                .iter()
                .filter(|n| n.contains(part) && n.ends_with(end))
                .count()
        };
        let settled = count(&databases, "_spare_", "") == spares_wanted()
            && count(&databases, "_trash_", "") == 0
            && count(&files, "_spare_", ".db") == spares_wanted()
            && count(&files, "", ".partial") == 0;
        if settled {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the spares were never made, or the trash never dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_runs_leave_a_bounded_set_named_by_the_project() {
    // A project of its own (a prefix of at most 12 characters), so that what it counts is
    // only what its runs left.
    let project: String = unique_name("r").replace('_', "").chars().take(12).collect();
    let set = tables_set(&format!("{}_", unique_name("b")), 3);
    let run = || {
        let (passed, output) =
            run_ignored_tests(&["child_runs_a_projects_tests", "--exact"], |command| {
                command
                    .env(CHILD_PROJECT, &project)
                    .env(CHILD_SET, set.dir.path());
            });
        assert!(passed, "{output}");
    };
    run();
    let first = left_by(&project).await;
    run();
    let second = left_by(&project).await;
    // Whatever is left is removed, whether the assertions hold or not.
    let (databases, files) = (second.0.clone(), second.1.clone());
    let cleaned = async {
        let mut admin = pg_admin().await;
        for name in databases.iter().chain(&first.0) {
            exec_admin(&mut admin, &format!("DROP DATABASE IF EXISTS \"{name}\"")).await;
        }
        for name in files.iter().chain(&first.1) {
            let _ = std::fs::remove_file(std::env::temp_dir().join(name));
        }
    };

    // What the README says is left: per template, the template and its spares; in the
    // temporary folder also the template's lock file and the spares' lock file.
    let wanted = spares_wanted();
    let template = |name: &&String| name.starts_with(&format!("{project}_tpl_"));
    let spare = |name: &&String| name.starts_with(&format!("{project}_spare_"));
    let expected = (
        first.0.iter().filter(template).count() == 1
            && first.0.iter().filter(spare).count() == wanted
            && first.0.len() == 1 + wanted,
        first.1.iter().filter(template).count() == 2
            && first.1.iter().filter(spare).count() == wanted + 1
            && first.1.len() == wanted + 3,
    );
    let no_more = second.0.len() <= first.0.len() && second.1.len() <= first.1.len();
    cleaned.await;
    assert_eq!(expected, (true, true), "after one run: {first:?}");
    assert!(no_more, "after one run: {first:?}\nafter two: {second:?}");
}
