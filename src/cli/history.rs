//! `<program> db repair`, `db adopt`, `db stamp`: history written without running migrations.

use calista::Migrator;
use serde_json::json;

use super::context::Context;
use super::db::parse_revision;
use super::exit::CliError;
use super::output::{Output, Tone};

/// Refuses `what` in production unless confirmed with --yes.
fn confirm_in_production(context: &Context, yes: bool, what: &str) -> Result<(), CliError> {
    let environment = &context.settings().environment;
    if yes || environment.value.allows_downgrade() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{what} changes the migration history of a {} database (environment from {}); \
         confirm with --yes",
        environment.value.name(),
        environment.source
    )))
}

/// `db repair --accept REV --reason TEXT [--yes]`.
pub(crate) async fn repair(
    context: &Context,
    migrator: &Migrator<'_>,
    accept: &str,
    reason: &str,
    yes: bool,
    out: &Output,
) -> Result<(), CliError> {
    let revision = parse_revision(accept)?;
    if reason.trim().is_empty() {
        return Err(CliError::Usage(
            "--reason is empty: say why the edit is safe to accept; it is recorded with it"
                .to_owned(),
        ));
    }
    confirm_in_production(context, yes, "accepting an edit")?;
    let repaired = migrator.repair(revision, reason).await?;
    if out.json() {
        out.print_json(&json!({
            "repaired": repaired.revision.to_string(),
            "file": repaired.file,
            "replaced_checksum": repaired.replaced.to_string(),
            "checksum": repaired.checksum.to_string(),
            "reason": reason,
        }));
    } else {
        out.print(&format!(
            "{} {}: the history now holds its checksum {} (was {}), with the reason given",
            out.paint(Tone::Strong, "repaired"),
            repaired.file,
            short(&repaired.checksum.to_string()),
            short(&repaired.replaced.to_string()),
        ));
    }
    Ok(())
}

/// `db adopt [--yes]`.
pub(crate) async fn adopt(
    context: &Context,
    migrator: &Migrator<'_>,
    yes: bool,
    out: &Output,
) -> Result<(), CliError> {
    confirm_in_production(context, yes, "adopting")?;
    let adopted = migrator.adopt().await?;
    if out.json() {
        let recorded: Vec<_> = adopted
            .recorded
            .iter()
            .map(|(revision, file, version)| {
                json!({ "revision": revision.to_string(), "file": file, "version": version })
            })
            .collect();
        out.print_json(&json!({
            "tool": adopted.tool.name(),
            "recorded": recorded,
            "current": adopted.current.map(|r| r.to_string()),
            "replaced_version": adopted.replaced_version,
        }));
        return Ok(());
    }
    let mut lines: Vec<String> = adopted
        .recorded
        .iter()
        .map(|(_, file, version)| {
            format!(
                "{} {file} ({} {version})",
                out.paint(Tone::Good, "adopted"),
                adopted.tool
            )
        })
        .collect();
    let table = match &adopted.replaced_version {
        None => format!(
            "{}'s table {} was left as it is",
            adopted.tool,
            adopted.tool.history_table()
        ),
        Some(theirs) => format!(
            "{} is calista's version table here: its row moved from {theirs} (kept in the history's note) to calista's revision",
            adopted.tool.history_table()
        ),
    };
    lines.push(format!(
        "{} from {}: {} migration{} recorded as applied, none run; the database is at {}. {table}",
        out.paint(Tone::Strong, "adopted"),
        adopted.tool,
        adopted.recorded.len(),
        if adopted.recorded.len() == 1 { "" } else { "s" },
        super::db::show(adopted.current),
    ));
    out.print(&lines.join("\n"));
    Ok(())
}

/// `db stamp REV [--force] [--yes]`.
pub(crate) async fn stamp(
    context: &Context,
    migrator: &Migrator<'_>,
    revision: &str,
    force: bool,
    yes: bool,
    out: &Output,
) -> Result<(), CliError> {
    let revision = parse_revision(revision)?;
    confirm_in_production(context, yes, "stamping")?;
    let stamped = migrator.stamp(revision, force).await?;
    if out.json() {
        let recorded: Vec<_> = stamped
            .recorded
            .iter()
            .map(|(revision, file)| json!({ "revision": revision.to_string(), "file": file }))
            .collect();
        out.print_json(&json!({
            "stamped": stamped.revision.to_string(),
            "recorded": recorded,
            "forced": stamped.forced,
        }));
        return Ok(());
    }
    if !stamped.forced.is_empty() {
        out.notice(&format!(
            "the schema differs, recorded anyway (--force):\n{}",
            stamped.forced
        ));
    }
    out.print(&format!(
        "{} at {}: {} migration{} recorded as applied, none run",
        out.paint(Tone::Strong, "stamped"),
        stamped.revision,
        stamped.recorded.len(),
        if stamped.recorded.len() == 1 { "" } else { "s" },
    ));
    Ok(())
}

/// `db squash --through REV --release VERSION [--pg-url URL]`.
pub(crate) async fn squash(
    through: &str,
    release: &str,
    pg_url: Option<String>,
    context: &Context,
    out: &Output,
) -> Result<(), CliError> {
    let through = parse_revision(through)?;
    let server = super::verify::scratch_server(pg_url, "db squash", context)?;
    // The files themselves, never a set built into the program: they are what is replaced.
    let dir = context.migrations_dir();
    let migrations = &calista::Migrations::from_dir(&dir).map_err(calista::Error::from)?;
    let plan = calista::squash::plan(migrations, through, release)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let checks = calista::squash::check(migrations, &plan, Some(&server)).await?;
    if let Some(differs) = checks.iter().find(|c| !c.matches()) {
        return Err(CliError::Failure {
            message: format!(
                "the baseline would not build the schema the migrations build on {} (nothing was written):\n\
                 full replay:\n{}\nbaseline:\n{}",
                differs.dialect, differs.replayed, differs.baseline
            ),
            source: None,
        });
    }
    calista::squash::write(&plan, &dir).map_err(|e| {
        CliError::failure(
            format!("cannot write the baseline into {}", dir.display()),
            e,
        )
    })?;
    let path = dir.join(&plan.file);
    if out.json() {
        out.print_json(&json!({
            "baseline": path.display().to_string(),
            "replaced": plan.replaced,
            "checked": checks.iter().map(|c| c.dialect.to_string()).collect::<Vec<_>>(),
        }));
    } else {
        out.print(&format!(
            "{} {} replaces {} files (its schema equals the full replay's on {}); databases before {} \
             upgrade with release {} first",
            out.paint(Tone::Strong, "wrote"),
            path.display(),
            plan.replaced.len(),
            checks
                .iter()
                .map(|c| c.dialect.to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            through,
            release.trim(),
        ));
    }
    Ok(())
}

/// The first 12 hex digits of a checksum, as people compare them.
fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}
