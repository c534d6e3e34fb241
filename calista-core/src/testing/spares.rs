//! Spare clones of a PostgreSQL test template, made ahead of the tests that will use them.
//!
//! Cloning a template costs time in proportion to its relations (PostgreSQL copies each
//! one), so a test that cloned its own database would wait longer the more migrations the
//! set has. Instead a background thread keeps a few *spares* per template — complete clones
//! named `<prefix>_spare_<key>_…` — and a test *claims* one by renaming it to its own name,
//! which is one catalog update whatever the schema. Only one claimant's rename can succeed,
//! so tests of several threads and processes never share a spare. A spare is visible only
//! once its `CREATE DATABASE` has committed, so a claimed spare is always complete; spares
//! left when the tests end are claimed by the next run.
//!
//! A passing test's database is renamed `<prefix>_trash_…` (at once) and dropped by the same
//! thread afterwards; trash that a process left when it exited is dropped by the next one
//! of the same project (the prefix is its [`TestProject`]'s).
//! Templates record when they were last used (a comment on the database); spares of a
//! template unused for an hour, and templates unused for a week, are dropped, so editing a
//! migration (a new template each time) does not fill the server.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, PgConnection};
use tokio::sync::{mpsc, oneshot};

use super::project::{Kind, TestProject};
use crate::backend::postgres::describe;
use crate::error::{Error, with_causes};
use crate::scratch;
use crate::url::PostgresUrl;

/// How many spares to keep per template; `0` turns spares off.
pub const SPARES_VARIABLE: &str = "CALISTA_TEST_SPARES";
/// The number of spares when [`SPARES_VARIABLE`] is not set.
pub const DEFAULT_SPARES: usize = 4;

/// Spares of a template unused for this long are dropped.
pub(super) const SPARES_KEPT_FOR: Duration = Duration::from_secs(60 * 60);
/// Templates unused for this long are dropped.
pub(super) const TEMPLATES_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How often a process records that it still uses a template.
const MARK_EVERY: Duration = Duration::from_secs(60);
/// How many listed spares a claim tries before it clones instead.
const CLAIM_TRIES: i64 = 8;

/// The spares wanted per template.
pub(super) fn wanted() -> usize {
    std::env::var(SPARES_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_SPARES)
}

/// The comment that records a template's last use (seconds since the Unix epoch).
fn used_comment(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("calista test template; last used {seconds}")
}

fn last_used(comment: Option<&str>) -> Option<SystemTime> {
    let seconds = comment?
        .strip_prefix("calista test template; last used ")?
        .parse()
        .ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Marks `template` as used now.
pub(super) async fn mark_used(admin: &mut PgConnection, template: &str) -> Result<(), Error> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "COMMENT ON DATABASE \"{template}\" IS '{}'",
        used_comment(SystemTime::now())
    )))
    .execute(admin)
    .await
    .map_err(|e| describe(e, "marking the test template as used"))?;
    Ok(())
}

/// Renames one of `key`'s spares to `name`, on the background thread's connection (a
/// test opens no connection of its own for it). `false` when none could be claimed (there
/// are none, other tests took each one first, or the thread cannot reach the server): the
/// caller then clones the template itself.
pub(super) async fn claim(
    server: &PostgresUrl,
    project: &TestProject,
    key: &str,
    name: &str,
) -> bool {
    if wanted() == 0 {
        return false;
    }
    let (reply, claimed) = oneshot::channel();
    let job = Fast::Claim {
        prefix: project.spare_prefix(key),
        name: name.to_owned(),
        reply,
    };
    send(server, Job::Fast(job)) && claimed.await.unwrap_or(false)
}

