//! Benchmarks of CALISTA migrations side by side with sqlx and refinery.
//!
//! ```sh
//! cargo run --release -p calista-bench                      # everything, about 5 minutes
//! cargo run --release -p calista-bench -- --quick           # fewer repetitions
//! cargo run --release -p calista-bench -- --only a,b --sizes 10,1000
//! ```
//!
//! Parts (`--only`): `a` apply, `b` check, `e` where the time of a check goes, `c`
//! process, `d` build, and, only when asked for, `g` a fleet (`--fleet-targets N`, default
//! 1000; `--jobs J`, default the program's). `--sizes` sets N; `--sessions N` the sessions of `b` and `e`, and
//! `--show-sessions` prints each session's medians on stderr; `--runs N` sets A's runs of
//! each tool; `--gap-us N` sets the idle
//! time before each call of `b` and `e` (default 200; 0 for back-to-back calls). `--profile
//! sqlite:check:20000` runs only a loop of one check, for a profiler (see check.rs).
//!
//! It runs on a current-thread Tokio runtime, as the `calista` program does. B waits
//! 200 µs before each call, so every call finds the driver's thread and the server idle,
//! as a start-up check does; back-to-back calls are bimodal on a small VM, depending on
//! where the kernel happens to place threads (see BENCHMARKS.md).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod apply;
mod check;
mod compile;
mod db;
mod fleet;
mod machine;
mod process;
mod sets;
mod stats;

use std::sync::atomic::Ordering;
use std::time::Duration;

use db::Backend;
use stats::{Samples, ratio, show};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Options {
    quick: bool,
    only: String,
    sizes: Vec<usize>,
    /// `--profile BACKEND:WHICH:CALLS`: only a loop of one check, for a profiler.
    profile: Option<String>,
    /// `--sessions N`: sessions of B and of its breakdown.
    sessions: Option<usize>,
    /// `--gap-us N`: idle time before each call of B (0: back to back).
    gap_us: u64,
    /// `--backends sqlite,postgres`: the backends of A, B, e and G.
    backends: Vec<Backend>,
    /// `--fleet-targets N`: the targets of G.
    fleet_targets: usize,
    /// `--runs N`: the runs of each tool in A, instead of 15, 11 or 7 by N.
    runs: Option<usize>,
    /// `--jobs J`: the targets at once of G.
    jobs: usize,
}

impl Options {
    /// B's protocol; `sessions` unless `--sessions` says otherwise.
    fn protocol(&self, sessions: usize) -> check::Protocol {
        let (sessions, calls) = if self.quick {
            (5, 200)
        } else {
            (sessions, 400)
        };
        check::Protocol {
            sessions: self.sessions.unwrap_or(sessions),
            calls,
            gap: Duration::from_micros(self.gap_us),
        }
    }
}

fn options() -> Result<Options> {
    let mut options = Options {
        quick: false,
        only: "abecd".into(),
        sizes: vec![10, 100, 1000],
        profile: None,
        sessions: None,
        gap_us: 200,
        backends: vec![Backend::Sqlite, Backend::Postgres],
        fleet_targets: 1000,
        runs: None,
        jobs: calista::fleet::DEFAULT_JOBS,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--runs" => {
                options.runs = Some(args.next().ok_or("--runs takes a number")?.parse()?);
            }
            "--only" => {
                options.only = args
                    .next()
                    .ok_or("--only takes a list such as a,b")?
                    .to_lowercase()
            }
            "--sizes" => {
                let list = args.next().ok_or("--sizes takes a list such as 10,100")?;
                options.sizes = list
                    .split(',')
                    .map(str::parse)
                    .collect::<std::result::Result<_, _>>()?;
            }
            "--sessions" => {
                options.sessions = Some(args.next().ok_or("--sessions takes a number")?.parse()?);
            }
            "--gap-us" => {
                options.gap_us = args.next().ok_or("--gap-us takes a number")?.parse()?;
            }
            "--backends" => {
                let list = args
                    .next()
                    .ok_or("--backends takes sqlite, postgres or both")?;
                options.backends = list
                    .split(',')
                    .map(|name| match name {
                        "sqlite" => Ok(Backend::Sqlite),
                        "postgres" => Ok(Backend::Postgres),
                        other => Err(format!("--backends takes sqlite and postgres, not {other}")),
                    })
                    .collect::<std::result::Result<_, _>>()?;
            }
            "--fleet-targets" => {
                options.fleet_targets = args
                    .next()
                    .ok_or("--fleet-targets takes a number")?
                    .parse()?;
            }
            "--jobs" => {
                options.jobs = args.next().ok_or("--jobs takes a number")?.parse()?;
            }
            "--show-sessions" => check::SHOW_SESSIONS.store(true, Ordering::Relaxed),
            "--profile" => {
                options.profile = Some(
                    args.next()
                        .ok_or("--profile takes BACKEND:WHICH:CALLS, e.g. sqlite:check:20000")?,
                );
            }
            other => {
                return Err(
                    format!("unknown argument {other}; see the top of bench/src/main.rs").into(),
                );
            }
        }
    }
    Ok(options)
}

