//! `<program> db …`: upgrade, inspect, and in development downgrade the schema.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use calista::HistoryRecord;
use calista::backup::{self, BackupOutcome};
use calista::{
    Direction, DowngradeTarget, Migrator, Recovery, Report, Revision, SchemaState, UpgradeTarget,
};
use serde_json::json;

use super::args::DbCommand;
use super::context::Context;
use super::exit::CliError;
use super::output::{self, Output, Tone};

pub(crate) async fn run(
    command: DbCommand,
    context: &Context,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        DbCommand::Heads => heads(context, out),
        DbCommand::Lint => lint(context, out),
        DbCommand::Import(args) => super::import::run(&args, Some(context.migrations_dir()), out),
        DbCommand::New { summary } => new(&summary, context, out),
        DbCommand::Backups => backups(context, out),
        DbCommand::Squash {
            through,
            release,
            pg_url,
        } => super::history::squash(&through, &release, pg_url, context, out).await,
        DbCommand::Verify { pg_url, seed } => {
            super::verify::run(pg_url, seed.as_deref(), context, out).await
        }
        command if command.fleet().is_some() => super::fleet::run(&command, context, out).await,
        command => {
            let db = context.database()?;
            let result = with_database(command, context, &db, out).await;
            db.close().await;
            result
        }
    }
}

async fn with_database(
    command: DbCommand,
    context: &Context,
    db: &calista::Database,
    out: &Output,
) -> Result<(), CliError> {
    let migrator = Migrator::new(context.migrations(), db).with_policy(context.policy());
    match command {
        DbCommand::Upgrade { to, sql, .. } => {
            let target = upgrade_target(to.as_deref())?;
            if sql {
                out.print(migrator.upgrade_script(target).await?.trim_end());
            } else {
                let report = migrator.upgrade(target).await?;
                out.print(&render_report(&report, out));
            }
            Ok(())
        }
        DbCommand::Downgrade { target } => {
            let target: DowngradeTarget = target.parse().map_err(|_| {
                CliError::Usage(format!(
                    "`{target}` is not a downgrade target: give a revision id (YYYYMMDD_HHMM), -N (N steps back) or base"
                ))
            })?;
            let report = migrator.downgrade(target).await?;
            out.print(&render_report(&report, out));
            Ok(())
        }
        DbCommand::Redo => super::redo::run(&migrator, out).await,
        DbCommand::Current => {
            let versions = migrator.current().await?;
            if out.json() {
                out.print_json(&json!({ "current": versions.first(), "rows": versions }));
            } else {
                match versions.as_slice() {
                    [] => out.print("base (no revision applied)"),
                    [one] => out.print(one),
                    several => out.print(&several.join("\n")),
                }
            }
            Ok(())
        }
        DbCommand::Status { .. } => status(context, db, &migrator, out).await,
        DbCommand::History => history(context, db, out).await,
        DbCommand::Check { .. } => {
            let state = migrator.check().await?;
            let head = context
                .migrations()
                .head()
                .map(|m| m.revision().to_string());
            if out.json() {
                let seen = Observed::read(context, db).await?;
                out.print_json(&state_json(&state, head.as_deref(), &seen));
            } else if state.is_up_to_date() {
                out.print(&format!(
                    "{} at {}",
                    out.paint(Tone::Good, "up to date"),
                    show(state.current())
                ));
            }
            if state.is_up_to_date() {
                Ok(())
            } else {
                Err(migrator.refusal_on_server(state).await.into())
            }
        }
        DbCommand::Recover { retry, .. } => {
            let how = if retry {
                Recovery::Retry
            } else {
                Recovery::MarkApplied
            };
            let state = migrator.recover(how).await?;
            let done = match how {
                Recovery::Retry => format!(
                    "the interrupted attempt is forgotten; `{} db upgrade` runs it again",
                    context.names().program
                ),
                Recovery::MarkApplied => {
                    "the interrupted migration is recorded as applied".to_owned()
                }
            };
            out.print(&format!("{done}\nstate: {}", state.name()));
            Ok(())
        }
        DbCommand::Restore { backup, yes } => restore(context, db, &backup, yes, out).await,
        DbCommand::Adopt { yes } => super::history::adopt(context, &migrator, yes, out).await,
        DbCommand::Stamp {
            revision,
            force,
            yes,
        } => super::history::stamp(context, &migrator, &revision, force, yes, out).await,
        DbCommand::Repair {
            accept,
            reason,
            yes,
        } => super::history::repair(context, &migrator, &accept, &reason, yes, out).await,
        DbCommand::Heads
        | DbCommand::New { .. }
        | DbCommand::Backups
        | DbCommand::Verify { .. }
        | DbCommand::Squash { .. }
        | DbCommand::Import(_)
        | DbCommand::Lint => Ok(()),
    }
}

