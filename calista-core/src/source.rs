//! Reading a migrations folder: the one loader behind both `migrations!()` (at build time)
//! and [`Migrations::from_dir`] (at run time).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::format;
use crate::migration::{Migration, Migrations};
use crate::naming::{self, Revision};
use crate::problem::{Problem, ProblemKind, SourceError};

/// A migration file read from a folder.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where the file is on disk.
    pub path: PathBuf,
    /// What it holds.
    pub migration: Migration,
}

/// Reads and checks every file in a migrations folder, oldest revision first.
///
/// `shown_as` is how the folder is named in problems, so that messages do not depend
/// on where the project is checked out (e.g. `migrations`, as written by the user).
/// Dotfiles and `README*` are skipped; any other file that is not a valid migration is
/// a problem, because a file that is silently ignored is a migration that never runs.
pub fn read_dir(dir: &Path, shown_as: &str) -> Result<Vec<SourceFile>, SourceError> {
    let folder_problem = |kind| SourceError {
        problems: vec![Problem::new(shown_as, None, kind)],
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(folder_problem(ProblemKind::MissingFolder));
        }
        Err(_) if dir.exists() && !dir.is_dir() => {
            return Err(folder_problem(ProblemKind::NotAFolder));
        }
        Err(e) => {
            return Err(folder_problem(ProblemKind::Unreadable {
                reason: e.to_string(),
            }));
        }
    };

    let mut problems = Vec::new();
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name()),
            Err(e) => problems.push(Problem::new(
                shown_as,
                None,
                ProblemKind::Unreadable {
                    reason: e.to_string(),
                },
            )),
        }
    }
    names.sort();

    let mut files = Vec::new();
    // The names sort in revision order, the order in which the lint learns what each
    // migration declares.
    let mut declared = crate::sql::lint::Declared::default();
    for os_name in names {
        let shown = format!("{shown_as}/{}", os_name.to_string_lossy());
        let Some(name) = os_name.to_str() else {
            let bad = naming::NameError::WrongExtension { found: None };
            problems.push(Problem::new(shown, None, ProblemKind::Name(bad)));
            continue;
        };
        if naming::is_ignored(name) {
            continue;
        }
        let path = dir.join(name);
        // `metadata` follows symlinks, so a link to a migration works and a loop is reported.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                problems.push(Problem::new(shown, None, ProblemKind::Subfolder))
            }
            Ok(_) => match fs::read(&path) {
                Ok(contents) => match format::parse_file_in(&mut declared, &shown, name, &contents)
                {
                    Ok(migration) => files.push(SourceFile { path, migration }),
                    Err(found) => problems.extend(found),
                },
                Err(e) => problems.push(Problem::new(
                    shown,
                    None,
                    ProblemKind::Unreadable {
                        reason: e.to_string(),
                    },
                )),
            },
            Err(e) => problems.push(Problem::new(
                shown,
                None,
                ProblemKind::Unreadable {
                    reason: e.to_string(),
                },
            )),
        }
    }

    let mut seen: HashMap<Revision, String> = HashMap::new();
    for file in &files {
        let name = file.migration.file_name();
        if let Some(other) = seen.insert(file.migration.revision(), name.clone()) {
            problems.push(Problem::new(
                format!("{shown_as}/{name}"),
                None,
                ProblemKind::DuplicateRevision {
                    revision: file.migration.revision(),
                    other,
                },
            ));
        }
    }

    if problems.is_empty() {
        files.sort_by_key(|f| f.migration.revision());
        Ok(files)
    } else {
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        Err(SourceError { problems })
    }
}

