//! Database URLs, in the forms CALISTA users already have (with their SQLAlchemy meaning),
//! and their redaction: a password never reaches output, logs or errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Every accepted form, for error messages.
pub const ACCEPTED_FORMS: &str = "postgresql://user:password@host:5432/dbname (also postgresql+psycopg://, \
     postgresql+psycopg2://, postgres://), sqlite:///relative/path.db (three slashes: relative), \
     sqlite:////absolute/path.db (four: absolute), sqlite:///:memory:, sqlite:path.db";

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not an accepted database URL ({reason}); accepted forms: {ACCEPTED_FORMS}")]
pub struct UrlError {
    /// The URL, redacted.
    shown: String,
    /// What is wrong with it.
    reason: String,
}

impl UrlError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            shown: redact(text),
            reason: reason.into(),
        }
    }
}

impl DatabaseUrl {
    /// Parses a URL; a relative SQLite path is relative to `cwd`.
    pub fn parse(text: &str, cwd: &Path) -> Result<Self, UrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UrlError::new(text, "it is empty"));
        }
        if let Some(rest) = text.strip_prefix("sqlite:") {
            return parse_sqlite(text, rest, cwd).map(Self::Sqlite);
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(UrlError::new(
                text,
                "it has no scheme such as postgresql:// or sqlite:///",
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" | "postgresql+psycopg" | "postgresql+psycopg2" => {
                let url = format!("postgres://{rest}");
                // sqlx decides what it can connect with; a URL it cannot read is a setting
                // error now, not a connection error later.
                sqlx::postgres::PgConnectOptions::from_str(&url).map_err(|e| {
                    UrlError::new(
                        text,
                        format!("it cannot be read: {}", redact(&e.to_string())),
                    )
                })?;
                Ok(Self::Postgres(PostgresUrl { url }))
            }
            "mysql" | "mariadb" | "mssql" | "oracle" => Err(UrlError::new(
                text,
                format!("{scheme} is not supported: CALISTA runs on PostgreSQL and SQLite"),
            )),
            _ => Err(UrlError::new(
                text,
                format!("the scheme `{scheme}` is unknown"),
            )),
        }
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

fn parse_sqlite(text: &str, rest: &str, cwd: &Path) -> Result<SqliteTarget, UrlError> {
    if rest.contains('?') {
        return Err(UrlError::new(
            text,
            "query parameters are not supported on SQLite URLs",
        ));
    }
    let path = if let Some(after) = rest.strip_prefix("//") {
        // SQLAlchemy: sqlite:// is memory; sqlite:///path is relative; sqlite:////path absolute.
        match after {
            "" => return Ok(SqliteTarget::Memory),
            _ if !after.starts_with('/') => {
                return Err(UrlError::new(
                    text,
                    "a SQLite URL has no host: write sqlite:///file.db (three slashes)",
                ));
            }
            _ => &after[1..],
        }
    } else {
        rest
    };
    match path {
        ":memory:" => Ok(SqliteTarget::Memory),
        path if path.is_empty() || path.ends_with('/') => {
            Err(UrlError::new(text, "the SQLite file name is missing"))
        }
        path => {
            let decoded = percent_decode(path)
                .ok_or_else(|| UrlError::new(text, "the path has a bad %-escape"))?;
            let path = Path::new(&decoded);
            Ok(SqliteTarget::File(if path.is_absolute() {
                path.to_owned()
            } else {
                cwd.join(path)
            }))
        }
    }
}

impl PostgresUrl {
    /// The full URL, password included: for connecting, never for showing.
    pub fn expose_secret(&self) -> &str {
        &self.url
    }

    /// The database name, if the URL names one.
    pub fn database(&self) -> Option<String> {
        let after = &self.url["postgres://".len()..];
        let path = after.split(['?', '#']).next()?.split_once('/')?.1;
        percent_decode(path).filter(|db| !db.is_empty())
    }

    /// The password, decoded, if the URL has one (in the user part or as `password=`).
    pub fn password(&self) -> Option<String> {
        let after = &self.url["postgres://".len()..];
        let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
        let from_userinfo = authority
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .and_then(|(_, password)| percent_decode(password));
        from_userinfo.or_else(|| {
            let query = after.split_once('?')?.1;
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("password="))
                .and_then(percent_decode)
        })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", redact(&self.url))
    }
}

impl fmt::Display for SqliteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("sqlite:///:memory:"),
            Self::File(path) if path.is_absolute() => write!(f, "sqlite:///{}", path.display()),
            Self::File(path) => write!(f, "sqlite:///{}", path.display()),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => url.fmt(f),
            Self::Sqlite(target) => target.fmt(f),
        }
    }
}

