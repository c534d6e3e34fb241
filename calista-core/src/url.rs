//! Database URLs and their redaction: a password never reaches output, logs or errors.
//!
//! # One URL, one database
//!
//! An application gives the same URL to its own sqlx pool and to calista, so a SQLite URL
//! must name the same file for both. sqlx and SQLAlchemy read some strings differently,
//! and each reader of a URL says which convention it follows ([`UrlConvention`]):
//!
//! | URL | [`Sqlx`](UrlConvention::Sqlx): applications | [`SqlAlchemy`](UrlConvention::SqlAlchemy): the `calista` program |
//! |---|---|---|
//! | `sqlite://data.db` | `data.db`, relative | refused (a host) |
//! | `sqlite:data.db` | `data.db`, relative | `data.db`, relative |
//! | `sqlite:///var/data.db` | `/var/data.db`, absolute | `var/data.db`, relative |
//! | `sqlite:////var/data.db`, `sqlite:/var/data.db` | `/var/data.db` | `/var/data.db` |
//! | `sqlite::memory:` | in memory | in memory |
//! | `sqlite:///:memory:` | refused: to sqlx, the file `/:memory:` | in memory |
//! | `sqlite://` | refused: to sqlx, a temporary file per connection | in memory |
//! | `sqlite://data.db?mode=rwc` | `data.db` (sqlx's `mode=rw`, `rwc`, `memory`; `cache=`) | refused: no parameters |
//!
//! An application's settings read URLs as sqlx does ([`DatabaseUrl::parse`]): the file
//! that `SqlitePool::connect(url)` opens is the one calista opens. The `calista` program
//! keeps the meaning its users' URLs have had since Alembic (ADR-0004). Where sqlx's
//! reading differs from SQLAlchemy's and is almost certainly a slip (`sqlite:///:memory:`,
//! an empty path), the URL is refused with both readings and the spelling that says what
//! was meant, never resolved silently. A relative path is relative to the folder given to
//! the parser (settings give the current folder for a variable or a flag, and the file's
//! folder for a configuration file).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The program's accepted forms with an example, one per line, for error messages.
const SQLALCHEMY_FORMS: &str = concat!(
    "  postgresql://user:password@host:5432/dbname  ",
    "(also postgresql+psycopg://, postgresql+psycopg2://, postgres://)\n",
    "  sqlite:///relative/path.db                   (three slashes: a relative path)\n",
    "  sqlite:////absolute/path.db                  (four slashes: an absolute path)\n",
    "  sqlite:path.db or sqlite:/absolute/path.db   (short form)\n",
    "  sqlite:///:memory: or sqlite://              (in memory)",
);

/// sqlx's forms, one per line, for error messages.
const SQLX_FORMS: &str = concat!(
    "  postgres://user:password@host:5432/dbname    (also postgresql://)\n",
    "  sqlite://relative/path.db or sqlite:relative/path.db\n",
    "  sqlite:///absolute/path.db                   (three slashes: an absolute path)\n",
    "  sqlite::memory:                              (in memory)\n",
    "  sqlite://path.db?mode=rwc                    (sqlx's mode=rw, rwc or memory; cache=)",
);

/// How SQLite URLs are read where sqlx and SQLAlchemy differ (the [module](self) has the
/// table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlConvention {
    /// As `SqlitePool::connect(url)` reads it: `sqlite://data.db` and `sqlite:data.db` are
    /// relative, `sqlite:///var/data.db` is absolute, `sqlite::memory:` is in memory, and
    /// sqlx's `mode` and `cache` parameters are accepted. Every application's, by default.
    #[default]
    Sqlx,
    /// As SQLAlchemy and Alembic read it, the `calista` program's (ADR-0004):
    /// `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:`,
    /// `sqlite:path.db`, and no parameters.
    SqlAlchemy,
}

impl UrlConvention {
    /// Every accepted form with an example, one per line.
    pub fn accepted_forms(self) -> &'static str {
        match self {
            Self::Sqlx => SQLX_FORMS,
            Self::SqlAlchemy => SQLALCHEMY_FORMS,
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A PostgreSQL server.
    Postgres(PostgresUrl),
    /// A SQLite file, or memory.
    Sqlite(SqliteTarget),
}

/// A PostgreSQL URL, normalised to `postgres://…`. Shown redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// What sqlx connects with, password included.
    url: String,
}

/// A SQLite database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A file (absolute, or relative to the directory the URL was read in).
    File(PathBuf),
    /// An in-memory database.
    Memory,
}

/// A URL in none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    /// The URL, masked by [`mask_rejected`].
    shown: String,
    /// What is wrong with it, with the masked parts masked here too.
    reason: String,
    /// Whose forms the message lists.
    convention: UrlConvention,
}

impl UrlError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        let (shown, hidden) = mask_rejected(text);
        let mut reason = redact(&reason.into());
        for secret in hidden.iter().filter(|s| !s.is_empty()) {
            reason = reason.replace(secret.as_str(), "***");
        }
        Self {
            shown,
            reason,
            convention: UrlConvention::default(),
        }
    }

    fn listing(mut self, convention: UrlConvention) -> Self {
        self.convention = convention;
        self
    }
}

/// Any text shown as a URL that was not accepted is: everything that could be a password
/// hidden (all before the last `@`; without one, what follows a `:` unless it is a port;
/// `password=` values). For values that may hold a URL with its password, such as a
/// setting's value in an error.
pub(crate) fn mask_unparsed(text: &str) -> String {
    mask_rejected(text).0
}

