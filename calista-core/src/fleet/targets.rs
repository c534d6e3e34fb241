//! The targets of a fleet: a list of databases (and PostgreSQL schemas) read from text,
//! checked whole before anything runs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::database::{SchemaName, is_reserved_schema_name};
use crate::url::{self, DatabaseUrl, SqliteTarget, UrlConvention};

/// One database of a fleet: a URL and, on PostgreSQL, the schema that holds calista's
/// tables and the migrations' objects there (schema-per-tenant). Shown with its password
/// redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    url: DatabaseUrl,
    schema: Option<SchemaName>,
    /// The line of the targets file it was read from.
    line: Option<usize>,
    /// What its shard is computed from: the URL as written with its password redacted, and
    /// the schema as written, so that neither a password change nor an edit of other lines
    /// moves it to another shard.
    shard_key: String,
}

impl Target {
    /// A target: a database, and on PostgreSQL optionally the schema of its tables (without
    /// one, the fleet's [`DatabaseOptions::schema`](crate::DatabaseOptions::schema)).
    pub fn new(url: DatabaseUrl, schema: Option<String>) -> Result<Self, TargetError> {
        let written = url.to_string();
        Self::checked(url, schema, &written)
    }

    fn checked(
        url: DatabaseUrl,
        schema: Option<String>,
        written: &str,
    ) -> Result<Self, TargetError> {
        if let DatabaseUrl::Sqlite(SqliteTarget::Memory) = url {
            return Err(TargetError::InMemory);
        }
        if let (Some(name), DatabaseUrl::Sqlite(_)) = (&schema, &url) {
            return Err(TargetError::SchemaOnSqlite {
                schema: name.clone(),
            });
        }
        let schema = match schema.as_deref().map(SchemaName::new) {
            None => None,
            Some(Ok(name)) => Some(name),
            Some(Err(_)) => {
                let name = schema.as_deref().unwrap_or_default();
                return Err(TargetError::InvalidSchema {
                    schema: url::redact(name),
                    reserved: is_reserved_schema_name(name),
                });
            }
        };
        let shard_key = format!(
            "{}\t{}",
            url::redact(written),
            schema.as_ref().map_or("", SchemaName::as_str)
        );
        Ok(Self {
            url,
            schema,
            line: None,
            shard_key,
        })
    }

    /// The database.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The schema named for it, if any.
    pub fn schema(&self) -> Option<&SchemaName> {
        self.schema.as_ref()
    }

    /// The schema its tables go in, if named: its own, else `default` (PostgreSQL); `None`
    /// on SQLite, which has no schemas, and where neither names one (the connection's own).
    pub fn schema_or<'a>(&'a self, default: Option<&'a SchemaName>) -> Option<&'a str> {
        match self.url {
            DatabaseUrl::Postgres(_) => self.schema.as_ref().or(default).map(SchemaName::as_str),
            DatabaseUrl::Sqlite(_) => None,
        }
    }

    /// The line of the targets file it was read from (numbered from 1).
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    pub(crate) fn shard_key(&self) -> &str {
        &self.shard_key
    }

    /// What makes two targets the same database and schema.
    fn identity(&self, default_schema: Option<&SchemaName>) -> (String, Option<String>) {
        (
            self.url.to_string(),
            self.schema_or(default_schema).map(str::to_owned),
        )
    }
}

/// The URL, password redacted, then the schema if one is named.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)?;
        if let Some(schema) = &self.schema {
            write!(f, " {schema}")?;
        }
        Ok(())
    }
}

/// Why a target cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// A URL that is not accepted (shown masked).
    #[error(transparent)]
    Url(#[from] url::UrlError),
    /// An in-memory SQLite database: gone when its connection closes.
    #[error(
        "an in-memory SQLite database lives only while its connection is open, so a fleet cannot \
         upgrade it; name a file (sqlite:tenant.db)"
    )]
    InMemory,
    /// A schema named for a SQLite database.
    #[error(
        "SQLite has no schemas, so `{schema}` cannot apply: a SQLite target is one file a line \
         (database-per-tenant); remove the schema"
    )]
    SchemaOnSqlite {
        /// The schema named.
        schema: String,
    },
    /// A schema name that cannot be used.
    #[error(
        "the schema name `{schema}` {}: use 1 to 63 lowercase letters, digits and _, such as tenant_42",
        if *.reserved { "is reserved for PostgreSQL's system schemas (information_schema, pg_*)" } else { "is not a plain identifier" }
    )]
    InvalidSchema {
        /// The name (any password-like part redacted).
        schema: String,
        /// Whether PostgreSQL reserves it.
        reserved: bool,
    },
}

