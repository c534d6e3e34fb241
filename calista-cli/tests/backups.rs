//! Pre-upgrade backups: taken only when there is something to apply, before any change;
//! restorable row for row; and every failure stops the upgrade with the database untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use calista::backup::{BackupOptions, BackupOutcome, BackupPolicy};
use calista::{Migrator, Policy, UpgradeTarget};
use common::*;

const FIRST: &str = "20250101_0000_create_a.sql";
const SECOND: &str = "20250102_0000_create_b.sql";
const THIRD: &str = "20250103_0000_create_c.sql";

fn rev(text: &str) -> calista::Revision {
    calista::Revision::parse(text).unwrap()
}

fn set() -> MigrationSet {
    MigrationSet::new(&[
        (FIRST, &create_table("a")),
        (SECOND, &create_table("b")),
        (THIRD, &create_table("c")),
    ])
}

fn with_backups(dir: &Path, keep: u32, pg_dump: Option<PathBuf>) -> Policy {
    Policy {
        backup: BackupPolicy::Enabled(BackupOptions {
            dir: Some(dir.to_owned()),
            keep,
            pg_dump,
            ..BackupOptions::default()
        }),
        ..development()
    }
}

/// Upgrades to FIRST and fills table a with rows.
async fn seeded(db: &TestDb, migrations: &calista::Migrations) -> calista::Database {
    let handle = db.open();
    Migrator::new(migrations, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Revision(rev("20250101_0000")))
        .await
        .unwrap();
    for i in 1..=50 {
        exec(
            &handle,
            &format!("INSERT INTO a (id, note) VALUES ({i}, 'row {i} ''quoted''')"),
        )
        .await
        .unwrap();
    }
    handle
}

fn taken(outcome: &Option<BackupOutcome>) -> calista::backup::Backup {
    match outcome {
        Some(BackupOutcome::Taken(backup)) => backup.clone(),
        other => panic!("expected a backup, got {other:?}"),
    }
}

both_backends! {
    async fn backup_is_taken_before_the_upgrade_and_is_private(db: TestDb) {
        let migrations = set();
        let loaded = migrations.load();
        let handle = seeded(&db, &loaded).await;
        let dir = db.scratch_dir().join("backups");
        let report = Migrator::new(&loaded, &handle).with_policy(with_backups(&dir, 10, None)).upgrade(UpgradeTarget::Head).await.unwrap();
        let backup = taken(&report.backup);
        assert!(backup.path.starts_with(&dir));
        let name = backup.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.contains("-20250101_0000-"), "named with the revision it was at: {name}");
        assert!(backup.size > 0);
        assert!(!backup.restore_command.contains("s3cr3t"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&backup.path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // The history of the upgrade records where the backup is.
        let history = handle.history().await.unwrap();
        assert_eq!(history.last().unwrap().backup.as_deref(), Some(backup.path.to_string_lossy().as_ref()));
        // Nothing pending: no backup, no writes.
        let again = Migrator::new(&loaded, &handle).with_policy(with_backups(&dir, 10, None)).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(again.backup, None);
        assert_eq!(calista::backup::list(&dir).unwrap().len(), 1);
    }

    async fn empty_database_is_not_backed_up_and_says_why(db: TestDb) {
        let loaded = set().load();
        let handle = db.open();
        let dir = db.scratch_dir().join("backups");
        let report = Migrator::new(&loaded, &handle).with_policy(with_backups(&dir, 10, None)).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(report.backup, Some(BackupOutcome::Skipped("the database is empty: nothing to back up".into())));
        assert!(!dir.exists());
    }

    async fn oldest_backups_beyond_the_count_are_deleted(db: TestDb) {
        let loaded = set().load();
        let handle = seeded(&db, &loaded).await;
        let dir = db.scratch_dir().join("backups");
        // Backups of another database in the same folder are not ours to delete.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("other-20250101_0000-20200101T000000.000Z.dump"), b"x").unwrap();
        let policy = with_backups(&dir, 1, None);
        let first = Migrator::new(&loaded, &handle).with_policy(policy.clone()).upgrade(UpgradeTarget::Revision(rev("20250102_0000"))).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = Migrator::new(&loaded, &handle).with_policy(policy).upgrade(UpgradeTarget::Head).await.unwrap();
        assert_eq!(second.pruned, vec![taken(&first.backup).path]);
        let left: Vec<String> = calista::backup::list(&dir).unwrap().into_iter().map(|b| b.revision.map(|r| r.to_string()).unwrap_or_default()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&"20250102_0000".to_owned()));
        assert!(dir.join("other-20250101_0000-20200101T000000.000Z.dump").exists());
    }

    async fn unwritable_backup_folder_stops_the_upgrade_before_any_change(db: TestDb) {
        let loaded = set().load();
        let handle = seeded(&db, &loaded).await;
        // A folder that cannot be created (even by root): its parent is a file.
        let blocker = db.scratch_dir().join("not-a-folder");
        std::fs::write(&blocker, b"x").unwrap();
        let err = Migrator::new(&loaded, &handle).with_policy(with_backups(&blocker.join("backups"), 10, None))
            .upgrade(UpgradeTarget::Head).await.unwrap_err();
        assert_eq!(err.kind(), calista::ErrorKind::Failure);
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
        assert!(exec(&handle, "SELECT * FROM b").await.is_err());
    }

    async fn a_backup_folder_that_is_a_file_is_said_to_be_one(db: TestDb) {
        let loaded = set().load();
        let handle = seeded(&db, &loaded).await;
        let file = db.scratch_dir().join("backups.txt");
        std::fs::write(&file, b"x").unwrap();
        // The folder itself, and a folder below it.
        for dir in [file.clone(), file.join("backups")] {
            let err = Migrator::new(&loaded, &handle).with_policy(with_backups(&dir, 10, None))
                .upgrade(UpgradeTarget::Head).await.unwrap_err();
            assert_eq!(err.kind(), calista::ErrorKind::Failure);
            let message = err.to_string();
            assert!(
                message.contains(&format!("cannot back up into {}: {} is a file, not a folder", dir.display(), file.display())),
                "{message}"
            );
            assert!(message.contains("nothing was changed in the database"), "{message}");
            assert!(!with_causes(&err).contains("os error"), "{}", with_causes(&err));
            assert_eq!(std::fs::read(&file).unwrap(), b"x");
        }
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
        assert!(exec(&handle, "SELECT * FROM b").await.is_err());
    }

    async fn a_backup_folder_linked_to_nowhere_names_the_link_and_where_it_leads(db: TestDb) {
        let loaded = set().load();
        let handle = seeded(&db, &loaded).await;
        // A link to a disk that is not mounted, say.
        let gone = db.scratch_dir().join("volume").join("backups");
        let link = db.scratch_dir().join("backups");
        std::os::unix::fs::symlink(&gone, &link).unwrap();
        for dir in [link.clone(), link.join("app")] {
            let err = Migrator::new(&loaded, &handle).with_policy(with_backups(&dir, 10, None))
                .upgrade(UpgradeTarget::Head).await.unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(&format!(
                    "cannot back up into {}: {} is a link to {}, which does not exist",
                    dir.display(), link.display(), gone.display()
                )),
                "{message}"
            );
            assert!(message.contains("nothing was changed in the database"), "{message}");
            assert!(!with_causes(&err).contains("os error"), "{}", with_causes(&err));
        }
        assert!(!gone.exists() && !gone.parent().unwrap().exists());
        assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
    }
}

