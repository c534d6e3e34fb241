//! `calista db import`: another tool's migrations as calista files (never connects).

use std::path::{Path, PathBuf};

use calista::Revision;
use calista::import::{self, ImportError, ImportPlan, ImportRequest, SourceDialect, Tool};
use serde_json::json;

use super::args::{ImportArgs, ImportDialect, ImportTool};
use super::exit::CliError;
use super::output::{Output, Tone};

/// Plans the import, writes it into `--into` (else `migrations`, else `./migrations`),
/// and lists each source file with the file written from it.
pub(crate) fn run(
    args: &ImportArgs,
    migrations: Option<PathBuf>,
    out: &Output,
) -> Result<(), CliError> {
    let into = args
        .into
        .clone()
        .or(migrations)
        .unwrap_or_else(|| PathBuf::from("migrations"));
    let tool = match args.tool {
        ImportTool::Sqlx => Tool::Sqlx,
        ImportTool::Diesel => Tool::Diesel,
        ImportTool::Refinery => Tool::Refinery,
        ImportTool::Alembic => Tool::Alembic,
    };
    let dialect = match args.dialect {
        ImportDialect::Postgres => SourceDialect::Postgres,
        ImportDialect::Sqlite => SourceDialect::Sqlite,
        ImportDialect::Both => SourceDialect::Both,
    };
    if args.alembic_downgrade.is_some() && tool != Tool::Alembic {
        return Err(CliError::Usage(format!(
            "--alembic-downgrade is for --from alembic; {tool} keeps its down SQL beside the up SQL"
        )));
    }
    let mut request = ImportRequest::new(tool, &args.source, dialect);
    if let Some(start) = &args.start {
        let start = Revision::parse(start).map_err(|e| {
            CliError::Usage(format!(
                "--start {start}: {e}; give a revision id as YYYYMMDD_HHMM, e.g. 20200101_0000"
            ))
        })?;
        request = request.start(start);
    }
    if let Some(down) = &args.alembic_downgrade {
        request = request.alembic_downgrade(down);
    }
    let plan = import::plan(&request).map_err(cli_error)?;
    let written = import::write(&plan, &into).map_err(cli_error)?;
    show(&plan, &written, &into, dialect, out);
    Ok(())
}

fn show(plan: &ImportPlan, written: &[PathBuf], into: &Path, dialect: SourceDialect, out: &Output) {
    if out.json() {
        let files: Vec<_> = plan
            .files
            .iter()
            .zip(written)
            .map(|(file, path)| {
                json!({
                    "sources": file.sources,
                    "file": path.display().to_string(),
                    "revision": file.revision.to_string(),
                    "notes": file.notes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        let skipped: Vec<_> = plan
            .skipped
            .iter()
            .map(|s| json!({ "file": s.file, "reason": s.reason }))
            .collect();
        out.print_json(&json!({
            "tool": plan.tool.name(),
            "into": into.display().to_string(),
            "files": files,
            "skipped": skipped,
        }));
        return;
    }
    let mut lines = Vec::new();
    for (file, path) in plan.files.iter().zip(written) {
        lines.push(format!(
            "{} -> {}",
            file.sources.join(", "),
            out.paint(Tone::Strong, &path.display().to_string())
        ));
        for note in &file.notes {
            lines.push(format!("    note: {note}"));
        }
    }
    for skipped in &plan.skipped {
        lines.push(format!(
            "{} {}: {}",
            out.paint(Tone::Dim, "skipped"),
            skipped.file,
            skipped.reason
        ));
    }
    lines.push(format!(
        "imported {} {} migration(s) into {}",
        plan.files.len(),
        plan.tool,
        into.display()
    ));
    out.print(&lines.join("\n"));
    out.notice(
        "Each file carries `-- calista:imported`, which records where it came from; the lint \
         leaves those files alone, since they already ran.",
    );
    if let Some(only) = dialect.dialect() {
        let other = match only {
            calista::Dialect::Postgres => calista::Dialect::Sqlite,
            calista::Dialect::Sqlite => calista::Dialect::Postgres,
        };
        out.notice(&format!(
            "The {other} sections fail on purpose: the migrations ran on {only} only. Write their \
             {other} SQL there before running them on {other}."
        ));
    }
}

fn cli_error(error: ImportError) -> CliError {
    match error {
        ImportError::Write { .. } => CliError::failure("the import failed", error),
        ImportError::Unreadable { ref source, .. } => {
            CliError::Usage(format!("{error} ({source})"))
        }
        // Everything else is about the input: fix it and run the command again.
        _ => CliError::Usage(error.to_string()),
    }
}
