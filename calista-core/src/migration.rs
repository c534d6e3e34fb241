//! The migration model: what one file holds, and the ordered set a program embeds.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::naming::{self, Revision};

/// A database dialect that migrations target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL, the runtime database.
    Postgres,
    /// SQLite, for development, CI and quick local use.
    Sqlite,
}

impl Dialect {
    /// Both dialects, in the order messages list them.
    pub const ALL: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

    /// The word used in section markers: `postgres` or `sqlite`.
    pub const fn marker_word(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
        })
    }
}

/// Which way a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Applying the migration.
    Up,
    /// Reverting it (development and CI only).
    Down,
}

impl Direction {
    /// The word used in section markers and in the history table: `up` or `down`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one section lies in its file: `(kind, line, start, end)`. `kind` packs the
/// direction (bit 0: down) and the dialect (bits 1-2: 0 every dialect, 1 PostgreSQL,
/// 2 SQLite); `line` is the marker's line (1-based); `start..end` the trimmed SQL, in bytes.
///
/// Plain integers, so that `migrations!()` embeds a thousand migrations cheaply.
pub(crate) type Span = (u8, u32, u32, u32);

/// The section a span describes.
pub(crate) fn section_view(text: &str, span: Span) -> Section<'_> {
    Section::of(text, span)
}

/// Packs a section's direction and dialect into a [`Span`] kind.
pub(crate) fn span_kind(direction: Direction, dialect: Option<Dialect>) -> u8 {
    let down = u8::from(direction == Direction::Down);
    let dialect = match dialect {
        None => 0,
        Some(Dialect::Postgres) => 1,
        Some(Dialect::Sqlite) => 2,
    };
    down | dialect << 1
}

/// One section of a migration file: the SQL after one `-- calista:` marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    direction: Direction,
    dialect: Option<Dialect>,
    line: u32,
    sql: &'a str,
    /// The whole file, and where `sql` starts in it, to place a statement in the file.
    file: &'a str,
    start: usize,
}

impl<'a> Section<'a> {
    fn of(text: &'a str, (kind, line, start, end): Span) -> Self {
        let direction = if kind & 1 == 1 {
            Direction::Down
        } else {
            Direction::Up
        };
        let dialect = match kind >> 1 {
            1 => Some(Dialect::Postgres),
            2 => Some(Dialect::Sqlite),
            _ => None,
        };
        // A span outside the text cannot come from the parser; it would take a file changed
        // between the macro's read and the compiler's: show nothing rather than panic.
        let sql = text.get(start as usize..end as usize).unwrap_or_default();
        Self {
            direction,
            dialect,
            line,
            sql,
            file: text,
            start: start as usize,
        }
    }

    /// Up or down.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The one dialect this section is for, or `None` when it is for every dialect.
    pub fn dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    /// The line of the file on which the section's marker stands (1-based).
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The SQL text, as written in the file, without surrounding blank space.
    pub fn sql(&self) -> &'a str {
        self.sql
    }

    /// The byte offset in the file at which [`sql`](Self::sql) starts.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// The 1-based line and column in the file of byte `offset` of [`sql`](Self::sql),
    /// e.g. of a [`Statement`](crate::sql::Statement)'s offset or a server's error position.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        crate::sql::line_col(self.file, self.start.saturating_add(offset))
    }

    /// Whether this section runs for a direction on a dialect.
    pub fn applies_to(&self, direction: Direction, dialect: Dialect) -> bool {
        self.direction == direction && self.dialect.is_none_or(|d| d == dialect)
    }
}

/// SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// The checksum of a migration file: SHA-256 of its text with formatting that editors
    /// and checkouts change on their own left out — a UTF-8 byte-order mark at the start,
    /// CRLF line ends, whitespace at the end of a line, blank lines at the end and a missing
    /// final newline — so that only an edit of the SQL or its comments changes it.
    ///
    /// A file with none of these is hashed as its bytes are, which is what earlier releases
    /// did ([`Checksum::of_file_before_whitespace_rule`]): their records of such files match.
    pub fn of_file(contents: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        let body = contents.strip_prefix(b"\xef\xbb\xbf").unwrap_or(contents);
        // Blank lines are written only once a line with text follows them.
        let mut blank_lines = 0;
        for line in body.split(|&b| b == b'\n') {
            let line = line.trim_ascii_end();
            if line.is_empty() {
                blank_lines += 1;
                continue;
            }
            for _ in 0..blank_lines {
                hasher.update(b"\n");
            }
            blank_lines = 0;
            hasher.update(line);
            hasher.update(b"\n");
        }
        Self(hasher.finalize().into())
    }

    /// The checksum as releases before [`Checksum::of_file`]'s whitespace rule computed it:
    /// SHA-256 of the bytes with CRLF normalised to LF and without a byte-order mark.
    /// Histories those releases wrote hold it; the guard accepts either.
    pub fn of_file_before_whitespace_rule(contents: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        let mut rest = contents.strip_prefix(b"\xef\xbb\xbf").unwrap_or(contents);
        while let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
            hasher.update(&rest[..at]);
            rest = &rest[at + 1..];
        }
        hasher.update(rest);
        Self(hasher.finalize().into())
    }

    /// The digest of a chain of migrations: the previous link, then this migration's
    /// revision and checksum. Equal links at a revision mean the same files, unchanged,
    /// in the same order, up to that revision.
    pub fn chain(previous: Option<Checksum>, revision: Revision, checksum: Checksum) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(previous.map_or([0; 32], |p| p.0));
        hasher.update(revision.to_string().as_bytes());
        hasher.update(checksum.0);
        Self(hasher.finalize().into())
    }

    /// A checksum from its bytes (used by `migrations!()`).
    pub(crate) const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits, as stored in the history table.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        // The guard decodes one digest per check: a plain match, no per-character dispatch.
        const fn nibble(b: u8) -> Option<u8> {
            match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                b'A'..=b'F' => Some(b - b'A' + 10),
                _ => None,
            }
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// What a baseline file (`calista db squash`) stands for: its
/// `-- calista:baseline <first>..<through> chain:<hex> [legacy:<hex>] -- <release>` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline<'a> {
    /// The first migration it replaced.
    pub first: Revision,
    /// The last migration it replaced; the baseline has its revision.
    pub through: Revision,
    /// The chained digest of the replaced files at `through`: what a database that ran them
    /// recorded, and the baseline's link in the chain, so such a database reads as
    /// unmodified.
    pub chain: Checksum,
    /// The same digest as releases before the whitespace rule computed it, when it differs
    /// (`legacy:<hex>`): what a database they brought to `through` recorded.
    pub chain_before_whitespace_rule: Option<Checksum>,
    /// The oldest release that still has the replaced files: the one that upgrades a
    /// database that is before `through`.
    pub release: &'a str,
}

impl<'a> Baseline<'a> {
    /// Reads what follows `calista:baseline`.
    pub fn parse(rest: &'a str) -> Option<Self> {
        let (words, release) = rest.split_once(" -- ")?;
        let release = release.trim();
        let mut words = words.split_whitespace();
        let (first, through) = words.next()?.split_once("..")?;
        let chain = Checksum::from_hex(words.next()?.strip_prefix("chain:")?)?;
        let chain_before_whitespace_rule = match words.next() {
            Some(word) => Some(Checksum::from_hex(word.strip_prefix("legacy:")?)?),
            None => None,
        };
        let (first, through) = (Revision::parse(first).ok()?, Revision::parse(through).ok()?);
        (words.next().is_none() && !release.is_empty() && first <= through).then_some(Self {
            first,
            through,
            chain,
            chain_before_whitespace_rule,
            release,
        })
    }