/// The schema and every row, as text: `pg_dump` of the application's schema, or `sqlite3 .dump`.
fn dump(db: &TestDb) -> String {
    let output = match db {
        TestDb::Postgres(pg) => Command::new("pg_dump")
            .args(["--schema=calista", "--no-password", "--dbname", &pg.url])
            .output()
            .expect("pg_dump must be installed for this test (package postgresql-client)"),
        TestDb::Sqlite { file, .. } => Command::new("sqlite3")
            .arg(file)
            .arg(".dump")
            .output()
            .expect("sqlite3 must be installed for this test"),
    };
    assert!(output.status.success(), "{output:?}");
    // pg_dump guards its script with a random key on `\restrict` lines: not content.
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Two dumps are the same, line for line, but for one thing PostgreSQL does itself: a
/// CHECK constraint it has read back from a dump is shown in another (equivalent) form.
fn assert_same_dump(restored: &str, before: &str) {
    let restored: Vec<&str> = restored.lines().collect();
    let before: Vec<&str> = before.lines().collect();
    assert_eq!(restored.len(), before.len(), "{restored:#?}\n{before:#?}");
    for (r, b) in restored.iter().zip(&before) {
        let both_checks = r.trim_start().starts_with("CONSTRAINT ck_")
            && b.trim_start().starts_with("CONSTRAINT ck_");
        assert!(r == b || both_checks, "restored: {r}\nbefore:   {b}");
    }
}

/// A second migration that creates one object of each kind and changes rows.
const EVERYTHING: &str = "\
-- calista:allow index-without-concurrently -- a test table
-- calista:up postgres
CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));
CREATE INDEX ix_a_note ON a (note);
CREATE VIEW v_a AS SELECT id, note FROM a WHERE id > 10;
CREATE SEQUENCE s_orders START 1000;
CREATE FUNCTION twice(x integer) RETURNS integer LANGUAGE sql AS $$ SELECT x * 2 $$;
INSERT INTO b (id, a_id) VALUES (1, 1), (2, 2);
UPDATE a SET note = 'changed' WHERE id <= 5;
DELETE FROM a WHERE id > 40;
-- calista:up sqlite
CREATE TABLE b (id INTEGER PRIMARY KEY AUTOINCREMENT, a_id INTEGER REFERENCES a (id));
CREATE INDEX ix_a_note ON a (note);
CREATE VIEW v_a AS SELECT id, note FROM a WHERE id > 10;
CREATE TRIGGER t_a AFTER INSERT ON a BEGIN INSERT INTO b (a_id) VALUES (new.id); END;
INSERT INTO b (a_id) VALUES (1), (2);
UPDATE a SET note = 'changed' WHERE id <= 5;
DELETE FROM a WHERE id > 40;
-- calista:down postgres
DROP FUNCTION twice(integer);
DROP SEQUENCE s_orders;
DROP VIEW v_a;
DROP INDEX ix_a_note;
DROP TABLE b;
-- calista:down sqlite
DROP TRIGGER t_a;
DROP VIEW v_a;
DROP INDEX ix_a_note;
DROP TABLE b;
";

/// A backup written by a newer pg_dump (its header's format version is one this pg_restore
/// does not read): the restore says so and what to install, not that the file is no
/// backup of this database; nothing is changed.
#[tokio::test]
async fn a_backup_newer_than_pg_restore_says_so_not_that_it_is_no_backup() {
    let db = TestDb::postgres().await;
    let backups = db.scratch_dir().join("backups");
    let backups = backups.display().to_string();
    let env = [
        ("CALISTA_ENV", "development"),
        ("CALISTA_BACKUP", "1"),
        ("CALISTA_BACKUP_DIR", backups.as_str()),
    ];
    let calista = |args: &[&str]| run_printed(&command_line(args), &db, &env);
    assert!(
        calista(&["db", "upgrade", "--to", "20250826_1030"])
            .status
            .success()
    );
    assert!(calista(&["db", "upgrade"]).status.success());
    let backup = only_file_in(&backups);
    // The custom format's header: "PGDMP", then its major, minor and revision numbers.
    let mut bytes = std::fs::read(&backup).unwrap();
    assert_eq!(&bytes[..5], b"PGDMP");
    bytes[6] = 99;
    std::fs::write(&backup, bytes).unwrap();
    let restored = calista(&["db", "restore", &backup.display().to_string()]);
    let said = String::from_utf8_lossy(&restored.stderr);
    assert_eq!(restored.status.code(), Some(1), "{restored:?}");
    assert!(
        said.contains("was written by a newer pg_dump than this pg_restore reads")
            && said.contains("unsupported version (1.99)")
            && said.contains("nothing was changed"),
        "{said}"
    );
    assert!(!said.contains("is not a PostgreSQL backup"), "{said}");
    let current = calista(&["db", "current"]);
    assert_eq!(
        String::from_utf8_lossy(&current.stdout).trim(),
        "20250826_1045"
    );
}

