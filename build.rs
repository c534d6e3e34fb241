//! Build script of the `calista` package.
//!
//! Cargo rebuilds when an embedded migration changes, but not when a new file is added to
//! the folder; watching the folder fixes that. Applications embedding migrations with
//! `calista::migrations!()` add the same line to their own build.rs.
fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rerun-if-changed=examples/orders/migrations");
}