/// Replaces every password in `text`: the `password` of `scheme://user:password@host`
/// and the value of `password=` parameters. Everything else is left as it is.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority
            .rfind('@')
            .map(|at| (&authority[..at], &authority[at..]))
        {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                out.push_str(user);
                out.push_str(":***");
                out.push_str(host);
            }
            _ => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    redact_password_parameters(&out)
}

fn redact_password_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("password=") {
        let (before, after) = rest.split_at(at + "password=".len());
        out.push_str(before);
        let end = after
            .find(|c: char| c == '&' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DatabaseUrl, UrlError> {
        DatabaseUrl::parse(text, Path::new("/work/app"))
    }

    fn file(text: &str) -> PathBuf {
        match parse(text) {
            Ok(DatabaseUrl::Sqlite(SqliteTarget::File(path))) => path,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn sqlalchemy_sqlite_forms_keep_their_meaning() {
        assert_eq!(
            file("sqlite:///calista.db"),
            Path::new("/work/app/calista.db")
        );
        assert_eq!(
            file("sqlite:///data/x.db"),
            Path::new("/work/app/data/x.db")
        );
        assert_eq!(file("sqlite:////var/lib/x.db"), Path::new("/var/lib/x.db"));
        assert_eq!(file("sqlite:x.db"), Path::new("/work/app/x.db"));
        assert_eq!(file("sqlite:/abs/x.db"), Path::new("/abs/x.db"));
        assert_eq!(
            file("sqlite:///my%20data.db"),
            Path::new("/work/app/my data.db")
        );
        for memory in ["sqlite:///:memory:", "sqlite://", "sqlite::memory:"] {
            assert_eq!(
                parse(memory),
                Ok(DatabaseUrl::Sqlite(SqliteTarget::Memory)),
                "{memory}"
            );
        }
    }

    #[test]
    fn postgres_forms_are_normalised() {
        for text in [
            "postgresql://u:p@h:5432/db",
            "postgresql+psycopg://u:p@h:5432/db",
            "postgresql+psycopg2://u:p@h:5432/db",
            "postgres://u:p@h:5432/db",
        ] {
            let DatabaseUrl::Postgres(url) = parse(text).unwrap() else {
                panic!("{text}")
            };
            assert_eq!(url.expose_secret(), "postgres://u:p@h:5432/db");
            assert_eq!(url.database().as_deref(), Some("db"));
            assert_eq!(url.password().as_deref(), Some("p"));
            assert_eq!(url.to_string(), "postgres://u:***@h:5432/db");
        }
        let DatabaseUrl::Postgres(url) =
            parse("postgresql://u@h/db?sslmode=disable&password=p%40ss").unwrap()
        else {
            panic!()
        };
        assert_eq!(url.password().as_deref(), Some("p@ss"));
        assert_eq!(
            url.to_string(),
            "postgres://u@h/db?sslmode=disable&password=***"
        );
        let DatabaseUrl::Postgres(url) = parse("postgres://u:p%40ss%3Aw@h/db").unwrap() else {
            panic!()
        };
        assert_eq!(url.password().as_deref(), Some("p@ss:w"));
    }

    #[test]
    fn other_forms_are_rejected_with_the_accepted_ones() {
        for bad in [
            "",
            "mysql://u:secret@h/db",
            "sqlite:/",
            "sqlite://host/x.db",
            "calista.db",
            "http://x",
            "sqlite:///x.db?mode=ro",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite:////absolute/path.db"), "{bad}: {err}");
            assert!(!err.contains("secret"), "{bad}: {err}");
        }
    }

    #[test]
    fn redaction_hides_passwords_and_nothing_else() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("error at postgresql://u:pw@h:1/db: refused"),
            "error at postgresql://u:***@h:1/db: refused"
        );
        assert_eq!(
            redact("postgres://u@h/db?password=pw&x=1"),
            "postgres://u@h/db?password=***&x=1"
        );
        assert_eq!(redact("postgres://u:p%40w@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("two: a://x:1@h and b://y:2@k"),
            "two: a://x:***@h and b://y:***@k"
        );
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
        assert_eq!(redact("no url here"), "no url here");
    }

    #[test]
    fn parsing_and_redaction_never_panic() {
        let alphabet: Vec<char> = ":/@?#%&=pP s\u{e9}\u{1F600}ql-_.0".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let mut text: String = ["postgres://", "sqlite:", "sqlite:///", "", "x://"]
                [(seed >> 40) as usize % 5]
                .into();
            let mut s = seed;
            for _ in 0..len {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                text.push(alphabet[(s >> 33) as usize % alphabet.len()]);
            }
            let _ = parse(&text);
            let redacted = redact(&text);
            assert!(redacted.len() + 64 >= text.len() / 2);
        }
    }
}