/// Runs a command line as printed, through the shell, with `calista` on `PATH`.
fn run_printed(command_line: &str, db: &TestDb, env: &[(&str, &str)]) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_calista")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(command_line)
        .current_dir(db.scratch_dir())
        .env("PATH", path)
        .env("CALISTA_DB_URL", db.url_text())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// [`run_printed`] of `calista --migrations <folder>` with `args`.
fn run_on_folder(
    folder: &str,
    args: &[&str],
    db: &TestDb,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut all = vec!["--migrations", folder];
    all.extend_from_slice(args);
    run_printed(&command_line(&all), db, env)
}

/// `calista` with these arguments, as a shell command line.
fn command_line(args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    format!("calista {}", quoted.join(" "))
}

/// Restores, on both backends.
mod restore {
    use super::*;

    both_backends! {
        async fn the_printed_restore_command_brings_back_schema_and_rows_exactly(db: TestDb) {
            let migrations = MigrationSet::new(&[(FIRST, &create_table("a"))]);
            migrations.write(SECOND, EVERYTHING);
            let folder = migrations.dir.path().display().to_string();
            let backups = db.scratch_dir().join("restore-backups").display().to_string();
            // Production (the default): backups on, and restoring needs --yes.
            let env = [("CALISTA_BACKUP_DIR", backups.as_str())];
            let calista = |args: &[&str]| run_on_folder(&folder, args, &db, &env);
            let first = calista(&["db", "upgrade", "--to", "20250101_0000"]);
            assert!(first.status.success(), "{first:?}");
            let handle = db.open();
            for i in 1..=50 {
                exec(&handle, &format!("INSERT INTO a (id, note) VALUES ({i}, 'row {i} ''quoted''')"))
                    .await
                    .unwrap();
            }
            handle.close().await;
            let before = dump(&db);

            let upgrade = calista(&["db", "upgrade"]);
            let stdout = String::from_utf8_lossy(&upgrade.stdout).into_owned();
            assert!(upgrade.status.success(), "{upgrade:?}");
            let after_upgrade = dump(&db);
            let created: &[&str] = match &db {
                TestDb::Postgres(_) => &["ix_a_note", "v_a", "changed", "calista.b", "s_orders", "twice("],
                TestDb::Sqlite { .. } => &["ix_a_note", "v_a", "changed", "TABLE b", "t_a"],
            };
            for object in created {
                assert!(after_upgrade.contains(object), "{object}: {after_upgrade}");
                assert!(!before.contains(object), "{object}: {before}");
            }
            let printed = stdout
                .lines()
                .find_map(|line| line.trim().strip_prefix("restore with: "))
                .unwrap_or_else(|| panic!("no restore command in {stdout}"))
                .to_owned();
            assert!(printed.starts_with("calista db restore --yes "), "{printed}");

            // Without --yes, production refuses and changes nothing.
            let refused = run_printed(&printed.replace(" --yes", ""), &db, &env);
            assert_eq!(refused.status.code(), Some(2), "{refused:?}");
            assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"), "{refused:?}");
            assert_eq!(dump(&db), after_upgrade);

            let restored = run_printed(&printed, &db, &env);
            assert!(restored.status.success(), "{printed}: {restored:?}");
            let said = String::from_utf8_lossy(&restored.stdout);
            assert!(said.contains("restored") && said.contains("20250101_0000"), "{said}");
            assert!(
                String::from_utf8_lossy(&restored.stderr).contains("the application must be stopped"),
                "{restored:?}"
            );
            assert_same_dump(&dump(&db), &before);
            // The database works on: the same upgrade applies again.
            let again = calista(&["db", "upgrade"]);
            assert!(again.status.success(), "{again:?}");
            assert!(dump(&db).contains("ix_a_note"));
        }

        async fn restoring_a_file_that_is_no_backup_changes_nothing(db: TestDb) {
            let env = [("CALISTA_ENV", "development")];
            assert!(run_printed(&command_line(&["db", "upgrade"]), &db, &env).status.success());
            let before = dump(&db);
            let bogus = db.scratch_dir().join("not-a-backup.dump");
            std::fs::write(&bogus, "hello").unwrap();
            let bogus = bogus.display().to_string();
            let run = run_printed(&command_line(&["db", "restore", &bogus]), &db, &env);
            assert_eq!(run.status.code(), Some(2), "{run:?}");
            assert!(String::from_utf8_lossy(&run.stderr).contains("nothing was changed"), "{run:?}");
            let missing = run_printed(&command_line(&["db", "restore", "no-such-file"]), &db, &env);
            assert_eq!(missing.status.code(), Some(2), "{missing:?}");
            assert_same_dump(&dump(&db), &before);
        }
    }
}

