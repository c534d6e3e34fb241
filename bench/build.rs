//! Records the compiler and the locked versions of the tools measured, for the report.

use std::path::Path;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=BENCH_RUSTC_VERSION={version}");

    let lock =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../Cargo.lock");
    println!("cargo::rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let locked: Vec<String> = [
        "sqlx",
        "refinery",
        "refinery-core",
        "rusqlite",
        "libsqlite3-sys",
        "tokio-postgres",
    ]
    .iter()
    .map(|name| format!("{name} {}", locked_version(&text, name)))
    .collect();
    println!(
        "cargo::rustc-env=BENCH_LOCKED_VERSIONS={}",
        locked.join(", ")
    );
}

/// The version of `name` in Cargo.lock (the first entry, if several).
fn locked_version(lock: &str, name: &str) -> String {
    let header = format!("name = \"{name}\"\n");
    lock.split("[[package]]\n")
        .find(|entry| entry.starts_with(&header))
        .and_then(|entry| entry.lines().nth(1))
        .and_then(|line| line.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap_or_else(|| "?".to_owned())
}
