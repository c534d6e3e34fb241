//! `calista db lint`: the build's checks and lint ([`calista::lint`]) on a folder, without
//! building and without a database.

use std::path::PathBuf;

use calista::{Migrations, Problem, ProblemKind};
use serde_json::json;

use super::exit::CliError;
use super::output::Output;

/// Reads `dir` (default `./migrations`) with the parser `migrations!()` uses and reports
/// every problem; an error (exit 2, like any folder that breaks the rules) unless clean.
pub(crate) fn run(dir: Option<PathBuf>, out: &Output) -> Result<(), CliError> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("migrations"));
    let problems = match Migrations::from_dir(&dir) {
        Ok(_) => Vec::new(),
        Err(error) => error.problems,
    };
    if out.json() {
        let rows: Vec<_> = problems.iter().map(row).collect();
        out.print_json(&json!({ "clean": problems.is_empty(), "problems": rows }));
    } else if problems.is_empty() {
        out.print(&format!("{}: clean", dir.display()));
    } else {
        let shown: Vec<String> = problems.iter().map(Problem::to_string).collect();
        out.print(&shown.join("\n"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let findings = problems
        .iter()
        .filter(|p| matches!(p.kind, ProblemKind::Lint { .. }))
        .count();
    Err(CliError::Usage(format!(
        "{} problem(s) in {}, {findings} of them lint findings: fix them, or acknowledge a finding with \
         `-- calista:allow <rule> -- <reason>` (see {})",
        problems.len(),
        dir.display(),
        calista::lint::DOCS_URL
    )))
}

fn row(problem: &Problem) -> serde_json::Value {
    let rule = match &problem.kind {
        ProblemKind::Lint { rule, .. } => Some(rule.name()),
        _ => None,
    };
    json!({
        "file": problem.file,
        "line": problem.line,
        "rule": rule,
        "message": problem.kind.to_string(),
        "fix": problem.kind.fix(),
    })
}
