//! refinery's migrations folder (read with its subfolders, as refinery does):
//! `V<version>__<name>.sql`. refinery has no down migrations, and records each migration in
//! `refinery_schema_history` with a checksum: SipHash-1-3 of its name, version and SQL.
//! `U<version>__<name>` (unversioned) and `.rs` migrations cannot be imported.

use std::hash::{Hash, Hasher};
use std::path::Path;

use siphasher::sip::SipHasher13;

use super::{
    Found, ImportProblem, ImportProblemKind, Key, Skipped, SourceLine, SourceMigration, Sql,
    folder, read_text, timestamp,
};

/// A file name as refinery reads it: `^([UV])(\d+(\.\d+)?)__(\w+)\.(sql|rs)$`.
#[derive(Debug, PartialEq, Eq)]
struct Name<'a> {
    versioned: bool,
    version: &'a str,
    name: &'a str,
    rust: bool,
}

fn parse_name(file: &str) -> Option<Name<'_>> {
    let (stem, rust) = match file.strip_suffix(".sql") {
        Some(stem) => (stem, false),
        None => (file.strip_suffix(".rs")?, true),
    };
    let versioned = match stem.as_bytes().first()? {
        b'V' => true,
        b'U' => false,
        _ => return None,
    };
    let (version, name) = stem[1..].split_once("__")?;
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let version_ok = match version.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(version),
    };
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    (version_ok && name_ok).then_some(Name {
        versioned,
        version,
        name,
        rust,
    })
}

pub(super) fn read(dir: &Path) -> std::io::Result<Found> {
    let mut found = Found::default();
    let mut migrations: Vec<(i64, SourceMigration)> = Vec::new();
    walk(dir, "", &mut found, &mut migrations)?;
    migrations.sort_by_key(|(version, _)| *version);
    for pair in migrations.windows(2) {
        if pair[0].0 == pair[1].0 {
            found.problems.push(ImportProblem::new(
                pair[1].1.source.clone(),
                None,
                ImportProblemKind::DuplicateVersion {
                    other: pair[0].1.source.clone(),
                },
            ));
        }
    }
    found
        .migrations
        .extend(migrations.into_iter().map(|(_, migration)| migration));
    Ok(found)
}

fn walk(
    dir: &Path,
    prefix: &str,
    found: &mut Found,
    migrations: &mut Vec<(i64, SourceMigration)>,
) -> std::io::Result<()> {
    for (file_name, path) in folder(dir)? {
        let shown = format!("{prefix}{file_name}");
        if path.is_dir() {
            walk(&path, &format!("{shown}/"), found, migrations)?;
            continue;
        }
        let Some(name) = parse_name(&file_name) else {
            found.skipped.push(Skipped {
                file: shown,
                reason: "refinery reads only `V<version>__<name>.sql` (and `U…`, `.rs`) files",
            });
            continue;
        };
        let kind = match (name.versioned, name.rust) {
            (_, true) => Some(ImportProblemKind::RustMigration),
            (false, false) => Some(ImportProblemKind::Unversioned),
            (true, false) => None,
        };
        if let Some(kind) = kind {
            found.problems.push(ImportProblem::new(shown, None, kind));
            continue;
        }
        let Ok(version) = name.version.parse::<i64>() else {
            found.problems.push(ImportProblem::new(
                shown,
                None,
                ImportProblemKind::BadVersion {
                    found: name.version.to_owned(),
                },
            ));
            continue;
        };
        let Some((_, sql)) = read_text(&path, &shown, &mut found.problems) else {
            continue;
        };
        let migration = SourceMigration {
            key: Key::Refinery(version, checksum(name.name, version, &sql)),
            source: shown.clone(),
            files: vec![shown.clone()],
            description: name.name.to_owned(),
            date: timestamp(name.version),
            up: Sql {
                text: sql,
                at: SourceLine::first(&shown),
            },
            down: None,
            no_transaction: false,
            notes: Vec::new(),
        };
        migrations.push((version, migration));
    }
    Ok(())
}

/// refinery's checksum: SipHash-1-3 (keys 0) over the name, the version and the SQL, each
/// hashed as Rust's `Hash` does. The version is hashed as refinery's version type: `i32`,
/// or `i64` when refinery is built with `int8-versions`, which a version beyond `i32` needs.
fn checksum(name: &str, version: i64, sql: &str) -> u64 {
    let mut hasher = SipHasher13::new();
    name.hash(&mut hasher);
    match i32::try_from(version) {
        Ok(small) => small.hash(&mut hasher),
        Err(_) => version.hash(&mut hasher),
    }
    sql.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_refinery_reads_them() {
        assert_eq!(
            parse_name("V3__add_index.sql"),
            Some(Name {
                versioned: true,
                version: "3",
                name: "add_index",
                rust: false
            })
        );
        assert!(parse_name("U4__tidy.sql").is_some_and(|n| !n.versioned));
        assert!(parse_name("V5__build.rs").is_some_and(|n| n.rust));
        assert!(parse_name("V1.1__x.sql").is_some_and(|n| n.version == "1.1"));
        for ignored in [
            "V3_add.sql",
            "v3__add.sql",
            "V__add.sql",
            "V3__add-index.sql",
            "V3__.sql",
            "V3__a.txt",
            "README.md",
        ] {
            assert_eq!(parse_name(ignored), None, "{ignored}");
        }
    }
}
