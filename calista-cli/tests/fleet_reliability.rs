//! A fleet upgrade killed at random moments, and fleet runs on overlapping lists at once:
//! every target ends with each migration applied exactly once, at the head, and no lock
//! left behind. Half the targets are schemas of one PostgreSQL database, half SQLite files.
//!
//! `CALISTA_FLEET_TARGETS` (default 24) and `CALISTA_FLEET_KILLS` (default 3) size the kill
//! trials; the full trial is `CALISTA_FLEET_TARGETS=200 CALISTA_FLEET_KILLS=20` (its figures
//! are in docs/RELIABILITY.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/fleet.rs"]
mod fleet_common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::program;
use fleet_common::{Fleet, migration_set};

/// The migrations of every trial: enough that a kill often lands inside a target's batch.
const N: usize = 20;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `calista --migrations DIR db upgrade --targets FILE --jobs 8`, with a clean environment.
fn fleet_upgrade(dir: &Path, migrations: &Path, targets: &Path) -> Command {
    let mut command = program(env!("CARGO_BIN_EXE_calista"), dir);
    command
        .arg("--migrations")
        .arg(migrations)
        .args(["db", "upgrade", "--jobs", "8", "--targets"])
        .arg(targets);
    command
}

fn finish(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

/// Starts `command` (a fleet upgrade) and kills it (SIGKILL) `jitter` after it reported
/// `done` targets finished; returns how many it had reported by then. Counting its progress
/// lines rather than the clock keeps the kills spread over the run on a machine whose speed
/// varies from one minute to the next.
fn kill_after(mut command: Command, done: usize, jitter: Duration) -> usize {
    use std::io::BufRead;
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with('[') && tx.send(()).is_err() {
                break;
            }
        }
    });
    let mut seen = 0;
    while seen < done && rx.recv_timeout(Duration::from_secs(60)).is_ok() {
        seen += 1;
    }
    std::thread::sleep(jitter);
    child.kill().unwrap();
    let _ = child.wait();
    seen + rx.try_iter().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_upgrade_killed_at_random_moments_then_rerun_applies_each_migration_once() {
    let targets = setting("CALISTA_FLEET_TARGETS", 24).max(2);
    let kills = setting("CALISTA_FLEET_KILLS", 3);
    let fleet = Fleet::new(targets / 2, targets - targets / 2).await;
    let set = migration_set(N);
    let file = fleet.write_targets("targets", &fleet.members());
    let upgrade = || fleet_upgrade(fleet.dir.path(), set.dir.path(), &file);

    finish(upgrade().spawn().unwrap());
    fleet.assert_each_applied_once(N, "the first run").await;

    let mut rng = common::Lcg::from_clock();
    let seed = rng.0;
    let (mut landed, mut at_base, mut at_head) = (0, 0, 0);
    for trial in 0..kills {
        fleet.reset().await;
        // After a random number of targets finished, and a random moment after that.
        let done = (rng.next() % targets as u64) as usize;
        let jitter = Duration::from_millis(rng.next() % 40);
        let reported = kill_after(upgrade(), done, jitter);
        let context = format!(
            "trial {trial}, killed {jitter:?} after {done} targets finished ({reported} reported; seed {seed})"
        );

        // Each target is at its old revision or its new one: a batch is one transaction.
        let (mut base, mut head) = (0, 0);
        for member in fleet.members() {
            match fleet
                .applied(&member)
                .await
                .count(&format!("{member:?}, {context}"))
            {
                0 => base += 1,
                N => head += 1,
                between => panic!("{member:?} has {between} of {N} migrations: {context}"),
            }
        }
        if base > 0 && head > 0 {
            landed += 1;
        }
        (at_base, at_head) = (at_base + base, at_head + head);

        let rerun = finish(upgrade().spawn().unwrap());
        assert!(
            base == 0 || rerun.contains(&format!("at once: {base} upgraded")),
            "the rerun upgrades exactly what was left: {context}\n{rerun}"
        );
        fleet.assert_each_applied_once(N, &context).await;
        fleet.assert_no_lock_left(&context).await;
    }
    eprintln!(
        "fleet kill trials: {kills} kills of a {targets}-target upgrade; {landed} left some targets \
         done and others not; {at_head} target(s) found at the head and {at_base} at base after \
         a kill, none between; every rerun finished the rest, each migration applied once"
    );
    assert!(
        landed * 3 >= kills,
        "only {landed} of {kills} kills landed mid-run (seed {seed})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_runs_on_overlapping_lists_at_once_apply_each_migration_once() {
    let targets = setting("CALISTA_FLEET_TARGETS", 24).max(3);
    let fleet = Fleet::new(targets / 2, targets - targets / 2).await;
    let set = migration_set(N);
    let members = fleet.members();
    let third = members.len() / 3;
    let lists = [
        fleet.write_targets("first", &members[..2 * third]),
        fleet.write_targets("second", &members[third..]),
        fleet.write_targets("all", &members),
    ];
    let children: Vec<Child> = lists
        .iter()
        .map(|file| {
            fleet_upgrade(fleet.dir.path(), set.dir.path(), file)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        finish(child);
    }
    fleet
        .assert_each_applied_once(N, "after three runs at once")
        .await;
    fleet.assert_no_lock_left("after three runs at once").await;
}
