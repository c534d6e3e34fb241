//! D. build: compile time of a crate embedding N migrations with `calista::migrations!()`,
//! against the same with `sqlx::migrate!()`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::sets;
use crate::stats::Samples;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Writes a crate afresh; its lock file is the workspace's, so both crates build the
/// versions the workspace uses.
fn write_crate(
    dir: &Path,
    workspace: &Path,
    name: &str,
    dependency: &str,
    main: &str,
) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\n{dependency}\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(dir.join("src/main.rs"), main)?;
    Ok(())
}

fn build(dir: &Path, target: &Path) -> Result<std::time::Duration> {
    // `touch src/main.rs`: Cargo rebuilds the crate itself, not its dependencies.
    std::fs::File::options()
        .write(true)
        .open(dir.join("src/main.rs"))?
        .set_modified(std::time::SystemTime::now())?;
    let started = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("cargo build failed in {}", dir.display()).into());
    }
    Ok(elapsed)
}

/// (calista, sqlx) build times of the embedding crate, `runs` each, interleaved.
pub(crate) fn measure(n: usize, runs: usize) -> Result<(Samples, Samples)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?;
    // Beside this benchmark's own build, at fixed paths, so a second run reuses the
    // dependencies built by the first.
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("the benchmark is not in a target folder")?
        .join("calista-bench-build");
    let target = dir.join("target");

    let ours = dir.join("embed-calista");
    write_crate(
        &ours,
        workspace,
        "embed_calista",
        &format!(
            "calista = {{ path = {:?} }}",
            workspace.display().to_string()
        ),
        "static MIGRATIONS: calista::Migrations = calista::migrations!();\n\
         fn main() {\n    println!(\"{}\", MIGRATIONS.len());\n}\n",
    )?;
    std::fs::create_dir_all(ours.join("migrations"))?;
    sets::write_calista(&ours.join("migrations"), n)?;

    let theirs = dir.join("embed-sqlx");
    write_crate(
        &theirs,
        workspace,
        "embed_sqlx",
        "sqlx = { version = \"0.9\", default-features = false, features = [\"runtime-tokio\", \"sqlite\", \"migrate\", \"macros\"] }",
        "static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();\n\
         fn main() {\n    println!(\"{}\", MIGRATOR.iter().count());\n}\n",
    )?;
    std::fs::create_dir_all(theirs.join("migrations"))?;
    for i in 1..=n {
        std::fs::write(
            theirs.join(format!("migrations/{i:05}_create_t{i}.sql")),
            sets::sql(i),
        )?;
    }

    // Dependencies first, once, so only the crates themselves are timed.
    build(&ours, &target)?;
    build(&theirs, &target)?;
    let (mut a, mut b) = (Samples::default(), Samples::default());
    for _ in 0..runs {
        a.push(build(&ours, &target)?);
        b.push(build(&theirs, &target)?);
    }
    Ok((a, b))
}
