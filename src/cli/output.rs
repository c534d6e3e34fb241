//! The one place that writes what a user sees: human text or JSON on stdout, notices and
//! errors on stderr; colour only on a terminal and never with NO_COLOR; no secret ever.

use std::io::{IsTerminal, Write};

use super::args::Format;

/// Where and how to write.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    format: Format,
    colour_out: bool,
    colour_err: bool,
    quiet: bool,
    /// Strings that must never be printed (the database password).
    secrets: Vec<String>,
}

/// A style for a word.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub(crate) enum Tone {
    /// Success.
    Good,
    /// Needs attention.
    Warn,
    /// Failure.
    Bad,
    /// Secondary.
    Dim,
    /// Emphasis.
    Strong,
}

impl Tone {
    fn code(self) -> &'static str {
        match self {
            Self::Good => "32",
            Self::Warn => "33",
            Self::Bad => "31",
            Self::Dim => "2",
            Self::Strong => "1",
        }
    }
}

impl Output {
    /// Writes in `format`; `quiet` drops notices.
    pub(crate) fn new(format: Format, quiet: bool) -> Self {
        let allowed = colour_allowed();
        Self {
            format,
            colour_out: allowed && std::io::stdout().is_terminal(),
            colour_err: allowed && std::io::stderr().is_terminal(),
            quiet,
            secrets: Vec::new(),
        }
    }

    /// Never print this string (a password), whatever carries it.
    pub(crate) fn add_secret(&mut self, secret: String) {
        if !secret.is_empty() {
            self.secrets.push(secret);
        }
    }

    /// Whether notices are dropped (`--quiet`).
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Whether results are JSON.
    pub(crate) fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A word in a tone, for stdout.
    pub(crate) fn paint(&self, tone: Tone, text: &str) -> String {
        paint(self.colour_out, tone, text)
    }

    /// A result on stdout.
    pub(crate) fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`calista db history | head`) is not an error worth reporting.
        let _ = writeln!(out, "{}", self.scrub(text));
    }

    /// A JSON document on stdout.
    pub(crate) fn print_json(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
        self.print(&text);
    }

    /// A notice on stderr (not with --quiet).
    pub(crate) fn notice(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{}", self.scrub(text));
        }
    }

    /// An error and its causes on stderr: each error says what happened and what to do,
    /// and leaves its cause to `source()`, so each is printed once, on its own line.
    pub(crate) fn error(&self, error: &dyn std::error::Error) {
        let mut text = format!("{} {error}", paint(self.colour_err, Tone::Bad, "error:"));
        let mut cause = error.source();
        while let Some(source) = cause {
            text.push_str(&format!("\n  caused by: {source}"));
            cause = source.source();
        }
        let _ = writeln!(std::io::stderr().lock(), "{}", self.scrub(&text));
    }

    /// An error and its causes on one line, joined by ": ", secrets redacted: for a JSON
    /// value.
    pub(crate) fn error_line(&self, error: &dyn std::error::Error) -> String {
        let chain: Vec<String> = std::iter::successors(Some(error), |e| e.source())
            .map(ToString::to_string)
            .collect();
        self.scrub(&chain.join(": "))
    }

    /// Prints the error and returns its exit code.
    pub(crate) fn fail(&self, error: &super::CliError) -> std::process::ExitCode {
        self.error(error);
        super::exit::exit(error.exit_code())
    }

    /// Redacts URL passwords and every known secret.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = calista::url::redact(text);
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

/// Whether colour is allowed at all: `NO_COLOR` is unset or empty.
pub(crate) fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn paint(on: bool, tone: Tone, text: &str) -> String {
    if on {
        format!("\x1b[{}m{text}\x1b[0m", tone.code())
    } else {
        text.to_owned()
    }
}

/// Rows as aligned columns.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i + 1 == row.len() {
                        cell.clone()
                    } else {
                        format!("{cell:<w$}", w = widths[i])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A duration for people: `12 ms`, `3.4 s`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A size for people.
pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}
