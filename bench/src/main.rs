//! Benchmarks of CALISTA migrations side by side with sqlx and refinery.
//!
//! ```sh
//! cargo build --release --workspace && cargo run --release -p calista-bench
//! cargo run --release -p calista-bench -- --quick        # fewer repetitions
//! cargo run --release -p calista-bench -- --only a,b     # some of A, B, C, D
//! ```
//!
//! Prints Markdown tables (see BENCHMARKS.md); progress goes to stderr. PostgreSQL is at
//! `CALISTA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod apply;
mod check;
mod compile;
mod db;
mod process;
mod sets;
mod stats;

use std::time::Duration;

use db::Backend;
use stats::{Samples, ratio, show};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Options {
    quick: bool,
    only: String,
    sizes: Vec<usize>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        quick: false,
        only: "abcd".into(),
        sizes: vec![10, 100, 1000],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
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
            other => {
                return Err(
                    format!("unknown argument {other}; see the top of bench/src/main.rs").into(),
                );
            }
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let options = options()?;
    let mut sets = Vec::new();
    for &n in &options.sizes {
        let written = sets::write(n)?;
        let calista_set = calista::Migrations::from_dir(&written.calista)?;
        sets.push((written, calista_set));
    }
    if options.only.contains('a') {
        bench_apply(&options, &sets).await?;
    }
    if options.only.contains('b') {
        bench_check(&options, &sets).await?;
    }
    if options.only.contains('c') {
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
    }
    if options.only.contains('d') {
        let (n, runs) = (1000, if options.quick { 2 } else { 5 });
        eprintln!("D: building crates embedding {n} migrations, {runs} times each");
        let (ours, theirs) = compile::measure(n, runs)?;
        println!(
            "\n### D. build: a crate embedding {n} migrations (`cargo build --release`, {runs} runs each)\n"
        );
        println!("| macro | median | ratio to sqlx |\n|---|---|---|");
        println!("| sqlx::migrate!() | {} | 1.00× |", show(theirs.median()));
        println!(
            "| calista::migrations!() | {} | {} |",
            show(ours.median()),
            ratio(ours.median(), theirs.median())
        );
    }
    Ok(())
}

async fn bench_apply(options: &Options, sets: &[(sets::Sets, calista::Migrations)]) -> Result<()> {
    println!("\n### A. apply: N migrations to an empty database (median of runs)\n");
    println!(
        "| backend | N | runs | floor | calista | calista (each) | sqlx | refinery | calista / floor | sqlx / calista | refinery / calista |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for (written, calista_set) in sets {
            let runs = match (options.quick, written.n) {
                (true, _) => 3,
                (false, n) if n >= 1000 => 5,
                (false, _) => 9,
            };
            eprintln!(
                "A: {} N={} ({runs} runs of each tool)",
                backend.name(),
                written.n
            );
            let mut samples = vec![Samples::default(); apply::TOOLS.len()];
            for run in 0..runs {
                // Interleaved, in a rotating order, so drift hits every tool alike.
                for k in 0..apply::TOOLS.len() {
                    let which = (k + run) % apply::TOOLS.len();
                    samples[which].push(
                        apply::once(apply::TOOLS[which], backend, written, calista_set).await?,
                    );
                }
            }
            let m: Vec<Duration> = samples.iter().map(Samples::median).collect();
            println!(
                "| {} | {} | {runs} | {} | {} | {} | {} | {} | **{}** | {} | {} |",
                backend.name(),
                written.n,
                show(m[0]),
                show(m[1]),
                show(m[2]),
                show(m[3]),
                show(m[4]),
                ratio(m[1], m[0]),
                ratio(m[3], m[1]),
                ratio(m[4], m[1]),
            );
        }
    }
    println!("\n(calista (each) / floor and the other ratios can be read off the medians.)");
    Ok(())
}

async fn bench_check(options: &Options, sets: &[(sets::Sets, calista::Migrations)]) -> Result<()> {
    let (sessions, calls) = if options.quick { (3, 200) } else { (9, 400) };
    println!(
        "\n### B. check: the start-up check on an up-to-date database, per call \
         (median of {sessions} sessions' medians / p90 of all calls)\n"
    );
    println!(
        "| backend | N | floor | calista check() | calista ensure_schema() | sqlx run (no-op) | refinery run (no-op) | check / floor | ensure / floor | sqlx / check | refinery / check |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for (written, calista_set) in sets {
            eprintln!(
                "B: {} N={} ({sessions} sessions of {calls} calls per check)",
                backend.name(),
                written.n
            );
            let results = check::measure(backend, written, calista_set, sessions, calls).await?;
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
        }
    }
    Ok(())
}
