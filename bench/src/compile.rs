//! D. build: compile time of a crate embedding N migrations with `calista::migrations!()`,
//! against the same with `sqlx::migrate!()`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::sets;
use crate::stats::Samples;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write_crate(dir: &Path, name: &str, dependency: &str, main: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
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
    // A new modification time makes Cargo rebuild the crate itself, not its dependencies.
    let main = dir.join("src/main.rs");
    let text = std::fs::read_to_string(&main)?;
    std::fs::write(&main, text)?;
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
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("target");

    let ours = dir.path().join("embed-calista");
    write_crate(
        &ours,
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

    let theirs = dir.path().join("embed-sqlx");
    write_crate(
        &theirs,
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
