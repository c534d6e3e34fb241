//! `--targets FILE`: `db upgrade`, `db check` and `db status` on many databases, with a
//! progress bar on a terminal, a line per target otherwise, and a summary at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use calista::fleet::{self, Action, FleetOptions, FleetReport, Outcome, Progress, TargetReport};
use calista::settings::Source;
use calista::url::DatabaseUrl;
use serde_json::json;

use super::args::{DbCommand, FleetArgs};
use super::context::Context;
use super::exit::{self, CliError};
use super::output::{self, Output, Tone};

/// Which command runs on the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Upgrade,
    Check,
    Status,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Self::Upgrade => "upgrade",
            Self::Check => "check",
            Self::Status => "status",
        }
    }
}

pub(crate) async fn run(
    command: &DbCommand,
    context: &Context,
    out: &Output,
) -> Result<(), CliError> {
    let (command, args, action) = match command {
        DbCommand::Upgrade { to, fleet, .. } => (
            Command::Upgrade,
            fleet,
            Action::Upgrade(super::db::upgrade_target(to.as_deref())?),
        ),
        DbCommand::Check { fleet } => (Command::Check, fleet, Action::Check),
        DbCommand::Status { fleet } => (Command::Status, fleet, Action::Check),
        _ => {
            return Err(CliError::Usage(
                "--targets is taken by db upgrade, db check and db status only".into(),
            ));
        }
    };
    let Some(file) = &args.targets else {
        return Err(CliError::Usage("--targets FILE is missing".into()));
    };
    if let Source::Flag(flag) = &context.settings().db_url.source {
        return Err(CliError::Usage(format!(
            "{flag} and --targets both say which databases to use: give one (the targets file \
             holds a URL a line)"
        )));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failure("cannot read the current directory", e))?;
    let all = fleet::Targets::read_as(file, &cwd, context.names().url_convention)?;
    let targets = match args.shard {
        Some(shard) => all.shard(shard),
        None => all.clone(),
    };
    let jobs = args.jobs.map_or(fleet::DEFAULT_JOBS, usize::from);
    let options = FleetOptions::new(context.policy(), context.database_options()).jobs(jobs);
    let out = &protect(out, &targets);
    out.notice(&format!(
        "{} {}, {jobs} at once",
        command.name(),
        scope(args, targets.len(), all.len())
    ));
    let mut display = Display::new(out, targets.len());
    let report = fleet::run(context.migrations(), &targets, action, &options, |event| {
        display.show(event, command, out);
    })
    .await;
    display.finish();

    let codes: Vec<u8> = report
        .targets
        .iter()
        .map(|t| target_code(command, t))
        .collect();
    let code = exit::fleet_code(codes.iter().copied());
    if out.json() {
        out.print_json(&document(
            command, args, context, &report, &codes, code, out,
        ));
    } else {
        if command == Command::Status {
            out.print(&status_table(context, &report, out));
        }
        out.print(&summary(command, &report, jobs, out));
        for (target, _) in report.targets.iter().zip(&codes).filter(|(_, c)| **c != 0) {
            out.print(&problem(target, out));
        }
    }
    if code == exit::SUCCESS {
        return Ok(());
    }
    let failing = codes.iter().filter(|c| **c != exit::SUCCESS).count();
    let next = if report.count(Outcome::Behind) > 0 {
        format!(
            "; `{} db upgrade --targets {}` applies what is pending",
            context.names().program,
            file.display()
        )
    } else {
        String::new()
    };
    Err(CliError::Fleet {
        summary: format!(
            "{failing} of {} targets {} ({}); each is listed above{next}",
            report.targets.len(),
            match command {
                Command::Check => "are not up to date",
                Command::Upgrade | Command::Status => "did not succeed",
            },
            counts(&report, |outcome| !matches!(
                outcome,
                Outcome::Upgraded | Outcome::UpToDate
            ))
        ),
        code,
    })
}

/// The output, also kept from printing any target's password (every URL is shown redacted
/// already; this also covers a password quoted in some other text).
fn protect(out: &Output, targets: &fleet::Targets) -> Output {
    let mut out = out.clone();
    let mut passwords: Vec<String> = targets
        .iter()
        .filter_map(|target| match target.url() {
            DatabaseUrl::Postgres(pg) => pg.password(),
            DatabaseUrl::Sqlite(_) => None,
        })
        .collect();
    passwords.sort();
    passwords.dedup();
    for password in passwords {
        out.add_secret(password);
    }
    out
}

