//! `calista db upgrade|check|status --targets FILE` end to end: the real binary on schemas of a
//! scratch PostgreSQL database and SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/fleet.rs"]
mod fleet_common;

use std::path::Path;
use std::process::Command;

use fleet_common::{Fleet, migration_set, revision, shown};

const N: usize = 5;

/// What a run printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// `calista --migrations DIR …` in `dir`, with a clean CALISTA_* environment (backups off,
/// so a test's time goes to what it tests).
fn calista(dir: &Path, migrations: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calista"));
    command
        .current_dir(dir)
        .arg("--migrations")
        .arg(migrations)
        .args(args)
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("CALISTA_") {
            command.env_remove(key);
        }
    }
    command.env("CALISTA_BACKUP", "0");
    command
}

fn run(command: &mut Command) -> Run {
    let output = command.output().expect("run calista");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `args` on the targets file `targets` of `fleet`.
fn on(fleet: &Fleet, migrations: &Path, targets: &Path, args: &[&str]) -> Run {
    let targets = shown(targets);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--targets", targets.as_str()]);
    run(&mut calista(fleet.dir.path(), migrations, &all))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_targets_file_is_a_usage_error_naming_each_line_and_nothing_runs() {
    let fleet = Fleet::new(0, 1).await;
    let set = migration_set(N);
    let file = fleet.dir.path().join("targets");
    std::fs::write(
        &file,
        format!(
            "sqlite:///{}\n# fine so far\npostgres:app:s3cret-pw@db/app\nsqlite:///b.db tenant_1\n",
            fleet.files[0].display()
        ),
    )
    .unwrap();
    let done = on(&fleet, set.dir.path(), &file, &["db", "upgrade"]);
    assert_eq!(done.code, 2, "{done:?}");
    assert!(
        done.stderr.contains("has 2 bad lines; nothing ran")
            && done.stderr.contains("line 3:")
            && done.stderr.contains("line 4: SQLite has no schemas"),
        "{done:?}"
    );
    assert!(!done.stderr.contains("s3cret-pw"), "{done:?}");
    assert!(!fleet.files[0].exists(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_reports_each_target_on_stderr_and_a_summary_on_stdout() {
    let fleet = Fleet::new(2, 2).await;
    let set = migration_set(N);
    // A password in the URL (the test server trusts local connections and ignores it).
    let with_password = fleet
        .pg
        .url
        .replacen("://postgres@", "://postgres:s3cret-pw@", 1);
    let lines = format!(
        "{} tenant_0\n{} tenant_1 # the second\nsqlite:///{}\nsqlite:///{}\n",
        fleet_common::without_tls(&with_password),
        fleet_common::without_tls(&with_password),
        fleet.files[0].display(),
        fleet.files[1].display()
    );
    let file = fleet.dir.path().join("targets");
    std::fs::write(&file, lines).unwrap();
    let done = on(&fleet, set.dir.path(), &file, &["db", "upgrade"]);
    assert_eq!(done.code, 0, "{done:?}");
    assert!(
        done.stderr.starts_with("upgrade 4 targets, 8 at once\n"),
        "{done:?}"
    );
    let progress: Vec<&str> = done.stderr.lines().skip(1).collect();
    assert_eq!(progress.len(), 4, "{done:?}");
    for (i, line) in progress.iter().enumerate() {
        assert!(
            line.starts_with(&format!("[{}/4] upgraded", i + 1)),
            "{line}"
        );
        assert!(
            line.contains(&format!("base -> {}: {N} migrations in", revision(N))),
            "{line}"
        );
    }
    assert!(done.stderr.contains("postgres://postgres:***@"), "{done:?}");
    assert!(!done.stderr.contains("s3cret-pw") && !done.stdout.contains("s3cret-pw"));
    assert!(done.stdout.starts_with("upgrade 4 targets in "), "{done:?}");
    assert!(
        done.stdout.trim_end().ends_with("8 at once: 4 upgraded"),
        "{done:?}"
    );
    fleet.assert_each_applied_once(N, "after the upgrade").await;

    let again = on(
        &fleet,
        set.dir.path(),
        &file,
        &["db", "upgrade", "--jobs", "2"],
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.trim_end().ends_with("2 at once: 4 up to date"),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_has_one_record_per_target_and_the_exit_code_is_the_most_severe() {
    let fleet = Fleet::new(2, 1).await;
    let set = migration_set(N);
    let members = fleet.members();
    let file = fleet.write_targets("targets", &members);
    assert_eq!(
        on(&fleet, set.dir.path(), &file, &["db", "upgrade"]).code,
        0
    );
    // tenant_1 is now at a revision this build does not know: unsafe, exit 4 on its own.
    let mut conn = fleet.pg.connect().await;
    sqlx::raw_sql("UPDATE tenant_1.alembic_version SET version_num = '20990101_0000'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.ok();
    let done = on(
        &fleet,
        set.dir.path(),
        &file,
        &["--format", "json", "db", "upgrade"],
    );
    assert_eq!(done.code, 4, "{done:?}");
    let document = done.json();
    assert_eq!(document["command"], "upgrade");
    assert_eq!(document["exit_code"], 4);
    assert_eq!(document["summary"]["targets"], 3);
    assert_eq!(document["summary"]["up_to_date"], 2);
    assert_eq!(document["summary"]["unsafe"], 1);
    let records = document["targets"].as_array().unwrap();
    let codes: Vec<i64> = records
        .iter()
        .map(|r| r["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [0, 4, 0]);
    let unsafe_one = &records[1];
    assert_eq!(unsafe_one["schema"], "tenant_1");
    assert_eq!(unsafe_one["line"], 3);
    assert_eq!(unsafe_one["outcome"], "unsafe");
    assert_eq!(unsafe_one["state"], "ahead");
    assert!(
        unsafe_one["error"]
            .as_str()
            .unwrap()
            .contains("20990101_0000"),
        "{unsafe_one}"
    );
    assert_eq!(records[0]["to"], revision(N));
    assert_eq!(records[2]["schema"], serde_json::Value::Null);
    assert!(
        records[2]["target"]
            .as_str()
            .unwrap()
            .starts_with("sqlite:///")
    );
    assert!(
        done.stderr
            .contains("1 of 3 targets did not succeed (1 unsafe)"),
        "{done:?}"
    );

    // An unreachable server is a failure, and a failure outranks an unsafe schema.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("postgresql://postgres@127.0.0.1:1/nowhere?sslmode=disable tenant_9\n");
    std::fs::write(&file, text).unwrap();
    let done = on(
        &fleet,
        set.dir.path(),
        &file,
        &["--format", "json", "db", "upgrade"],
    );
    assert_eq!(done.code, 1, "{done:?}");
    let codes: Vec<i64> = done.json()["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [0, 4, 0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_3_while_some_are_behind_and_status_shows_each_state() {
    let fleet = Fleet::new(2, 2).await;
    let set = migration_set(N);
    let members = fleet.members();
    let file = fleet.write_targets("targets", &members);
    let some = fleet.write_targets("some", &[members[0].clone(), members[3].clone()]);
    assert_eq!(
        on(&fleet, set.dir.path(), &some, &["db", "upgrade"]).code,
        0
    );

    let check = on(&fleet, set.dir.path(), &file, &["db", "check"]);
    assert_eq!(check.code, 3, "{check:?}");
    assert!(check.stdout.contains("2 up to date, 2 behind"), "{check:?}");
    let behind: Vec<&str> = check
        .stdout
        .lines()
        .filter(|l| l.starts_with("behind: "))
        .collect();
    assert_eq!(behind.len(), 2, "{check:?}");
    assert!(
        behind[0].contains("tenant_1 (line 3): at base, 5 pending"),
        "{check:?}"
    );
    assert!(
        check.stderr.contains("2 of 4 targets are not up to date (2 behind); each is listed above; `calista db upgrade --targets"),
        "{check:?}"
    );

    let status = on(&fleet, set.dir.path(), &file, &["db", "status"]);
    assert_eq!(status.code, 0, "{status:?}");
    let rows: Vec<&str> = status.stdout.lines().collect();
    assert!(rows[0].starts_with("TARGET"), "{status:?}");
    assert!(
        rows[1].contains("tenant_0") && rows[1].contains("up to date"),
        "{status:?}"
    );
    assert!(
        rows[2].contains("tenant_1")
            && rows[2].contains("behind")
            && rows[2].ends_with(&N.to_string()),
        "{status:?}"
    );
    assert!(
        status.stdout.contains(&format!("head: {}", revision(N))),
        "{status:?}"
    );

    assert_eq!(
        on(&fleet, set.dir.path(), &file, &["db", "upgrade"]).code,
        0
    );
    let check = on(&fleet, set.dir.path(), &file, &["db", "check"]);
    assert_eq!(check.code, 0, "{check:?}");
    fleet.assert_each_applied_once(N, "after the upgrade").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_together_upgrade_every_target_once() {
    let fleet = Fleet::new(6, 6).await;
    let set = migration_set(N);
    let file = fleet.write_targets("targets", &fleet.members());
    let mut upgraded = 0;
    for i in 0..3 {
        let shard = format!("{i}/3");
        let done = on(
            &fleet,
            set.dir.path(),
            &file,
            &["--format", "json", "db", "upgrade", "--shard", &shard],
        );
        assert_eq!(done.code, 0, "{done:?}");
        let document = done.json();
        assert_eq!(document["shard"], shard);
        // Every target is new: a shard upgrades all of its own and none of the others'.
        assert_eq!(document["summary"]["up_to_date"], 0, "{done:?}");
        upgraded += document["summary"]["upgraded"].as_u64().unwrap();
    }
    assert_eq!(upgraded, 12);
    fleet
        .assert_each_applied_once(N, "after three shards")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_a_progress_bar() {
    let fleet = Fleet::new(0, 3).await;
    let set = migration_set(N);
    let file = fleet.write_targets("targets", &fleet.members());
    // `script` runs the program on a pseudo-terminal, as a person's shell would.
    let program = format!(
        "{} --migrations {} db upgrade --targets {}",
        env!("CARGO_BIN_EXE_calista"),
        set.dir.path().display(),
        file.display()
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &program, "/dev/null"])
        .current_dir(fleet.dir.path())
        .env("CALISTA_BACKUP", "0")
        .env("COLUMNS", "100")
        .output()
        .expect("script (util-linux) runs the program on a terminal");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("ETA"), "no bar: {text}");
    assert!(
        !text.contains("[1/3] upgraded"),
        "lines instead of a bar: {text}"
    );
    assert!(text.contains("3 upgraded"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_refused_with_sql_a_db_url_or_a_shard_that_does_not_exist() {
    let fleet = Fleet::new(0, 1).await;
    let set = migration_set(N);
    let file = fleet.write_targets("targets", &fleet.members());
    let url = format!("sqlite:///{}", fleet.files[0].display());
    for (args, says) in [
        (vec!["db", "upgrade", "--sql"], "cannot be used with"),
        (
            vec!["--db-url", url.as_str(), "db", "upgrade"],
            "--db-url and --targets",
        ),
        (vec!["db", "check", "--shard", "3/3"], "numbered 0 to 2"),
        (vec!["db", "status", "--jobs", "0"], "--jobs"),
    ] {
        let done = on(&fleet, set.dir.path(), &file, &args);
        assert_eq!(done.code, 2, "{args:?}: {done:?}");
        assert!(done.stderr.contains(says), "{args:?}: {done:?}");
    }
    let alone = run(&mut calista(
        fleet.dir.path(),
        set.dir.path(),
        &["db", "upgrade", "--jobs", "2"],
    ));
    assert_eq!(alone.code, 2, "--jobs without --targets: {alone:?}");
    assert!(!fleet.files[0].exists(), "nothing ran");
}

#[test]
fn help_states_how_a_fleet_picks_its_exit_code() {
    for args in [
        &["--help"][..],
        &["db", "upgrade", "--help"],
        &["db", "check", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_calista"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("most severe of the targets' own codes, in this order: 2, 1, 4, 5, 3"),
            "{args:?}: {text}"
        );
    }
}
