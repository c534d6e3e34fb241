//! `stamp`: marking a database as at a revision without running anything, once its live
//! schema was compared with what the migrations up to that revision build on a scratch
//! database of the same dialect (the snapshots of [`crate::schema`]).

use sqlx::postgres::PgPoolOptions;

use super::history::{Entries, HistoryRefusal};
use super::migrator::{Engine, Migrator, Policy};
use super::plan::{self, Assessment, DbState, HistoryKind, SchemaState, UpgradeTarget};
use crate::backend::Backend;
use crate::database::{Database, Handle, OnBackend};
use crate::error::Error;
use crate::migration::Migrations;
use crate::naming::Revision;
use crate::schema::{Schema, SchemaDiff};
use crate::scratch;
use crate::url::{DatabaseUrl, SqliteTarget};

/// What [`Migrator::stamp`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stamped {
    /// The revision the database is at now.
    pub revision: Revision,
    /// The migrations recorded as applied, oldest first: (revision, file).
    pub recorded: Vec<(Revision, String)>,
    /// The differences found and accepted with `force` (empty when the schemas matched).
    pub forced: SchemaDiff,
}

/// Decides a stamp at `revision`: the positions of the migrations to record, oldest first.
/// The database must be calista's and before `revision`, or have no calista history at all
/// (empty, or another tool's). Pure.
pub(crate) fn plan_stamp(
    migrations: &Migrations,
    state: &DbState,
    history: &[plan::HistoryRecord],
    revision: Revision,
) -> Result<std::ops::RangeInclusive<usize>, HistoryRefusal> {
    let target = migrations
        .position(revision)
        .ok_or(HistoryRefusal::UnknownRevision(revision))?;
    let verdict = match plan::assess(migrations, state) {
        Assessment::Decided(verdict) => verdict,
        Assessment::NeedsHistory => {
            plan::diagnose(migrations, super::migrator::current_of(state), history)
        }
    };
    let first = match verdict {
        SchemaState::Managed { .. } => 0,
        SchemaState::UpToDate { current } | SchemaState::Behind { current, .. } => {
            match current.and_then(|c| migrations.position(c)) {
                Some(at) if at >= target => {
                    return Err(HistoryRefusal::AlreadyAt {
                        current: migrations.as_slice()[at].revision(),
                        revision,
                    });
                }
                Some(at) => at + 1,
                None => 0,
            }
        }
        other => return Err(HistoryRefusal::Unsafe(Box::new(other))),
    };
    Ok(first..=target)
}

/// What the migrations up to `revision` build, on a scratch database of `db`'s dialect
/// (PostgreSQL: on the same server, created and dropped through `db`'s pool).
async fn expected_schema(
    migrations: &Migrations,
    db: &Database,
    revision: Revision,
) -> Result<Schema, Error> {
    let policy = Policy::scratch();
    let build = async |scratch: &Database| {
        Migrator::new(migrations, scratch)
            .with_policy(policy.clone())
            .upgrade(UpgradeTarget::Revision(revision))
            .await?;
        Schema::read(scratch).await
    };
    let own = db.own_pool();
    if let Some(pool) = own.as_postgres() {
        let name = scratch::unique_name("calista_stamp");
        let mut admin = pool
            .acquire()
            .await
            .map_err(|e| Error::connect(db.url(), e))?;
        scratch::create_database(&mut admin, &name, None).await?;
        let options = pool.connect_options().as_ref().clone().database(&name);
        let scratch_pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options);
        let built = match Database::from_pool(scratch_pool.clone(), db.options().clone()) {
            Ok(scratch) => {
                let built = build(&scratch).await;
                scratch.close().await;
                built
            }
            Err(e) => Err(e),
        };
        scratch_pool.close().await;
        if let Err(e) = scratch::drop_database(&mut admin, &name).await {
            tracing::warn!(error = %crate::error::with_causes(&e), database = %name, "could not drop the scratch database");
        }
        built
    } else {
        let path = scratch::sqlite_path("calista_stamp");
        let url = DatabaseUrl::Sqlite(SqliteTarget::File(path.clone()));
        let built = match Database::connect(&url, db.options().clone()) {
            Ok(scratch) => {
                let built = build(&scratch).await;
                scratch.close().await;
                built
            }
            Err(e) => Err(e),
        };
        scratch::remove_sqlite(&path);
        built
    }
}

impl Migrator<'_> {
    /// Marks the database as at `revision` without running anything: records the
    /// migrations up to it as applied (kind `stamped`). First its live schema is compared
    /// with what those migrations build on a scratch database of the same dialect; a
    /// difference refuses the stamp, listing it, unless `force` (then the differences are
    /// returned and noted in the history). The database must have no calista history yet
    /// (empty, built by hand, or another tool's), or be calista's and before `revision`.
    pub async fn stamp(&self, revision: Revision, force: bool) -> Result<Stamped, Error> {
        // Refusals that need no scratch database come first; the lock checks again.
        let state = self.db.read_state().await?;
        let history = self.db.read_history().await?;
        plan_stamp(self.migrations, &state, &history, revision)?;
        let expected = expected_schema(self.migrations, self.db, revision).await?;
        let live = Schema::read(self.db).await?;
        let differences = expected.diff(&live);
        if !differences.is_empty() && !force {
            return Err(HistoryRefusal::SchemaDiffers {
                revision,
                differences,
            }
            .into());
        }
        self.db
            .on_backend(Stamp {
                migrator: self,
                revision,
                forced: differences,
            })
            .await
    }
}

struct Stamp<'m> {
    migrator: &'m Migrator<'m>,
    revision: Revision,
    forced: SchemaDiff,
}

impl OnBackend for Stamp<'_> {
    type Output = Stamped;
    async fn on<B: Backend>(self, handle: &Handle<B>) -> Result<Self::Output, Error> {
        let engine = Engine::new(self.migrator, handle);
        let migrations = self.migrator.migrations;
        let Self {
            revision, forced, ..
        } = self;
        engine
            .record_under_lock(|state, history| {
                let range = plan_stamp(migrations, state, history, revision)?;
                let note = if forced.is_empty() {
                    format!("stamped at {revision}: the live schema matched")
                } else {
                    format!(
                        "stamped at {revision} with force, {} schema difference(s) accepted:\n{forced}",
                        forced.differences.len()
                    )
                };
                let chosen = &migrations.as_slice()[range];
                let records = chosen
                    .iter()
                    .map(|migration| {
                        let mut record = engine.entry(migration, HistoryKind::Stamped);
                        record.note = Some(note.clone());
                        record
                    })
                    .collect();
                let from = state.versions.as_ref().and_then(|v| v.first()).cloned();
                let stamped = Stamped {
                    revision,
                    recorded: chosen
                        .iter()
                        .map(|m| (m.revision(), m.file_name()))
                        .collect(),
                    forced,
                };
                let entries = Entries {
                    records,
                    version: Some((from, Some(revision.to_string()))),
                };
                Ok((entries, stamped))
            })
            .await
    }
}
