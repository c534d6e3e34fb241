//! diesel's migrations folder: one folder per migration, `<version>_<name>/` with `up.sql`,
//! `down.sql` and an optional `metadata.toml` (`run_in_transaction = false`). diesel records
//! the version, the folder name before its first `_` without `-`, in
//! `__diesel_schema_migrations`, and keeps no checksum.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    Found, ImportProblem, ImportProblemKind, Key, Note, Skipped, SourceLine, SourceMigration, Sql,
    folder, read_text, timestamp,
};

pub(super) fn read(dir: &Path) -> std::io::Result<Found> {
    let mut found = Found::default();
    // diesel orders migrations by version, compared as text.
    let mut by_version: BTreeMap<String, SourceMigration> = BTreeMap::new();
    for (name, path) in folder(dir)? {
        if !path.is_dir() {
            found.skipped.push(Skipped {
                file: name,
                reason: "diesel reads migration folders only, not files",
            });
            continue;
        }
        let is_empty = std::fs::read_dir(&path)?.next().is_none();
        if is_empty {
            found.skipped.push(Skipped {
                file: name,
                reason: "diesel skips empty folders",
            });
            continue;
        }
        let up_path = path.join("up.sql");
        if !up_path.is_file() {
            found
                .problems
                .push(ImportProblem::new(name, None, ImportProblemKind::NoUpFile));
            continue;
        }
        let version = name.split('_').next().unwrap_or_default().replace('-', "");
        let description = name.split_once('_').map_or("", |(_, rest)| rest).to_owned();
        let up_name = format!("{name}/up.sql");
        let Some((_, up)) = read_text(&up_path, &up_name, &mut found.problems) else {
            continue;
        };
        let mut files = vec![up_name.clone()];
        let mut notes = Vec::new();
        let down_path = path.join("down.sql");
        let down = if down_path.is_file() {
            let down_name = format!("{name}/down.sql");
            let Some((_, text)) = read_text(&down_path, &down_name, &mut found.problems) else {
                continue;
            };
            files.push(down_name.clone());
            Some(Sql {
                text,
                at: SourceLine::first(&down_name),
            })
        } else {
            notes.push(Note::NoDown);
            None
        };
        let metadata_path = path.join("metadata.toml");
        let no_transaction = if metadata_path.is_file() {
            let metadata_name = format!("{name}/metadata.toml");
            let Some((_, text)) = read_text(&metadata_path, &metadata_name, &mut found.problems)
            else {
                continue;
            };
            files.push(metadata_name.clone());
            match run_in_transaction(&text) {
                Ok(Some(run_in_transaction)) => !run_in_transaction,
                Ok(None) => {
                    notes.push(Note::DieselMetadataDefault);
                    true
                }
                Err(reason) => {
                    found.problems.push(ImportProblem::new(
                        metadata_name,
                        None,
                        ImportProblemKind::BadMetadata { reason },
                    ));
                    continue;
                }
            }
        } else {
            false
        };
        let migration = SourceMigration {
            key: Key::Diesel(version.clone()),
            source: up_name.clone(),
            files,
            description,
            date: timestamp(&version),
            up: Sql {
                text: up,
                at: SourceLine::first(&up_name),
            },
            down,
            no_transaction,
            notes,
        };
        if let Some(other) = by_version.insert(version, migration) {
            found.problems.push(ImportProblem::new(
                name,
                None,
                ImportProblemKind::DuplicateVersion {
                    other: path_folder(&other.source),
                },
            ));
        }
    }
    found.migrations.extend(by_version.into_values());
    Ok(found)
}

fn path_folder(source: &str) -> String {
    source.trim_end_matches("/up.sql").to_owned()
}

/// `run_in_transaction` as diesel reads `metadata.toml`: the key's value, `None` when the
/// key is missing, an error when the file is not TOML or the value not a boolean (diesel
/// then falls back to running in a transaction without saying so).
fn run_in_transaction(text: &str) -> Result<Option<bool>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    match table.get("run_in_transaction") {
        None => Ok(None),
        Some(toml::Value::Boolean(value)) => Ok(Some(*value)),
        Some(other) => Err(format!(
            "run_in_transaction is {}, not true or false",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_read_as_diesel_reads_it() {
        assert_eq!(
            run_in_transaction("run_in_transaction = false\n"),
            Ok(Some(false))
        );
        assert_eq!(
            run_in_transaction("run_in_transaction = true"),
            Ok(Some(true))
        );
        assert_eq!(run_in_transaction("# nothing\n"), Ok(None));
        assert!(run_in_transaction("run_in_transaction = \"no\"").is_err());
        assert!(run_in_transaction("run_in_transaction = ").is_err());
    }
}
