//! Build script of the `calista` program.
//!
//! Cargo rebuilds when an embedded migration changes, but not when a new file is added to
//! the folder; watching the folder fixes that. CALISTA's own migrations are the
//! workspace's `migrations/` folder.
fn main() {
    println!("cargo::rerun-if-changed=../migrations");
}