async fn claim_on(admin: &mut PgConnection, prefix: &str, name: &str) -> Result<bool, Error> {
    let spares: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname LIMIT $2",
    )
    .bind(prefix)
    .bind(CLAIM_TRIES)
    .fetch_all(&mut *admin)
    .await
    .map_err(|e| describe(e, "looking for a spare test database"))?;
    for spare in spares {
        // Another test may have renamed (or a clean-up dropped) it since: try the next.
        let renamed = sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER DATABASE \"{spare}\" RENAME TO \"{name}\""
        )))
        .execute(&mut *admin)
        .await;
        if renamed.is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Asks the background thread to make spares of `template` until there are enough.
pub(super) fn refill(server: &PostgresUrl, project: &TestProject, template: &str, key: &str) {
    if wanted() == 0 {
        return;
    }
    send(
        server,
        Job::Slow(Slow::Refill {
            project: project.clone(),
            template: template.to_owned(),
            prefix: project.spare_prefix(key),
        }),
    );
}

/// Takes a passing test's database out of use: refuses new connections, ends the test's
/// own, and renames it to trash, which the background thread drops later. `false` when
/// that could not be done; the caller then drops the database itself.
pub(super) async fn discard(server: &PostgresUrl, project: &TestProject, name: &str) -> bool {
    let (reply, discarded) = oneshot::channel();
    let job = Fast::Discard {
        name: name.to_owned(),
        trash: project.trash(&scratch::unique_suffix()),
        reply,
    };
    send(server, Job::Fast(job)) && discarded.await.unwrap_or(false)
}

async fn discard_on(admin: &mut PgConnection, name: &str, trash: &str) -> Result<(), Error> {
    let steps = [
        format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"),
        format!(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
        format!("ALTER DATABASE \"{name}\" RENAME TO \"{trash}\""),
    ];
    for step in steps {
        sqlx::raw_sql(AssertSqlSafe(step))
            .execute(&mut *admin)
            .await
            .map_err(|e| describe(e, &format!("setting the test database {name} aside")))?;
    }
    Ok(())
}

/// Work for the background thread: what a test waits for, and what nobody waits for.
#[derive(Debug)]
enum Job {
    Fast(Fast),
    Slow(Slow),
}

#[derive(Debug)]
enum Fast {
    Claim {
        prefix: String,
        name: String,
        reply: oneshot::Sender<bool>,
    },
    Discard {
        name: String,
        trash: String,
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Slow {
    Refill {
        /// Whose template: what an earlier run of that project left is cleaned up first.
        project: TestProject,
        template: String,
        prefix: String,
    },
    Drop {
        name: String,
    },
}

type Queue<T> = mpsc::UnboundedSender<(PostgresUrl, T)>;

/// Sends a job to the background thread, starting it on first use. `false` if the thread
/// could not start: then nothing is lost but speed (tests clone and drop themselves).
fn send(server: &PostgresUrl, job: Job) -> bool {
    static WORKER: OnceLock<Option<(Queue<Fast>, Queue<Slow>)>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (fast, fast_jobs) = mpsc::unbounded_channel();
        let (slow, slow_jobs) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("calista-test-spares".to_owned())
            .spawn(move || work(fast_jobs, slow_jobs))
            .ok()
            .map(|_| (fast, slow))
    });
    let Some((fast, slow)) = worker else {
        return false;
    };
    let server = server.clone();
    match job {
        Job::Fast(job) => fast.send((server, job)).is_ok(),
        Job::Slow(job) => slow.send((server, job)).is_ok(),
    }
}

/// The background thread: two lanes, each with its own connection per server, so that a
/// claim is never queued behind a clone. It ends with the process; what it had not done
/// yet, the next run does.
fn work(
    fast: mpsc::UnboundedReceiver<(PostgresUrl, Fast)>,
    slow: mpsc::UnboundedReceiver<(PostgresUrl, Slow)>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        tokio::join!(fast_lane(fast), slow_lane(slow));
    });
}

