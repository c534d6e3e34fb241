//! The split between the library and the program, read from the dependency graph: a plain
//! `calista` dependency compiles none of the program's crates and makes no TLS choice (the
//! application's sqlx features decide it); `cli` adds the `db` group's; the program
//! (`calista-cli`) chooses TLS and is built on the library alone. Offline: `cargo tree`
//! reads the lock file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

use std::collections::BTreeSet;
use std::process::Command;

/// What only the program compiles.
const PROGRAM_ONLY: &[&str] = &["tracing-subscriber", "ulid"];
/// What the `db` command group compiles.
const CLI: &[&str] = &["clap", "indicatif", "serde_json"];
/// A TLS implementation, chosen through sqlx's features.
const TLS: &[&str] = &[
    "rustls",
    "rustls-native-certs",
    "webpki-roots",
    "native-tls",
    "openssl",
];

/// The names of the packages in `package`'s graph of normal dependencies, with `args`.
fn graph(package: &str, args: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "--prefix", "none", "-e", "normal"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .args(["-p", package])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: BTreeSet<String> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        names.contains(package),
        "not a graph of {package}: {stdout}"
    );
    names
}

/// Those of `crates` in the graph.
fn present<'a>(names: &BTreeSet<String>, crates: &[&'a str]) -> Vec<&'a str> {
    crates
        .iter()
        .copied()
        .filter(|name| names.contains(*name))
        .collect()
}

/// Fails naming each of `crates` that is in the graph.
fn assert_absent(names: &BTreeSet<String>, crates: &[&str]) {
    let found = present(names, crates);
    assert!(found.is_empty(), "in the graph: {found:?}");
}

#[test]
fn a_plain_dependency_compiles_no_program_crates_and_chooses_no_tls() {
    let names = graph("calista", &[]);
    assert!(names.contains("sqlx"), "{names:?}");
    assert_absent(&names, PROGRAM_ONLY);
    assert_absent(&names, CLI);
    assert_absent(&names, TLS);
}

#[test]
fn the_cli_feature_adds_the_command_group_and_nothing_of_the_program() {
    let names = graph("calista", &["--features", "cli"]);
    assert_eq!(present(&names, CLI), CLI);
    assert_absent(&names, PROGRAM_ONLY);
    assert_absent(&names, TLS);
}

#[test]
fn the_program_chooses_rustls_and_is_built_on_the_library_alone() {
    let names = graph("calista-cli", &[]);
    assert_eq!(present(&names, PROGRAM_ONLY), PROGRAM_ONLY);
    assert!(names.contains("rustls-native-certs"), "{names:?}");
    let direct = graph("calista-cli", &["--depth", "1"]);
    assert!(direct.contains("calista"), "{direct:?}");
    assert!(!direct.contains("calista-core"), "{direct:?}");
}
