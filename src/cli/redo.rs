//! `calista db redo`: revert the newest migration with the down SQL it was applied with,
//! and apply its file as it is now (development and CI).

use calista::Migrator;

use super::exit::CliError;
use super::output::{self, Output, Tone};

pub(crate) async fn run(migrator: &Migrator<'_>, out: &Output) -> Result<(), CliError> {
    let report = migrator.redo().await?;
    let Some(step) = report.steps.first() else {
        return Ok(());
    };
    let recorded = report.recorded_down_sql.contains(&step.revision);
    if out.json() {
        out.print_json(&serde_json::json!({
            "revision": step.revision.to_string(),
            "file": step.file,
            "reverted_with_recorded_down_sql": recorded,
            "duration_ms": u64::try_from(report.total.as_millis()).unwrap_or(u64::MAX),
        }));
        return Ok(());
    }
    let how = if recorded {
        "reverted with the down SQL recorded when it was applied (the file changed since)"
    } else {
        "reverted with its down SQL"
    };
    out.print(&format!(
        "{} {}: {how}, then applied as it is now  {}",
        out.paint(Tone::Good, "redone"),
        step.file,
        output::duration(report.total)
    ));
    Ok(())
}
