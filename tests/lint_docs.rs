//! docs/LINT.md and the rules agree: every safe way it shows passes the lint.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

use std::path::Path;

/// The ```sql examples of docs/LINT.md, each a folder: a block split at its
/// `-- next migration` lines, each part a migration (wrapped in a PostgreSQL up section
/// when it has no section of its own).
fn documented_examples() -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LINT.md"))
        .unwrap();
    let mut examples = Vec::new();
    for block in doc.split("```sql\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let statements = block
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"));
        if !statements {
            continue; // a directive shown alone
        }
        let mut parts = vec![String::new()];
        for line in block.lines() {
            if line.starts_with("-- next migration") {
                parts.push(String::new());
            }
            let part = parts.last_mut().unwrap();
            part.push_str(line);
            part.push('\n');
        }
        let files = parts
            .into_iter()
            .map(|part| {
                let sections = if part.contains("-- calista:up") {
                    part
                } else {
                    format!("-- calista:up postgres\n{part}-- calista:up sqlite\nSELECT 1;\n")
                };
                if sections.contains("-- calista:down") {
                    sections
                } else {
                    format!("-- calista:irreversible\n{sections}")
                }
            })
            .collect();
        examples.push((block.lines().next().unwrap_or_default().to_owned(), files));
    }
    examples
}

#[test]
fn the_safe_ways_lint_md_shows_pass_the_lint() {
    let examples = documented_examples();
    assert!(examples.len() >= 8, "{} examples", examples.len());
    for (first_line, files) in examples {
        let dir = tempfile::tempdir().unwrap();
        for (i, body) in files.iter().enumerate() {
            let name = format!("20250101_{:04}_example.sql", i);
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        if let Err(error) = calista::Migrations::from_dir(dir.path()) {
            panic!("the example starting `{first_line}` is flagged:\n{error}\n{files:#?}");
        }
    }
}