/// A stand-in for pg_dump that records its arguments and environment, then acts.
fn fake_pg_dump(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-pg_dump");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" > '{0}/args'\nenv > '{0}/env'\n{body}\n",
            dir.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

#[tokio::test]
async fn pg_dump_gets_the_password_from_the_environment_never_the_command_line() {
    let db = TestDb::postgres().await;
    let loaded = set().load();
    seeded(&db, &loaded).await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let url = pg
        .url
        .replacen("postgres://postgres@", "postgres://postgres:s3cr3t-pw@", 1);
    let handle = calista::Database::connect(
        &calista::url::DatabaseUrl::parse(&url, Path::new("/")).unwrap(),
        in_calista(),
    )
    .unwrap();
    let scratch = db.scratch_dir();
    let fake = fake_pg_dump(&scratch, "exit 0");
    let report = Migrator::new(&loaded, &handle)
        .with_policy(with_backups(&scratch.join("b"), 10, Some(fake)))
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    taken(&report.backup);
    let args = std::fs::read_to_string(scratch.join("args")).unwrap();
    let env = std::fs::read_to_string(scratch.join("env")).unwrap();
    assert!(!args.contains("s3cr3t-pw"), "{args}");
    assert!(
        args.contains("--format=custom") && args.contains("--schema=calista"),
        "{args}"
    );
    assert!(env.contains("PGPASSWORD=s3cr3t-pw"));
}

#[tokio::test]
async fn missing_pg_dump_names_the_three_remedies_and_changes_nothing() {
    let db = TestDb::postgres().await;
    let loaded = set().load();
    let handle = seeded(&db, &loaded).await;
    let missing = db.scratch_dir().join("no-such-pg_dump");
    let err = Migrator::new(&loaded, &handle)
        .with_policy(with_backups(&db.scratch_dir(), 10, Some(missing)))
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("Install the PostgreSQL client"),
        "{message}"
    );
    assert!(message.contains("path of pg_dump"), "{message}");
    assert!(message.contains("turn the backup off"), "{message}");
    assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
    assert!(exec(&handle, "SELECT * FROM b").await.is_err());
    assert!(
        calista::backup::list(&db.scratch_dir()).unwrap().is_empty(),
        "no partial file is left"
    );
}

/// An upgrade on PostgreSQL whose backup ran `pg_dump` and failed.
struct FailedDump {
    /// Held so that the database outlives the checks.
    _db: TestDb,
    handle: calista::Database,
    /// The backup folder (not made before the backup).
    dir: PathBuf,
    err: calista::Error,
}

impl FailedDump {
    /// Seeds a database at FIRST, then upgrades it with pg_dump stood in for by a script
    /// whose last lines are `body`.
    async fn run(body: &str) -> Self {
        let db = TestDb::postgres().await;
        let loaded = set().load();
        let handle = seeded(&db, &loaded).await;
        let scratch = db.scratch_dir();
        let fake = fake_pg_dump(&scratch, body);
        let dir = scratch.join("b");
        let err = Migrator::new(&loaded, &handle)
            .with_policy(with_backups(&dir, 10, Some(fake)))
            .upgrade(UpgradeTarget::Head)
            .await
            .unwrap_err();
        Self {
            _db: db,
            handle,
            dir,
            err,
        }
    }

    /// The message starts with "cannot back up into <folder>: `what`".
    fn assert_says(&self, what: &str) {
        let message = self.err.to_string();
        let expected = format!("cannot back up into {}: {what}", self.dir.display());
        assert!(message.starts_with(&expected), "{message}");
        assert!(
            message.ends_with("nothing was changed in the database"),
            "{message}"
        );
    }

    /// Nothing changed: the database at FIRST, and the folder made for the backup removed.
    async fn assert_nothing_changed(&self) {
        assert_eq!(
            version(&self.handle).await.as_deref(),
            Some("20250101_0000")
        );
        assert!(
            !self.dir.exists(),
            "the folder made for the backup is removed"
        );
    }
}

#[tokio::test]
async fn failing_pg_dump_reports_its_stderr_and_changes_nothing() {
    let failed = FailedDump::run(
        "echo 'pg_dump: error: aborting because of server version mismatch' >&2\n\
         echo 'pg_dump: detail: server version: 16.4; pg_dump version: 15.20' >&2\nexit 1",
    )
    .await;
    let message = with_causes(&failed.err);
    assert!(message.contains("server version mismatch"), "{message}");
    failed.assert_says("pg_dump is older than the server");
    failed.assert_nothing_changed().await;
}

/// A pg_dump killed before it finished (by hand, or by the system out of memory) printed
/// nothing to fix: the message says it was stopped, by which signal, and to run again.
#[tokio::test]
async fn a_pg_dump_killed_by_a_signal_is_said_as_stopped_and_changes_nothing() {
    let failed = FailedDump::run("kill -9 $$").await;
    failed.assert_says("pg_dump was stopped by signal 9 (SIGKILL) before it finished");
    let message = failed.err.to_string();
    assert!(!message.contains("Fix what it reports"), "{message}");
    assert!(message.contains("run the command again"), "{message}");
    failed.assert_nothing_changed().await;
}