    /// The directive line, which [`Baseline::parse`] reads back.
    pub fn directive(&self) -> String {
        let legacy = self
            .chain_before_whitespace_rule
            .map_or_else(String::new, |legacy| format!(" legacy:{legacy}"));
        format!(
            "-- calista:baseline {}..{} chain:{}{legacy} -- {}",
            self.first, self.through, self.chain, self.release
        )
    }

    /// Whether it replaced `revision`.
    pub fn covers(&self, revision: Revision) -> bool {
        self.first <= revision && revision <= self.through
    }
}

/// One migration: a revision, its sections and directives, and the checksum of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    revision: Revision,
    summary: Cow<'static, str>,
    /// The file's text, as it is on disk.
    text: Cow<'static, str>,
    spans: Cow<'static, [Span]>,
    no_transaction: bool,
    irreversible: bool,
    checksum: Checksum,
    lock_timeout: Option<Duration>,
}

impl Migration {
    pub(crate) fn new(
        revision: Revision,
        summary: String,
        text: String,
        spans: Vec<Span>,
        no_transaction: bool,
        irreversible: bool,
        checksum: Checksum,
    ) -> Self {
        Self {
            revision,
            summary: Cow::Owned(summary),
            text: Cow::Owned(text),
            spans: Cow::Owned(spans),
            no_transaction,
            irreversible,
            checksum,
            lock_timeout: None,
        }
    }

    /// A migration from data checked at build time (used by `migrations!()`, which passes
    /// the file through `include_str!`, so that editing it rebuilds the crate).
    pub(crate) const fn from_static(
        revision: Revision,
        summary: &'static str,
        text: &'static str,
        spans: &'static [Span],
        no_transaction: bool,
        irreversible: bool,
        checksum: Checksum,
    ) -> Self {
        Self {
            revision,
            summary: Cow::Borrowed(summary),
            text: Cow::Borrowed(text),
            spans: Cow::Borrowed(spans),
            no_transaction,
            irreversible,
            checksum,
            lock_timeout: None,
        }
    }

