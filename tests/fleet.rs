//! `calista::fleet`: many targets in one call, on real PostgreSQL schemas and SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;
#[path = "common/fleet.rs"]
mod fleet_common;

use std::path::Path;
use std::time::Duration;

use calista::fleet::{self, Action, FleetOptions, FleetReport, Outcome, Progress, Targets};
use calista::{DatabaseOptions, Migrations, Revision, UpgradeTarget};
use fleet_common::{Fleet, Member, migration_set, revision};

const N: usize = 6;

/// One async test per kind of fleet: four schemas of one PostgreSQL database, and four
/// SQLite files.
macro_rules! both_fleet_kinds {
    ($(async fn $name:ident($fleet:ident: Fleet) $body:block)*) => {
        mod schemas {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $fleet = Fleet::new(4, 0).await;
                    $body
                }
            )*
        }
        mod files {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $fleet = Fleet::new(0, 4).await;
                    $body
                }
            )*
        }
    };
}

fn options(jobs: usize) -> FleetOptions {
    FleetOptions::new(common::development(), DatabaseOptions::default()).jobs(jobs)
}

fn targets(fleet: &Fleet, members: &[Member]) -> Targets {
    let text: String = members
        .iter()
        .map(|m| format!("{}\n", fleet.line(m)))
        .collect();
    Targets::parse(&text, Path::new("/")).unwrap()
}

async fn upgrade(
    migrations: &Migrations,
    targets: &Targets,
    to: UpgradeTarget,
    options: &FleetOptions,
) -> FleetReport {
    fleet::run(migrations, targets, Action::Upgrade(to), options, |_| {}).await
}