/// How a URL that was not accepted is shown. Such a URL was not split by a parser, so
/// nothing says where its password is: everything that could be one is hidden. That is
/// all before the last `@` (a user and password, however mistyped the scheme before them
/// is: `postgres:pw@h`, `postgresql//u:pw@h`); without an `@`, anything after a `:` in
/// the host part (`postgres://user:pw`); and every `password=` value up to the next `&`.
/// Kept: the scheme and the `:` and `/` after it, so the user sees what was mistyped.
/// Returns the shown text and the hidden pieces.
fn mask_rejected(text: &str) -> (String, Vec<String>) {
    let scheme_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
        .unwrap_or(text.len());
    let separator_len = text[scheme_len..]
        .find(|c: char| c != ':' && c != '/')
        .unwrap_or(text.len() - scheme_len);
    // No separator, no scheme: `postgresqlpw@h` is all user and password. A lone `:`
    // without an `@` after it may follow a user as well as a scheme (`user:pw`).
    let lone_colon = &text[scheme_len..scheme_len + separator_len] == ":";
    let head_len = if separator_len == 0 || (lone_colon && !text.contains('@')) {
        0
    } else {
        scheme_len + separator_len
    };
    let (head, rest) = text.split_at(head_len);
    let mut shown = head.to_owned();
    let mut hidden = Vec::new();
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            hidden.push(rest[..at].to_owned());
            shown.push_str("***@");
            &rest[at + 1..]
        }
        None => {
            let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_len].split_once(':') {
                Some((host, port)) if !port.bytes().all(|b| b.is_ascii_digit()) => {
                    hidden.push(port.to_owned());
                    shown.push_str(host);
                    shown.push_str(":***");
                    &rest[authority_len..]
                }
                _ => rest,
            }
        }
    };
    let (before_query, query) = after_userinfo
        .split_once('?')
        .map_or((after_userinfo, None), |(b, q)| (b, Some(q)));
    shown.push_str(before_query);
    if let Some(query) = query {
        shown.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if key.trim().eq_ignore_ascii_case("password") => {
                    hidden.push(value.to_owned());
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        shown.push_str(&pairs.join("&"));
    }
    (shown, hidden)
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shown.is_empty() {
            f.write_str("the database URL is empty")?;
        } else {
            write!(
                f,
                "`{}` is not an accepted database URL: {}",
                self.shown, self.reason
            )?;
        }
        write!(f, "; write one of:\n{}", self.convention.accepted_forms())
    }
}

impl std::error::Error for UrlError {}

impl DatabaseUrl {
    /// Parses a URL as the application's own sqlx pool reads it
    /// ([`UrlConvention::Sqlx`]); a relative SQLite path is relative to `cwd`.
    pub fn parse(text: &str, cwd: &Path) -> Result<Self, UrlError> {
        Self::parse_as(text, cwd, UrlConvention::Sqlx)
    }

    /// Parses a URL read by `convention`; a relative SQLite path is relative to `cwd`.
    pub fn parse_as(text: &str, cwd: &Path, convention: UrlConvention) -> Result<Self, UrlError> {
        parse_url(text, cwd, convention).map_err(|error| error.listing(convention))
    }

    /// The default when nothing is configured: `calista.db` in `cwd`.
    pub fn default_sqlite(cwd: &Path) -> Self {
        Self::Sqlite(SqliteTarget::File(cwd.join("calista.db")))
    }

    /// `PostgreSQL` or `SQLite`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "PostgreSQL",
            Self::Sqlite(_) => "SQLite",
        }
    }
}

/// [`DatabaseUrl::parse_as`], before its error is given the convention's forms.
fn parse_url(text: &str, cwd: &Path, convention: UrlConvention) -> Result<DatabaseUrl, UrlError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UrlError::new(text, "it is empty"));
    }
    if let Some(rest) = strip_prefix_ignoring_case(text, "sqlite:") {
        let target = match convention {
            UrlConvention::Sqlx => parse_sqlite_as_sqlx(text, cwd),
            UrlConvention::SqlAlchemy => parse_sqlite(text, rest, cwd),
        };
        return target.map(DatabaseUrl::Sqlite);
    }
    let no_scheme = match convention {
        UrlConvention::Sqlx => {
            "it does not start with postgres:// or sqlite: (a SQLite file is written \
             sqlite://file.db)"
        }
        UrlConvention::SqlAlchemy => {
            "it does not start with postgresql:// or sqlite: (a SQLite file is written \
             sqlite:///file.db)"
        }
    };
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(UrlError::new(text, no_scheme));
    };
    let is_scheme = scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    if !is_scheme {
        // What comes before `://` is no scheme (`postgres:u:pw@h://…`): not shown.
        return Err(UrlError::new(text, no_scheme));
    }
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "postgresql" | "postgres" | "postgresql+psycopg" | "postgresql+psycopg2" => {
            let url = format!("postgres://{rest}");
            let parsed = PostgresUrl { url };
            if parsed.parts().path.contains(['@', ':']) {
                // `postgresql:///user:pw@host/db` is a database named `user:pw@host/db`
                // to a URL parser; no one means that.
                return Err(UrlError::new(
                    text,
                    "its database name holds `:` or `@`, so a user or password is in the \
                     wrong place: they go right after `://` (in a name, write %3A and %40)",
                ));
            }
            let PostgresUrl { url } = parsed;
            // sqlx decides what it can connect with; a URL it cannot read is a setting
            // error now, not a connection error later.
            sqlx::postgres::PgConnectOptions::from_str(&url).map_err(|e| {
                UrlError::new(
                    text,
                    format!("sqlx cannot read it ({})", redact(&e.to_string())),
                )
            })?;
            Ok(DatabaseUrl::Postgres(PostgresUrl { url }))
        }
        "mysql" | "mariadb" | "mssql" | "oracle" => Err(UrlError::new(
            text,
            format!("{scheme} is not supported: CALISTA runs on PostgreSQL and SQLite"),
        )),
        _ if scheme.starts_with("postgresql+") => Err(UrlError::new(
            text,
            format!(
                "the driver `{}` is not one CALISTA reads; write postgresql://",
                &scheme["postgresql+".len()..]
            ),
        )),
        _ => Err(UrlError::new(
            text,
            format!("the scheme `{scheme}` is unknown"),
        )),
    }
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `rest` is what follows `sqlite:`.
fn parse_sqlite(text: &str, rest: &str, cwd: &Path) -> Result<SqliteTarget, UrlError> {
    if rest.contains('?') {
        return Err(UrlError::new(
            text,
            "SQLite URLs take no ?parameters here; write the file path only (a literal ? is %3F)",
        ));
    }
    // SQLAlchemy: sqlite:// is memory; sqlite:///path is relative; sqlite:////path absolute.
    // Without the slashes (sqlite:path), the rest is the path, as sqlx reads it.
    let path = match rest.strip_prefix("//") {
        Some("") => return Ok(SqliteTarget::Memory),
        Some(after) => after.strip_prefix('/').ok_or_else(|| {
            UrlError::new(
                text,
                "a SQLite URL has no host; write three slashes before a relative path, four \
                 before an absolute one (URLs are read here as SQLAlchemy reads them; sqlx \
                 would read sqlite://data.db as a relative path)",
            )
        })?,
        None => rest,
    };
    if path == ":memory:" {
        return Ok(SqliteTarget::Memory);
    }
    if path.is_empty() {
        return Err(UrlError::new(
            text,
            "the file name is missing (an in-memory database is sqlite:///:memory:)",
        ));
    }
    sqlite_file(text, path, cwd).map(SqliteTarget::File)
}