/// The targets of a fleet, in the order given.
///
/// Read from text with one target a line: a database URL, optionally a space and a schema
/// name; `#` starts a comment (a whole line, or after the target); blank lines are
/// skipped. Every line is checked before anything runs, and every bad line is reported at
/// once, by number:
///
/// ```
/// use calista_core::fleet::Targets;
///
/// let text = "\
/// ## tenants on the main server, one schema each
/// postgresql://app:secret@db.internal/app tenant_1
/// postgresql://app:secret@db.internal/app tenant_2   # the big one
///
/// sqlite:///local/tenant_3.db
/// ";
/// let targets = Targets::parse(text, std::path::Path::new("/srv"))?;
/// assert_eq!(targets.len(), 3);
/// assert_eq!(targets.iter().next().unwrap().to_string(), "postgres://app:***@db.internal/app tenant_1");
/// # Ok::<(), calista_core::fleet::TargetsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    list: Vec<Target>,
}

impl Targets {
    /// Parses a targets file's text, its URLs read as an application's sqlx pool reads them
    /// ([`DatabaseUrl::parse`]). A relative SQLite path is relative to `cwd`, as in every
    /// other URL setting. Two lines naming the same database and schema (the schema
    /// `calista` when none is named) are an error: one run would wait on its own lock.
    pub fn parse(text: &str, cwd: &Path) -> Result<Self, TargetsError> {
        Self::parse_as(text, cwd, UrlConvention::Sqlx)
    }

    /// [`Targets::parse`], its URLs read by `convention` (the `calista` program's:
    /// SQLAlchemy's, as its other URL settings).
    pub fn parse_as(
        text: &str,
        cwd: &Path,
        convention: UrlConvention,
    ) -> Result<Self, TargetsError> {
        Self::parse_named(text, cwd, convention, None)
    }

    /// Reads and parses a targets file ([`Targets::parse`]); errors name it.
    pub fn read(path: &Path, cwd: &Path) -> Result<Self, TargetsError> {
        Self::read_as(path, cwd, UrlConvention::Sqlx)
    }

    /// [`Targets::read`], its URLs read by `convention`.
    pub fn read_as(
        path: &Path,
        cwd: &Path,
        convention: UrlConvention,
    ) -> Result<Self, TargetsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_named(&text, cwd, convention, Some(path))
    }

    fn parse_named(
        text: &str,
        cwd: &Path,
        convention: UrlConvention,
        path: Option<&Path>,
    ) -> Result<Self, TargetsError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut list = Vec::new();
        let mut bad = Vec::new();
        let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let words: Vec<&str> = line
                .split_whitespace()
                .take_while(|word| !word.starts_with('#'))
                .collect();
            let (url, schema) = match words.as_slice() {
                [] => continue,
                [url] => (*url, None),
                [url, schema] => (*url, Some((*schema).to_owned())),
                more => {
                    bad.push(BadLine {
                        line: number,
                        problem: format!(
                            "{} words where a line holds a URL and at most a schema name; a space in \
                             a SQLite path is written %20, and a comment starts with #",
                            more.len()
                        ),
                    });
                    continue;
                }
            };
            let target = DatabaseUrl::parse_as(url, cwd, convention)
                .map_err(TargetError::from)
                .and_then(|parsed| Target::checked(parsed, schema, url));
            match target {
                Ok(mut target) => {
                    target.line = Some(number);
                    match seen.entry(target.identity(None)) {
                        std::collections::hash_map::Entry::Occupied(first) => bad.push(BadLine {
                            line: number,
                            problem: format!(
                                "the same target as line {}: remove one (each target runs once, under its own lock)",
                                first.get()
                            ),
                        }),
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(number);
                            list.push(target);
                        }
                    }
                }
                Err(error) => bad.push(BadLine {
                    line: number,
                    problem: error.to_string(),
                }),
            }
        }
        let path = path.map(Path::to_owned);
        if !bad.is_empty() {
            return Err(TargetsError::Invalid { path, lines: bad });
        }
        if list.is_empty() {
            return Err(TargetsError::Empty { path });
        }
        Ok(Self { list })
    }

    /// The targets of one shard, in the same order.
    pub fn shard(&self, shard: super::Shard) -> Self {
        Self {
            list: self
                .list
                .iter()
                .filter(|target| shard.contains(target))
                .cloned()
                .collect(),
        }
    }

    /// How many targets.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (an empty shard of a small fleet).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The targets, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Target> {
        self.list.iter()
    }
}