    /// What this migration stands for when it is a baseline of squashed migrations.
    pub fn baseline(&self) -> Option<Baseline<'_>> {
        crate::format::baseline(&self.text)
    }

    /// The lint findings this migration acknowledges, each with its reason: its
    /// `-- calista:allow <rule> -- <reason>` directives, read from the file's text (which
    /// `migrations!()` embeds, so they travel with the binary).
    pub fn allows(&self) -> Vec<crate::sql::lint::Allow<'_>> {
        crate::format::allows(&self.text)
    }

    /// The differences between the dialects' schemas this migration acknowledges, each with
    /// its reason: its `-- calista:allow dialect-difference <table>[.<column>] -- <reason>`
    /// directives, which `calista db verify` ([`verify`](crate::verify)) applies from this
    /// revision on.
    pub fn dialect_differences(&self) -> Vec<crate::sql::lint::DialectDifference<'_>> {
        crate::format::dialect_differences(&self.text)
    }

    /// Where the migration came from, when `calista db import` wrote it from another tool's
    /// migrations: its `-- calista:imported` directive, read from the file's text (which
    /// `migrations!()` embeds), to find the other tool's record of it in a database.
    pub fn imported(&self) -> Option<crate::origin::Imported<'_>> {
        crate::format::imported(&self.text)
    }

    /// The revision id, `YYYYMMDD_HHMM`.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The summary part of the file name.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The file name, `YYYYMMDD_HHMM_<summary>.sql`.
    pub fn file_name(&self) -> String {
        naming::file_name(self.revision, &self.summary)
    }

    /// The file's text, as it is on disk.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every section, in file order.
    pub fn sections(&self) -> impl Iterator<Item = Section<'_>> {
        self.spans.iter().map(|span| Section::of(&self.text, *span))
    }

    /// The sections that run for a direction on a dialect, in file order.
    pub fn sections_for(
        &self,
        direction: Direction,
        dialect: Dialect,
    ) -> impl Iterator<Item = Section<'_>> {
        self.sections()
            .filter(move |s| s.applies_to(direction, dialect))
    }

    /// The SQL that runs for a direction on a dialect: its sections joined in file order.
    pub fn script(&self, direction: Direction, dialect: Dialect) -> Cow<'_, str> {
        let mut sections = self.sections_for(direction, dialect);
        let Some(first) = sections.next() else {
            return Cow::Borrowed("");
        };
        match sections.next() {
            None => Cow::Borrowed(first.sql()),
            Some(second) => {
                let mut joined = format!("{}\n{}", first.sql(), second.sql());
                for section in sections {
                    joined.push('\n');
                    joined.push_str(section.sql());
                }
                Cow::Owned(joined)
            }
        }
    }

    /// The line and column in the file (1-based; the column in characters) of the byte at
    /// `offset` in [`Migration::script`] for the same direction and dialect: where an error
    /// the database reports in the script is in the file.
    pub fn locate(
        &self,
        direction: Direction,
        dialect: Dialect,
        offset: usize,
    ) -> Option<(u32, u32)> {
        let mut script_start = 0;
        for section in self.sections_for(direction, dialect) {
            let len = section.sql().len();
            if offset <= script_start + len {
                return Some(section.line_col(offset - script_start));
            }
            // Sections are joined with one newline (see `script`).
            script_start += len + 1;
        }
        None
    }

    /// Set by `-- calista:no-transaction`: the migration runs alone, outside a transaction.
    pub fn no_transaction(&self) -> bool {
        self.no_transaction
    }

    /// Set by `-- calista:lock-timeout`: how long each attempt waits for a table lock on
    /// PostgreSQL, instead of the setting.
    pub fn lock_timeout(&self) -> Option<Duration> {
        self.lock_timeout
    }

    /// The migration with a `-- calista:lock-timeout` (used by `migrations!()` and the parser).
    #[must_use]
    pub(crate) const fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Set by `-- calista:irreversible`: the migration has no down sections.
    pub fn irreversible(&self) -> bool {
        self.irreversible
    }

    /// The file's checksum ([`Checksum::of_file`]).
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    /// The file's checksum as releases before the whitespace rule computed it
    /// ([`Checksum::of_file_before_whitespace_rule`]), from its text.
    pub fn checksum_before_whitespace_rule(&self) -> Checksum {
        Checksum::of_file_before_whitespace_rule(self.text.as_bytes())
    }

    /// Whether `recorded`, a checksum a history holds, is this file's under either rule.
    pub fn matches_checksum(&self, recorded: Checksum) -> bool {
        recorded == self.checksum || recorded == self.checksum_before_whitespace_rule()
    }

    /// Where the sections lie in the file (for `migrations!()`).
    pub(crate) fn spans(&self) -> &[Span] {
        &self.spans
    }
}

/// The ordered migrations of an application, oldest first.
///
/// Usually embedded at build time:
///
/// ```ignore
/// static MIGRATIONS: calista::Migrations = calista::migrations!();
/// ```
///
/// or read at run time with [`Migrations::from_dir`], which applies the same rules.
#[derive(Debug, Clone)]
pub struct Migrations {
    migrations: Cow<'static, [Migration]>,
    /// `chains[i]` is the chained digest of `migrations[..=i]`.
    chains: Cow<'static, [Checksum]>,
    /// The folder the set came from, when it can be looked at again (debug builds).
    source_dir: Option<Cow<'static, str>>,
    /// The version of the crate that embedded the set.
    app_version: Option<&'static str>,
}

impl Migrations {
    /// A set from migrations in any order; they are sorted by revision.
    ///
    /// Revisions must be unique: the loaders check that before calling this.
    pub(crate) fn new(mut migrations: Vec<Migration>, source_dir: Option<String>) -> Self {
        migrations.sort_by_key(Migration::revision);
        let chains = chain_digests(&migrations);
        Self {
            migrations: Cow::Owned(migrations),
            chains: Cow::Owned(chains),
            source_dir: source_dir.map(Cow::Owned),
            app_version: None,
        }
    }