/// Claims and discards: a test is waiting for each.
async fn fast_lane(mut jobs: mpsc::UnboundedReceiver<(PostgresUrl, Fast)>) {
    let mut connections = Connections::default();
    while let Some((server, job)) = jobs.recv().await {
        let Some(admin) = connections.get(&server, None).await else {
            // Dropping the reply tells the test to do the work itself.
            continue;
        };
        let outcome = match job {
            Fast::Claim {
                prefix,
                name,
                reply,
            } => {
                let claimed = claim_on(admin, &prefix, &name).await;
                let _ = reply.send(matches!(claimed, Ok(true)));
                claimed.map(drop)
            }
            Fast::Discard { name, trash, reply } => {
                let discarded = discard_on(admin, &name, &trash).await;
                let _ = reply.send(discarded.is_ok());
                discarded.map(|()| {
                    send(&server, Job::Slow(Slow::Drop { name: trash }));
                })
            }
        };
        connections.forget_on_error(&server, outcome);
    }
}

/// Spares first (a test may soon want one), then drops.
async fn slow_lane(mut jobs: mpsc::UnboundedReceiver<(PostgresUrl, Slow)>) {
    let mut connections = Connections::default();
    let mut pending: Vec<(PostgresUrl, Slow)> = Vec::new();
    let mut marked = Marked::default();
    loop {
        if pending.is_empty() {
            match jobs.recv().await {
                Some(job) => pending.push(job),
                None => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            // A refill already waiting does the work of another for the same template.
            if !pending.contains(&job) {
                pending.push(job);
            }
        }
        let next = pending
            .iter()
            .position(|(_, job)| matches!(job, Slow::Refill { .. }))
            .unwrap_or(0);
        let (server, job) = pending.remove(next);
        let project = match &job {
            Slow::Refill { project, .. } => Some(project),
            Slow::Drop { .. } => None,
        };
        let Some(admin) = connections.get(&server, project).await else {
            continue;
        };
        let outcome = match &job {
            Slow::Refill {
                template, prefix, ..
            } => {
                let marked = if marked.due(template) {
                    mark_used(admin, template).await
                } else {
                    Ok(())
                };
                match marked {
                    Ok(()) => make_spares(admin, template, prefix).await,
                    Err(e) => Err(e),
                }
            }
            Slow::Drop { name } => scratch::drop_database(admin, name).await,
        };
        connections.forget_on_error(&server, outcome);
    }
}

/// When this process last recorded each template's use: at most once a minute, which is
/// precise enough for a clean-up that counts in hours.
#[derive(Default)]
pub(super) struct Marked(HashMap<String, Instant>);

impl Marked {
    /// Whether `template`'s use is to be recorded now (and, if so, it counts as recorded).
    pub(super) fn due(&mut self, template: &str) -> bool {
        let now = Instant::now();
        match self.0.get(template) {
            Some(at) if now.duration_since(*at) < MARK_EVERY => false,
            _ => {
                self.0.insert(template.to_owned(), now);
                true
            }
        }
    }
}

/// A lane's connections, one per server URL, and the projects cleaned up on each.
#[derive(Default)]
struct Connections {
    open: HashMap<String, PgConnection>,
    cleaned: HashSet<(String, TestProject)>,
}

impl Connections {
    /// The connection to `server`, opened on first use; then, the first time `project`
    /// comes with it, what earlier runs of that project left on that server is cleaned up.
    async fn get(
        &mut self,
        server: &PostgresUrl,
        project: Option<&TestProject>,
    ) -> Option<&mut PgConnection> {
        let admin = match self.open.entry(server.expose_secret().to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(scratch::admin(server).await.ok()?),
        };
        if let Some(project) = project
            && self
                .cleaned
                .insert((server.expose_secret().to_owned(), project.clone()))
            && let Err(e) = clean_up(admin, project).await
        {
            tracing::debug!(error = %with_causes(&e), "could not clean up old test databases");
        }
        Some(admin)
    }

    /// After a failure, the connection may be what failed: the next job opens another.
    fn forget_on_error(&mut self, server: &PostgresUrl, outcome: Result<(), Error>) {
        if let Err(e) = outcome {
            tracing::debug!(error = %with_causes(&e), "test database housekeeping failed");
            self.open.remove(server.expose_secret());
        }
    }
}

/// Clones `template` until it has [`wanted`] spares. Under an advisory lock, so that two
/// processes do not both fill the same template's quota; a process that finds the lock
/// taken leaves the work to its holder.
async fn make_spares(admin: &mut PgConnection, template: &str, prefix: &str) -> Result<(), Error> {
    let lock = crate::backend::postgres::lock_key(prefix);
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock)
        .fetch_one(&mut *admin)
        .await
        .map_err(|e| describe(e, "taking the spare databases' lock"))?;
    if !locked {
        return Ok(());
    }
    let made = async {
        loop {
            let spares: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)",
            )
            .bind(prefix)
            .fetch_one(&mut *admin)
            .await
            .map_err(|e| describe(e, "counting the spare test databases"))?;
            if usize::try_from(spares).unwrap_or(usize::MAX) >= wanted() {
                return Ok(());
            }
            let spare = format!("{prefix}{}", scratch::unique_suffix());
            scratch::create_database(admin, &spare, Some(template)).await?;
        }
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut *admin)
        .await;
    made
}