/// Runs the program with a file-size limit, as on a full disk: writes beyond it fail.
#[cfg(unix)]
fn calista_with_file_limit(dir: &Path, kib: u32, args: &str, url: &str) -> std::process::Output {
    let script = format!(
        "trap '' XFSZ; ulimit -f {kib}; exec '{}' {args}",
        env!("CARGO_BIN_EXE_calista")
    );
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("CALISTA_DB_URL", url)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[cfg(unix)]
#[tokio::test]
async fn full_disk_during_backup_stops_the_upgrade_before_any_change() {
    let db = TestDb::sqlite();
    let handle = db.open();
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let calista_set = calista::Migrations::from_dir(&migrations).unwrap();
    Migrator::new(&calista_set, &handle)
        .with_policy(development())
        .upgrade(UpgradeTarget::Revision(rev("20250826_1030")))
        .await
        .unwrap();
    // Enough data that the copy cannot fit under the limit.
    let blob = "x".repeat(4000);
    for i in 0..200 {
        exec(&handle, &format!("INSERT INTO event_store (stream_id, stream_type, version, event_id, event_type, payload) \
                                VALUES ('s', 't', {}, '{:026}', 'e', '\"{blob}\"')", i + 1, i)).await.unwrap();
    }
    handle.close().await;
    let size_kib = u32::try_from(
        std::fs::metadata(db.scratch_dir().join("app.db"))
            .unwrap()
            .len()
            / 1024,
    )
    .unwrap();
    // Half the size of the database: the copy cannot be written.
    let output = calista_with_file_limit(
        &db.scratch_dir(),
        size_kib / 2,
        "db upgrade",
        &db.url_text(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot back up") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let handle = db.open();
    assert_eq!(version(&handle).await.as_deref(), Some("20250826_1030"));
    assert_eq!(
        scalar(&handle, "SELECT count(*) FROM event_store").await,
        200
    );
}

#[test]
fn db_backups_lists_path_database_revision_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_calista"))
            .args(args)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    assert!(
        run(&["db", "upgrade", "--to", "20250826_1030"], &[])
            .status
            .success()
    );
    let upgrade = run(&["db", "upgrade"], &[]);
    let stdout = String::from_utf8_lossy(&upgrade.stdout);
    assert!(upgrade.status.success(), "{stdout}");
    assert!(
        stdout.contains("backup: ") && stdout.contains("restore with: "),
        "{stdout}"
    );
    let listed = run(&["--format", "json", "db", "backups"], &[]);
    let backups: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(backups.as_array().map(Vec::len), Some(1), "{backups}");
    assert_eq!(backups[0]["database"], "calista");
    assert_eq!(
        backups[0]["database_id"].as_str().map(str::len),
        Some(8),
        "{backups}"
    );
    assert_eq!(backups[0]["revision"], "20250826_1030");
    assert!(backups[0]["size"].as_u64().unwrap() > 0);
    assert!(
        backups[0]["path"]
            .as_str()
            .unwrap()
            .contains("calista-backups")
    );
    // Development skips backups, and says so.
    let dev = run(
        &["db", "downgrade", "base"],
        &[("CALISTA_ENV", "development")],
    );
    assert!(dev.status.success());
    let skipped = run(&["db", "upgrade"], &[("CALISTA_ENV", "development")]);
    assert!(
        String::from_utf8_lossy(&skipped.stdout)
            .contains("backup skipped: backups are off by default in development"),
        "{skipped:?}"
    );
    let no_backup = run(
        &["db", "downgrade", "-1"],
        &[("CALISTA_ENV", "development")],
    );
    assert!(no_backup.status.success());
    let flagged = run(&["--no-backup", "db", "upgrade"], &[]);
    assert!(
        String::from_utf8_lossy(&flagged.stdout).contains("backups are off (from --no-backup)"),
        "{flagged:?}"
    );
}

/// Two SQLite files of one name, in two folders, backed up to one folder, keeping one each.
#[tokio::test]
async fn databases_of_one_name_sharing_a_backup_folder_never_prune_each_other() {
    let shared = tempfile::tempdir().unwrap();
    let loaded = set().load();
    let (one, two) = (TestDb::sqlite(), TestDb::sqlite());
    let (first, second) = (seeded(&one, &loaded).await, seeded(&two, &loaded).await);
    let policy = with_backups(shared.path(), 1, None);
    let upgrade = async |handle: &calista::Database, to: &str| {
        Migrator::new(&loaded, handle)
            .with_policy(policy.clone())
            .upgrade(UpgradeTarget::Revision(rev(to)))
            .await
            .unwrap()
    };
    let one_first = taken(&upgrade(&first, "20250102_0000").await.backup);
    let two_first = taken(&upgrade(&second, "20250102_0000").await.backup);
    // Each database's second backup prunes its own first one, and only that.
    let one_second = upgrade(&first, "20250103_0000").await;
    assert_eq!(one_second.pruned, vec![one_first.path.clone()]);
    assert!(
        two_first.path.exists(),
        "the other database's backup is kept"
    );
    let two_second = upgrade(&second, "20250103_0000").await;
    assert_eq!(two_second.pruned, vec![two_first.path.clone()]);
    let listed = calista::backup::list(shared.path()).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|b| b.database == "app"));
    assert_ne!(listed[0].database_id, listed[1].database_id);
}

/// A backup killed while SQLite wrote it leaves the copy and its journal; the next backup
/// of the same database removes both, and leaves another database's alone.
#[tokio::test]
async fn every_leftover_of_a_killed_backup_is_removed_by_the_next_one() {
    let db = TestDb::sqlite();
    let loaded = set().load();
    let dir = db.scratch_dir().join("backups");
    // `app-<identity>-`: the name this database's backups start with.
    let (handle, prefix) = at_second_with_a_backup(&db, &loaded, &dir).await;
    let policy = with_backups(&dir, 10, None);
    let killed = format!("{prefix}20250102_0000-20200101T000000.000Z.sqlite3");
    let others = "app-ffffffff-20250102_0000-20200101T000000.000Z.sqlite3";
    let leftovers = [".partial", ".partial-journal", ".partial-wal"];
    for suffix in leftovers {
        std::fs::write(dir.join(format!("{killed}{suffix}")), b"x").unwrap();
        std::fs::write(dir.join(format!("{others}{suffix}")), b"x").unwrap();
    }
    Migrator::new(&loaded, &handle)
        .with_policy(policy)
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap();
    for suffix in leftovers {
        assert!(!dir.join(format!("{killed}{suffix}")).exists(), "{suffix}");
        assert!(dir.join(format!("{others}{suffix}")).exists(), "{suffix}");
    }
}

/// The application still running: a connection in a transaction (rollback journal), or
/// one merely open in WAL mode. The restore refuses (exit 5) and changes nothing.
#[tokio::test]
async fn sqlite_restore_refuses_while_the_database_is_in_use() {
    use sqlx::Connection;
    let db = TestDb::sqlite();
    let env = [
        ("CALISTA_ENV", "development"),
        ("CALISTA_BACKUP", "1"),
        ("CALISTA_LOCK_TIMEOUT", "1"),
    ];
    assert!(
        run_printed(
            &command_line(&["db", "upgrade", "--to", "20250826_1030"]),
            &db,
            &env
        )
        .status
        .success()
    );
    let upgrade = run_printed(&command_line(&["db", "upgrade"]), &db, &env);
    let stdout = String::from_utf8_lossy(&upgrade.stdout).into_owned();
    let printed = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("restore with: "))
        .unwrap_or_else(|| panic!("no restore command in {upgrade:?}"))
        .to_owned();
    let TestDb::Sqlite { file, .. } = &db else {
        unreachable!()
    };
    let before = dump(&db);
    let url = format!("sqlite://{}", file.display());

    let mut reader = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM alembic_version;")
        .execute(&mut reader)
        .await
        .unwrap();
    let refused = run_printed(&printed, &db, &env);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop the application"),
        "{refused:?}"
    );
    reader.close().await.unwrap();
    assert_eq!(dump(&db), before);

    let wal = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let mut open = sqlx::SqliteConnection::connect_with(&wal).await.unwrap();
    sqlx::query("SELECT count(*) FROM alembic_version")
        .execute(&mut open)
        .await
        .unwrap();
    let refused = run_printed(&printed, &db, &env);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    open.close().await.unwrap();
    assert_eq!(dump(&db), before);

    // Stopped: the restore runs, and leaves no -wal or -shm of the old file behind.
    let restored = run_printed(&printed, &db, &env);
    assert!(restored.status.success(), "{restored:?}");
    for suffix in ["-wal", "-shm", "-journal", ".restoring"] {
        let leftover = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
        assert!(!leftover.exists(), "{suffix}");
    }
    let current = run_printed(&command_line(&["db", "current"]), &db, &env);
    assert_eq!(
        String::from_utf8_lossy(&current.stdout).trim(),
        "20250826_1030"
    );
}

