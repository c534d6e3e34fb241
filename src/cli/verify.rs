//! `calista db verify`: the stairway and the comparison of dialects, on scratch databases.

use calista::url::DatabaseUrl;
use calista::verify::{VerifyOptions, VerifyReport, verify};

use super::context::Context;
use super::exit::CliError;
use super::output::{Output, Tone};

/// Runs the checks; an error (exit 1) when anything was found.
pub(crate) async fn run(
    pg_url: Option<String>,
    context: &Context,
    out: &Output,
) -> Result<(), CliError> {
    let Some(pg_url) = pg_url else {
        return Err(CliError::Usage(
            "db verify needs a PostgreSQL server to create its scratch database on: pass \
             --pg-url postgresql://user@host/postgres (or set CALISTA_VERIFY_PG_URL); the role \
             needs CREATEDB. Nothing is written to the configured database"
                .to_owned(),
        ));
    };
    let server = match DatabaseUrl::parse(&pg_url, std::path::Path::new(".")) {
        Ok(DatabaseUrl::Postgres(server)) => server,
        Ok(DatabaseUrl::Sqlite(_)) => {
            return Err(CliError::Usage(
                "--pg-url must be a PostgreSQL URL (postgresql://user@host/postgres); the SQLite \
                 scratch file is made in the temporary folder"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(CliError::Usage(format!("--pg-url: {e}"))),
    };
    let options = VerifyOptions {
        postgres: Some(server),
        schema: Some(context.database_options().schema),
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
            "{} {} revision{} on {dialects}: every down restores the schema its up found{}",
            out.paint(Tone::Good, "verified:"),
            report.revisions,
            if report.revisions == 1 { "" } else { "s" },
            if report.dialects_compared {
                ", and both dialects build the same logical schema"
            } else {
                ""
            }
        ));
    }
    lines.join("\n")
}