/// Medians of one backend and size in A: floor, calista, calista (each), sqlx, refinery.
struct ApplyRow {
    backend: Backend,
    n: usize,
    medians: Vec<Duration>,
}

/// Median and p90 of one backend and size in B, per check (see `check::NAMES`).
struct CheckRow {
    backend: Backend,
    n: usize,
    results: Vec<(Duration, Duration)>,
}

#[derive(Default)]
struct Figures {
    apply: Vec<ApplyRow>,
    check: Vec<CheckRow>,
    /// (calista db check, floor)
    process: Option<(Samples, Samples)>,
    /// (calista::migrations!(), sqlx::migrate!())
    build: Option<(Samples, Samples)>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let options = options()?;
    if let Some(spec) = &options.profile {
        return profile(spec, &options).await;
    }
    println!("{}", machine::describe().await?);
    let mut sets = Vec::new();
    for &n in &options.sizes {
        let written = sets::write(n)?;
        let calista_set = calista::Migrations::from_dir(&written.calista)?;
        sets.push((written, calista_set));
    }
    let mut figures = Figures::default();
    if options.only.contains('a') {
        figures.apply = bench_apply(&options, &sets).await?;
    }
    if options.only.contains('b') {
        figures.check = bench_check(&options, &sets).await?;
    }
    if options.only.contains('e') {
        bench_breakdown(&options, &sets).await?;
    }
    if options.only.contains('c') {
        figures.process = Some(bench_process(&options)?);
    }
    if options.only.contains('d') {
        figures.build = Some(bench_build(&options)?);
    }
    if options.only.contains('g') {
        bench_fleet(&options).await?;
    }
    println!("\nLoad average at the end: {}.", machine::load());
    targets(&figures);
    Ok(())
}

/// `--profile sqlite:check:20000`: a loop of one check at the first of `--sizes`.
async fn profile(spec: &str, options: &Options) -> Result<()> {
    let mut parts = spec.split(':');
    let (Some(backend), Some(which), Some(calls)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("--profile takes BACKEND:WHICH:CALLS, e.g. sqlite:check:20000".into());
    };
    let backend = match backend {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => return Err(format!("unknown backend {other}: sqlite or postgres").into()),
    };
    let n = options.sizes.first().copied().unwrap_or(10);
    let written = sets::write(n)?;
    let calista_set = calista::Migrations::from_dir(&written.calista)?;
    let per_call = check::profile(backend, &written, &calista_set, which, calls.parse()?).await?;
    println!(
        "{} N={n} {which}: {} per call",
        backend.name(),
        show(per_call)
    );
    Ok(())
}