/// `db restore`: refused in production without --yes; says the application must be stopped.
async fn restore(
    context: &Context,
    db: &calista::Database,
    backup: &Path,
    yes: bool,
    out: &Output,
) -> Result<(), CliError> {
    let environment = &context.settings().environment;
    if !yes && !environment.value.allows_downgrade() {
        return Err(CliError::Usage(format!(
            "restoring replaces the database with the backup, losing every change since it was \
             taken; in {} (from {}) confirm with --yes, after stopping the application",
            environment.value.name(),
            environment.source
        )));
    }
    out.notice(&format!(
        "restoring {} from {}; the application must be stopped while this runs",
        db.url(),
        backup.display()
    ));
    calista::backup::restore(db, backup, &context.backup_options())
        .await
        .map_err(calista::Error::from)?;
    let current = db.current().await?;
    if out.json() {
        out.print_json(&json!({
            "restored": backup.display().to_string(),
            "current": current.first(),
        }));
    } else {
        out.print(&format!(
            "{} {} from {}: the database is at {}",
            out.paint(Tone::Strong, "restored"),
            db.url(),
            backup.display(),
            current.first().map_or("base (no revision)", String::as_str)
        ));
    }
    Ok(())
}

async fn status(
    context: &Context,
    db: &calista::Database,
    migrator: &Migrator<'_>,
    out: &Output,
) -> Result<(), CliError> {
    let head = context
        .migrations()
        .head()
        .map(|m| m.revision().to_string());
    let checked = migrator.check().await;
    let (reachable, state) = match &checked {
        Ok(state) => (true, Some(state)),
        Err(e) if matches!(e.kind(), calista::ErrorKind::Failure) => (false, None),
        Err(_) => (true, None),
    };
    let backend = match db.dialect() {
        calista::Dialect::Postgres => "PostgreSQL",
        calista::Dialect::Sqlite => "SQLite",
    };
    let seen = match state {
        Some(_) => Some(Observed::read(context, db).await?),
        None => None,
    };
    if out.json() {
        let mut value =
            json!({ "reachable": reachable, "backend": backend, "url": db.url(), "head": head });
        if let (Some(state), Some(seen), Some(map)) = (state, &seen, value.as_object_mut())
            && let Some(fields) = state_json(state, head.as_deref(), seen).as_object()
        {
            map.extend(fields.clone());
        }
        if let (Err(e), Some(map)) = (&checked, value.as_object_mut()) {
            map.insert("error".into(), json!(out.error_line(e)));
        }
        out.print_json(&value);
    } else {
        let mut rows = vec![
            vec![
                "reachable".into(),
                if reachable {
                    out.paint(Tone::Good, "yes")
                } else {
                    out.paint(Tone::Bad, "no")
                },
            ],
            vec!["backend".into(), backend.into()],
            vec!["url".into(), db.url().to_owned()],
        ];
        if let (Some(state), Some(seen)) = (state, &seen) {
            let current = match seen.versions.as_slice() {
                [] => "base".to_owned(),
                versions => versions.join(", "),
            };
            rows.push(vec!["current".into(), current]);
            rows.push(vec![
                "head".into(),
                head.clone().unwrap_or_else(|| "none".into()),
            ]);
            rows.push(vec!["pending".into(), seen.pending.to_string()]);
            let tone = if state.is_up_to_date() {
                Tone::Good
            } else {
                Tone::Warn
            };
            rows.push(vec!["state".into(), out.paint(tone, state.name())]);
        }
        out.print(&output::table(&rows));
    }
    checked.map(drop).map_err(CliError::from)
}

/// What the database holds, as `db current` and `db history` show it: the rows of the
/// version table (whatever the guard thinks of them) and how many of this build's
/// migrations the history does not show applied.
struct Observed {
    versions: Vec<String>,
    pending: usize,
}

impl Observed {
    async fn read(context: &Context, db: &calista::Database) -> Result<Self, CliError> {
        let versions = db.current().await?;
        let records = db.history().await?;
        let applied = applied_now(&records);
        let pending = context
            .migrations()
            .iter()
            .filter(|m| !applied.contains_key(m.revision().to_string().as_str()))
            .count();
        Ok(Self { versions, pending })
    }
}

fn state_json(state: &SchemaState, head: Option<&str>, seen: &Observed) -> serde_json::Value {
    let mut value = json!({
        "state": state.name(),
        "up_to_date": state.is_up_to_date(),
        "current": seen.versions.first(),
        "head": head,
        "pending": seen.pending,
    });
    if seen.versions.len() > 1
        && let Some(map) = value.as_object_mut()
    {
        map.insert("rows".into(), json!(seen.versions));
    }
    value
}

