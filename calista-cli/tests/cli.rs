//! The `calista` program end to end: the real binary, in temporary folders, against real
//! SQLite files and PostgreSQL databases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

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

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `calista` in `dir` with a clean CALISTA_* environment plus `env`.
fn calista(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run calista");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn on(db: &TestDb, args: &[&str]) -> Run {
    on_with(db, args, &[])
}

fn on_with(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Run {
    let url = db.url_text();
    let mut all = vec![("CALISTA_DB_URL", url.as_str())];
    all.extend_from_slice(env);
    calista(&db.scratch_dir(), args, &all)
}

const HEAD: &str = "20250826_1045";

both_backends! {
    async fn behind_exits_3_and_says_to_run_upgrade(db: TestDb) {
        let run = on(&db, &["events", "list"]);
        assert_eq!(run.code, 3, "{run:?}");
        assert!(run.stderr.contains("calista db upgrade"), "{run:?}");
        assert!(run.stderr.contains("2 migrations are pending"), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }

    async fn upgrade_then_commands_run(db: TestDb) {
        let run = on(&db, &["db", "upgrade"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("20250826_1030_create_event_store.sql"), "{run:?}");
        assert!(run.stdout.contains(&format!("-> {HEAD}")), "{run:?}");
        let append = on(&db, &["events", "append", "--stream", "order-1", "--type", "created", "--payload", r#"{"total": 42}"#]);
        assert_eq!(append.code, 0, "{append:?}");
        let list = on(&db, &["--format", "json", "events", "list"]);
        let events: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
        assert_eq!(events[0]["payload"]["total"], 42);
        assert_eq!(events[0]["stream_type"], "order");
        assert_eq!(events[0]["event_id"].as_str().map(str::len), Some(26));
    }

    async fn an_event_store_error_shows_the_databases_words_once_and_no_server_source_line(db: TestDb) {
        let run = on(&db, &["db", "upgrade"]);
        assert_eq!(run.code, 0, "{run:?}");
        let handle = db.open();
        exec(&handle, "DROP TABLE event_store").await.unwrap();
        handle.close().await;
        let list = on(&db, &["events", "list"]);
        assert_eq!(list.code, 1, "{list:?}");
        assert!(list.stderr.contains("cannot read the event store"), "{list:?}");
        let said = if matches!(db, TestDb::Sqlite { .. }) { "no such table: event_store" } else { "relation \"event_store\" does not exist" };
        assert_eq!(list.stderr.matches(said).count(), 1, "{list:?}");
        for driver in [" at line ", "error returned from database"] {
            assert!(!list.stderr.contains(driver), "{list:?}");
        }
    }

    async fn each_auto_upgrade_opt_in_upgrades_then_runs_the_command(db: TestDb) {
        let flag = on(&db, &["--auto-upgrade", "events", "list"]);
        assert_eq!(flag.code, 0, "{flag:?}");
        assert!(flag.stdout.contains("no events"), "{flag:?}");
        assert!(flag.stderr.contains("upgraded at start-up"), "{flag:?}");
        assert_eq!(on(&db, &["db", "current"]).stdout.trim(), HEAD);

        let second = TestDb::sqlite();
        let env = on_with(&second, &["events", "list"], &[("CALISTA_AUTO_UPGRADE", "yes")]);
        assert_eq!(env.code, 0, "{env:?}");
        assert_eq!(on(&second, &["db", "current"]).stdout.trim(), HEAD);

        let third = TestDb::sqlite();
        std::fs::write(third.scratch_dir().join("calista.toml"), "[db]\nauto_upgrade = true\n").unwrap();
        let file = on(&third, &["events", "list"]);
        assert_eq!(file.code, 0, "{file:?}");
        assert_eq!(on(&third, &["db", "current"]).stdout.trim(), HEAD);
    }

    async fn db_check_exit_codes_follow_the_state(db: TestDb) {
        assert_eq!(on(&db, &["db", "check"]).code, 3);
        assert_eq!(on(&db, &["db", "upgrade"]).code, 0);
        let ok = on(&db, &["--format", "json", "db", "check"]);
        assert_eq!(ok.code, 0, "{ok:?}");
        let state: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
        assert_eq!(state["state"], "up to date");
        // A folder whose applied migration was edited: unsafe.
        let edited = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")).unwrap() {
            let entry = entry.unwrap();
            let mut text = std::fs::read_to_string(entry.path()).unwrap();
            if entry.file_name().to_string_lossy().contains("stream_index") {
                text.push_str("\n-- an innocent-looking comment\n");
            }
            std::fs::write(edited.path().join(entry.file_name()), text).unwrap();
        }
        let dir = edited.path().display().to_string();
        let modified = on(&db, &["--migrations", &dir, "db", "check"]);
        assert_eq!(modified.code, 4, "{modified:?}");
        assert!(modified.stderr.contains("20250826_1045_add_stream_index.sql"), "{modified:?}");
    }

    async fn upgrade_sql_prints_the_script_and_changes_nothing(db: TestDb) {
        let run = on(&db, &["db", "upgrade", "--sql"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("CREATE TABLE event_store"), "{run:?}");
        assert!(run.stdout.contains("alembic_version"), "{run:?}");
        assert!(run.stdout.contains(&format!("'{HEAD}'")), "{run:?}");
        let status = on(&db, &["--format", "json", "db", "status"]);
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(status["current"], serde_json::Value::Null);
        assert_eq!(status["pending"], 2);
    }

    async fn downgrade_is_refused_in_production_and_allowed_in_development(db: TestDb) {
        assert_eq!(on(&db, &["db", "upgrade"]).code, 0);
        let refused = on(&db, &["db", "downgrade", "-1"]);
        assert_eq!(refused.code, 2, "{refused:?}");
        assert!(refused.stderr.contains("forward-only"), "{refused:?}");
        assert_eq!(on(&db, &["db", "current"]).stdout.trim(), HEAD);
        let allowed = on_with(&db, &["db", "downgrade", "-1"], &[("CALISTA_ENV", "development")]);
        assert_eq!(allowed.code, 0, "{allowed:?}");
        assert_eq!(on(&db, &["db", "current"]).stdout.trim(), "20250826_1030");
        let to_base = on_with(&db, &["db", "downgrade", "base"], &[("CALISTA_ENV", "ci")]);
        assert_eq!(to_base.code, 0, "{to_base:?}");
        assert!(on(&db, &["db", "current"]).stdout.contains("base"));
    }

    async fn history_lists_applied_and_pending_revisions(db: TestDb) {
        assert_eq!(on(&db, &["db", "upgrade", "--to", "20250826_1030"]).code, 0);
        let run = on(&db, &["--format", "json", "db", "history"]);
        let history: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(history[0]["applied"], true);
        assert!(history[0]["applied_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(history[1]["applied"], false);
        let human = on(&db, &["db", "history"]);
        assert!(human.stdout.contains("pending") && human.stdout.contains("applied"), "{human:?}");
    }
}

#[test]
fn help_version_and_config_show_never_connect() {
    let dir = tempfile::tempdir().unwrap();
    // A server that is not there: any attempt to connect would fail the command.
    let env = [
        (
            "CALISTA_DB_URL",
            "postgresql://calista:s3cr3t-pw@127.0.0.1:9/nowhere",
        ),
        ("CALISTA_CONNECT_TIMEOUT", "1"),
    ];
    for args in [
        &["--help"][..],
        &["--version"],
        &["version"],
        &["config", "show"],
        &["db", "--help"],
    ] {
        let run = calista(dir.path(), args, &env);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(!run.all().contains("s3cr3t-pw"), "{args:?}: {run:?}");
    }
    let help = calista(dir.path(), &["--help"], &env);
    assert!(
        help.stdout.contains("Exit codes")
            && help.stdout.contains("5  the migration lock timed out"),
        "{help:?}"
    );
    let shown = calista(dir.path(), &["config", "show"], &env);
    assert!(
        shown
            .stdout
            .contains("postgresql://calista:***@127.0.0.1:9/nowhere")
            || shown
                .stdout
                .contains("postgres://calista:***@127.0.0.1:9/nowhere"),
        "{shown:?}"
    );
    assert!(shown.stdout.contains("CALISTA_DB_URL"), "{shown:?}");
}

#[test]
fn unreachable_database_is_a_failure_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "CALISTA_DB_URL",
            "postgresql://calista:s3cr3t-pw@127.0.0.1:9/nowhere",
        ),
        ("CALISTA_CONNECT_TIMEOUT", "2"),
    ];
    for args in [
        &["db", "status"][..],
        &["db", "upgrade"],
        &["events", "list"],
        &["--format", "json", "db", "status"],
    ] {
        let run = calista(dir.path(), args, &env);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(!run.all().contains("s3cr3t-pw"), "{args:?}: {run:?}");
        assert!(run.all().contains("127.0.0.1:9"), "{args:?}: {run:?}");
    }
}

#[test]
fn invalid_auto_upgrade_value_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = calista(
        dir.path(),
        &["events", "list"],
        &[("CALISTA_AUTO_UPGRADE", "maybe")],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("CALISTA_AUTO_UPGRADE") && run.stderr.contains("maybe"),
        "{run:?}"
    );
    assert!(
        !dir.path().join("calista.db").exists(),
        "nothing was created"
    );
}

#[test]
fn default_database_is_a_sqlite_file_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = calista(dir.path(), &["db", "upgrade"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(dir.path().join("calista.db").exists());
    assert!(
        run.stdout.contains("backup skipped: the database is empty"),
        "{run:?}"
    );
    assert_eq!(calista(dir.path(), &["db", "check"], &[]).code, 0);
}

#[test]
fn log_lines_and_output_carry_no_colour_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // An empty NO_COLOR counts as unset: only the terminal test is left to say no.
    let run = calista(dir.path(), &["-vv", "db", "upgrade"], &[("NO_COLOR", "")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("INFO"), "no log line to check: {run:?}");
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    assert!(!run.stdout.contains('\x1b'), "{:?}", run.stdout);
}

/// `url`'s user and `host[:port]`, and its password if it has one.
fn url_parts(url: &str) -> (String, String, Option<String>) {
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) => (user.into(), host.into(), Some(password.into())),
            None => (userinfo.into(), host.into(), None),
        },
        None => ("postgres".into(), authority.into(), None),
    }
}

/// The scratch database's URL with a password in it: the test URL's own, or (a server
/// that trusts local connections accepts any) `s3cr3t-pw`. Returns the URL and the password.
fn url_with_password(scratch: &ScratchPg) -> (String, String) {
    let (user, host, password) = url_parts(&scratch.url);
    let password = password.unwrap_or_else(|| "s3cr3t-pw".to_owned());
    let url = format!("postgres://{user}:{password}@{host}/{}", scratch.name);
    (url, password)
}

/// `url` with `sslmode=require` added to its query.
fn requiring_tls(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=require")
}

#[test]
fn the_program_connects_over_tls_where_the_url_requires_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = runtime.block_on(ScratchPg::new());
    let server_offers_tls = runtime.block_on(async {
        let mut conn = scratch.connect().await;
        let ssl: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        ssl == "on"
    });
    let url = requiring_tls(&scratch.url);
    let dir = tempfile::tempdir().unwrap();
    let run = calista(
        dir.path(),
        &["db", "upgrade"],
        &[("CALISTA_DB_URL", url.as_str()), ("CALISTA_ENV", "ci")],
    );
    // Never "built without TLS support": the program speaks TLS; whether it connects is
    // the server's to say.
    assert!(!run.all().contains("without TLS"), "{run:?}");
    if server_offers_tls {
        assert_eq!(run.code, 0, "{run:?}");
        let current = calista(
            dir.path(),
            &["db", "current"],
            &[("CALISTA_DB_URL", url.as_str())],
        );
        assert_eq!(current.stdout.trim(), HEAD, "{current:?}");
    } else {
        assert_eq!(
            run.code, 1,
            "a server without TLS refuses sslmode=require: {run:?}"
        );
    }
    drop(scratch);
}

