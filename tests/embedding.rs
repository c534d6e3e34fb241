//! The macro and the runtime loader apply one set of rules and produce one result.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

use calista::{Dialect, Direction, Migrations};

static MIXED: Migrations = calista::migrations!("tests/fixtures/mixed");
static CALISTA: Migrations = calista::migrations!();

#[test]
fn macro_and_from_dir_produce_identical_sets() {
    let at_runtime =
        Migrations::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mixed")).unwrap();
    assert_eq!(MIXED.len(), 3);
    assert_eq!(MIXED, at_runtime);
    assert_eq!(MIXED.as_slice(), at_runtime.as_slice());
    assert_eq!(MIXED.chains(), at_runtime.chains());
}

#[test]
fn default_folder_is_migrations_beside_the_manifest() {
    let at_runtime =
        Migrations::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap();
    assert_eq!(CALISTA, at_runtime);
    let names: Vec<String> = CALISTA.iter().map(|m| m.file_name()).collect();
    assert_eq!(
        names,
        [
            "20250826_1030_create_event_store.sql",
            "20250826_1045_add_stream_index.sql"
        ]
    );
}

#[test]
fn embedded_sets_keep_directives_sections_and_checksums() {
    let index = &MIXED.as_slice()[1];
    assert!(index.no_transaction());
    assert!(!index.irreversible());
    assert!(MIXED.as_slice()[2].irreversible());
    assert_eq!(
        index.script(Direction::Up, Dialect::Postgres),
        "CREATE INDEX CONCURRENTLY ix_accounts_name ON accounts (name);"
    );
    // The file has CRLF line endings; the checksum is that of the LF version.
    let lf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mixed/20250102_0900_index_account_names.sql"
    ))
    .unwrap()
    .replace("\r\n", "\n");
    assert_eq!(index.checksum(), calista::Checksum::of_file(lf.as_bytes()));
}

/// Holds the folder of `ADDED_LATER`: only the test below writes to it.
static ADDED_LATER: Migrations = calista::migrations!("tests/fixtures/added_later");

#[test]
fn the_folder_is_remembered_in_debug_builds_only() {
    let dir = CALISTA.source_dir();
    assert_eq!(dir.is_some(), cfg!(debug_assertions), "{dir:?}");
    if let Some(dir) = dir {
        assert!(dir.ends_with("migrations"), "{dir}");
    }
    assert!(CALISTA.missing_from_build().is_empty());
}

/// Removes a file when dropped, so a failing test leaves the fixture as it was.
struct Added(std::path::PathBuf);

impl Drop for Added {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_file_added_after_the_build_is_seen_in_debug_builds() {
    assert_eq!(ADDED_LATER.len(), 1);
    assert!(ADDED_LATER.missing_from_build().is_empty());
    let name = "29990101_0000_added_later.sql";
    let added = Added(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/added_later")
            .join(name),
    );
    std::fs::write(
        &added.0,
        "-- calista:up\nCREATE TABLE later (id INTEGER);\n-- calista:down\nDROP TABLE later;\n",
    )
    .unwrap();
    let expected: Vec<String> = if cfg!(debug_assertions) {
        vec![name.to_owned()]
    } else {
        Vec::new()
    };
    assert_eq!(ADDED_LATER.missing_from_build(), expected);
    drop(added);
    assert!(ADDED_LATER.missing_from_build().is_empty());
}

#[test]
fn a_bad_schema_name_is_refused_where_it_is_made() {
    for bad in [
        "Bad",
        "my-app",
        "pg_catalog",
        "pg_temp_1",
        "information_schema",
    ] {
        let error = calista::SchemaName::new(bad).unwrap_err();
        assert!(error.to_string().contains(bad), "{bad}: {error}");
        assert_eq!(
            error.to_string().contains("reserved"),
            bad.starts_with("pg_") || bad == "information_schema",
            "{bad}: {error}"
        );
    }
    assert_eq!(
        calista::SchemaName::new("my_app").unwrap().as_str(),
        "my_app"
    );
}
