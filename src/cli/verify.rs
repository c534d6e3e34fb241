//! `calista db verify`: the stairway and the comparison of dialects, on scratch databases.

use std::path::Path;

use calista::Revision;
use calista::url::{DatabaseUrl, PostgresUrl};
use calista::verify::{Seed, VerifyOptions, VerifyReport, verify};

use super::context::Context;
use super::exit::CliError;
use super::output::{Output, Tone};

/// The PostgreSQL server `command` makes its scratch database on: `--pg-url`, else the
/// application's own variable (`MYAPP_VERIFY_PG_URL` for `myapp`).
pub(crate) fn scratch_server(
    pg_url: Option<String>,
    command: &str,
    context: &Context,
) -> Result<PostgresUrl, CliError> {
    let variable = context.names().env("VERIFY_PG_URL");
    let from_env = || {
        std::env::var(&variable)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let Some(pg_url) = pg_url.or_else(from_env) else {
        return Err(CliError::Usage(format!(
            "{command} needs a PostgreSQL server to create its scratch database on: pass \
             --pg-url postgresql://user@host/postgres (or set {variable}); the role \
             needs CREATEDB. Nothing is written to the configured database"
        )));
    };
    match DatabaseUrl::parse(&pg_url, std::path::Path::new(".")) {
        Ok(DatabaseUrl::Postgres(server)) => Ok(server),
        Ok(DatabaseUrl::Sqlite(_)) => Err(CliError::Usage(
            "--pg-url must be a PostgreSQL URL (postgresql://user@host/postgres); the SQLite \
             scratch file is made in the temporary folder"
                .to_owned(),
        )),
        Err(e) => Err(CliError::Usage(format!("--pg-url: {e}"))),
    }
}

/// Runs the checks; an error (exit 1) when anything was found.
pub(crate) async fn run(
    pg_url: Option<String>,
    seed_dir: Option<&Path>,
    context: &Context,
    out: &Output,
) -> Result<(), CliError> {
    let server = scratch_server(pg_url, "db verify", context)?;
    let seeds = match seed_dir {
        Some(dir) => read_seeds(dir, context)?,
        None => Vec::new(),
    };
    let options = VerifyOptions {
        postgres: Some(server),
        schema: context.database_options().schema,
        seeds,
    };
    let report = verify(context.migrations(), &options).await?;
    if out.json() {
        let value = serde_json::to_value(&report)
            .map_err(|e| CliError::failure("cannot write the verification report as JSON", e))?;
        out.print_json(&value);
    } else {
        out.print(&render(&report, out));
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Failure {
            message: format!(
                "db verify found {} problem{}",
                report.findings.len(),
                if report.findings.len() == 1 { "" } else { "s" }
            ),
            source: None,
        })
    }
}

/// The seeds of `--seed DIR`: one `<revision>.sql` file per revision of the set, nothing
/// else; anything else is a usage error that says the form.
fn read_seeds(dir: &Path, context: &Context) -> Result<Vec<Seed>, CliError> {
    const FORM: &str = "name each seed file `<revision>.sql` (e.g. `20250101_0000.sql`), after the \
                        revision whose up it follows, and keep nothing else in the folder";
    let usage = |what: String| CliError::Usage(format!("--seed {}: {what}", dir.display()));
    let entries =
        std::fs::read_dir(dir).map_err(|e| usage(format!("cannot read the folder: {e}")))?;
    let mut seeds = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| usage(format!("cannot read the folder: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let revision = name
            .strip_suffix(".sql")
            .and_then(|stem| Revision::parse(stem).ok())
            .filter(|_| path.is_file());
        let Some(revision) = revision else {
            return Err(usage(format!("`{name}` is not a seed file; {FORM}")));
        };
        if !context
            .migrations()
            .iter()
            .any(|m| m.revision() == revision)
        {
            return Err(usage(format!(
                "`{name}`: no migration has revision {revision}; {FORM}"
            )));
        }
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| usage(format!("cannot read `{name}` as UTF-8 text: {e}")))?;
        seeds.push(Seed {
            after: revision,
            name: path.display().to_string(),
            sql,
        });
    }
    seeds.sort_by_key(|seed| seed.after);
    Ok(seeds)
}

fn render(report: &VerifyReport, out: &Output) -> String {
    let mut lines = Vec::new();
    let dialects = report.dialects.join(" and ");
    for finding in &report.findings {
        lines.push(format!("{} {finding}", out.paint(Tone::Bad, "problem:")));
    }
    for ack in &report.acknowledged {
        lines.push(format!(
            "acknowledged in {}: {} ({})",
            ack.file, ack.object, ack.reason
        ));
    }
    for revision in &report.irreversible {
        lines.push(format!(
            "{revision}: irreversible, its down was not checked"
        ));
    }
    if report.is_clean() {
        lines.push(format!(
            "{} {} revision{} on {dialects}{}: every down restores the schema and the rows its up found{}",
            out.paint(Tone::Good, "verified:"),
            report.revisions,
            if report.revisions == 1 { "" } else { "s" },
            match report.seeds {
                0 => String::new(),
                1 => ", 1 seed".to_owned(),
                n => format!(", {n} seeds"),
            },
            if report.dialects_compared {
                ", and both dialects build the same logical schema"
            } else {
                ""
            }
        ));
    }
    lines.join("\n")
}