#[test]
fn password_in_a_reachable_url_never_appears() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = runtime.block_on(ScratchPg::new());
    let (url, password) = url_with_password(&scratch);
    assert!(
        url.contains(&password),
        "the test must hold a password: {url}"
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CALISTA_DB_URL", url.as_str()),
        ("CALISTA_ENV", "development"),
    ];
    for args in [
        &["db", "status"][..],
        &["db", "upgrade"],
        &["db", "history"],
        &["config", "show"],
        &["events", "list"],
        &["db", "upgrade", "--sql"],
        &["--format", "json", "db", "status"],
    ] {
        let run = calista(dir.path(), args, &env);
        assert_eq!(run.code, 0, "the URL must connect: {args:?}: {run:?}");
        assert!(!run.all().contains(&password), "{args:?}: {run:?}");
    }
    let shown = calista(dir.path(), &["config", "show"], &env);
    assert!(shown.stdout.contains(":***@"), "{shown:?}");
    drop(scratch);
}

#[test]
fn db_new_writes_a_template_named_after_the_newest_that_fails_until_written() {
    let dir = tempfile::tempdir().unwrap();
    let run = calista(dir.path(), &["db", "new", "add_customer_email"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let first = std::fs::read_dir(dir.path().join("migrations"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let first = first.to_string_lossy().into_owned();
    assert!(first.ends_with("_add_customer_email.sql"), "{first}");
    // A file from the future: the next one must sort after it.
    std::fs::write(
        dir.path().join("migrations/29991231_2359_future.sql"),
        create_table("f"),
    )
    .unwrap();
    assert_eq!(
        calista(dir.path(), &["db", "new", "after_future"], &[]).code,
        0
    );
    assert!(
        dir.path()
            .join("migrations/30000101_0000_after_future.sql")
            .exists()
    );
    // The templates fail until their SQL is written: one problem per section of each.
    let unwritten = calista::Migrations::from_dir(dir.path().join("migrations")).unwrap_err();
    let kinds: Vec<_> = unwritten.problems.iter().map(|p| &p.kind).collect();
    assert_eq!(
        kinds,
        [&calista::ProblemKind::NoStatement; 4],
        "{unwritten}"
    );
    let bad = calista(dir.path(), &["db", "new", "Add-Email"], &[]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("add_email"), "{bad:?}");
}

#[test]
fn invalid_migrations_folder_is_a_usage_error_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("m");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("20250230_1000_bad_date.sql"), create_table("a")).unwrap();
    std::fs::write(folder.join("notes.txt"), "x").unwrap();
    let run = calista(dir.path(), &["--migrations", "m", "db", "status"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("2 problems")
            && run.stderr.contains("notes.txt")
            && run.stderr.contains("2025-02-30"),
        "{run:?}"
    );
}

#[test]
fn malformed_config_file_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calista.toml"), "[db]\nbackup_kep = 3\n").unwrap();
    let run = calista(dir.path(), &["db", "status"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("backup_kep") && run.stderr.contains("calista.toml"),
        "{run:?}"
    );
}

/// Where a test puts the database URL.
#[derive(Debug, Clone, Copy)]
enum Via {
    Flag,
    Env,
    File,
}

/// Runs `calista` in `dir` with `url` given through `via`, in human or JSON format.
fn with_url(dir: &Path, url: &str, via: Via, json: bool, args: &[&str]) -> Run {
    let mut all: Vec<&str> = Vec::new();
    if json {
        all.extend(["--format", "json"]);
    }
    let mut env = vec![
        ("CALISTA_CONNECT_TIMEOUT", "1"),
        ("CALISTA_ENV", "development"),
    ];
    let _ = std::fs::remove_file(dir.join("calista.toml"));
    match via {
        Via::Flag => all.extend(["--db-url", url]),
        Via::Env => env.push(("CALISTA_DB_URL", url)),
        Via::File => {
            // A TOML basic string: backslashes and quotes escaped, control characters as \u.
            let mut quoted = String::new();
            for c in url.chars() {
                match c {
                    '"' | '\\' => {
                        quoted.push('\\');
                        quoted.push(c);
                    }
                    c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => quoted.push(c),
                }
            }
            std::fs::write(
                dir.join("calista.toml"),
                format!("[db]\nurl = \"{quoted}\"\n"),
            )
            .unwrap();
        }
    }
    all.extend_from_slice(args);
    calista(dir, &all, &env)
}

/// The ways people mistype a PostgreSQL URL, each holding the password `s3cr3t-pw`.
const MALFORMED_WITH_PASSWORD: &[&str] = &[
    "postgresql//user:s3cr3t-pw@h/db",
    "postgres:/user:s3cr3t-pw@h/db",
    "postgresql:user:s3cr3t-pw@h/db",
    "postgres:s3cr3t-pw@h/db",
    "postgres://user:s3cr3t-pw",
    "postgres://user:s3cr3t-pw/db",
    "postgres://user:s3cr3t-pw@h:port/db",
    "postgresql+asyncpg://user:s3cr3t-pw@h/db",
    "sqlite://user:s3cr3t-pw@h/x.db",
];

#[test]
fn a_url_that_does_not_parse_never_shows_its_password() {
    let dir = tempfile::tempdir().unwrap();
    for url in MALFORMED_WITH_PASSWORD {
        for via in [Via::Flag, Via::Env, Via::File] {
            for json in [false, true] {
                for args in [&["db", "status"][..], &["config", "show"]] {
                    let run = with_url(dir.path(), url, via, json, args);
                    let case = format!("{url} via {via:?}, json {json}, {args:?}: {run:?}");
                    assert_eq!(run.code, 2, "{case}");
                    assert!(
                        run.stderr.contains("is not an accepted database URL"),
                        "{case}"
                    );
                    assert!(!run.all().contains("s3cr3t"), "{case}");
                }
            }
        }
    }
}

/// Every command of the program, for the property below.
const EVERY_COMMAND: &[&[&str]] = &[
    &["version"],
    &["config", "show"],
    &["db", "status"],
    &["db", "current"],
    &["db", "history"],
    &["db", "heads"],
    &["db", "check"],
    &["db", "upgrade", "--sql"],
    &["db", "upgrade"],
    &["db", "downgrade", "-1"],
    &["db", "backups"],
    &["db", "recover", "--retry"],
    &["db", "restore", "--yes", "missing-backup.sqlite3"],
    &["db", "new", "generated"],
    &["events", "list"],
    &[
        "events",
        "append",
        "--stream",
        "s-1",
        "--type",
        "t",
        "--payload",
        "{}",
    ],
];

/// A generated database URL holding the password: well formed (then it may reach the test
/// server) or mistyped in the ways people mistype them.
fn generated_url(
    reachable_host: String,
    database: String,
) -> impl proptest::strategy::Strategy<Value = (String, String)> {
    use proptest::prelude::*;
    let scheme = prop::sample::select(vec![
        "postgresql",
        "postgres",
        "POSTGRES",
        "postgresql+psycopg",
        "postgresql+asyncpg",
        "mysql",
        "pg",
        "",
    ]);
    let separator = prop::sample::select(vec!["://", "://", "//", ":/", ":", ":///", "", "/"]);
    // A marker nothing else holds, then characters that break naive redaction.
    let password = "[a-zA-Z0-9!*$%@/:?#= ~]{0,10}".prop_map(|tail| format!("S3CR{tail}"));
    let host = prop::sample::select(vec![
        reachable_host.clone(),
        "127.0.0.1:9".to_owned(),
        "127.0.0.1:x".to_owned(),
    ]);
    let shape = 0..6u8;
    let encode = any::<bool>();
    // Half the cases well formed, reaching the test server (with its trust authentication
    // any password connects), so the commands run all the way through.
    let well_formed = any::<bool>();
    (
        scheme,
        separator,
        password,
        host,
        shape,
        encode,
        well_formed,
    )
        .prop_map(
            move |(scheme, separator, password, host, shape, encode, well_formed)| {
                let (scheme, separator, host, shape, encode) = if well_formed {
                    (
                        "postgresql",
                        "://",
                        reachable_host.clone(),
                        shape % 2 * 4,
                        true,
                    )
                } else {
                    (scheme, separator, host, shape, encode)
                };
                let written = if encode {
                    password
                        .bytes()
                        .map(|b| {
                            if b.is_ascii_alphanumeric() {
                                char::from(b).to_string()
                            } else {
                                format!("%{b:02X}")
                            }
                        })
                        .collect()
                } else {
                    password.clone()
                };
                let db = &database;
                let url = match shape {
                    0 => format!("{scheme}{separator}postgres:{written}@{host}/{db}"),
                    // After `://` this would be a user name: a password alone follows a mistyped
                    // separator (`postgres:pw@host`).
                    1 => format!(
                        "{scheme}{}{written}@{host}/{db}",
                        separator.replace("://", ":")
                    ),
                    2 => format!("{scheme}{separator}postgres:{written}"),
                    3 => format!("{scheme}{separator}postgres:{written}/{db}"),
                    4 => format!(
                        "{scheme}{separator}postgres@{host}/{db}?sslmode=disable&password={written}"
                    ),
                    _ => format!(
                        " {scheme}{separator}postgres:{written}@{host}/{db}?application_name=a@b "
                    ),
                };
                (url, password)
            },
        )
}

/// The property: whatever URL holds the password, however it is given and whatever the
/// command, the password is not in what the program prints. 12 cases (each runs every
/// command) by default; `PROPTEST_CASES` sets more.
#[test]
fn generated_urls_never_show_their_password_in_any_command() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = runtime.block_on(ScratchPg::new());
    let (_, reachable_host, _) = url_parts(&scratch.url);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let via = prop::sample::select(vec![Via::Flag, Via::Env, Via::File]);
    let strategy = (
        generated_url(reachable_host, scratch.name.clone()),
        via,
        any::<bool>(),
    );
    let reached = std::cell::Cell::new(0);
    runner
        .run(&strategy, |((url, password), via, json)| {
            let dir = tempfile::tempdir().unwrap();
            for args in EVERY_COMMAND {
                let run = with_url(dir.path(), &url, via, json, args);
                let printed = run.all();
                prop_assert!(
                    !printed.contains("S3CR") && !printed.contains(&password),
                    "{url:?} via {via:?}, json {json}, {args:?}: {run:?}"
                );
                if *args == ["db", "status"] && run.code == 0 {
                    reached.set(reached.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!("{cases} cases, {} reached the test server", reached.get());
    drop(scratch);
}

/// `db status` and `db history` on databases in each state of the guard.
mod states {
    use super::*;

    const A: &str = "20250101_0000_create_a.sql";
    const B: &str = "20250102_0000_create_b.sql";
    const C: &str = "20250103_0000_create_c.sql";

    /// Runs `calista --migrations <folder of these files> args…` on `db`.
    fn with_files(db: &TestDb, files: &[(&str, &str)], args: &[&str]) -> Run {
        let set = MigrationSet::new(files);
        let folder = set.dir.path().display().to_string();
        let mut all = vec!["--migrations", folder.as_str()];
        all.extend_from_slice(args);
        on_with(db, &all, &[("CALISTA_ENV", "development")])
    }

    fn status_json(db: &TestDb, files: &[(&str, &str)]) -> serde_json::Value {
        let run = with_files(db, files, &["--format", "json", "db", "status"]);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
    }

    /// The `current` row of the human table.
    fn status_current(db: &TestDb, files: &[(&str, &str)]) -> String {
        let run = with_files(db, files, &["db", "status"]);
        run.stdout
            .lines()
            .find_map(|line| line.strip_prefix("current"))
            .unwrap_or_else(|| panic!("no current row: {run:?}"))
            .trim()
            .to_owned()
    }

    fn pending_in_history(db: &TestDb, files: &[(&str, &str)]) -> usize {
        let run = with_files(db, files, &["--format", "json", "db", "history"]);
        let history: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        history
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["applied"] == false)
            .count()
    }

    both_backends! {
        async fn status_shows_the_real_current_revision_in_every_state(db: TestDb) {
            let (a, b, c) = (create_table("a"), create_table("b"), create_table("c"));
            let all = [(A, a.as_str()), (B, b.as_str()), (C, c.as_str())];
            // Out of order: A and C applied, B merged late.
            assert_eq!(with_files(&db, &[all[0], all[2]], &["db", "upgrade"]).code, 0);
            let json = status_json(&db, &all);
            assert_eq!(json["state"], "out of order", "{json}");
            assert_eq!(json["current"], "20250103_0000", "{json}");
            assert_eq!(status_current(&db, &all), "20250103_0000");
            // The pending count is the one `db history` lists.
            assert_eq!(pending_in_history(&db, &all), 1);
            assert_eq!(json["pending"], 1, "{json}");

            // Ahead: the database is at C, this build knows A only.
            let json = status_json(&db, &all[..1]);
            assert_eq!(json["state"], "ahead", "{json}");
            assert_eq!(json["current"], "20250103_0000", "{json}");
            assert_eq!(status_current(&db, &all[..1]), "20250103_0000");

            // Modified: C's file changed since it was applied.
            let edited = format!("{c}-- edited\n");
            let modified = [all[0], (C, edited.as_str())];
            let json = status_json(&db, &modified);
            assert_eq!(json["state"], "modified", "{json}");
            assert_eq!(json["current"], "20250103_0000", "{json}");
            assert_eq!(status_current(&db, &modified), "20250103_0000");

            // Corrupt: two rows in the version table.
            let handle = db.open();
            let table = if handle.pool().as_postgres().is_some() { "calista.alembic_version" } else { "alembic_version" };
            exec(&handle, &format!("INSERT INTO {table} VALUES ('20250101_0000')")).await.unwrap();
            handle.close().await;
            let json = status_json(&db, &[all[0], all[2]]);
            assert_eq!(json["state"], "corrupt", "{json}");
            let shown = status_current(&db, &[all[0], all[2]]);
            assert!(shown.contains("20250101_0000") && shown.contains("20250103_0000"), "{shown}");
            assert!(json["current"].is_string(), "{json}");
        }

        async fn status_shows_the_real_current_revision_when_interrupted(db: TestDb) {
            let (a, c) = (create_table("a"), create_table("c"));
            let d = "-- calista:no-transaction\n-- calista:up\nCREATE TABLE d (id INTEGER);\n\
                     INSERT INTO no_such_table VALUES (1);\n-- calista:down\nDROP TABLE d;\n";
            let files = [(A, a.as_str()), (C, c.as_str()), ("20250104_0000_create_d.sql", d)];
            assert_eq!(with_files(&db, &files[..2], &["db", "upgrade"]).code, 0);
            let failed = with_files(&db, &files, &["db", "upgrade"]);
            assert_eq!(failed.code, 1, "{failed:?}");
            let json = status_json(&db, &files);
            assert_eq!(json["state"], "interrupted", "{json}");
            assert_eq!(json["current"], "20250103_0000", "{json}");
            assert_eq!(status_current(&db, &files), "20250103_0000");
            assert_eq!(json["pending"], pending_in_history(&db, &files), "{json}");
        }
    }
}

#[tokio::test]
async fn a_sqlite_lock_held_elsewhere_exits_5_from_every_command() {
    use sqlx::Connection;
    let db = TestDb::sqlite();
    assert_eq!(on(&db, &["db", "upgrade"]).code, 0);
    let TestDb::Sqlite { file, .. } = &db else {
        unreachable!()
    };
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE; SELECT count(*) FROM alembic_version;")
        .execute(&mut holder)
        .await
        .unwrap();
    for args in [
        &["db", "status"][..],
        &["db", "current"],
        &["db", "check"],
        &["db", "history"],
        &["db", "upgrade"],
        &["db", "upgrade", "--sql"],
        &["events", "list"],
    ] {
        let run = on_with(&db, args, &[("CALISTA_LOCK_TIMEOUT", "1")]);
        assert_eq!(run.code, 5, "{args:?}: {run:?}");
        assert!(run.stderr.contains("lock"), "{args:?}: {run:?}");
    }
    holder.close().await.unwrap();
    assert_eq!(on(&db, &["db", "check"]).code, 0);
}

#[test]
fn system_schema_names_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    for schema in [
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "pg_temp_1",
        "Bad",
    ] {
        let run = calista(
            dir.path(),
            &["db", "upgrade"],
            &[
                ("CALISTA_DB_SCHEMA", schema),
                ("CALISTA_DB_URL", DEFAULT_PG_URL),
            ],
        );
        assert_eq!(run.code, 2, "{schema}: {run:?}");
        assert!(
            run.stderr.contains("CALISTA_DB_SCHEMA"),
            "{schema}: {run:?}"
        );
    }
}