impl FromIterator<Target> for Targets {
    fn from_iter<I: IntoIterator<Item = Target>>(iter: I) -> Self {
        Self {
            list: iter.into_iter().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Targets {
    type Item = &'a Target;
    type IntoIter = std::slice::Iter<'a, Target>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// A line of a targets file that is not a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Its number, from 1.
    pub line: usize,
    /// What is wrong, and what to write instead (never a password).
    pub problem: String,
}

/// A targets file that cannot be used; nothing ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetsError {
    /// The file could not be read.
    #[error("cannot read the targets file {}", .path.display())]
    Read {
        /// The file, as given.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Lines that are not targets.
    #[error("{}", describe_bad_lines(.path.as_deref(), .lines))]
    Invalid {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// Each bad line.
        lines: Vec<BadLine>,
    },
    /// Only comments and blank lines.
    #[error(
        "{} holds no targets: write one a line, a database URL and optionally a schema name \
         (postgresql://app@db/app tenant_1)",
        .path.as_ref().map_or_else(|| "the targets list".to_owned(), |p| format!("the targets file {}", p.display()))
    )]
    Empty {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
    },
}

/// At most this many bad lines are shown; the rest are counted.
const SHOWN_BAD_LINES: usize = 20;

fn describe_bad_lines(path: Option<&Path>, lines: &[BadLine]) -> String {
    let file = path.map_or_else(
        || "the targets list".to_owned(),
        |p| format!("the targets file {}", p.display()),
    );
    let count = lines.len();
    let mut text = format!(
        "{file} has {count} bad line{}; nothing ran. Fix {}:",
        if count == 1 { "" } else { "s" },
        if count == 1 { "it" } else { "them" }
    );
    for bad in lines.iter().take(SHOWN_BAD_LINES) {
        let problem = bad.problem.replace('\n', "\n      ");
        text.push_str(&format!("\n  line {}: {problem}", bad.line));
    }
    if count > SHOWN_BAD_LINES {
        text.push_str(&format!("\n  … and {} more", count - SHOWN_BAD_LINES));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// As the `calista` program reads a targets file.
    fn parse(text: &str) -> Result<Targets, TargetsError> {
        Targets::parse_as(text, Path::new("/srv/app"), UrlConvention::SqlAlchemy)
    }

    fn bad_lines(text: &str) -> Vec<BadLine> {
        match parse(text) {
            Err(TargetsError::Invalid { lines, .. }) => lines,
            other => panic!("expected bad lines, got {other:?}"),
        }
    }

    #[test]
    fn comments_blank_lines_and_schemas_are_read() {
        let targets = parse(
            "# the fleet\n\npostgresql://app@db/app tenant_1\n  postgres://app@db/app   tenant_2  # big\r\nsqlite:///t3.db\n",
        )
        .unwrap();
        let shown: Vec<String> = targets.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "postgres://app@db/app tenant_1",
                "postgres://app@db/app tenant_2",
                "sqlite:////srv/app/t3.db"
            ]
        );
        let lines: Vec<Option<usize>> = targets.iter().map(Target::line).collect();
        assert_eq!(lines, [Some(3), Some(4), Some(5)]);
        assert_eq!(
            targets
                .iter()
                .nth(2)
                .unwrap()
                .schema_or(Some(&SchemaName::calista())),
            None
        );
        assert_eq!(
            targets
                .iter()
                .next()
                .unwrap()
                .schema_or(Some(&SchemaName::calista())),
            Some("tenant_1")
        );
    }

    #[test]
    fn every_bad_line_is_named_at_once() {
        let lines = bad_lines(
            "postgresql://app@db/app tenant_1\nmysql://someone@h/db\npostgresql://app@db/app Tenant-2\n\
             sqlite:///a.db tenant_3\npostgresql://app@db/app a b\nsqlite:///:memory:\npostgresql://app@db/app pg_x\n",
        );
        let numbers: Vec<usize> = lines.iter().map(|b| b.line).collect();
        assert_eq!(numbers, [2, 3, 4, 5, 6, 7]);
        assert!(
            lines[0].problem.contains("mysql is not supported"),
            "{lines:?}"
        );
        assert!(
            lines[1]
                .problem
                .contains("`Tenant-2` is not a plain identifier")
        );
        assert!(lines[2].problem.contains("SQLite has no schemas"));
        assert!(lines[3].problem.contains("3 words"));
        assert!(lines[4].problem.contains("in-memory"));
        assert!(lines[5].problem.contains("reserved"));
    }

    #[test]
    fn a_bad_line_never_shows_a_password() {
        let error = parse("postgresql://app:s3cret@db/app tenant_1\npostgres:app:s3cret@db/app\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn the_same_target_twice_is_an_error_naming_both_lines() {
        let lines = bad_lines(
            "postgresql://app@db/app calista\npostgres://app@db/app calista\npostgres://app@db/app other\n\
             sqlite:///a.db\nsqlite:////srv/app/a.db\n",
        );
        let found: Vec<(usize, bool)> = lines
            .iter()
            .map(|b| (b.line, b.problem.contains("same target as line")))
            .collect();
        assert_eq!(found, [(2, true), (5, true)]);
        assert!(lines[0].problem.contains("line 1"));
        assert!(lines[1].problem.contains("line 4"));
    }

    #[test]
    fn a_file_of_comments_only_is_an_error() {
        assert!(matches!(
            parse("# nothing yet\n\n"),
            Err(TargetsError::Empty { .. })
        ));
    }

    #[test]
    fn the_message_lists_at_most_twenty_lines_and_counts_the_rest() {
        let text = "nonsense\n".repeat(25);
        let message = parse(&text).unwrap_err().to_string();
        assert!(
            message.starts_with("the targets list has 25 bad lines"),
            "{message}"
        );
        assert!(message.contains("line 20:") && !message.contains("line 21:"));
        assert!(message.ends_with("… and 5 more"), "{message}");
    }
}