    /// A set from data checked at build time (used by `migrations!()`).
    pub(crate) const fn from_static(
        migrations: &'static [Migration],
        chains: &'static [Checksum],
        source_dir: Option<&'static str>,
        app_version: Option<&'static str>,
    ) -> Self {
        let source_dir = match source_dir {
            Some(dir) => Some(Cow::Borrowed(dir)),
            None => None,
        };
        Self {
            migrations: Cow::Borrowed(migrations),
            chains: Cow::Borrowed(chains),
            source_dir,
            app_version,
        }
    }

    /// The version (`CARGO_PKG_VERSION`) of the crate that embedded the set with `migrations!()`.
    pub fn app_version(&self) -> Option<&str> {
        self.app_version
    }

    /// The migrations, oldest first.
    pub fn as_slice(&self) -> &[Migration] {
        &self.migrations
    }

    /// Iterates oldest first.
    pub fn iter(&self) -> std::slice::Iter<'_, Migration> {
        self.migrations.iter()
    }

    /// How many migrations there are.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    /// The newest migration: the head revision.
    pub fn head(&self) -> Option<&Migration> {
        self.migrations.last()
    }

    /// The position of a revision, found by binary search.
    pub fn position(&self, revision: Revision) -> Option<usize> {
        self.migrations
            .binary_search_by_key(&revision, Migration::revision)
            .ok()
    }

    /// The migration with a revision id.
    pub fn get(&self, revision: Revision) -> Option<&Migration> {
        self.position(revision).map(|i| &self.migrations[i])
    }

    /// The chained digest of every migration up to and including the one at `index`.
    pub fn chain_at(&self, index: usize) -> Option<Checksum> {
        self.chains.get(index).copied()
    }

    /// [`Migrations::chain_at`] as releases before the whitespace rule computed it, from
    /// the files' texts: the chain a history they wrote holds. Computed on each call.
    pub fn chain_before_whitespace_rule_at(&self, index: usize) -> Option<Checksum> {
        let mut chain = None;
        for migration in self.migrations.get(..=index)? {
            chain = Some(match migration.baseline() {
                Some(baseline) => baseline
                    .chain_before_whitespace_rule
                    .unwrap_or(baseline.chain),
                None => Checksum::chain(
                    chain,
                    migration.revision(),
                    migration.checksum_before_whitespace_rule(),
                ),
            });
        }
        chain
    }

    /// Whether `recorded`, the chained digest a history holds at `index`, is this set's
    /// under either checksum rule.
    pub fn matches_chain_at(&self, index: usize, recorded: Option<Checksum>) -> bool {
        recorded.is_some()
            && (recorded == self.chain_at(index)
                || recorded == self.chain_before_whitespace_rule_at(index))
    }

    /// The baseline that replaced `revision` without having its revision (a migration
    /// squashed away), with the baseline's position.
    pub fn baseline_replacing(&self, revision: Revision) -> Option<(usize, Baseline<'_>)> {
        self.iter().enumerate().find_map(|(index, migration)| {
            migration
                .baseline()
                .filter(|b| b.covers(revision) && revision != b.through)
                .map(|b| (index, b))
        })
    }

    /// Every chained digest, parallel to [`Migrations::as_slice`].
    pub fn chains(&self) -> &[Checksum] {
        &self.chains
    }

    /// The folder `migrations!()` embedded, in debug builds, to warn about files added to it
    /// since the build; `None` otherwise.
    pub fn source_dir(&self) -> Option<&str> {
        self.source_dir.as_deref()
    }
}

/// Two sets are equal when they hold the same migrations; where they were read from is
/// not part of what they are.
impl PartialEq for Migrations {
    fn eq(&self, other: &Self) -> bool {
        self.migrations == other.migrations && self.chains == other.chains
    }
}

