//! C. process: `calista db check` as a whole process on an up-to-date SQLite database,
//! against a minimal Rust program that opens the file with sqlx and runs one SELECT.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::stats::Samples;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Builds the `calista` program and the floor program in the profile and target folder
/// of this benchmark, so that one `cargo run --release -p calista-bench` is enough; returns
/// the folder that holds them.
pub(crate) fn build_binaries() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let folder = exe.parent().ok_or("the benchmark has no folder")?;
    let target = folder
        .parent()
        .ok_or("the benchmark is not in a target folder")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["build", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .args(["-p", "calista-cli", "--bin", "calista"])
        .args(["-p", "calista-bench", "--bin", "floor-check"])
        .env("CARGO_TARGET_DIR", target);
    match folder.file_name().and_then(|name| name.to_str()) {
        Some("release") => {
            command.arg("--release");
        }
        Some("debug") | None => {
            eprintln!("C: warning: not a release build; process times mean little");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let status = command.status()?;
    if !status.success() {
        return Err(format!("building the programs failed: {command:?}").into());
    }
    Ok(folder.to_owned())
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

/// `calista` with only the settings given here: no environment, and a working folder
/// without a calista.toml.
fn calista(binary: &Path, file: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(file.parent().unwrap_or(file))
        .env("NO_COLOR", "1")
        .arg("--db-url")
        .arg(format!("sqlite:///{}", file.display()))
        .args(args);
    command
}

/// The floor program, started the same way.
fn floor_program(binary: &Path, file: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(file.parent().unwrap_or(file))
        .arg(file);
    command
}

/// Medians of `runs` runs of each, interleaved: (calista db check, floor).
pub(crate) fn measure(runs: usize) -> Result<(Samples, Samples)> {
    let folder = build_binaries()?;
    let calista_bin = folder.join("calista");
    let floor_bin = folder.join("floor-check");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("calista.db");
    run(&mut calista(&calista_bin, &file, &["db", "upgrade"]))?;
    let (mut ours, mut floor) = (Samples::default(), Samples::default());
    for _ in 0..5 {
        run(&mut calista(&calista_bin, &file, &["db", "check"]))?;
        run(&mut floor_program(&floor_bin, &file))?;
    }
    for _ in 0..runs {
        ours.push(run(&mut calista(&calista_bin, &file, &["db", "check"]))?);
        floor.push(run(&mut floor_program(&floor_bin, &file))?);
    }
    Ok((ours, floor))
}