impl Migrations {
    /// Reads a migrations folder at run time, with the same rules as `migrations!()`.
    ///
    /// ```no_run
    /// let migrations = calista_core::Migrations::from_dir("migrations")?;
    /// println!("{} migrations, head {:?}", migrations.len(), migrations.head().map(|m| m.revision()));
    /// # Ok::<(), calista_core::SourceError>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, SourceError> {
        let dir = dir.as_ref();
        let shown = dir.display().to_string();
        let files = read_dir(dir, &shown)?;
        // The set is the folder as it is now: there is no build to fall behind it.
        Ok(Self::new(
            files.into_iter().map(|f| f.migration).collect(),
            None,
        ))
    }

    /// File names in [`Migrations::source_dir`] that look like migrations but are not in
    /// this set: files added after the program was built. Empty when there is no folder to
    /// look at (release builds, and sets read at run time) or it cannot be read.
    pub fn missing_from_build(&self) -> Vec<String> {
        let Some(dir) = self.source_dir() else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut missing: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !naming::is_ignored(name))
            .filter(|name| match naming::parse_file_name(name) {
                Ok(parsed) => self
                    .get(parsed.revision)
                    .is_none_or(|m| m.summary() != parsed.summary),
                Err(_) => false,
            })
            .collect();
        missing.sort();
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "-- calista:up\nCREATE TABLE t (id INT);\n-- calista:down\nDROP TABLE t;\n";

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    fn kinds(err: SourceError) -> Vec<(String, ProblemKind)> {
        err.problems.into_iter().map(|p| (p.file, p.kind)).collect()
    }

    #[test]
    fn reads_files_in_revision_order_and_skips_dotfiles_and_readmes() {
        let dir = folder(&[
            ("20250902_0000_second.sql", GOOD),
            ("20250901_0000_first.sql", GOOD),
            (".gitkeep", ""),
            ("README.md", "# notes"),
        ]);
        let files = read_dir(dir.path(), "migrations").unwrap();
        let names: Vec<String> = files.iter().map(|f| f.migration.file_name()).collect();
        assert_eq!(
            names,
            ["20250901_0000_first.sql", "20250902_0000_second.sql"]
        );
    }

    #[test]
    fn every_problem_in_the_folder_is_reported() {
        let dir = folder(&[
            ("20250901_0000_ok.sql", GOOD),
            ("20250901_0000_same_revision.sql", GOOD),
            ("notes.txt", "x"),
            ("20250230_0000_bad_date.sql", GOOD),
        ]);
        fs::create_dir(dir.path().join("old")).unwrap();
        let problems = kinds(read_dir(dir.path(), "migrations").unwrap_err());
        let files: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            files,
            [
                "migrations/20250230_0000_bad_date.sql",
                "migrations/20250901_0000_same_revision.sql",
                "migrations/notes.txt",
                "migrations/old",
            ]
        );
        assert!(matches!(
            problems[1].1,
            ProblemKind::DuplicateRevision { .. }
        ));
        assert_eq!(problems[3].1, ProblemKind::Subfolder);
    }

    #[test]
    fn the_lint_knows_what_the_folders_earlier_migrations_declared() {
        let create = "-- calista:up postgres\nCREATE TABLE t (name VARCHAR(20));\n\
                      -- calista:up sqlite\nCREATE TABLE t (name TEXT);\n-- calista:down\nDROP TABLE t;\n";
        let change = |to: &str| {
            format!(
                "-- calista:irreversible\n-- calista:up postgres\nALTER TABLE t ALTER COLUMN name TYPE {to};\n\
                 -- calista:up sqlite\nSELECT 1;\n"
            )
        };
        let widens = folder(&[
            ("20250901_0000_create.sql", create),
            ("20250902_0000_widen.sql", &change("VARCHAR(200)")),
        ]);
        assert_eq!(read_dir(widens.path(), "m").map(|f| f.len()).ok(), Some(2));
        // Alone, the old type is unknown; after a narrowing, the widening is a narrowing.
        for files in [
            vec![("20250902_0000_widen.sql", change("VARCHAR(200)"))],
            vec![
                ("20250901_0000_create.sql", create.to_owned()),
                ("20250902_0000_widen.sql", change("VARCHAR(10)")),
            ],
        ] {
            let files: Vec<(&str, &str)> = files.iter().map(|(n, b)| (*n, b.as_str())).collect();
            let dir = folder(&files);
            let problems = kinds(read_dir(dir.path(), "m").unwrap_err());
            assert!(
                matches!(
                    problems.as_slice(),
                    [(
                        _,
                        ProblemKind::Lint {
                            rule: crate::sql::lint::Rule::ChangeColumnType,
                            ..
                        }
                    )]
                ),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn a_missing_folder_is_a_problem_named_as_the_user_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_dir(&dir.path().join("nope"), "db/migrations").unwrap_err();
        assert_eq!(
            kinds(err),
            [("db/migrations".to_owned(), ProblemKind::MissingFolder)]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_reported_not_followed_forever() {
        let dir = folder(&[]);
        std::os::unix::fs::symlink(
            "20250901_0000_loop.sql",
            dir.path().join("20250901_0000_loop.sql"),
        )
        .unwrap();
        let problems = kinds(read_dir(dir.path(), "m").unwrap_err());
        assert!(
            matches!(problems[0].1, ProblemKind::Unreadable { .. }),
            "{problems:?}"
        );
    }

    #[test]
    fn files_added_after_the_build_are_listed() {
        let dir = folder(&[("20250901_0000_first.sql", GOOD)]);
        let loaded = Migrations::from_dir(dir.path()).unwrap();
        assert_eq!(
            loaded.source_dir(),
            None,
            "a set read at run time has no build to fall behind"
        );
        // As `migrations!()` builds it in debug builds: remembering the folder.
        let migrations = Migrations::new(
            loaded.as_slice().to_vec(),
            Some(dir.path().display().to_string()),
        );
        assert!(migrations.missing_from_build().is_empty());
        fs::write(dir.path().join("20250902_0000_later.sql"), GOOD).unwrap();
        assert_eq!(migrations.missing_from_build(), ["20250902_0000_later.sql"]);
    }
}