impl Eq for Migrations {}

impl<'a> IntoIterator for &'a Migrations {
    type Item = &'a Migration;
    type IntoIter = std::slice::Iter<'a, Migration>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The chained digest at each position of an ordered list.
pub fn chain_digests(migrations: &[Migration]) -> Vec<Checksum> {
    let mut previous = None;
    migrations
        .iter()
        .map(|m| {
            // A baseline continues the chain of the files it replaced.
            let link = match m.baseline() {
                Some(baseline) => baseline.chain,
                None => Checksum::chain(previous, m.revision(), m.checksum()),
            };
            previous = Some(link);
            link
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_crlf_but_not_content() {
        let lf = Checksum::of_file(b"-- calista:up\nSELECT 1;\n");
        let crlf = Checksum::of_file(b"-- calista:up\r\nSELECT 1;\r\n");
        let other = Checksum::of_file(b"-- calista:up\nSELECT 2;\n");
        assert_eq!(lf, crlf);
        assert_ne!(lf, other);
        // A lone CR is content, not a line ending.
        assert_ne!(lf, Checksum::of_file(b"-- calista:up\rSELECT 1;\n"));
    }

    #[test]
    fn script_offsets_map_to_file_lines_and_columns() {
        let text = "-- calista:up\nCREATE TABLE a (id INT);\n-- calista:up postgres\nSELECT 1;\n  SELECT oops;\n-- calista:down\nDROP TABLE a;\n";
        let m =
            crate::format::parse_file("m.sql", "20250101_0000_demo.sql", text.as_bytes()).unwrap();
        let script = m.script(Direction::Up, Dialect::Postgres);
        let at = script.find("oops").unwrap();
        assert_eq!(
            m.locate(Direction::Up, Dialect::Postgres, at),
            Some((5, 10))
        );
        assert_eq!(m.locate(Direction::Up, Dialect::Postgres, 0), Some((2, 1)));
        let down = m.script(Direction::Down, Dialect::Sqlite);
        assert_eq!(
            m.locate(Direction::Down, Dialect::Sqlite, down.find("a;").unwrap()),
            Some((7, 12))
        );
        assert_eq!(m.locate(Direction::Up, Dialect::Postgres, 10_000), None);
    }

    #[test]
    fn checksum_of_empty_file_is_sha256_of_nothing() {
        assert_eq!(
            Checksum::of_file(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn checksum_hex_round_trips() {
        let sum = Checksum::of_file(b"x");
        assert_eq!(Checksum::from_hex(&sum.to_string()), Some(sum));
        assert_eq!(Checksum::from_hex("zz"), None);
        assert_eq!(Checksum::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn chain_depends_on_order_and_revision() {
        let a = Checksum::of_file(b"a");
        let b = Checksum::of_file(b"b");
        let r1 = Revision::parse("20250101_0000").unwrap();
        let r2 = Revision::parse("20250102_0000").unwrap();
        let ab = Checksum::chain(Some(Checksum::chain(None, r1, a)), r2, b);
        let ba = Checksum::chain(Some(Checksum::chain(None, r1, b)), r2, a);
        assert_ne!(ab, ba);
        assert_ne!(Checksum::chain(None, r1, a), Checksum::chain(None, r2, a));
    }
}

#[cfg(test)]
mod examples {
    #[test]
    fn a_section_gives_the_file_line_of_a_statement() {
        use crate::format::parse_file;
        use crate::{Dialect, sql};

        let file = "-- calista:up\nCREATE TABLE t (a int);\nCOMMENT ON TABLE t IS 'x';\n-- calista:down\nDROP TABLE t;\n";
        let name = "20250826_1030_t.sql";
        let migration = parse_file(name, name, file.as_bytes()).unwrap();
        let up = migration.sections().next().unwrap();
        let second = &sql::statements(up.sql(), Dialect::Postgres)[1];
        assert_eq!(up.line_col(second.offset), (3, 1));
    }
}