async fn bench_apply(
    options: &Options,
    sets: &[(sets::Sets, calista::Migrations)],
) -> Result<Vec<ApplyRow>> {
    println!("\n### A. apply: N migrations to an empty database (median of runs)\n");
    println!(
        "| backend | N | runs | floor | calista | calista (each) | sqlx | refinery | calista / floor | each / floor | sqlx / calista | refinery / calista |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &backend in &options.backends {
        for (written, calista_set) in sets {
            // Small sets are quick and their ratios the most sensitive to noise: more runs.
            let runs = options.runs.unwrap_or(match (options.quick, written.n) {
                (true, _) => 3,
                (false, n) if n >= 1000 => 7,
                (false, n) if n >= 100 => 11,
                (false, _) => 15,
            });
            eprintln!(
                "A: {} N={} ({runs} runs of each tool)",
                backend.name(),
                written.n
            );
            let mut samples = vec![Samples::default(); apply::TOOLS.len()];
            // One unmeasured round first: the server's and the file system's caches.
            for tool in apply::TOOLS {
                apply::once(tool, backend, written, calista_set).await?;
            }
            for run in 0..runs {
                // Interleaved, in a rotating order, so drift hits every tool alike.
                let mut times = vec![Duration::ZERO; apply::TOOLS.len()];
                for k in 0..apply::TOOLS.len() {
                    let which = (k + run) % apply::TOOLS.len();
                    times[which] =
                        apply::once(apply::TOOLS[which], backend, written, calista_set).await?;
                    samples[which].push(times[which]);
                }
                if check::SHOW_SESSIONS.load(Ordering::Relaxed) {
                    let line: Vec<String> = times.iter().map(|t| show(*t)).collect();
                    eprintln!("run {run}: {}", line.join(" | "));
                }
            }
            let m: Vec<Duration> = samples.iter().map(Samples::median).collect();
            println!(
                "| {} | {} | {runs} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} |",
                backend.name(),
                written.n,
                show(m[0]),
                show(m[1]),
                show(m[2]),
                show(m[3]),
                show(m[4]),
                ratio(m[1], m[0]),
                ratio(m[2], m[0]),
                ratio(m[3], m[1]),
                ratio(m[4], m[1]),
            );
            rows.push(ApplyRow {
                backend,
                n: written.n,
                medians: m,
            });
        }
    }
    Ok(rows)
}

async fn bench_check(
    options: &Options,
    sets: &[(sets::Sets, calista::Migrations)],
) -> Result<Vec<CheckRow>> {
    let protocol = options.protocol(11);
    let (sessions, calls) = (protocol.sessions, protocol.calls);
    println!(
        "\n### B. check: the start-up check on an up-to-date database, per call after {} µs idle \
         (median of {sessions} sessions' medians / p90 of all {} calls)\n",
        protocol.gap.as_micros(),
        sessions * calls
    );
    println!(
        "| backend | N | floor | calista check() | calista ensure_schema() | sqlx run (no-op) | refinery run (no-op) | check / floor | ensure / floor | sqlx / check | refinery / check |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &backend in &options.backends {
        for (written, calista_set) in sets {
            eprintln!(
                "B: {} N={} ({sessions} sessions of {calls} calls per check)",
                backend.name(),
                written.n
            );
            let results = check::measure(backend, written, calista_set, protocol).await?;
            let cell = |(median, p90): &(Duration, Duration)| {
                format!("{} / {}", show(*median), show(*p90))
            };
            let m: Vec<Duration> = results.iter().map(|(median, _)| *median).collect();
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | **{}** | **{}** | {} | {} |",
                backend.name(),
                written.n,
                cell(&results[0]),
                cell(&results[1]),
                cell(&results[2]),
                cell(&results[3]),
                cell(&results[4]),
                ratio(m[1], m[0]),
                ratio(m[2], m[0]),
                ratio(m[3], m[1]),
                ratio(m[4], m[1]),
            );
            rows.push(CheckRow {
                backend,
                n: written.n,
                results,
            });
        }
    }
    Ok(rows)
}