/// The point of a backup: a database file that is damaged beyond use is replaced.
/// A SQLite restore whose copy beside the database fills its disk: the error says there is
/// no room, the half-written copy is removed (it would hold the space it lacked), and the
/// database is as it was.
#[cfg(target_os = "linux")]
#[test]
fn a_sqlite_restore_onto_a_full_disk_leaves_no_copy_behind() {
    let disk = SmallDisk::mount(1024, false);
    let file = disk.path().join("app.db");
    std::fs::write(&file, b"").unwrap();
    // A backup too big for the room left beside the database.
    let backup = tempfile::tempdir().unwrap();
    let big = backup
        .path()
        .join("app-20250101_0000-20250101T000000.000Z.sqlite3");
    let made = Command::new("sqlite3")
        .arg(&big)
        .arg(
            "CREATE TABLE a (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
             WHERE i < 1000) INSERT INTO a SELECT hex(randomblob(1000)) FROM n;",
        )
        .output()
        .expect("sqlite3 is needed for this test");
    assert!(made.status.success(), "{made:?}");
    let before = folder_contents(disk.path());
    let restored = program(env!("CARGO_BIN_EXE_calista"), disk.path())
        .args([
            "--db-url",
            &format!("sqlite:///{}", file.display()),
            "db",
            "restore",
            "--yes",
        ])
        .arg(&big)
        .output()
        .unwrap();
    let shown = printed(&restored);
    assert_eq!(restored.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("the disk has room") && shown.contains("nothing was changed"),
        "{shown}"
    );
    assert!(shown.contains("No space left on device"), "{shown}");
    assert_eq!(
        folder_contents(disk.path()),
        before,
        "no .restoring copy left: {shown}"
    );
}

#[test]
fn a_damaged_sqlite_file_is_replaced_by_its_backup() {
    let db = TestDb::sqlite();
    let env = [("CALISTA_ENV", "development"), ("CALISTA_BACKUP", "1")];
    let upgrade = |args: &[&str]| run_printed(&command_line(args), &db, &env);
    assert!(
        upgrade(&["db", "upgrade", "--to", "20250826_1030"])
            .status
            .success()
    );
    let upgraded = upgrade(&["db", "upgrade"]);
    let stdout = String::from_utf8_lossy(&upgraded.stdout).into_owned();
    let printed = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("restore with: "))
        .unwrap_or_else(|| panic!("no restore command in {upgraded:?}"))
        .to_owned();
    let TestDb::Sqlite { file, .. } = &db else {
        unreachable!()
    };
    std::fs::write(file, vec![0x5a; 8192]).unwrap();
    let restored = run_printed(&printed, &db, &env);
    assert!(restored.status.success(), "{restored:?}");
    let current = upgrade(&["db", "current"]);
    assert_eq!(
        String::from_utf8_lossy(&current.stdout).trim(),
        "20250826_1030",
        "{current:?}"
    );
}

/// The names and sizes of the files in a folder, sorted.
fn folder_contents(dir: &Path) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, entry.metadata().unwrap().len())
        })
        .collect();
    found.sort();
    found
}

/// About 6 MB of rows in table a that no compression shrinks much: more than SQLite's page
/// cache, so that its copy spills to disk and journals, and more than pg_dump compresses
/// into a small disk.
async fn fill_table_a(db: &TestDb, handle: &calista::Database) {
    let sql = match db {
        TestDb::Sqlite { .. } => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
             INSERT INTO a (id, note) SELECT 1000 + i, hex(randomblob(1000)) FROM n"
        }
        TestDb::Postgres(_) => {
            "INSERT INTO a (id, note) SELECT 1000 + i, \
             (SELECT string_agg(md5(random()::text || i || j), '') FROM generate_series(1, 63) AS j) \
             FROM generate_series(1, 3000) AS i"
        }
    };
    exec(handle, sql).await.unwrap();
}

/// The upgrade to head failed before any change: still at SECOND, no table c, table a as
/// it was.
async fn nothing_changed(handle: &calista::Database, rows_in_a: i64) {
    assert_eq!(version(handle).await.as_deref(), Some("20250102_0000"));
    assert!(exec(handle, "SELECT * FROM c").await.is_err());
    assert_eq!(scalar(handle, "SELECT count(*) FROM a").await, rows_in_a);
}

/// Seeds the database and upgrades it to SECOND with a backup into `dir`, which returns
/// the name that this database's backups start with.
async fn at_second_with_a_backup(
    db: &TestDb,
    loaded: &calista::Migrations,
    dir: &Path,
) -> (calista::Database, String) {
    let handle = seeded(db, loaded).await;
    let report = Migrator::new(loaded, &handle)
        .with_policy(with_backups(dir, 10, None))
        .upgrade(UpgradeTarget::Revision(rev("20250102_0000")))
        .await
        .unwrap();
    let name = taken(&report.backup)
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let prefix = name[..name.find("-20250101_0000-").unwrap() + 1].to_owned();
    (handle, prefix)
}

#[cfg(target_os = "linux")]
mod full_disk {
    use super::*;

