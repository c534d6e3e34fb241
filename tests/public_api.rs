//! The public API of the `calista` crate is a deliberate list: `tests/public-api.txt`
//! holds every item and inherent method that rustdoc documents (features `cli` and
//! `testing`), so that a change to it is a visible diff in review. After a deliberate
//! change, run this test with `CALISTA_BLESS_PUBLIC_API=1` to write the new list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const LIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/public-api.txt");

/// Builds the crate's documentation into a target folder of its own (later runs reuse it).
fn document() -> std::path::PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/public-api");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["doc", "--offline", "--no-deps", "-p", "calista"])
        .args(["--features", "cli,testing"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTDOCFLAGS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo doc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("doc/calista")
}

/// The text between each `start` and the next `end` in `html`.
fn between<'a>(html: &'a str, start: &'a str, end: &'a str) -> impl Iterator<Item = &'a str> {
    html.split(start)
        .skip(1)
        .filter_map(move |rest| rest.split_once(end).map(|(inside, _)| inside))
}

/// `kind calista::path` for each item of `all.html`, and `method calista::Type::name` for
/// each inherent method on its page (not trait methods: those follow the trait).
fn public_items(doc: &Path) -> BTreeSet<String> {
    let all = std::fs::read_to_string(doc.join("all.html")).unwrap();
    let mut items = BTreeSet::new();
    for link in between(&all, "<li><a href=\"", "</a></li>") {
        let (page, name) = link.split_once("\">").unwrap();
        if page.starts_with('#') {
            continue; // the sidebar's headings
        }
        let kind = page
            .rsplit('/')
            .next()
            .and_then(|file| file.split('.').next())
            .unwrap();
        items.insert(format!("{kind} calista::{name}"));
        if !matches!(kind, "struct" | "enum" | "trait") {
            continue;
        }
        let html = std::fs::read_to_string(doc.join(page)).unwrap();
        let Some((_, inherent)) = html.split_once("id=\"implementations-list\"") else {
            continue;
        };
        let inherent = inherent
            .split_once("id=\"trait-implementations\"")
            .map_or(inherent, |(before, _)| before);
        for method in between(inherent, "<section id=\"method.", "\"") {
            items.insert(format!("method calista::{name}::{method}"));
        }
    }
    items
}

#[test]
fn the_public_api_is_the_checked_in_list() {
    let items = public_items(&document());
    let found: String = items.iter().map(|item| format!("{item}\n")).collect();
    if std::env::var_os("CALISTA_BLESS_PUBLIC_API").is_some() {
        std::fs::write(LIST, &found).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(LIST).unwrap_or_default();
    let expected: BTreeSet<&str> = expected.lines().collect();
    let found: BTreeSet<&str> = found.lines().collect();
    let added: Vec<_> = found.difference(&expected).collect();
    let removed: Vec<_> = expected.difference(&found).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the public API changed; if on purpose, run this test with CALISTA_BLESS_PUBLIC_API=1 \
         and commit tests/public-api.txt.\n+ {added:#?}\n- {removed:#?}"
    );
}