/// A SQLite URL as sqlx's `SqliteConnectOptions::from_str` reads it: `sqlite:` in
/// lowercase, any `//` after it, the path up to the first `?`, then sqlx's parameters.
fn parse_sqlite_as_sqlx(text: &str, cwd: &Path) -> Result<SqliteTarget, UrlError> {
    if !text.starts_with("sqlite:") {
        return Err(UrlError::new(
            text,
            "sqlx reads the scheme only in lowercase (it would open a file of that name); \
             write sqlite:",
        ));
    }
    // As sqlx does: `sqlite://`, then `sqlite:`, trimmed as often as they repeat.
    let rest = text
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(path, query)| (path, Some(query)));
    let memory_mode = sqlx_parameters(text, query.unwrap_or_default())?;
    if memory_mode || path == ":memory:" {
        return Ok(SqliteTarget::Memory);
    }
    if path.is_empty() {
        return Err(UrlError::new(
            text,
            "it names no file: sqlx would open a temporary database of its own for each \
             connection, SQLAlchemy (and the calista program) one in memory; write \
             sqlite::memory: for an in-memory database, or name the file (sqlite://data.db)",
        ));
    }
    let file = sqlite_file(text, path, cwd)?;
    if file.file_name().is_some_and(|name| name == ":memory:") {
        return Err(UrlError::new(
            text,
            "to sqlx this is a file named `:memory:`, to SQLAlchemy (and the calista program) \
             an in-memory database; write sqlite::memory: for an in-memory database",
        ));
    }
    Ok(SqliteTarget::File(file))
}

/// Checks sqlx's SQLite parameters and says whether they ask for an in-memory database.
/// Those that would make calista open the file otherwise than the application does
/// (read-only, another VFS) are refused: calista writes its tables and the migrations.
fn sqlx_parameters(text: &str, query: &str) -> Result<bool, UrlError> {
    let mut memory = false;
    // As `url::form_urlencoded::parse` splits them, which sqlx uses.
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (form_decode(key), form_decode(value));
        match (key.as_str(), value.as_str()) {
            ("mode", "rw" | "rwc") | ("cache", "private" | "shared") => {}
            ("immutable", "false" | "0") => {}
            ("mode", "memory") => memory = true,
            ("mode", "ro") | ("immutable", "true" | "1") => {
                return Err(UrlError::new(
                    text,
                    format!(
                        "`{key}={value}` opens the file read-only, and calista writes its \
                         tables and the migrations there: give it the same URL without it"
                    ),
                ));
            }
            ("vfs", _) => {
                return Err(UrlError::new(
                    text,
                    "calista opens SQLite files through SQLite's default VFS, whose locks the \
                     application's connections must share: remove vfs=",
                ));
            }
            ("mode" | "cache" | "immutable", _) => {
                return Err(UrlError::new(
                    text,
                    format!("sqlx takes no value {value:?} for `{key}`"),
                ));
            }
            _ => {
                return Err(UrlError::new(
                    text,
                    format!(
                        "sqlx knows no SQLite parameter `{key}` (it reads mode, cache, \
                         immutable and vfs)"
                    ),
                ));
            }
        }
    }
    Ok(memory)
}

/// The file a SQLite URL's path names: %-escapes decoded, relative to `cwd` unless
/// absolute (and `//x`, which sqlx opens as `/x`, as `/x`).
fn sqlite_file(text: &str, path: &str, cwd: &Path) -> Result<PathBuf, UrlError> {
    if path.ends_with('/') {
        return Err(UrlError::new(
            text,
            "the path ends with / so it names a folder, not a database file",
        ));
    }
    let decoded = String::from_utf8(percent_decode(path))
        .map_err(|_| UrlError::new(text, "its %-escapes do not decode to UTF-8 text"))?;
    if decoded.contains('\0') {
        return Err(UrlError::new(text, "the path holds a NUL character"));
    }
    let path = Path::new(&decoded);
    Ok(if path.is_absolute() {
        Path::new("/").join(decoded.trim_start_matches('/'))
    } else {
        cwd.join(path)
    })
}

impl PostgresUrl {
    /// The full URL, password included: for connecting, never for showing.
    pub fn expose_secret(&self) -> &str {
        &self.url
    }

    /// The database name, if the URL names one (a `dbname=` parameter wins, as in sqlx).
    pub fn database(&self) -> Option<String> {
        let parts = self.parts();
        let from_path = || {
            let path = parts.path.trim_start_matches('/');
            String::from_utf8(percent_decode(path)).ok()
        };
        self.query_value("dbname")
            .or_else(from_path)
            .filter(|db| !db.is_empty())
    }

    /// The password, decoded, if the URL has one: a `password=` parameter wins over the
    /// user part, as in sqlx, so this is the password sqlx connects with.
    pub fn password(&self) -> Option<String> {
        let from_userinfo = || {
            let (userinfo, _) = self.parts().authority.rsplit_once('@')?;
            let (_, password) = userinfo.split_once(':')?;
            String::from_utf8(percent_decode(password)).ok()
        };
        self.query_value("password")
            .or_else(from_userinfo)
            .filter(|password| !password.is_empty())
    }