/// Drops `project`'s trash, spares of its templates unused for an hour (or gone), and its
/// templates unused for a week.
async fn clean_up(admin: &mut PgConnection, project: &TestProject) -> Result<(), Error> {
    let databases: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE starts_with(datname, $1)",
    )
    .bind(project.prefix())
    .fetch_all(&mut *admin)
    .await
    .map_err(|e| describe(e, "listing old test databases"))?;
    let now = SystemTime::now();
    let unused_for = |comment: &Option<String>| {
        last_used(comment.as_deref())
            .and_then(|used| now.duration_since(used).ok())
            .unwrap_or_default()
    };
    let mut fresh_spare_prefixes = Vec::new();
    let mut drop = Vec::new();
    for (name, comment) in &databases {
        let Some(Kind::Template(key)) = project.kind(name) else {
            continue;
        };
        let idle = unused_for(comment);
        if idle > TEMPLATES_KEPT_FOR {
            drop.push(name.clone());
        } else if idle <= SPARES_KEPT_FOR {
            fresh_spare_prefixes.push(project.spare_prefix(&key));
        }
    }
    for (name, _) in &databases {
        let stale = match project.kind(name) {
            Some(Kind::Trash) => true,
            Some(Kind::Spare) => !fresh_spare_prefixes.iter().any(|p| name.starts_with(p)),
            Some(Kind::Template(_)) | None => false,
        };
        if stale {
            drop.push(name.clone());
        }
    }
    for name in drop {
        scratch::drop_database(admin, &name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_use_round_trips_through_the_comment() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_556_800);
        assert_eq!(last_used(Some(&used_comment(at))), Some(at));
        assert_eq!(last_used(Some("made by hand")), None);
        assert_eq!(last_used(None), None);
    }

    #[test]
    fn a_templates_use_is_recorded_once_a_minute_at_most() {
        let mut marked = Marked::default();
        assert!(marked.due("calista_tpl_a"));
        assert!(!marked.due("calista_tpl_a"));
        assert!(marked.due("calista_tpl_b"));
    }

    #[test]
    fn spare_names_fit_postgres_identifiers() {
        let key = "0123456789abcdef01234567";
        let calista = TestProject::new("calista");
        let name = format!("{}{}", calista.spare_prefix(key), scratch::unique_suffix());
        assert!(name.len() <= 63, "{name} is {} bytes", name.len());
        assert!(name.starts_with("calista_spare_0123456789abcdef_"));
        assert_ne!(scratch::unique_suffix(), scratch::unique_suffix());
        // The longest prefix, the largest process id, and the counter at its billionth name.
        let longest = TestProject::new("a-very-long-crate-name");
        let name = format!("{}4194304_999999999_999999999", longest.spare_prefix(key));
        assert!(name.len() <= 63, "{name} is {} bytes", name.len());
    }
}