/// "12 targets", or "3 of the 12 targets (shard 1/4)".
fn scope(args: &FleetArgs, selected: usize, all: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match args.shard {
        Some(shard) => format!(
            "{selected} of the {all} target{} (shard {shard})",
            plural(all)
        ),
        None => format!("{selected} target{}", plural(selected)),
    }
}

/// A target's own exit code: what the same command on that database alone would exit with.
fn target_code(command: Command, report: &TargetReport) -> u8 {
    match &report.error {
        None => exit::SUCCESS,
        // `db status` shows whatever state it reads; only a database it cannot read fails.
        Some(_) if command == Command::Status && report.state.is_some() => exit::SUCCESS,
        Some(error) => error.exit_code(),
    }
}

/// How progress is shown: a bar on a terminal, a line per target otherwise, nothing with
/// --quiet.
enum Display {
    Bar {
        bar: indicatif::ProgressBar,
        tally: BTreeMap<Outcome, usize>,
    },
    Lines {
        width: usize,
    },
    Silent,
}

impl Display {
    fn new(out: &Output, total: usize) -> Self {
        if out.is_quiet() {
            return Self::Silent;
        }
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                width: total.to_string().len(),
            };
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed:>4} [{wide_bar}] {pos}/{len} · ETA {eta} · {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar {
            bar,
            tally: BTreeMap::new(),
        }
    }

    fn show(&mut self, event: Progress<'_>, command: Command, out: &Output) {
        let Progress::Finished {
            report,
            done,
            total,
        } = event
        else {
            return;
        };
        match self {
            Self::Bar { bar, tally } => {
                if target_code(command, report) != exit::SUCCESS {
                    bar.println(out.scrub(&line(report, command, out)));
                }
                *tally.entry(report.outcome).or_default() += 1;
                let message: Vec<String> = tally
                    .iter()
                    .map(|(outcome, n)| format!("{n} {}", outcome.name()))
                    .collect();
                bar.inc(1);
                bar.set_message(message.join(", "));
            }
            Self::Lines { width } => out.notice(&format!(
                "[{done:>width$}/{total}] {}",
                line(report, command, out)
            )),
            Self::Silent => {}
        }
    }

    fn finish(self) {
        if let Self::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// One target on one line: outcome, target, and what happened.
fn line(report: &TargetReport, command: Command, out: &Output) -> String {
    let what = match (&report.error, report.outcome) {
        // What the guard's refusal says at length, the summary says once.
        (Some(_), Outcome::Behind) => state_detail(report),
        (Some(_), _) if command == Command::Status && report.state.is_some() => {
            state_detail(report)
        }
        (Some(error), _) => out.error_line(error),
        (None, Outcome::Upgraded) => {
            let steps = report.applied().len();
            format!(
                "{} -> {}: {steps} migration{} in {}",
                super::db::show(report.from()),
                super::db::show(report.to()),
                if steps == 1 { "" } else { "s" },
                output::duration(report.duration)
            )
        }
        (None, _) => state_detail(report),
    };
    let outcome = match (&report.state, command) {
        (Some(state), Command::Status) => state.name(),
        _ => report.outcome.name(),
    };
    format!("{outcome:<12} {}  {what}", report.target)
}

/// Where a target is, as the check read it.
fn state_detail(report: &TargetReport) -> String {
    match &report.state {
        Some(calista::SchemaState::Behind {
            current, pending, ..
        }) => format!("at {}, {pending} pending", super::db::show(*current)),
        Some(state) => match report.to() {
            Some(at) => format!("at {at}"),
            None => state.name().to_owned(),
        },
        None => String::new(),
    }
}

/// The counts of the outcomes that `pick` selects: "990 upgraded, 2 failed".
fn counts(report: &FleetReport, pick: impl Fn(Outcome) -> bool) -> String {
    let parts: Vec<String> = Outcome::ALL
        .into_iter()
        .filter(|outcome| pick(*outcome))
        .map(|outcome| (outcome, report.count(outcome)))
        .filter(|(_, n)| *n > 0)
        .map(|(outcome, n)| format!("{n} {}", outcome.name()))
        .collect();
    parts.join(", ")
}

fn summary(command: Command, report: &FleetReport, jobs: usize, out: &Output) -> String {
    let n = report.targets.len();
    let counted = counts(report, |_| true);
    format!(
        "{} {n} target{} in {}, {jobs} at once{}{counted}",
        out.paint(Tone::Strong, command.name()),
        if n == 1 { "" } else { "s" },
        output::duration(report.total),
        if counted.is_empty() { "" } else { ": " }
    )
}

/// A target that did not succeed, with its error.
fn problem(report: &TargetReport, out: &Output) -> String {
    let at = report
        .target
        .line()
        .map_or_else(String::new, |n| format!(" (line {n})"));
    let error = match (&report.error, report.outcome) {
        (Some(_), Outcome::Behind) => state_detail(report),
        (Some(error), _) => out.error_line(error),
        (None, _) => String::new(),
    };
    format!(
        "{} {}{at}: {error}",
        out.paint(Tone::Bad, &format!("{}:", report.outcome.name())),
        report.target
    )
}

fn status_table(context: &Context, report: &FleetReport, out: &Output) -> String {
    let schema = &context.database_options().schema;
    let mut rows = vec![vec![
        "TARGET".to_owned(),
        "SCHEMA".to_owned(),
        "STATE".to_owned(),
        "CURRENT".to_owned(),
        "PENDING".to_owned(),
    ]];
    for target in &report.targets {
        let (state, tone) = match &target.state {
            Some(state) if state.is_up_to_date() => (state.name(), Tone::Good),
            Some(state) => (state.name(), Tone::Warn),
            None => ("unreadable", Tone::Bad),
        };
        let pending = match &target.state {
            Some(calista::SchemaState::Behind { pending, .. }) => pending.to_string(),
            Some(calista::SchemaState::UpToDate { .. }) => "0".to_owned(),
            _ => "-".to_owned(),
        };
        rows.push(vec![
            target.target.url().to_string(),
            target
                .target
                .schema_or(schema.as_ref())
                .unwrap_or("-")
                .to_owned(),
            out.paint(tone, state),
            target
                .to()
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            pending,
        ]);
    }
    let head = context
        .migrations()
        .head()
        .map_or_else(|| "none".to_owned(), |m| m.revision().to_string());
    format!("{}\nhead: {head}", output::table(&rows))
}

/// `--format json`: the run, then one record per target.
fn document(
    command: Command,
    args: &FleetArgs,
    context: &Context,
    report: &FleetReport,
    codes: &[u8],
    code: u8,
    out: &Output,
) -> serde_json::Value {
    let schema = &context.database_options().schema;
    let mut summary = serde_json::Map::new();
    summary.insert("targets".into(), json!(report.targets.len()));
    for outcome in Outcome::ALL {
        summary.insert(
            outcome.name().replace(' ', "_"),
            json!(report.count(outcome)),
        );
    }
    let records: Vec<serde_json::Value> = report
        .targets
        .iter()
        .zip(codes)
        .map(|(target, code)| {
            let applied: Vec<serde_json::Value> = target
                .applied()
                .iter()
                .map(|step| {
                    json!({
                        "revision": step.revision.to_string(),
                        "file": step.file,
                        "duration_ms": step.duration.as_millis(),
                    })
                })
                .collect();
            let backup = target.report.as_ref().and_then(|r| match &r.backup {
                Some(calista::backup::BackupOutcome::Taken(b)) => {
                    Some(b.path.display().to_string())
                }
                _ => None,
            });
            // As the check found it, before any upgrade.
            let pending = match &target.state {
                Some(calista::SchemaState::Behind { pending, .. }) => Some(*pending),
                Some(calista::SchemaState::UpToDate { .. }) => Some(0),
                _ => None,
            };
            json!({
                "target": target.target.url().to_string(),
                "schema": target.target.schema_or(schema.as_ref()),
                "line": target.target.line(),
                "outcome": target.outcome.name(),
                "state": target.state.as_ref().map(|s| s.name()),
                "from": target.from().map(|r| r.to_string()),
                "to": target.to().map(|r| r.to_string()),
                "pending": pending,
                "applied": applied,
                "backup": backup,
                "duration_ms": target.duration.as_millis(),
                "error": target.error.as_ref().map(|e| out.error_line(e)),
                "exit_code": code,
            })
        })
        .collect();
    json!({
        "command": command.name(),
        "targets_file": args.targets.as_ref().map(|p| p.display().to_string()),
        "shard": args.shard.map(|s| s.to_string()),
        "jobs": args.jobs.map_or(fleet::DEFAULT_JOBS, usize::from),
        "head": context.migrations().head().map(|m| m.revision().to_string()),
        "duration_ms": report.total.as_millis(),
        "exit_code": code,
        "summary": summary,
        "targets": records,
    })
}
