//! A new migration file, as `db new` writes it: named after the current minute (or the
//! minute after the newest file, so that it sorts last), holding a template that fails the
//! build until its SQL is written.

use std::io;
use std::path::{Path, PathBuf};

use crate::format::template;
use crate::naming::{self, NameError, Revision};
use crate::utc::UtcDateTime;

/// Why a new migration file was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NewFileError {
    /// The summary cannot be part of a file name.
    #[error("{0}; {fix}", fix = .0.fix())]
    Summary(NameError),
    /// The system clock gives no valid revision.
    #[error("the system clock gives an impossible date; set the clock")]
    Clock,
    /// The folder or the file could not be read or written.
    #[error("cannot {doing} {}", .path.display())]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl NewFileError {
    /// True when the request, not the system, is at fault.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Summary(_) | Self::Clock)
    }
}

/// Writes a new migration file into `dir` (created if missing) and returns its path:
/// `YYYYMMDD_HHMM_<summary>.sql`, never overwriting a file.
pub fn new_migration_file(dir: &Path, summary: &str) -> Result<PathBuf, NewFileError> {
    naming::validate_summary(summary).map_err(NewFileError::Summary)?;
    let io = |doing, path: &Path| {
        let path = path.to_owned();
        move |source| NewFileError::Io {
            doing,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("create the migrations folder", dir))?;
    let revision = next_revision(dir)?;
    let path = dir.join(naming::file_name(revision, summary));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io("create", &path))?;
    io::Write::write_all(&mut file, template(revision, summary).as_bytes())
        .map_err(io("write", &path))?;
    Ok(path)
}

/// Now, UTC, to the minute; or one minute after the newest file if that is not earlier.
fn next_revision(dir: &Path) -> Result<Revision, NewFileError> {
    let now = UtcDateTime::now();
    let now = Revision::new(
        u32::try_from(now.year).unwrap_or(9999),
        now.month,
        now.day,
        now.hour,
        now.minute,
    )
    .map_err(|_| NewFileError::Clock)?;
    let newest = std::fs::read_dir(dir)
        .map_err(|source| NewFileError::Io {
            doing: "read",
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            naming::parse_file_name(&name)
                .ok()
                .map(|parsed| parsed.revision)
        })
        .max();
    Ok(match newest {
        Some(newest) if newest >= now => newest.next_minute(),
        _ => now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_sorts_after_the_newest_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let future = dir.path().join("99990101_0000_later.sql");
        std::fs::write(&future, "x").unwrap_or_else(|e| panic!("{e}"));
        let path = new_migration_file(dir.path(), "add_things").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("99990101_0001_add_things.sql")
        );
        let bad = new_migration_file(dir.path(), "Add Things").unwrap_err();
        assert!(bad.is_usage(), "{bad}");
    }
}
