//! C. process: `calista db check` as a whole process on an up-to-date SQLite database,
//! against a minimal Rust program that opens the file with sqlx and runs one SELECT.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::stats::Samples;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The release binaries beside this one.
fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().ok_or("no folder")?.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release --workspace`",
            path.display()
        )
        .into())
    }
}

fn run(command: &mut Command) -> Result<std::time::Duration> {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("{command:?} failed: {status}").into());
    }
    Ok(elapsed)
}

fn calista(binary: &Path, file: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("NO_COLOR", "1")
        .arg("--db-url")
        .arg(format!("sqlite:///{}", file.display()))
        .args(args);
    command
}

/// Medians of `runs` runs of each, interleaved: (calista db check, floor).
pub(crate) fn measure(runs: usize) -> Result<(Samples, Samples)> {
    let calista_bin = sibling("calista")?;
    let floor_bin = sibling("floor-check")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("calista.db");
    run(&mut calista(&calista_bin, &file, &["db", "upgrade"]))?;
    let (mut ours, mut floor) = (Samples::default(), Samples::default());
    for _ in 0..5 {
        run(&mut calista(&calista_bin, &file, &["db", "check"]))?;
        run(Command::new(&floor_bin).arg(&file))?;
    }
    for _ in 0..runs {
        ours.push(run(&mut calista(&calista_bin, &file, &["db", "check"]))?);
        floor.push(run(Command::new(&floor_bin).arg(&file))?);
    }
    Ok((ours, floor))
}
