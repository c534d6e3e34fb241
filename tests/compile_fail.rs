//! Compile-time checks: every rule of the migration file format, and every misuse of
//! `#[requires_db]` and `#[calista::test]`, is a build error with a checked-in message;
//! valid uses build and run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

use std::fs;
use std::path::Path;

/// trybuild compiles each case in its own project under the target folder, so the
/// fixture folders are copied beside that project's manifest, where `migrations!()`
/// resolves them as `ui-fixtures/<case>`.
fn install_fixtures() {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let project = target_tmp
        .parent()
        .expect("the target folder")
        .join("tests/trybuild/calista");
    let destination = project.join("ui-fixtures");
    if destination.exists() {
        fs::remove_dir_all(&destination).expect("remove old fixtures");
    }
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/fixtures"),
        &destination,
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create fixture folder");
    for entry in fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy fixture");
        }
    }
}

/// One run for every case: trybuild builds them all in one project.
#[test]
fn macros_reject_mistakes_at_compile_time() {
    install_fixtures();
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/requires_db_fail/*.rs");
    cases.pass("tests/ui/requires_db_pass/*.rs");
    cases.compile_fail("tests/ui/test_attr_fail/*.rs");
    cases.pass("tests/ui/test_attr_pass/*.rs");
}