    both_backends! {
        async fn a_backup_into_a_full_disk_leaves_the_folder_as_it_was_and_says_why(db: TestDb) {
            let loaded = set().load();
            let disk = SmallDisk::mount(1024, false);
            let dir = disk.path();
            // A backup that fits, then rows that do not.
            let (handle, prefix) = at_second_with_a_backup(&db, &loaded, dir).await;
            fill_table_a(&db, &handle).await;
            let rows = scalar(&handle, "SELECT count(*) FROM a").await;
            std::fs::write(dir.join("notes.txt"), b"kept").unwrap();
            let before = folder_contents(dir);
            // A leftover of an interrupted backup of this database, which any backup removes.
            let extension = if matches!(db, TestDb::Sqlite { .. }) { "sqlite3" } else { "dump" };
            let leftover = format!("{prefix}20250102_0000-20200101T000000.000Z.{extension}.partial-journal");
            std::fs::write(dir.join(&leftover), b"x").unwrap();

            let err = Migrator::new(&loaded, &handle)
                .with_policy(with_backups(dir, 10, None))
                .upgrade(UpgradeTarget::Head)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), calista::ErrorKind::Failure);
            let message = err.to_string();
            assert!(message.contains(&format!("cannot back up into {}", dir.display())), "{message}");
            assert!(message.contains("no space left on its disk") && message.contains("Free space there"), "{message}");
            assert!(message.contains("nothing was changed in the database"), "{message}");
            assert!(!message.contains("version"), "a full disk is not a pg_dump too old: {message}");
            // What the system said, once, as the cause.
            let said = match db {
                TestDb::Sqlite { .. } => "database or disk is full",
                TestDb::Postgres(_) => "No space left on device",
            };
            let chain = with_causes(&err);
            assert_eq!(chain.matches(said).count(), 1, "{chain}");
            assert!(!message.contains(said), "the cause is only in source(): {message}");

            assert_eq!(folder_contents(dir), before, "no partial file, no journal; the leftover is gone");
            nothing_changed(&handle, rows).await;
        }

        async fn a_backup_into_a_disk_out_of_files_says_no_space_and_leaves_it_as_it_was(db: TestDb) {
            let loaded = set().load();
            let roomy = db.scratch_dir().join("backups");
            let (handle, _) = at_second_with_a_backup(&db, &loaded, &roomy).await;
            // Room for bytes, but not for files: on SQLite, one more than the folder and the
            // note, which the backup takes, so that the journal SQLite writes beside it finds
            // none left; on PostgreSQL, none for the backup.
            let files = if matches!(db, TestDb::Sqlite { .. }) { 3 } else { 2 };
            let disk = SmallDisk::mount_with(4096, &format!("nr_inodes={files},"));
            let dir = disk.path();
            std::fs::write(dir.join("notes.txt"), b"kept").unwrap();
            let before = folder_contents(dir);
            let err = Migrator::new(&loaded, &handle)
                .with_policy(with_backups(dir, 10, None))
                .upgrade(UpgradeTarget::Head)
                .await
                .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("cannot back up into {}: there is no space left on its disk", dir.display())), "{message}");
            assert!(with_causes(&err).contains("No space left on device"), "{}", with_causes(&err));
            assert_eq!(folder_contents(dir), before);
            nothing_changed(&handle, 50).await;
        }

        async fn a_backup_into_a_read_only_folder_says_so_and_changes_nothing(db: TestDb) {
            let loaded = set().load();
            let roomy = db.scratch_dir().join("backups");
            let (handle, _) = at_second_with_a_backup(&db, &loaded, &roomy).await;
            let disk = SmallDisk::mount(64, true);
            let err = Migrator::new(&loaded, &handle)
                .with_policy(with_backups(disk.path(), 10, None))
                .upgrade(UpgradeTarget::Head)
                .await
                .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("cannot back up into {}: it is on a read-only file system", disk.path().display())), "{message}");
            assert!(message.contains("nothing was changed in the database"), "{message}");
            assert!(with_causes(&err).contains("Read-only file system"), "{err:?}");
            assert!(folder_contents(disk.path()).is_empty());
            nothing_changed(&handle, 50).await;
        }

        async fn a_backup_into_a_folder_this_user_may_not_write_says_so_and_changes_nothing(db: TestDb) {
            let loaded = set().load();
            let roomy = db.scratch_dir().join("backups");
            let (handle, _) = at_second_with_a_backup(&db, &loaded, &roomy).await;
            // Root may write anywhere, except in an immutable folder.
            let disk = SmallDisk::mount(64, false);
            let locked = disk.path().join("locked");
            std::fs::create_dir(&locked).unwrap();
            let chattr = Command::new("chattr").arg("+i").arg(&locked).output();
            assert!(
                matches!(&chattr, Ok(output) if output.status.success()),
                "this test makes a folder no one may write with `chattr +i` (e2fsprogs): {chattr:?}"
            );
            let err = Migrator::new(&loaded, &handle)
                .with_policy(with_backups(&locked, 10, None))
                .upgrade(UpgradeTarget::Head)
                .await
                .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("cannot back up into {}: this user may not write there", locked.display())), "{message}");
            assert!(message.contains("Give it write access"), "{message}");
            assert!(message.contains("nothing was changed in the database"), "{message}");
            assert!(folder_contents(&locked).is_empty());
            nothing_changed(&handle, 50).await;
        }
    }
}