async fn bench_breakdown(
    options: &Options,
    sets: &[(sets::Sets, calista::Migrations)],
) -> Result<()> {
    let protocol = options.protocol(9);
    println!(
        "\n### B, where the time goes: calista's query through sqlx on the floor's connection, per call after {} µs idle (median of {} sessions' medians)\n",
        protocol.gap.as_micros(),
        protocol.sessions
    );
    let header: Vec<&str> = check::BREAKDOWN.to_vec();
    println!("| backend | N | {} |", header.join(" | "));
    println!("|---|---|{}", "---|".repeat(header.len()));
    for &backend in &options.backends {
        for (written, calista_set) in sets {
            eprintln!("B breakdown: {} N={}", backend.name(), written.n);
            let m = check::breakdown(backend, written, calista_set, protocol).await?;
            let cells: Vec<String> = m.iter().map(|d| show(*d)).collect();
            println!(
                "| {} | {} | {} |",
                backend.name(),
                written.n,
                cells.join(" | ")
            );
        }
    }
    Ok(())
}

fn bench_process(options: &Options) -> Result<(Samples, Samples)> {
    let runs = if options.quick { 50 } else { 300 };
    eprintln!("C: {runs} runs of each process");
    let (ours, floor) = process::measure(runs)?;
    println!(
        "\n### C. process: `calista db check` on an up-to-date SQLite database ({runs} runs each)\n"
    );
    println!("| process | median | p90 | ratio to floor |\n|---|---|---|---|");
    println!(
        "| floor (sqlx, one SELECT) | {} | {} | 1.00× |",
        show(floor.median()),
        show(floor.p90())
    );
    println!(
        "| calista db check | {} | {} | {} |",
        show(ours.median()),
        show(ours.p90()),
        ratio(ours.median(), floor.median())
    );
    Ok((ours, floor))
}

fn bench_build(options: &Options) -> Result<(Samples, Samples)> {
    let (n, runs) = (1000, if options.quick { 2 } else { 5 });
    eprintln!("D: building crates embedding {n} migrations, {runs} times each");
    let (ours, theirs) = compile::measure(n, runs)?;
    println!(
        "\n### D. build: a crate embedding {n} migrations (`cargo build --release` after touching src/main.rs, {runs} runs each)\n"
    );
    println!("| macro | median | ratio to sqlx |\n|---|---|---|");
    println!("| sqlx::migrate!() | {} | 1.00× |", show(theirs.median()));
    println!(
        "| calista::migrations!() | {} | {} |",
        show(ours.median()),
        ratio(ours.median(), theirs.median())
    );
    Ok((ours, theirs))
}

async fn bench_fleet(options: &Options) -> Result<()> {
    let (targets, jobs) = (options.fleet_targets, options.jobs);
    let binary = process::build_binaries()?.join("calista");
    let set = tempfile::tempdir()?;
    sets::write_calista(set.path(), fleet::MIGRATIONS)?;
    println!(
        "\n### G. a fleet: {targets} targets, {} migrations each, {jobs} at once (one run each)\n",
        fleet::MIGRATIONS
    );
    println!(
        "| backend | work | `--targets`, `--jobs {jobs}` | shell loop | `xargs -P {jobs}` | loop / `--targets` | xargs / `--targets` | `--targets` per target | load average after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &backend in &options.backends {
        let fleet = fleet::Fleet::new(backend, targets).await?;
        let mut times: Vec<(fleet::Work, Vec<Duration>)> = Vec::new();
        let mut upgrade = Vec::new();
        for runner in fleet::Runner::ALL {
            fleet.empty().await?;
            eprintln!(
                "G: {} {runner:?} upgrade of {targets} targets",
                backend.name()
            );
            upgrade.push(fleet.run(&binary, set.path(), runner, fleet::Work::Upgrade, jobs)?);
        }
        times.push((fleet::Work::Upgrade, upgrade));
        for work in [fleet::Work::Check, fleet::Work::NoOpUpgrade] {
            let mut row = Vec::new();
            for runner in fleet::Runner::ALL {
                eprintln!(
                    "G: {} {runner:?} {work:?} of {targets} targets",
                    backend.name()
                );
                row.push(fleet.run(&binary, set.path(), runner, work, jobs)?);
            }
            times.push((work, row));
        }
        for (work, row) in &times {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fleet.backend().name(),
                work.name(),
                show(row[0]),
                show(row[1]),
                show(row[2]),
                ratio(row[1], row[0]),
                ratio(row[2], row[0]),
                show(row[0] / u32::try_from(fleet.targets().max(1)).unwrap_or(u32::MAX)),
                machine::load()
            );
        }
        fleet.drop_now().await;
    }
    Ok(())
}