async fn history(context: &Context, db: &calista::Database, out: &Output) -> Result<(), CliError> {
    let records = db.history().await?;
    let applied = applied_now(&records);
    let known: std::collections::HashSet<String> = context
        .migrations()
        .iter()
        .map(|m| m.revision().to_string())
        .collect();
    let mut entries = Vec::new();
    for migration in context.migrations() {
        let revision = migration.revision().to_string();
        let record = applied.get(revision.as_str());
        entries.push(json!({
            "revision": revision,
            "file": migration.file_name(),
            "applied": record.is_some(),
            "applied_at": record.map(|r| r.applied_at.clone()),
            "app_version": record.map(|r| r.app_version.clone()),
            "duration_ms": record.map(|r| r.duration_ms),
            "kind": record.map(|r| r.kind.as_str()),
            "note": record.and_then(|r| r.note.clone()),
            "in_this_build": true,
        }));
    }
    let mut unknown: Vec<&&HistoryRecord> = applied
        .values()
        .filter(|r| !known.contains(&r.revision))
        .collect();
    unknown.sort_by(|a, b| a.revision.cmp(&b.revision));
    for record in unknown {
        entries.push(json!({
            "revision": record.revision,
            "file": format!("{}_{}.sql", record.revision, record.summary),
            "applied": true,
            "applied_at": record.applied_at,
            "app_version": record.app_version,
            "duration_ms": record.duration_ms,
            "kind": record.kind.as_str(),
            "note": record.note,
            "in_this_build": false,
        }));
    }
    if out.json() {
        out.print_json(&serde_json::Value::Array(entries));
        return Ok(());
    }
    let mut rows = vec![vec![
        "REVISION".into(),
        "STATUS".into(),
        "APPLIED AT (UTC)".into(),
        "KIND".into(),
        "FILE".into(),
    ]];
    for entry in &entries {
        let text = |key: &str| entry[key].as_str().unwrap_or("").to_owned();
        let status = match (entry["applied"].as_bool(), entry["in_this_build"].as_bool()) {
            (Some(true), Some(false)) => out.paint(Tone::Bad, "applied, not in this build"),
            (Some(true), _) => out.paint(Tone::Good, "applied"),
            _ => out.paint(Tone::Warn, "pending"),
        };
        rows.push(vec![
            text("revision"),
            status,
            text("applied_at"),
            text("kind"),
            text("file"),
        ]);
    }
    out.print(&output::table(&rows));
    Ok(())
}

/// The applied migrations by revision, replaying the history (a downgrade removes one).
fn applied_now(records: &[HistoryRecord]) -> HashMap<&str, &HistoryRecord> {
    let mut applied = HashMap::new();
    for record in records.iter().filter(|r| r.finished) {
        match record.direction {
            Direction::Up => {
                applied.insert(record.revision.as_str(), record);
            }
            Direction::Down => {
                applied.remove(record.revision.as_str());
            }
        }
    }
    applied
}

fn heads(context: &Context, out: &Output) -> Result<(), CliError> {
    let head = context.migrations().head();
    if out.json() {
        out.print_json(&json!({ "heads": head.map(|m| m.revision().to_string()).into_iter().collect::<Vec<_>>() }));
    } else {
        match head {
            Some(m) => out.print(&format!("{} (head) {}", m.revision(), m.file_name())),
            None => out.print("no migrations"),
        }
    }
    Ok(())
}

/// Reached only if `run` in the parent module did not take `db lint` first.
fn lint(context: &Context, out: &Output) -> Result<(), CliError> {
    super::lint::run(Some(context.migrations_dir()), out)
}

fn new(summary: &str, context: &Context, out: &Output) -> Result<(), CliError> {
    let path = match calista::new_migration_file(&context.migrations_dir(), summary) {
        Ok(path) => path,
        Err(error) if error.is_usage() => return Err(CliError::Usage(error.to_string())),
        Err(error) => {
            return Err(CliError::Failure {
                message: "the new migration file was not written".to_owned(),
                source: Some(Box::new(error)),
            });
        }
    };
    out.print(&path.display().to_string());
    out.notice("Write the SQL under `-- calista:up` and its reverse under `-- calista:down`; until then the build fails.");
    Ok(())
}