/// A database role that may read calista's tables but not the application's: pg_dump is
/// refused, and the error says that the role lacks a privilege, not that the folder does.
#[tokio::test]
async fn pg_dump_refused_by_the_database_names_the_roles_privileges() {
    let db = TestDb::postgres().await;
    let loaded = set().load();
    let owner = seeded(&db, &loaded).await;
    owner.close().await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!()
    };
    let role = LoginRole::new(
        pg,
        "GRANT USAGE ON SCHEMA calista TO {role}; \
         GRANT SELECT ON calista.alembic_version, calista.schema_history TO {role}",
    )
    .await;
    let url = calista::url::DatabaseUrl::parse(&role.url(pg), Path::new("/")).unwrap();
    let handle = calista::Database::connect(&url, in_calista()).unwrap();
    let dir = db.scratch_dir().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let err = Migrator::new(&loaded, &handle)
        .with_policy(with_backups(&dir, 10, None))
        .upgrade(UpgradeTarget::Head)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "cannot back up into {}: the database role lacks a privilege that pg_dump needs to read schema calista",
            dir.display()
        )),
        "{message}"
    );
    assert!(
        message.contains("Grant it USAGE on the schema and SELECT"),
        "{message}"
    );
    assert!(!message.contains("may not write there"), "{message}");
    let chain = with_causes(&err);
    assert_eq!(
        chain.matches("permission denied for table a").count(),
        1,
        "{chain}"
    );
    assert!(folder_contents(&dir).is_empty());
    let owner = db.open();
    assert_eq!(version(&owner).await.as_deref(), Some("20250101_0000"));
}

/// pg_dump that cannot reach the server the upgrade reached (here: another port).
#[tokio::test]
async fn pg_dump_that_cannot_connect_says_so() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let failed = FailedDump::run(&format!("exec pg_dump \"$@\" --port={closed}")).await;
    failed.assert_says("pg_dump could not connect to the database");
    assert!(
        with_causes(&failed.err).contains("Connection refused"),
        "{:?}",
        failed.err
    );
    failed.assert_nothing_changed().await;
}

/// A failure calista cannot name is shown in pg_dump's words: its last lines, once.
#[tokio::test]
async fn any_other_pg_dump_failure_shows_its_last_lines_once() {
    let lines: Vec<String> = (1..=8)
        .map(|i| format!("pg_dump: warning: line {i}"))
        .collect();
    let failed = FailedDump::run(&format!("printf '{}\\n' >&2\nexit 3", lines.join("\\n"))).await;
    failed.assert_says("pg_dump failed (exit status: 3)");
    let message = failed.err.to_string();
    assert!(
        !message.contains("line 8"),
        "the words are the cause: {message}"
    );
    assert!(!message.contains("version"), "{message}");
    let chain = with_causes(&failed.err);
    assert!(!chain.contains("warning: line 3"), "{chain}");
    for shown in &lines[3..] {
        assert_eq!(chain.matches(shown.as_str()).count(), 1, "{chain}");
    }
    failed.assert_nothing_changed().await;
}

/// The peak resident memory (`VmHWM` in /proc, in kB) of a running process, looked at every
/// few milliseconds until it exits; with its output.
fn run_watching_memory(command: &mut Command) -> (std::process::Output, u64) {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    while child.try_wait().unwrap().is_none() {
        // VmHWM only grows: the last look before the exit is the peak, give or take its
        // last milliseconds.
        if let Some(kb) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))
                    .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            })
        {
            peak_kb = kb;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (
        std::process::Output {
            status,
            stdout,
            stderr,
        },
        peak_kb,
    )
}

/// How many bytes of SQL `pg_restore` renders from a backup: what a restore holding the
/// whole script would hold.
fn rendered_bytes(backup: &str) -> u64 {
    use std::io::Read;
    let mut child = Command::new("pg_restore")
        .args(["--file=-", backup])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("pg_restore must be installed for this test (package postgresql-client)");
    let mut out = child.stdout.take().unwrap();
    let mut buffer = vec![0; 1 << 16];
    let mut total = 0;
    loop {
        match out.read(&mut buffer).unwrap() {
            0 => break,
            n => total += n as u64,
        }
    }
    assert!(child.wait().unwrap().success());
    total
}

/// A restore streams the backup's SQL from pg_restore into psql: the program's own memory
/// stays far below the size of the SQL it restores (here well over 100 MB), where holding
/// the script whole took more than the script's size.
#[tokio::test]
async fn a_postgres_restore_streams_with_memory_that_does_not_grow_with_the_database() {
    let db = TestDb::postgres().await;
    let migrations = MigrationSet::new(&[
        (
            FIRST,
            "-- calista:allow postgres-only -- this test runs on PostgreSQL only\n\
             -- calista:up\nCREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);\n\
             INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 450000) AS g;\n\
             -- calista:down\nDROP TABLE big;\n",
        ),
        (SECOND, &create_table("b")),
    ]);
    let folder = migrations.dir.path().display().to_string();
    let backups = db.scratch_dir().join("big-backups").display().to_string();
    let env = [("CALISTA_BACKUP_DIR", backups.as_str())];
    let calista = |args: &[&str]| run_on_folder(&folder, args, &db, &env);
    let first = calista(&["db", "upgrade", "--to", "20250101_0000"]);
    assert!(first.status.success(), "{first:?}");
    // The next upgrade backs up the large table first.
    let second = calista(&["db", "upgrade"]);
    assert!(second.status.success(), "{second:?}");
    let stdout = String::from_utf8_lossy(&second.stdout).into_owned();
    let backup = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("backup: "))
        .unwrap_or_else(|| panic!("no backup in {stdout}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let rendered = rendered_bytes(&backup);
    assert!(
        rendered > 100_000_000,
        "the backup renders {rendered} bytes of SQL"
    );

    let bin = Path::new(env!("CARGO_BIN_EXE_calista"));
    let (restored, peak_kb) = run_watching_memory(
        Command::new(bin)
            .args(["--migrations", &folder, "db", "restore", "--yes", &backup])
            .current_dir(db.scratch_dir())
            .env("CALISTA_DB_URL", db.url_text())
            .envs(env),
    );
    assert!(restored.status.success(), "{restored:?}");
    let peak_mb = peak_kb / 1024;
    assert!(
        peak_mb < 64,
        "calista's peak memory was {peak_mb} MB restoring {} MB of SQL",
        rendered / 1_000_000
    );
    let handle = db.open();
    assert_eq!(scalar(&handle, "SELECT count(*) FROM big").await, 450_000);
    assert_eq!(version(&handle).await.as_deref(), Some("20250101_0000"));
    handle.close().await;
}
