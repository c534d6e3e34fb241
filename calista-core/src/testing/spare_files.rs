//! Spare copies of a SQLite test template, the file counterpart of [`super::spares`]: a
//! background thread keeps a few complete copies in numbered slots
//! (`calista_spare_<key>_<n>.db`, written under a `.partial` name and renamed into the slot
//! when complete), and a test claims one by renaming it to its own name; a rename succeeds
//! for one claimant only. Templates record their last use
//! in their modification time; spares of a template unused for an hour, templates unused
//! for a week and `.partial` files an hour old are deleted.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::time::SystemTime;

use super::spares::{
    Marked, SPARE, SPARES_KEPT_FOR, TEMPLATE, TEMPLATES_KEPT_FOR, spare_prefix, wanted,
};
use crate::scratch;

fn folder() -> PathBuf {
    std::env::temp_dir()
}

/// Spare `slot` of the template whose spares start with `prefix`. Spares sit in numbered
/// slots, so that a claim tries a few names instead of listing the temporary folder.
fn slot(prefix: &str, slot: usize) -> PathBuf {
    folder().join(format!("{prefix}{slot}.db"))
}

/// Renames one of `key`'s spare files to `file`. `false` when none could be claimed: the
/// caller copies the template itself.
pub(super) fn claim(key: &str, file: &Path) -> bool {
    let prefix = spare_prefix(key);
    // A slot that is empty, or that another test emptied first, fails the rename.
    (0..wanted()).any(|n| fs::rename(slot(&prefix, n), file).is_ok())
}

/// Asks the background thread to copy `template` until it has enough spares.
pub(super) fn refill(template: &Path, key: &str) {
    if wanted() == 0 {
        return;
    }
    static WORKER: OnceLock<Option<Sender<(PathBuf, String)>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<(PathBuf, String)>();
        std::thread::Builder::new()
            .name("calista-test-spare-files".to_owned())
            .spawn(move || {
                clean_up(SystemTime::now());
                let mut marked = Marked::default();
                while let Ok(job) = jobs.recv() {
                    // Refills waiting for the same template are one refill.
                    let mut waiting = vec![job];
                    for job in jobs.try_iter() {
                        if !waiting.contains(&job) {
                            waiting.push(job);
                        }
                    }
                    for (template, prefix) in waiting {
                        let done = mark_used(&template, &mut marked)
                            .and_then(|()| make_spares(&template, &prefix));
                        if let Err(e) = done {
                            tracing::debug!(error = %e, "could not copy a spare test database");
                        }
                    }
                }
            })
            .ok()
            .map(|_| sender)
    });
    if let Some(sender) = worker {
        let _ = sender.send((template.to_owned(), spare_prefix(key)));
    }
}

/// Records the template's use in its modification time, for the clean-up (at most once a
/// minute per process).
fn mark_used(template: &Path, marked: &mut Marked) -> std::io::Result<()> {
    if !marked.due(&template.to_string_lossy()) {
        return Ok(());
    }
    File::options()
        .write(true)
        .open(template)?
        .set_modified(SystemTime::now())
}

/// Copies `template` until it has [`wanted`] spares, under a lock on a file beside them,
/// so that two processes do not both fill the quota; a process that finds it locked
/// leaves the work to the holder.
fn make_spares(template: &Path, prefix: &str) -> std::io::Result<()> {
    let lock = File::create(folder().join(format!("{prefix}lock")))?;
    if lock.try_lock().is_err() {
        return Ok(());
    }
    for n in 0..wanted() {
        let spare = slot(prefix, n);
        if spare.exists() {
            continue;
        }
        let partial = folder().join(format!("{prefix}{}.partial", scratch::unique_suffix()));
        fs::copy(template, &partial)?;
        fs::rename(&partial, spare)?;
    }
    Ok(())
}

/// Deletes spares of templates unused for an hour (or gone), templates unused for a week,
/// and `.partial` copies an hour old (a process ended while copying).
fn clean_up(now: SystemTime) {
    let Ok(entries) = fs::read_dir(folder()) else {
        return;
    };
    let files: Vec<(String, SystemTime)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((name, modified))
        })
        .filter(|(name, _)| name.starts_with("calista_"))
        .collect();
    let idle = |modified: SystemTime| now.duration_since(modified).unwrap_or_default();
    let mut fresh = Vec::new();
    for (name, modified) in &files {
        let Some(key) = name
            .strip_prefix(TEMPLATE)
            .and_then(|rest| rest.strip_suffix(".db"))
        else {
            continue;
        };
        if idle(*modified) > TEMPLATES_KEPT_FOR {
            scratch::remove_sqlite(&folder().join(name));
        } else if idle(*modified) <= SPARES_KEPT_FOR {
            fresh.push(spare_prefix(key));
        }
    }
    for (name, modified) in &files {
        let stale_spare = name.starts_with(SPARE)
            && (name.ends_with(".db") || name.ends_with("_lock"))
            && !fresh.iter().any(|prefix| name.starts_with(prefix));
        let stale_partial = name.ends_with(".partial") && idle(*modified) > SPARES_KEPT_FOR;
        if stale_spare || stale_partial {
            let _ = fs::remove_file(folder().join(name));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests may panic: that is how they fail.

    use std::time::Duration;

    use super::*;

    #[test]
    fn old_spares_templates_and_partial_copies_are_deleted() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(60 * 60);
        let unique = format!("{:08x}", std::process::id());
        let key = |which: char| format!("{unique}{which}fffffff00000000");
        // (file, last modified, whether the clean-up must delete it)
        let files = [
            (
                format!("{TEMPLATE}{}.db", key('a')),
                now - 8 * 24 * hour,
                true,
            ),
            (format!("{TEMPLATE}{}.db", key('b')), now - 2 * hour, false),
            (format!("{}1.db", spare_prefix(&key('b'))), now, true),
            (format!("{TEMPLATE}{}.db", key('c')), now, false),
            (
                format!("{}1.db", spare_prefix(&key('c'))),
                now - 2 * hour,
                false,
            ),
            (format!("{}1.db", spare_prefix(&key('d'))), now, true),
            (
                format!("{}2.partial", spare_prefix(&key('c'))),
                now - 2 * hour,
                true,
            ),
            (format!("{}3.partial", spare_prefix(&key('c'))), now, false),
        ];
        for (name, modified, _) in &files {
            File::create(folder().join(name))
                .unwrap()
                .set_modified(*modified)
                .unwrap();
        }
        clean_up(now);
        for (name, _, deleted) in &files {
            let path = folder().join(name);
            assert_eq!(!path.exists(), *deleted, "{name}");
            let _ = fs::remove_file(path);
        }
    }
}
