//! sqlx's migrations folder: `<version>_<description>.sql` (up only), or
//! `<version>_<description>.up.sql` with `.down.sql`; a first line `-- no-transaction`
//! runs the file outside a transaction. sqlx records each in `_sqlx_migrations` with the
//! SHA-384 of the file's bytes.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha384};

use super::{
    Found, ImportProblem, ImportProblemKind, Key, Note, Skipped, SourceLine, SourceMigration, Sql,
    folder, read_text, timestamp,
};

/// What sqlx reads a file as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Simple,
    Up,
    Down,
}

/// The files of one version: the simple or up file, and the down file.
#[derive(Default)]
struct Pair {
    up: Option<(Kind, File)>,
    down: Option<File>,
}

/// One file of a migration.
struct File {
    name: String,
    version: String,
    description: String,
    bytes: Vec<u8>,
    text: String,
}

pub(super) fn read(dir: &Path) -> std::io::Result<Found> {
    let mut found = Found::default();
    // In sqlx's order: by version.
    let mut by_version: BTreeMap<i64, Pair> = BTreeMap::new();
    for (name, path) in folder(dir)? {
        if !path.is_file() {
            found.skipped.push(Skipped {
                file: name,
                reason: "sqlx reads files only, not folders",
            });
            continue;
        }
        let Some((version, rest)) = name
            .split_once('_')
            .filter(|(_, rest)| rest.ends_with(".sql"))
        else {
            found.skipped.push(Skipped {
                file: name,
                reason: "sqlx reads only `<version>_<description>.sql` files",
            });
            continue;
        };
        let Ok(number) = version.parse::<i64>() else {
            let found_version = version.to_owned();
            found.problems.push(ImportProblem::new(
                name,
                None,
                ImportProblemKind::BadVersion {
                    found: found_version,
                },
            ));
            continue;
        };
        let (kind, description) = if let Some(d) = rest.strip_suffix(".up.sql") {
            (Kind::Up, d)
        } else if let Some(d) = rest.strip_suffix(".down.sql") {
            (Kind::Down, d)
        } else {
            (Kind::Simple, rest.strip_suffix(".sql").unwrap_or(rest))
        };
        let (version, description) = (version.to_owned(), description.to_owned());
        let Some((bytes, text)) = read_text(&path, &name, &mut found.problems) else {
            continue;
        };
        let file = File {
            name,
            version,
            description,
            bytes,
            text,
        };
        let name = file.name.clone();
        let slot = by_version.entry(number).or_default();
        let duplicate = match kind {
            Kind::Down => slot.down.replace(file),
            Kind::Simple | Kind::Up => slot.up.replace((kind, file)).map(|(_, file)| file),
        };
        if let Some(other) = duplicate {
            found.problems.push(ImportProblem::new(
                name,
                None,
                ImportProblemKind::DuplicateVersion { other: other.name },
            ));
        }
    }
    for (number, Pair { up, down }) in by_version {
        match (up, down) {
            (Some((Kind::Simple, _)), Some(down)) | (None, Some(down)) => {
                found.problems.push(ImportProblem::new(
                    down.name,
                    None,
                    ImportProblemKind::DownWithoutUp,
                ));
            }
            (Some((kind, up)), down) => {
                let mut migration = migration(number, up, down);
                if kind == Kind::Up && migration.down.is_none() {
                    migration.notes.push(Note::NoDown);
                }
                found.migrations.push(migration);
            }
            (None, None) => {}
        }
    }
    Ok(found)
}

fn migration(version: i64, up: File, down: Option<File>) -> SourceMigration {
    let checksum: [u8; 48] = Sha384::digest(&up.bytes).into();
    let (up_sql, up_no_transaction) = sql(&up);
    let down = down.map(|down| {
        let (sql, no_transaction) = sql(&down);
        (down.name, sql, no_transaction)
    });
    let no_transaction = up_no_transaction || down.as_ref().is_some_and(|(_, _, no_tx)| *no_tx);
    let mut files = vec![up.name.clone()];
    files.extend(down.as_ref().map(|(name, _, _)| name.clone()));
    SourceMigration {
        key: Key::Sqlx(version, checksum),
        date: timestamp(&up.version),
        source: up.name,
        files,
        description: up.description,
        up: up_sql,
        down: down.map(|(_, sql, _)| sql),
        no_transaction,
        notes: Vec::new(),
    }
}

/// The SQL of a file without sqlx's `-- no-transaction` line, and whether it had one
/// (sqlx looks only at the very start of the file).
fn sql(file: &File) -> (Sql, bool) {
    let no_transaction = file.text.starts_with("-- no-transaction");
    let (text, first_line) = if no_transaction {
        let rest = file.text.split_once('\n').map_or("", |(_, rest)| rest);
        (rest.to_owned(), 2)
    } else {
        (file.text.clone(), 1)
    };
    let sql = Sql {
        text,
        at: SourceLine::at(&file.name, first_line),
    };
    (sql, no_transaction)
}