fn x(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**MISSED**" }
}

/// The targets of the issue, judged on this run's figures.
fn targets(figures: &Figures) {
    println!("\n### Targets (ratios within this run)\n");
    println!("| target | result | figures |\n|---|---|---|");
    if !figures.check.is_empty() {
        let worst = figures
            .check
            .iter()
            .flat_map(|row| {
                [1, 2].map(|k| (x(row.results[k].0, row.results[0].0), row, check::NAMES[k]))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((worst, row, name)) = worst {
            println!(
                "| B: calista ≤ 1.5× the floor at every N, both backends | {} | worst {worst:.2}× ({name}, {} N = {}) |",
                verdict(worst <= 1.5),
                row.backend.name(),
                row.n
            );
        }
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let rows: Vec<&CheckRow> = figures
                .check
                .iter()
                .filter(|r| r.backend == backend)
                .collect();
            if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                let growth = x(last.results[1].0, first.results[1].0);
                println!(
                    "| B: flat in N ({}) | {} | check() at N = {} is {growth:.2}× its time at N = {} ({} → {}) |",
                    backend.name(),
                    verdict(growth <= 1.2),
                    last.n,
                    first.n,
                    show(first.results[1].0),
                    show(last.results[1].0)
                );
            }
        }
    }
    for (backend, limit) in [(Backend::Sqlite, 1.25), (Backend::Postgres, 1.1)] {
        if let Some(row) = figures
            .apply
            .iter()
            .filter(|r| r.backend == backend)
            .max_by_key(|r| r.n)
        {
            let r = x(row.medians[1], row.medians[0]);
            println!(
                "| A: {} ≤ {limit}× the floor at N = {} | {} | {r:.2}× ({} against {}) |",
                backend.name(),
                row.n,
                verdict(r <= limit),
                show(row.medians[1]),
                show(row.medians[0])
            );
        }
    }
    if !figures.apply.is_empty() {
        let slower: Vec<String> = figures
            .apply
            .iter()
            .flat_map(|row| {
                [(3, "sqlx"), (4, "refinery")]
                    .into_iter()
                    .filter(|(k, _)| row.medians[1] >= row.medians[*k])
                    .map(|(k, name)| {
                        format!(
                            "{} N = {}: {name} {:.2}× calista",
                            row.backend.name(),
                            row.n,
                            x(row.medians[k], row.medians[1])
                        )
                    })
            })
            .collect();
        let closest = figures
            .apply
            .iter()
            .flat_map(|row| {
                [(3, "sqlx"), (4, "refinery")]
                    .map(|(k, name)| (x(row.medians[k], row.medians[1]), name, row.backend, row.n))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let detail = match (&slower[..], closest) {
            ([], Some((r, name, backend, n))) => format!(
                "closest: {name} {r:.2}× calista's time ({} N = {n})",
                backend.name()
            ),
            _ => format!("not faster at: {}", slower.join("; ")),
        };
        println!(
            "| A: calista faster than sqlx and refinery everywhere | {} | {detail} |",
            verdict(slower.is_empty())
        );
    }
    if let Some((ours, floor)) = &figures.process {
        let r = x(ours.median(), floor.median());
        println!(
            "| C: `calista db check` ≤ 1.5× the floor process | {} | {r:.2}× ({} against {}) |",
            verdict(r <= 1.5),
            show(ours.median()),
            show(floor.median())
        );
    }
    if let Some((ours, theirs)) = &figures.build {
        let r = x(ours.median(), theirs.median());
        println!(
            "| D: `migrations!()` no slower than `sqlx::migrate!()` | {} | {r:.2}× ({} against {}) |",
            verdict(r <= 1.0),
            show(ours.median()),
            show(theirs.median())
        );
    }
}