    /// The same server and credentials, another database (a `dbname=` parameter is dropped).
    /// `database` must be a plain identifier; it is not encoded.
    pub fn with_database(&self, database: &str) -> Self {
        let parts = self.parts();
        let query: Vec<&str> = parts
            .query
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.starts_with("dbname="))
            .collect();
        let mut url = format!("postgres://{}/{database}", parts.authority);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Self { url }
    }

    /// Authority, path and query, split as the `url` crate (and so sqlx) splits them.
    fn parts(&self) -> UrlParts<'_> {
        let rest = self.url.strip_prefix("postgres://").unwrap_or(&self.url);
        let rest = rest.split('#').next().unwrap_or_default();
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query
            .find('/')
            .map_or((before_query, ""), |slash| before_query.split_at(slash));
        UrlParts {
            authority,
            path,
            query,
        }
    }

    /// The last value of a query parameter, decoded as a form, as sqlx does.
    fn query_value(&self, key: &str) -> Option<String> {
        self.parts()
            .query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .filter(|(k, _)| form_decode(k) == key)
            .map(|(_, v)| form_decode(v))
            .next_back()
    }
}

struct UrlParts<'a> {
    authority: &'a str,
    path: &'a str,
    query: &'a str,
}

impl fmt::Display for PostgresUrl {
    /// From the parts the URL was accepted with (not by searching the text, which a raw
    /// delimiter or a space in a password would mislead): `user:***@`, and `***` for the
    /// value of a `password` parameter. A fragment, which sqlx ignores, is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = self.parts();
        f.write_str("postgres://")?;
        match parts.authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => write!(f, "{user}:***@{host}")?,
                None => write!(f, "{userinfo}@{host}")?,
            },
            None => f.write_str(parts.authority)?,
        }
        f.write_str(parts.path)?;
        if !parts.query.is_empty() {
            let pairs: Vec<String> = parts
                .query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if form_decode(key) == "password" => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            write!(f, "?{}", pairs.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

impl fmt::Display for SqliteTarget {
    /// A URL that parses back to the same target: `sqlite:///` and the path, whose `%`,
    /// `?`, `#` and control characters are %-escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("sqlite:///:memory:"),
            Self::File(path) => {
                f.write_str("sqlite:///")?;
                for c in path.to_string_lossy().chars() {
                    if matches!(c, '%' | '?' | '#') || c.is_control() {
                        let mut bytes = [0; 4];
                        for byte in c.encode_utf8(&mut bytes).bytes() {
                            write!(f, "%{byte:02X}")?;
                        }
                    } else {
                        write!(f, "{c}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for DatabaseUrl {
    /// Redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => url.fmt(f),
            Self::Sqlite(target) => target.fmt(f),
        }
    }
}

/// Replaces every password in `text` with `***`: the `password` of
/// `scheme://user:password@host…` and the value of `password=` parameters. Everything else
/// is left as it is. Any text is fine, URL or not.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + "://".len());
        out.push_str(head);
        let consumed = redact_userinfo(tail, &mut out);
        rest = &tail[consumed..];
    }
    out.push_str(rest);
    redact_password_parameters(&out)
}

/// Given what follows a `://`, writes `user:***@` to `out` if it starts with a user and a
/// password, and returns how many bytes that replaces (0 when there is no password).
fn redact_userinfo(tail: &str, out: &mut String) -> usize {
    let token = &tail[..tail.find(char::is_whitespace).unwrap_or(tail.len())];
    let before_query = &token[..token.find(['?', '#']).unwrap_or(token.len())];
    // The user part ends at the last `@` before any query. Well-formed URLs escape `/`, `?`,
    // `#` and `@` in a password, but hand-written ones do not: the last `@` also catches a
    // raw `@` or `/`, and a raw `?` or `#` is assumed when what follows the `:` is no port.
    let at = before_query.rfind('@').or_else(|| {
        let authority = &token[..token.find(['/', '?', '#']).unwrap_or(token.len())];
        let (_, after_colon) = authority.split_once(':')?;
        if after_colon.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        token.rfind('@')
    });
    let Some(at) = at else { return 0 };
    let userinfo = &token[..at];
    match userinfo.split_once(':') {
        // A `/` before the `:` means this is a path, not a user name.
        Some((user, _)) if !user.contains('/') => {
            out.push_str(user);
            out.push_str(":***@");
            at + 1
        }
        _ => 0,
    }
}

/// Replaces the value of every `password=` (in any case), up to `&`, `#` or white space.
fn redact_password_parameters(text: &str) -> String {
    const KEY: &str = "password=";
    // ASCII lowercasing keeps every byte where it was, so positions carry over to `text`.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    while let Some(found) = lower[copied..].find(KEY) {
        let value_start = copied + found + KEY.len();
        let value_len = text[value_start..]
            .find(|c: char| c == '&' || c == '#' || c.is_whitespace())
            .unwrap_or(text.len() - value_start);
        out.push_str(&text[copied..value_start]);
        if value_len > 0 {
            out.push_str("***");
        }
        copied = value_start + value_len;
    }
    out.push_str(&text[copied..]);
    out
}

/// A query's key or value decoded as a form: `+` is a space, then `%XX` escapes.
fn form_decode(text: &str) -> String {
    String::from_utf8_lossy(&percent_decode(&text.replace('+', " "))).into_owned()
}

/// Decodes `%XX` escapes; anything else, a malformed escape included, is kept as it is
/// (as Python's `unquote` and the `url` crate do).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CWD: &str = "/srv/app";

    /// As the `calista` program reads it.
    fn parse(text: &str) -> Result<DatabaseUrl, UrlError> {
        DatabaseUrl::parse_as(text, Path::new(CWD), UrlConvention::SqlAlchemy)
    }

    fn sqlite_file(text: &str) -> PathBuf {
        match parse(text) {
            Ok(DatabaseUrl::Sqlite(SqliteTarget::File(path))) => path,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn postgres(text: &str) -> PostgresUrl {
        match parse(text) {
            Ok(DatabaseUrl::Postgres(url)) => url,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn rejection(text: &str) -> String {
        match parse(text) {
            Err(error) => error.to_string(),
            Ok(url) => panic!("{text} was accepted as {url}"),
        }
    }

    #[test]
    fn every_postgres_scheme_is_normalised_to_postgres() {
        for scheme in [
            "postgresql",
            "postgresql+psycopg",
            "postgresql+psycopg2",
            "postgres",
            "PostgreSQL",
        ] {
            let url = postgres(&format!("{scheme}://u:p@h:5432/db?sslmode=disable"));
            assert_eq!(
                url.expose_secret(),
                "postgres://u:p@h:5432/db?sslmode=disable",
                "{scheme}"
            );
            let options = sqlx::postgres::PgConnectOptions::from_str(url.expose_secret());
            assert!(options.is_ok(), "{scheme}: sqlx reads the normalised form");
        }
    }

    #[test]
    fn postgres_url_keeps_user_host_port_database_and_query() {
        let url = postgres("postgresql://app_user:pw@db.internal:6543/orders?sslmode=require");
        let options = sqlx::postgres::PgConnectOptions::from_str(url.expose_secret())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.get_username(), "app_user");
        assert_eq!(options.get_host(), "db.internal");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_database(), Some("orders"));
        assert_eq!(url.database().as_deref(), Some("orders"));
        assert_eq!(url.password().as_deref(), Some("pw"));
    }

    #[test]
    fn postgres_database_and_password_are_decoded_like_sqlx_reads_them() {
        let url = postgres("postgres://u:p%40ss%3Aw%2F@h/my%20db");
        assert_eq!(url.password().as_deref(), Some("p@ss:w/"));
        assert_eq!(url.database().as_deref(), Some("my db"));
        // Parameters win over the user part and the path, and `+` is a space in a query.
        let url = postgres("postgres://u:old@h/path_db?dbname=query_db&password=new+pw%21");
        assert_eq!(url.password().as_deref(), Some("new pw!"));
        assert_eq!(url.database().as_deref(), Some("query_db"));
        let url = postgres("postgres://u@h");
        assert_eq!((url.password(), url.database()), (None, None));
        let url = postgres("postgresql:///db?host=/var/run/postgresql");
        assert_eq!(url.database().as_deref(), Some("db"));
    }

    #[test]
    fn postgres_url_display_and_debug_are_redacted() {
        let url = postgres("postgresql://u:s3cret@h:5432/db");
        assert_eq!(url.to_string(), "postgres://u:***@h:5432/db");
        assert_eq!(
            format!("{url:?}"),
            "PostgresUrl(postgres://u:***@h:5432/db)"
        );
        let whole = DatabaseUrl::Postgres(url);
        assert_eq!(whole.to_string(), "postgres://u:***@h:5432/db");
        assert!(!format!("{whole:?}").contains("s3cret"));
    }

    #[test]
    fn three_slashes_is_relative_to_the_given_directory() {
        assert_eq!(
            sqlite_file("sqlite:///calista.db"),
            Path::new("/srv/app/calista.db")
        );
        assert_eq!(
            sqlite_file("sqlite:///data/x.db"),
            Path::new("/srv/app/data/x.db")
        );
        assert_eq!(
            sqlite_file("sqlite:///../x.db"),
            Path::new("/srv/app/../x.db")
        );
    }

    #[test]
    fn four_slashes_is_absolute() {
        assert_eq!(
            sqlite_file("sqlite:////var/lib/x.db"),
            Path::new("/var/lib/x.db")
        );
    }

    #[test]
    fn short_form_is_relative_unless_it_starts_with_a_slash() {
        assert_eq!(sqlite_file("sqlite:x.db"), Path::new("/srv/app/x.db"));
        assert_eq!(
            sqlite_file("sqlite:data/x.db"),
            Path::new("/srv/app/data/x.db")
        );
        assert_eq!(sqlite_file("sqlite:/abs/x.db"), Path::new("/abs/x.db"));
    }

    /// What a reader makes of a SQLite URL.
    #[derive(Debug)]
    enum Reading {
        File(&'static str),
        Memory,
        Refused(&'static str),
    }

    fn check(text: &str, convention: UrlConvention, expected: &Reading) {
        let parsed = DatabaseUrl::parse_as(text, Path::new(CWD), convention);
        match (expected, &parsed) {
            (Reading::File(file), Ok(DatabaseUrl::Sqlite(SqliteTarget::File(path)))) => {
                assert_eq!(path, Path::new(file), "{text} read by {convention:?}");
            }
            (Reading::Memory, Ok(DatabaseUrl::Sqlite(SqliteTarget::Memory))) => {}
            (Reading::Refused(why), Err(error)) => {
                let message = error.to_string();
                assert!(message.contains(why), "{text} by {convention:?}: {message}");
                assert!(
                    message.ends_with(convention.accepted_forms()),
                    "{text} by {convention:?} lists its forms: {message}"
                );
            }
            _ => panic!("{text} read by {convention:?}: expected {expected:?}, got {parsed:?}"),
        }
    }

    /// Each SQLite form as an application reads it (as sqlx does) and as the `calista`
    /// program reads it (as SQLAlchemy does), in the folder `/srv/app`.
    #[test]
    fn each_sqlite_form_read_by_sqlx_and_by_sqlalchemy() {
        use Reading::{File, Memory, Refused};
        let table = [
            // (URL, an application's reading, the program's reading)
            (
                "sqlite://data.db",
                File("/srv/app/data.db"),
                Refused("has no host"),
            ),
            (
                "sqlite:data.db",
                File("/srv/app/data.db"),
                File("/srv/app/data.db"),
            ),
            (
                "sqlite://./data.db",
                File("/srv/app/data.db"),
                Refused("has no host"),
            ),
            (
                "sqlite://db/orders.db",
                File("/srv/app/db/orders.db"),
                Refused("has no host"),
            ),
            (
                "sqlite:///var/app.db",
                File("/var/app.db"),
                File("/srv/app/var/app.db"),
            ),
            (
                "sqlite:////var/app.db",
                File("/var/app.db"),
                File("/var/app.db"),
            ),
            (
                "sqlite:/var/app.db",
                File("/var/app.db"),
                File("/var/app.db"),
            ),
            (
                "sqlite://my%20data.db",
                File("/srv/app/my data.db"),
                Refused("has no host"),
            ),
            (
                "sqlite://second.db?mode=rwc",
                File("/srv/app/second.db"),
                Refused("?parameters"),
            ),
            (
                "sqlite:x.db?mode=rw&cache=shared",
                File("/srv/app/x.db"),
                Refused("?parameters"),
            ),
            (
                "sqlite:x.db?immutable=false",
                File("/srv/app/x.db"),
                Refused("?parameters"),
            ),
            ("sqlite::memory:", Memory, Memory),
            ("sqlite://:memory:", Memory, Refused("has no host")),
            ("sqlite://?mode=memory", Memory, Refused("?parameters")),
            ("sqlite://x.db?mode=memory", Memory, Refused("?parameters")),
            (
                "sqlite:///:memory:",
                Refused("a file named `:memory:`"),
                Memory,
            ),
            (
                "sqlite:/:memory:",
                Refused("a file named `:memory:`"),
                File("/:memory:"),
            ),
            ("sqlite://", Refused("it names no file"), Memory),
            (
                "sqlite:",
                Refused("it names no file"),
                Refused("the file name is missing"),
            ),
            (
                "sqlite://?cache=shared",
                Refused("it names no file"),
                Refused("?parameters"),
            ),
            (
                "sqlite://x.db?mode=ro",
                Refused("read-only"),
                Refused("?parameters"),
            ),
            (
                "sqlite://x.db?immutable=1",
                Refused("read-only"),
                Refused("?parameters"),
            ),
            (
                "sqlite://x.db?vfs=unix-dotfile",
                Refused("default VFS"),
                Refused("?parameters"),
            ),
            (
                "sqlite://x.db?mode=fast",
                Refused("no value \"fast\" for `mode`"),
                Refused("?parameters"),
            ),
            (
                "sqlite://x.db?timeout=5",
                Refused("no SQLite parameter `timeout`"),
                Refused("?parameters"),
            ),
            (
                "SQLite://x.db",
                Refused("lowercase"),
                Refused("has no host"),
            ),
            (
                "SQLite:///x.db",
                Refused("lowercase"),
                File("/srv/app/x.db"),
            ),
            (
                "sqlite://data/",
                Refused("names a folder"),
                Refused("has no host"),
            ),
            ("sqlite://x%FF.db", Refused("UTF-8"), Refused("has no host")),
            ("sqlite:x%00.db", Refused("NUL"), Refused("NUL")),
            (
                "calista.db",
                Refused("sqlite://file.db"),
                Refused("sqlite:///file.db"),
            ),
        ];
        for (text, application, program) in &table {
            check(text, UrlConvention::Sqlx, application);
            check(text, UrlConvention::SqlAlchemy, program);
        }
        // The library's `parse` is an application's.
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/app.db", Path::new(CWD)),
            Ok(DatabaseUrl::Sqlite(SqliteTarget::File(
                "/var/app.db".into()
            )))
        );
    }

    /// Every SQLite URL an application's reading accepts names what sqlx itself opens.
    #[test]
    fn an_applications_reading_is_what_sqlx_opens() {
        for text in [
            "sqlite://data.db",
            "sqlite:data.db",
            "sqlite://./data.db",
            "sqlite://db/orders.db",
            "sqlite:///var/app.db",
            "sqlite:////var/app.db",
            "sqlite:/var/app.db",
            "sqlite://my%20data.db",
            "sqlite://a%3Fb%23c.db",
            "sqlite://second.db?mode=rwc",
            "sqlite:x.db?mode=rw&cache=shared",
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://x.db?mode=memory",
        ] {
            let sqlx = sqlx::sqlite::SqliteConnectOptions::from_str(text)
                .unwrap_or_else(|e| panic!("{text}: sqlx refuses it: {e}"));
            let ours = DatabaseUrl::parse(text, Path::new(CWD));
            // sqlx keeps this to itself but for its `Debug` form.
            let in_memory = format!("{sqlx:?}").contains("in_memory: true");
            match ours {
                Ok(DatabaseUrl::Sqlite(SqliteTarget::Memory)) => assert!(in_memory, "{text}"),
                Ok(DatabaseUrl::Sqlite(SqliteTarget::File(path))) => {
                    assert!(!in_memory, "{text}");
                    assert_eq!(path, Path::new(CWD).join(sqlx.get_filename()), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn memory_forms_are_in_memory() {
        for memory in [
            "sqlite:///:memory:",
            "sqlite://",
            "sqlite::memory:",
            " sqlite:// ",
        ] {
            assert_eq!(
                parse(memory),
                Ok(DatabaseUrl::Sqlite(SqliteTarget::Memory)),
                "{memory}"
            );
        }
    }

    #[test]
    fn sqlite_scheme_ignores_case_and_surrounding_space() {
        assert_eq!(
            sqlite_file("  SQLite:///x.db\n"),
            Path::new("/srv/app/x.db")
        );
    }

    #[test]
    fn percent_escapes_in_sqlite_paths_are_decoded() {
        assert_eq!(
            sqlite_file("sqlite:///my%20data.db"),
            Path::new("/srv/app/my data.db")
        );
        assert_eq!(
            sqlite_file("sqlite:////tmp/%C3%A9t%C3%A9%23%3F.db"),
            Path::new("/tmp/été#?.db")
        );
        // A malformed escape is kept, as SQLAlchemy keeps it.
        assert_eq!(
            sqlite_file("sqlite:///100%.db"),
            Path::new("/srv/app/100%.db")
        );
        assert_eq!(
            sqlite_file("sqlite:///a%+1.db"),
            Path::new("/srv/app/a%+1.db")
        );
    }

    #[test]
    fn sqlite_display_parses_back_to_the_same_target() {
        for path in [
            "/tmp/x.db",
            "/tmp/my data.db",
            "/tmp/100%.db",
            "/tmp/a?b#c.db",
            "/tmp/\u{e9}t\u{e9}.db",
            "/tmp/tab\there.db",
        ] {
            let target = DatabaseUrl::Sqlite(SqliteTarget::File(PathBuf::from(path)));
            // A file is shown with an absolute path, which both conventions read alike.
            for convention in [UrlConvention::SqlAlchemy, UrlConvention::Sqlx] {
                assert_eq!(
                    DatabaseUrl::parse_as(&target.to_string(), Path::new("/elsewhere"), convention),
                    Ok(target.clone()),
                    "{path} shown as {target}, read by {convention:?}"
                );
            }
        }
        assert_eq!(
            DatabaseUrl::Sqlite(SqliteTarget::File("/var/x.db".into())).to_string(),
            "sqlite:////var/x.db"
        );
        assert_eq!(SqliteTarget::Memory.to_string(), "sqlite:///:memory:");
    }

    #[test]
    fn default_is_calista_db_in_the_given_directory() {
        assert_eq!(
            DatabaseUrl::default_sqlite(Path::new(CWD)),
            DatabaseUrl::Sqlite(SqliteTarget::File("/srv/app/calista.db".into()))
        );
    }

    #[test]
    fn backend_names() {
        assert_eq!(
            parse("postgres://h/db").unwrap().backend_name(),
            "PostgreSQL"
        );
        assert_eq!(parse("sqlite://").unwrap().backend_name(), "SQLite");
    }

    #[test]
    fn other_forms_are_rejected_listing_every_accepted_form() {
        for (bad, why) in [
            ("", "the database URL is empty"),
            ("   ", "the database URL is empty"),
            ("mysql://u:pw@h/db", "mysql is not supported"),
            ("MariaDB://h/db", "mariadb is not supported"),
            ("postgresql+asyncpg://h/db", "the driver `asyncpg`"),
            ("http://x", "the scheme `http` is unknown"),
            ("calista.db", "does not start with postgresql:// or sqlite:"),
            ("localhost:5432/db", "does not start with"),
            ("sqlite:", "the file name is missing"),
            ("sqlite:/", "names a folder"),
            ("sqlite:///", "the file name is missing"),
            ("sqlite:////", "names a folder"),
            ("sqlite:///data/", "names a folder"),
            ("sqlite://host/x.db", "has no host"),
            ("sqlite:///x.db?mode=ro", "take no ?parameters"),
            ("sqlite:///x%00.db", "NUL"),
            ("sqlite:///x%FF.db", "UTF-8"),
            ("postgres://h:notaport/db", "sqlx cannot read it"),
            ("postgresql:///u:pw@h/db", "in the wrong place"),
        ] {
            let message = rejection(bad);
            assert!(message.contains(why), "{bad:?}: {message}");
            let forms: Vec<&str> = message.lines().skip(1).collect();
            assert_eq!(forms.len(), 5, "{message}");
            assert!(forms.iter().all(|line| line.starts_with("  ")), "{message}");
            for form in [
                "postgresql://user:password@host:5432/dbname",
                "postgresql+psycopg://",
                "postgresql+psycopg2://",
                "postgres://",
                "sqlite:///relative/path.db",
                "sqlite:////absolute/path.db",
                "sqlite:path.db",
                "sqlite:///:memory:",
                "sqlite://",
            ] {
                assert!(message.contains(form), "{bad:?} lacks {form}: {message}");
            }
        }
    }

    #[test]
    fn rejection_shows_the_value_without_its_password() {
        let message = rejection("mysql://admin:hunter2@db/app");
        assert!(
            message.starts_with("`mysql://***@db/app` is not an accepted database URL"),
            "{message}"
        );
        let message = rejection("postgres://admin:hunter2@h:bad/db?password=hunter2");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_rejected_url_shows_its_scheme_and_host_but_nothing_that_could_be_a_password() {
        for (bad, shown) in [
            ("postgresql//user:pw@h/db", "`postgresql//***@h/db`"),
            ("postgres:/user:pw@h/db", "`postgres:/***@h/db`"),
            ("postgresql:user:pw@h/db", "`postgresql:***@h/db`"),
            ("postgres:pw@h/db", "`postgres:***@h/db`"),
            ("postgres://user:pw", "`postgres://user:***`"),
            ("postgres://user:pw/db", "`postgres://user:***/db`"),
            ("postgres://u:p/w@h:x/db", "`postgres://***@h:x/db`"),
            (
                "http://h/db?a=1&password=pw x&b=2",
                "`http://h/db?a=1&password=***&b=2`",
            ),
            ("postgres:u:pw@h://x", "`postgres:***@h://x`"),
            ("sqlite://user:pw@h/x.db", "`sqlite://***@h/x.db`"),
            ("calista.db", "`calista.db`"),
            ("localhost:5432/db", "`localhost:5432/db`"),
            ("postgrespostgres:pw", "`postgrespostgres:***`"),
            ("postgrespw@h", "`***@h`"),
        ] {
            let message = rejection(bad);
            assert!(message.starts_with(shown), "{bad}: {message}");
            assert!(!message.contains("pw"), "{bad}: {message}");
        }
        // A part of the text that a cause repeats is hidden there too.
        let error = UrlError::new("postgres:Secret@h", "the server said Secret");
        assert!(!error.to_string().contains("Secret"), "{error}");
    }

    #[test]
    fn a_postgres_url_shows_its_parts_with_the_password_hidden_whatever_it_holds() {
        for (url, shown) in [
            ("postgres://u:my%20pw@h/db", "postgres://u:***@h/db"),
            ("postgres://u:my pw@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p@w@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=pw&sslmode=require",
                "postgres://u@h/db?password=***&sslmode=require",
            ),
            (
                "postgres://u@h/db?pass%77ord=pw",
                "postgres://u@h/db?pass%77ord=***",
            ),
        ] {
            match parse(url) {
                Ok(DatabaseUrl::Postgres(parsed)) => assert_eq!(parsed.to_string(), shown, "{url}"),
                // sqlx may refuse one; then the rejection must hide it.
                other => assert!(!format!("{other:?}").contains("pw"), "{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn redaction_hides_the_password_of_a_url() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://:pw@h/db"), "postgres://:***@h/db");
        assert_eq!(
            redact("error at postgresql://u:pw@h:1/db: refused"),
            "error at postgresql://u:***@h:1/db: refused"
        );
        assert_eq!(
            redact("two: a://x:1@h and b://y:2@k"),
            "two: a://x:***@h and b://y:***@k"
        );
    }

    #[test]
    fn redaction_hides_a_password_holding_url_delimiters() {
        // Escaped, as it should be.
        assert_eq!(redact("postgres://u:p%40w@h/db"), "postgres://u:***@h/db");
        // Raw, as people write them anyway.
        for raw in ["p@w", "p/w", "p?w", "p#w", "p:w", "p@w@x", "p?w@x/y"] {
            let text = format!("postgres://u:{raw}@h/db");
            assert_eq!(redact(&text), "postgres://u:***@h/db", "{text}");
        }
    }

    #[test]
    fn redaction_hides_password_parameters() {
        assert_eq!(
            redact("postgres://u@h/db?password=pw&x=1"),
            "postgres://u@h/db?password=***&x=1"
        );
        assert_eq!(
            redact("postgres://u@h/db?sslmode=disable&PASSWORD=pw#frag"),
            "postgres://u@h/db?sslmode=disable&PASSWORD=***#frag"
        );
        assert_eq!(
            redact("host=h password=pw dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert_eq!(redact("password="), "password=");
    }

    #[test]
    fn redaction_leaves_everything_else_untouched() {
        for text in [
            "sqlite:///x.db",
            "sqlite:////var/lib/x.db",
            "no url here",
            "postgres://u@h:5432/db",
            "postgres://h:5432/db?application_name=a@b",
            "postgres://u@h/db?application_name=me@x",
            "postgres://[::1]:5432/db",
            "see https://example.com/a:b/c",
            "caf\u{e9} \u{1F600} ://",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        for text in [
            "postgres://u:pw@h/db?password=x",
            "a://b://u:p@h",
            "postgres://u:p?w@h",
        ] {
            let once = redact(text);
            assert_eq!(redact(&once), once, "{text}");
        }
    }

    /// A small deterministic generator (xorshift), so the test needs no dependency and
    /// fails the same way every time.
    struct Generator(u64);

    impl Generator {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            let index = usize::try_from(self.next() % items.len() as u64).unwrap_or(0);
            &items[index]
        }

        fn text(&mut self, max_len: u64) -> String {
            const PIECES: &[&str] = &[
                ":",
                "/",
                "//",
                "@",
                "?",
                "#",
                "%",
                "%4",
                "%40",
                "%ZZ",
                "&",
                "=",
                "password=",
                "://",
                "+",
                " ",
                "\n",
                "\0",
                "\u{e9}",
                "\u{1F600}",
                "\u{7f}",
                "\u{feff}",
                "sqlite",
                ":memory:",
                "postgres",
                "u",
                "p",
                "h",
                "5432",
                "db",
                ".",
                "[",
                "]",
                "\\",
                "-",
            ];
            let mut text = String::new();
            for _ in 0..self.next() % max_len {
                if self.next().is_multiple_of(8) {
                    // Any code point at all.
                    let c = char::from_u32(u32::try_from(self.next() % 0x11_0000).unwrap_or(0));
                    text.push(c.unwrap_or('\u{fffd}'));
                } else {
                    let piece = *self.pick::<&str>(PIECES);
                    text.push_str(piece);
                }
            }
            text
        }
    }

    #[test]
    fn parse_and_redact_never_panic_on_generated_text() {
        const PREFIXES: &[&str] = &[
            "",
            "postgres://",
            "postgresql+psycopg://",
            "sqlite:",
            "sqlite://",
            "sqlite:///",
            "sqlite:////",
            "x://",
        ];
        let mut generator = Generator(0x2545_f491_4f6c_dd1d);
        for _ in 0..5_000 {
            let prefix = *generator.pick(PREFIXES);
            let text = format!("{prefix}{}", generator.text(24));
            // Redacting twice (as the program does with messages that hold redacted URLs)
            // is fine too; on garbage it may hide more the second time, never less.
            let _ = redact(&redact(&text));
            if let Ok(DatabaseUrl::Postgres(url)) = parse(&text) {
                let _ = (url.database(), url.password(), url.to_string());
            }
        }
    }

    #[test]
    fn generated_passwords_never_survive_redaction_or_parsing() {
        const ALPHABET: &[char] = &[
            'a',
            'Z',
            '9',
            '!',
            '*',
            '$',
            '%',
            '@',
            '/',
            ':',
            '?',
            '#',
            '\u{e9}',
            '\u{1F600}',
        ];
        let mut generator = Generator(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3_000 {
            // A marker the rest of the URL cannot contain, then random characters.
            let mut password = String::from("S3CR");
            for _ in 0..generator.next() % 12 {
                password.push(*generator.pick(ALPHABET));
            }
            let scheme =
                *generator.pick(&["postgresql", "postgres", "postgresql+psycopg2", "mysql"]);
            let tail = *generator.pick(&["", ":5432", ":5432/db", "/db?sslmode=disable", "/db#x"]);
            for text in [
                format!("{scheme}://user:{password}@host{tail}"),
                format!("{scheme}://user@host/db?password={password}"),
            ] {
                // Only a password that is itself free of `&`, `#` and spaces can be found as
                // a parameter value; the user-part form has no such limit.
                if text.contains("?password=") && password.contains(['&', '#']) {
                    continue;
                }
                assert!(!redact(&text).contains("S3CR"), "{text}");
                match parse(&text) {
                    Ok(url) => assert!(!url.to_string().contains("S3CR"), "{text}"),
                    Err(error) => assert!(!error.to_string().contains("S3CR"), "{text}"),
                }
            }
        }
    }
}
