//! Spare copies of a SQLite test template, the file counterpart of [`super::spares`]: a
//! background thread keeps a few complete copies in numbered slots
//! (`<prefix>_spare_<key>_<n>.db`, written as `<n>.partial` and renamed into the slot when
//! complete), and a test claims one by renaming it to its own name; a rename succeeds for
//! one claimant only. Templates record their last use in their modification time; the
//! first refill of a project in a process deletes that project's spares of templates
//! unused for an hour, its templates unused for a week and its `.partial` files an hour
//! old. Slots and partial copies have fixed names, so runs that end while copying leave
//! no more behind than one that ends quietly.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::time::SystemTime;

use super::project::{Kind, TestProject};
use super::spares::{Marked, SPARES_KEPT_FOR, TEMPLATES_KEPT_FOR, wanted};
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
pub(super) fn claim(project: &TestProject, key: &str, file: &Path) -> bool {
    let prefix = project.spare_prefix(key);
    // A slot that is empty, or that another test emptied first, fails the rename.
    (0..wanted()).any(|n| fs::rename(slot(&prefix, n), file).is_ok())
}

/// Asks the background thread to copy `template` until it has enough spares.
pub(super) fn refill(project: &TestProject, template: &Path, key: &str) {
    if wanted() == 0 {
        return;
    }
    type Job = (TestProject, PathBuf, String);
    static WORKER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("calista-test-spare-files".to_owned())
            .spawn(move || {
                let mut cleaned = HashSet::new();
                let mut marked = Marked::default();
                while let Ok(job) = jobs.recv() {
                    // Refills waiting for the same template are one refill.
                    let mut waiting = vec![job];
                    for job in jobs.try_iter() {
                        if !waiting.contains(&job) {
                            waiting.push(job);
                        }
                    }
                    for (project, template, prefix) in waiting {
                        if cleaned.insert(project.clone()) {
                            clean_up(&project, SystemTime::now());
                        }
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
        let job = (
            project.clone(),
            template.to_owned(),
            project.spare_prefix(key),
        );
        let _ = sender.send(job);
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
        // The slot's own name: a copy that a run left unfinished is overwritten, not added to.
        let partial = folder().join(format!("{prefix}{n}.partial"));
        fs::copy(template, &partial)?;
        fs::rename(&partial, spare)?;
    }
    Ok(())
}

/// Deletes `project`'s spares of templates unused for an hour (or gone), its templates
/// unused for a week (with their lock files), and its `.partial` copies an hour old (a
/// process ended while copying).
fn clean_up(project: &TestProject, now: SystemTime) {
    let Ok(entries) = fs::read_dir(folder()) else {
        return;
    };
    // (name, what it is, its extension, last modified)
    let files: Vec<(String, Kind, String, SystemTime)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (stem, extension) = match name.rsplit_once('.') {
                Some((stem, extension)) => (stem, extension),
                // A spare slots' lock: `<prefix>_spare_<key>_lock`.
                None => (name.strip_suffix("lock")?, "lock"),
            };
            let kind = project.kind(stem)?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((name.clone(), kind, extension.to_owned(), modified))
        })
        .collect();
    let idle = |modified: SystemTime| now.duration_since(modified).unwrap_or_default();
    let mut fresh = Vec::new();
    for (name, kind, extension, modified) in &files {
        let Kind::Template(key) = kind else {
            continue;
        };
        if extension != "db" {
            continue;
        }
        if idle(*modified) > TEMPLATES_KEPT_FOR {
            let template = folder().join(name);
            scratch::remove_sqlite(&template);
            let _ = fs::remove_file(template.with_extension("lock"));
        } else if idle(*modified) <= SPARES_KEPT_FOR {
            fresh.push(project.spare_prefix(key));
        }
    }
    for (name, kind, extension, modified) in &files {
        if *kind != Kind::Spare {
            continue;
        }
        let stale_spare = matches!(extension.as_str(), "db" | "lock")
            && !fresh.iter().any(|prefix| name.starts_with(prefix));
        let stale_partial = extension == "partial" && idle(*modified) > SPARES_KEPT_FOR;
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
        let calista = TestProject::new("calista");
        let template = |key: &str| format!("{}.db", calista.template(key));
        let spare_prefix = |key: &str| calista.spare_prefix(key);
        let now = SystemTime::now();
        let hour = Duration::from_secs(60 * 60);
        let unique = format!("{:08x}", std::process::id());
        let key = |which: char| format!("{unique}{which}fffffff00000000");
        // (file, last modified, whether the clean-up must delete it)
        let files = [
            (template(&key('a')), now - 8 * 24 * hour, true),
            (template(&key('b')), now - 2 * hour, false),
            (format!("{}1.db", spare_prefix(&key('b'))), now, true),
            (template(&key('c')), now, false),
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
        clean_up(&calista, now);
        for (name, _, deleted) in &files {
            let path = folder().join(name);
            assert_eq!(!path.exists(), *deleted, "{name}");
            let _ = fs::remove_file(path);
        }
    }
}