fn backups(context: &Context, out: &Output) -> Result<(), CliError> {
    let dir = backup_dir(context);
    let found = backup::list(&dir)
        .map_err(|e| CliError::failure(format!("cannot read {}", dir.display()), e))?;
    if out.json() {
        let entries: Vec<_> = found
            .iter()
            .map(|b| {
                json!({
                    "path": b.path.display().to_string(),
                    "database": b.database,
                    "database_id": b.database_id,
                    "revision": b.revision.map(|r| r.to_string()),
                    "taken_at": b.taken_at,
                    "size": b.size,
                })
            })
            .collect();
        out.print_json(&serde_json::Value::Array(entries));
        return Ok(());
    }
    if found.is_empty() {
        out.print(&format!("no backups in {}", dir.display()));
        return Ok(());
    }
    let mut rows = vec![vec![
        "TAKEN (UTC)".into(),
        "DATABASE".into(),
        "REVISION".into(),
        "SIZE".into(),
        "PATH".into(),
    ]];
    for b in &found {
        let revision = b.revision.map_or_else(|| "-".to_owned(), |r| r.to_string());
        let database = match &b.database_id {
            Some(id) => format!("{} ({id})", b.database),
            None => b.database.clone(),
        };
        rows.push(vec![
            b.taken_at.clone(),
            database,
            revision,
            output::size(b.size),
            b.path.display().to_string(),
        ]);
    }
    out.print(&output::table(&rows));
    Ok(())
}

/// Where backups of the configured database go.
fn backup_dir(context: &Context) -> PathBuf {
    let options = context.backup_options();
    match (&options.dir, context.url()) {
        (Some(dir), _) => dir.clone(),
        (None, calista::url::DatabaseUrl::Sqlite(calista::url::SqliteTarget::File(file))) => file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&options.dir_name),
        (None, _) => PathBuf::from(&options.dir_name),
    }
}

/// What an upgrade or downgrade did, for people: the backup, each migration and the total.
pub(crate) fn render_report(report: &Report, out: &Output) -> String {
    let mut lines = Vec::new();
    if let Some(outcome) = &report.backup {
        match outcome {
            BackupOutcome::Taken(b) => {
                lines.push(format!(
                    "backup: {} ({})",
                    b.path.display(),
                    output::size(b.size)
                ));
                lines.push(format!("  restore with: {}", b.restore_command));
                lines.push("  (stop the application first)".to_owned());
            }
            BackupOutcome::Skipped(reason) => lines.push(format!("backup skipped: {reason}")),
        }
    }
    let verb = match report.direction {
        Direction::Up => "applied",
        Direction::Down => "reverted",
    };
    for step in &report.steps {
        let alone = if step.no_transaction {
            " (no-transaction)"
        } else {
            ""
        };
        let attempts = if step.attempts > 1 {
            format!(" ({} attempts: its table locks were busy)", step.attempts)
        } else {
            String::new()
        };
        lines.push(format!(
            "{} {}{alone}  {}{attempts}",
            out.paint(Tone::Good, verb),
            step.file,
            output::duration(step.duration)
        ));
    }
    for revision in &report.recorded_down_sql {
        lines.push(format!(
            "note: {revision} was reverted with the down SQL recorded when it was applied: its file changed since"
        ));
    }
    if report.steps.is_empty() {
        lines.push(format!(
            "nothing to do: the database is at {}",
            show(report.to)
        ));
    } else {
        lines.push(format!(
            "{} {} -> {}: {} migration{} in {}",
            out.paint(
                Tone::Strong,
                if report.direction == Direction::Up {
                    "upgraded"
                } else {
                    "downgraded"
                }
            ),
            show(report.from),
            show(report.to),
            report.steps.len(),
            if report.steps.len() == 1 { "" } else { "s" },
            output::duration(report.total)
        ));
    }
    for notice in &report.notices {
        // The backup's line above says why it was skipped.
        if !matches!(notice, calista::Notice::BackupSkipped { .. }) {
            lines.push(format!("notice: {notice}"));
        }
    }
    for pruned in &report.pruned {
        lines.push(out.paint(
            Tone::Dim,
            &format!("deleted old backup {}", pruned.display()),
        ));
    }
    lines.join("\n")
}

/// A revision for people; `base` for none.
pub(crate) fn show(revision: Option<Revision>) -> String {
    revision.map_or_else(|| "base".to_owned(), |r| r.to_string())
}

/// `--to REV`, or the head.
pub(crate) fn upgrade_target(to: Option<&str>) -> Result<UpgradeTarget, CliError> {
    Ok(match to {
        Some(text) => UpgradeTarget::Revision(parse_revision(text)?),
        None => UpgradeTarget::Head,
    })
}

pub(crate) fn parse_revision(text: &str) -> Result<Revision, CliError> {
    Revision::parse(text).map_err(|e| {
        CliError::Usage(format!(
            "`{text}` is not a revision id (YYYYMMDD_HHMM): {e}"
        ))
    })
}