fn outcomes(report: &FleetReport) -> Vec<Outcome> {
    report.targets.iter().map(|t| t.outcome).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_of_one_database_each_get_their_own_tables_version_and_history() {
    let fleet = Fleet::new(4, 0).await;
    let set = migration_set(N);
    let migrations = set.load();
    let report = upgrade(
        &migrations,
        &targets(&fleet, &fleet.members()),
        UpgradeTarget::Head,
        &options(4),
    )
    .await;
    assert_eq!(outcomes(&report), [Outcome::Upgraded; 4]);
    for target in &report.targets {
        assert_eq!(target.applied().len(), N);
        assert_eq!(
            (target.from(), target.to()),
            (None, migrations.head().map(|m| m.revision()))
        );
    }
    fleet.assert_each_applied_once(N, "after one run").await;
    // Nothing went to the default schema or to public.
    let mut conn = fleet.pg.connect().await;
    let stray: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema IN ('public', 'calista')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::Connection::close(conn).await.ok();
    assert_eq!(stray, 0);
    fleet.assert_no_lock_left("after one run").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_upgraded_and_a_broken_file_fails_alone() {
    let fleet = Fleet::new(0, 4).await;
    std::fs::write(&fleet.files[1], b"not a database at all\n".repeat(100)).unwrap();
    let set = migration_set(N);
    let report = upgrade(
        &set.load(),
        &targets(&fleet, &fleet.members()),
        UpgradeTarget::Head,
        &options(2),
    )
    .await;
    assert_eq!(
        outcomes(&report),
        [
            Outcome::Upgraded,
            Outcome::Failed,
            Outcome::Upgraded,
            Outcome::Upgraded
        ]
    );
    let error = common::with_causes(report.targets[1].error.as_ref().unwrap());
    assert!(error.contains("not a SQLite database"), "{error}");
    for (i, member) in fleet.members().iter().enumerate() {
        if i != 1 {
            fleet
                .applied(member)
                .await
                .assert_at(N, &format!("file {i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_lock_is_held_times_out_while_the_others_are_upgraded() {
    use sqlx::Connection;
    let fleet = Fleet::new(3, 0).await;
    let mut holder = fleet.pg.connect().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(calista::postgres_lock_key(
            &calista::SchemaName::new("tenant_1").unwrap(),
        ))
        .execute(&mut holder)
        .await
        .unwrap();
    let set = migration_set(N);
    let mut options = options(3);
    options.database.lock_timeout = Duration::from_secs(1);
    let report = upgrade(
        &set.load(),
        &targets(&fleet, &fleet.members()),
        UpgradeTarget::Head,
        &options,
    )
    .await;
    assert_eq!(
        outcomes(&report),
        [Outcome::Upgraded, Outcome::LockTimeout, Outcome::Upgraded]
    );
    let members = fleet.members();
    fleet.applied(&members[0]).await.assert_at(N, "tenant_0");
    fleet
        .applied(&members[1])
        .await
        .assert_at(0, "tenant_1, locked");
    fleet.applied(&members[2]).await.assert_at(N, "tenant_2");
    holder.close().await.unwrap();
}

both_fleet_kinds! {
    async fn a_rerun_finishes_what_is_left_and_applies_nothing_twice(fleet: Fleet) {
        let set = migration_set(N);
        let migrations = set.load();
        let members = fleet.members();
        // Left at different places by earlier runs: nothing, 2 migrations, 4, all.
        for (k, member) in members.iter().enumerate().skip(1) {
            let to = Revision::parse(&revision((2 * k).min(N))).unwrap();
            let one = targets(&fleet, std::slice::from_ref(member));
            upgrade(&migrations, &one, UpgradeTarget::Revision(to), &options(1)).await;
        }
        let report = upgrade(&migrations, &targets(&fleet, &members), UpgradeTarget::Head, &options(4)).await;
        assert_eq!(
            outcomes(&report),
            [Outcome::Upgraded, Outcome::Upgraded, Outcome::Upgraded, Outcome::UpToDate]
        );
        let applied: Vec<usize> = report.targets.iter().map(|t| t.applied().len()).collect();
        assert_eq!(applied, [N, N - 2, N - 4, 0]);
        fleet.assert_each_applied_once(N, "after the rerun").await;
    }

    async fn overlapping_runs_at_once_apply_each_migration_once(fleet: Fleet) {
        let set = migration_set(N);
        let migrations = set.load();
        let members = fleet.members();
        let first = targets(&fleet, &members[..3]);
        let second = targets(&fleet, &members[1..]);
        let all = targets(&fleet, &members);
        let (three, two) = (options(3), options(2));
        let (a, b, c) = tokio::join!(
            upgrade(&migrations, &first, UpgradeTarget::Head, &three),
            upgrade(&migrations, &second, UpgradeTarget::Head, &three),
            upgrade(&migrations, &all, UpgradeTarget::Head, &two),
        );
        for report in [&a, &b, &c] {
            assert!(
                report.targets.iter().all(|t| matches!(t.outcome, Outcome::Upgraded | Outcome::UpToDate)),
                "{report:?}"
            );
        }
        // Each target was upgraded by exactly one of the runs that had it.
        let upgraded = [&a, &b, &c]
            .iter()
            .flat_map(|r| r.targets.iter())
            .filter(|t| t.outcome == Outcome::Upgraded)
            .count();
        assert_eq!(upgraded, members.len());
        fleet.assert_each_applied_once(N, "after overlapping runs").await;
    }

    async fn a_check_takes_no_lock_writes_nothing_and_says_who_is_behind(fleet: Fleet) {
        let set = migration_set(N);
        let migrations = set.load();
        let members = fleet.members();
        upgrade(&migrations, &targets(&fleet, &members[..2]), UpgradeTarget::Head, &options(2)).await;
        let report = fleet::run(&migrations, &targets(&fleet, &members), Action::Check, &options(4), |_| {}).await;
        assert_eq!(
            outcomes(&report),
            [Outcome::UpToDate, Outcome::UpToDate, Outcome::Behind, Outcome::Behind]
        );
        let refusal = report.targets[2].error.as_ref().unwrap();
        assert_eq!(refusal.kind(), calista::ErrorKind::Behind);
        for member in &members[2..] {
            assert_eq!(fleet.applied(member).await, fleet_common::Applied::default(), "{member:?}");
        }
        // A target edited since: unsafe, refused by an upgrade too, and left alone.
        set.write(&format!("{}_create_t1.sql", revision(1)), "-- calista:up\nCREATE TABLE t1 (id INTEGER PRIMARY KEY, edited INTEGER);\n-- calista:down\nDROP TABLE t1;\n");
        let edited = set.load();
        let report = upgrade(&edited, &targets(&fleet, &members[..1]), UpgradeTarget::Head, &options(1)).await;
        assert_eq!(outcomes(&report), [Outcome::Unsafe]);
        assert_eq!(report.targets[0].state.as_ref().map(|s| s.name()), Some("modified"));
    }

    async fn progress_hears_every_target_and_jobs_bound_the_work_in_flight(fleet: Fleet) {
        let set = migration_set(N);
        let migrations = set.load();
        let members = fleet.members();
        let (mut started, mut finished, mut most) = (0, 0, 0);
        let mut done_seen = Vec::new();
        let report = fleet::run(
            &migrations,
            &targets(&fleet, &members),
            Action::Upgrade(UpgradeTarget::Head),
            &options(2),
            |event| match event {
                Progress::Started { .. } => {
                    started += 1;
                    most = most.max(started - finished);
                }
                Progress::Finished { done, total, .. } => {
                    finished += 1;
                    done_seen.push((done, total));
                }
                _ => {}
            },
        )
        .await;
        assert_eq!((started, finished), (members.len(), members.len()));
        assert_eq!(most, 2, "at most --jobs at once, and that many");
        let expected: Vec<(usize, usize)> = (1..=members.len()).map(|d| (d, members.len())).collect();
        assert_eq!(done_seen, expected);
        // The report keeps the order of the list, whatever order they finished in.
        let lines: Vec<Option<usize>> = report.targets.iter().map(|t| t.target.line()).collect();
        assert_eq!(lines, (1..=members.len()).map(Some).collect::<Vec<_>>());
    }
}

/// A fleet that is up to date costs the guard's check per target: one query, no lock (a
/// lock, a re-check and an unlock would be three more). Counted as the server counts
/// transactions, against the floor of opening a connection and running one query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_to_date_fleet_costs_one_query_per_target() {
    use sqlx::Connection;
    let fleet = Fleet::new(8, 0).await;
    let set = migration_set(N);
    let migrations = set.load();
    let list = targets(&fleet, &fleet.members());
    upgrade(&migrations, &list, UpgradeTarget::Head, &options(4)).await;

    let mut admin = common::pg_admin().await;
    let before = committed(&mut admin, &fleet).await;
    for _ in 0..8 {
        let mut conn = fleet.pg.connect().await;
        sqlx::query("SELECT 1::BIGINT")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let floor = committed(&mut admin, &fleet).await - before;

    let before = committed(&mut admin, &fleet).await;
    let report = upgrade(&migrations, &list, UpgradeTarget::Head, &options(4)).await;
    assert_eq!(outcomes(&report), [Outcome::UpToDate; 8]);
    let spent = committed(&mut admin, &fleet).await - before;
    admin.close().await.ok();
    assert!(
        spent <= floor,
        "8 up-to-date targets cost {spent} transactions; 8 connections with one query each cost {floor}"
    );
}

/// Transactions committed in the fleet's database, once every session of it has ended (a
/// session reports its counts when it ends).
async fn committed(admin: &mut sqlx::PgConnection, fleet: &Fleet) -> i64 {
    for _ in 0..100 {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(&fleet.pg.name)
                .fetch_one(&mut *admin)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *admin)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(&fleet.pg.name)
        .fetch_one(&mut *admin)
        .await
        .unwrap()
}
