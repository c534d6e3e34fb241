//! Where an imported migration came from: the `-- calista:imported` directive.
//!
//! `calista db import` writes one into every file it makes from another tool's migrations,
//! so that a database that tool manages can be matched with the files (its row for each
//! migration found, checksums compared where the tool kept one; DESIGN §12), and so that
//! the lint leaves history that already ran alone:
//!
//! ```sql
//! -- calista:imported sqlx 20230101120000 sha384:<96 hex digits> -- 20230101120000_create_users.sql
//! -- calista:imported diesel 20230101120000 -- 2023-01-01-120000_create_users/up.sql
//! -- calista:imported refinery 3 siphash13:8317465937590432178 -- V3__add_index.sql
//! -- calista:imported alembic 1975ea83b712 -- upgrade.sql
//! ```
//!
//! The form is `<tool> <version> [<checksum>] -- <source file>`: the version as the tool
//! records it in its own table, the checksum in the tool's own terms (only for the tools
//! that keep one, and then required), and the source file as it was named in its folder.
//! Standard library only: the `migrations!()` macro checks the form at build time.

use std::fmt;

/// A migration tool `calista db import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// sqlx (`sqlx migrate`, `sqlx::migrate!()`): `_sqlx_migrations`.
    Sqlx,
    /// diesel (`diesel migration`, `embed_migrations!()`): `__diesel_schema_migrations`.
    Diesel,
    /// refinery: `refinery_schema_history`.
    Refinery,
    /// Alembic (Python): `alembic_version`.
    Alembic,
}

impl Tool {
    /// Every tool, in the order messages list them.
    pub const ALL: [Tool; 4] = [Tool::Sqlx, Tool::Diesel, Tool::Refinery, Tool::Alembic];

    /// The name used in the directive and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sqlx => "sqlx",
            Self::Diesel => "diesel",
            Self::Refinery => "refinery",
            Self::Alembic => "alembic",
        }
    }

    /// The tool of a name, as [`Tool::name`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// The table in which the tool records what it applied.
    pub const fn history_table(self) -> &'static str {
        match self {
            Self::Sqlx => "_sqlx_migrations",
            Self::Diesel => "__diesel_schema_migrations",
            Self::Refinery => "refinery_schema_history",
            Self::Alembic => "alembic_version",
        }
    }

    /// The tool whose history table is named `table`.
    pub fn from_history_table(table: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|tool| tool.history_table() == table)
    }

    /// A well-formed directive for this tool, for messages.
    pub const fn example(self) -> &'static str {
        match self {
            Self::Sqlx => {
                "-- calista:imported sqlx 20230101120000 sha384:<96 hex digits> -- 20230101120000_create_users.sql"
            }
            Self::Diesel => {
                "-- calista:imported diesel 20230101120000 -- 2023-01-01-120000_create_users/up.sql"
            }
            Self::Refinery => {
                "-- calista:imported refinery 3 siphash13:<decimal number> -- V3__add_index.sql"
            }
            Self::Alembic => "-- calista:imported alembic 1975ea83b712 -- upgrade.sql",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the other tool recorded for a migration: its version, and its checksum where it
/// keeps one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin<'a> {
    /// A row of `_sqlx_migrations`: `version`, and `checksum`, the SHA-384 of the (up)
    /// file's bytes.
    Sqlx {
        /// The version, the integer before the first `_` of the file name.
        version: i64,
        /// SHA-384 of the source file, as sqlx computes and stores it.
        checksum: [u8; 48],
    },
    /// A row of `__diesel_schema_migrations`: `version`, the folder name before its first
    /// `_`, without `-`. diesel keeps no checksum.
    Diesel {
        /// The version as diesel stores it.
        version: &'a str,
    },
    /// A row of `refinery_schema_history`: `version` and `checksum`, refinery's SipHash-1-3
    /// of the migration's name, version and SQL, stored as a decimal number.
    Refinery {
        /// The version, the number after `V`.
        version: i64,
        /// The checksum as refinery computes it.
        checksum: u64,
    },
    /// An Alembic revision, as `alembic_version.version_num` holds it. Alembic keeps no
    /// checksum.
    Alembic {
        /// The revision id.
        revision: &'a str,
    },
}

impl Origin<'_> {
    /// The tool.
    pub fn tool(&self) -> Tool {
        match self {
            Self::Sqlx { .. } => Tool::Sqlx,
            Self::Diesel { .. } => Tool::Diesel,
            Self::Refinery { .. } => Tool::Refinery,
            Self::Alembic { .. } => Tool::Alembic,
        }
    }
}

/// One `-- calista:imported` directive: where the migration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported<'a> {
    /// The tool, the version it recorded, its checksum.
    pub origin: Origin<'a>,
    /// The source file, as named in the tool's folder.
    pub source: &'a str,
}

impl Imported<'_> {
    /// The directive line, which [`Imported::parse`] reads back.
    pub fn directive(&self) -> String {
        let version_and_checksum = match self.origin {
            Origin::Sqlx { version, checksum } => {
                let hex: String = checksum.iter().map(|b| format!("{b:02x}")).collect();
                format!("{version} sha384:{hex}")
            }
            Origin::Diesel { version } => version.to_owned(),
            Origin::Refinery { version, checksum } => format!("{version} siphash13:{checksum}"),
            Origin::Alembic { revision } => revision.to_owned(),
        };
        format!(
            "-- calista:imported {} {version_and_checksum} -- {}",
            self.origin.tool(),
            self.source
        )
    }
}

impl<'a> Imported<'a> {
    /// Reads what follows `calista:imported`: `<tool> <version> [<checksum>] -- <source file>`.
    pub fn parse(rest: &'a str) -> Result<Self, OriginError> {
        let (words, source) = match rest.find(" --") {
            Some(at) => (&rest[..at], Some(rest[at + 3..].trim())),
            None => (rest, None),
        };
        let mut words = words.split_whitespace();
        let tool = words.next().ok_or(OriginError::NoTool)?;
        let tool =
            Tool::from_name(tool).ok_or_else(|| OriginError::UnknownTool(tool.to_owned()))?;
        let version = words.next().ok_or(OriginError::NoVersion(tool))?;
        let checksum = words.next();
        if let Some(extra) = words.next() {
            return Err(OriginError::Extra(tool, extra.to_owned()));
        }
        let bad_version = || OriginError::BadVersion(tool, version.to_owned());
        let integer = || version.parse::<i64>().map_err(|_| bad_version());
        let origin = match tool {
            Tool::Sqlx => Origin::Sqlx {
                version: integer()?,
                checksum: sha384(checksum.ok_or(OriginError::NoChecksum(tool))?).ok_or_else(
                    || OriginError::BadChecksum(tool, checksum.unwrap_or_default().to_owned()),
                )?,
            },
            Tool::Refinery => Origin::Refinery {
                version: integer()?,
                checksum: siphash13(checksum.ok_or(OriginError::NoChecksum(tool))?).ok_or_else(
                    || OriginError::BadChecksum(tool, checksum.unwrap_or_default().to_owned()),
                )?,
            },
            Tool::Diesel | Tool::Alembic => {
                if let Some(checksum) = checksum {
                    return Err(OriginError::Extra(tool, checksum.to_owned()));
                }
                match tool {
                    Tool::Diesel => Origin::Diesel { version },
                    // `alembic_version.version_num` is VARCHAR(32).
                    _ if version.len() <= 32 => Origin::Alembic { revision: version },
                    _ => return Err(bad_version()),
                }
            }
        };
        match source {
            Some(source) if !source.is_empty() => Ok(Self { origin, source }),
            _ => Err(OriginError::NoSource(tool)),
        }
    }
}

/// `sha384:<96 hex digits>`.
fn sha384(text: &str) -> Option<[u8; 48]> {
    let hex = text.strip_prefix("sha384:")?.as_bytes();
    if hex.len() != 96 {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .filter(|_| !b.is_ascii_uppercase())
    };
    let mut out = [0u8; 48];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let high = digit(pair[0])?;
        let low = digit(pair[1])?;
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(out)
}

/// `siphash13:<decimal u64>`.
fn siphash13(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("siphash13:")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// What is wrong with a `-- calista:imported` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginError {
    /// Nothing follows `calista:imported`.
    NoTool,
    /// The first word names no tool calista imports from.
    UnknownTool(String),
    /// No version after the tool.
    NoVersion(Tool),
    /// The version is not one the tool records (sqlx and refinery: an integer; Alembic: at
    /// most 32 characters).
    BadVersion(Tool, String),
    /// sqlx or refinery without the checksum it keeps.
    NoChecksum(Tool),
    /// A checksum not in the tool's form (`sha384:<96 hex digits>`, `siphash13:<number>`).
    BadChecksum(Tool, String),
    /// A word the tool's form has no place for (a checksum for a tool that keeps none).
    Extra(Tool, String),
    /// No `-- <source file>` at the end.
    NoSource(Tool),
    /// A second `-- calista:imported` line in the same file.
    Repeated,
}

impl OriginError {
    /// The tool the directive names, when it names one.
    pub fn tool(&self) -> Option<Tool> {
        match self {
            Self::NoTool | Self::UnknownTool(_) | Self::Repeated => None,
            Self::NoVersion(tool)
            | Self::BadVersion(tool, _)
            | Self::NoChecksum(tool)
            | Self::BadChecksum(tool, _)
            | Self::Extra(tool, _)
            | Self::NoSource(tool) => Some(*tool),
        }
    }
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTool => f.write_str("names no tool"),
            Self::UnknownTool(name) => write!(
                f,
                "names `{name}`, which is not a tool calista imports from (sqlx, diesel, refinery, alembic)"
            ),
            Self::NoVersion(tool) => write!(f, "gives no {tool} version"),
            Self::BadVersion(Tool::Alembic, version) => write!(
                f,
                "gives `{version}`, longer than an Alembic revision id (at most 32 characters)"
            ),
            Self::BadVersion(tool, version) => {
                write!(
                    f,
                    "gives `{version}`, which is not a {tool} version (an integer)"
                )
            }
            Self::NoChecksum(tool) => write!(
                f,
                "gives no checksum; {tool} keeps one for every migration, to compare with"
            ),
            Self::BadChecksum(Tool::Sqlx, found) => write!(
                f,
                "gives `{found}`, not sqlx's checksum `sha384:<96 lowercase hex digits>`"
            ),
            Self::BadChecksum(tool, found) => write!(
                f,
                "gives `{found}`, not {tool}'s checksum `siphash13:<decimal number>`"
            ),
            Self::Extra(tool @ (Tool::Diesel | Tool::Alembic), word) => {
                write!(
                    f,
                    "has `{word}` after the version, but {tool} keeps no checksum"
                )
            }
            Self::Extra(_, word) => write!(f, "has `{word}` after the checksum"),
            Self::NoSource(_) => f.write_str("does not end with `-- <source file>`"),
            Self::Repeated => f.write_str("is the file's second; a migration comes from one place"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = "sha384:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";

    #[test]
    fn each_tool_reads_back_what_it_writes() {
        let mut checksum = [0u8; 48];
        for (i, b) in checksum.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap();
        }
        let cases = [
            Imported {
                origin: Origin::Sqlx {
                    version: 20230101120000,
                    checksum,
                },
                source: "20230101120000_create users.up.sql",
            },
            Imported {
                origin: Origin::Diesel {
                    version: "20230101120000",
                },
                source: "2023-01-01-120000_create_users/up.sql",
            },
            Imported {
                origin: Origin::Refinery {
                    version: 3,
                    checksum: u64::MAX,
                },
                source: "V3__add_index.sql",
            },
            Imported {
                origin: Origin::Alembic {
                    revision: "1975ea83b712",
                },
                source: "upgrade.sql",
            },
        ];
        for imported in cases {
            let line = imported.directive();
            let rest = line.strip_prefix("-- calista:imported").unwrap();
            assert_eq!(Imported::parse(rest), Ok(imported), "{line}");
        }
    }

    #[test]
    fn the_directive_is_written_in_the_documented_form() {
        let line = Imported {
            origin: Origin::Refinery {
                version: 3,
                checksum: 42,
            },
            source: "V3__add_index.sql",
        }
        .directive();
        assert_eq!(
            line,
            "-- calista:imported refinery 3 siphash13:42 -- V3__add_index.sql"
        );
    }

    #[test]
    fn malformed_directives_say_what_is_wrong() {
        let cases = [
            ("", OriginError::NoTool),
            (
                " flyway 1 -- V1__a.sql",
                OriginError::UnknownTool("flyway".into()),
            ),
            (" sqlx", OriginError::NoVersion(Tool::Sqlx)),
            (
                &format!(" sqlx 2023-01-01 {SUM} -- a.sql"),
                OriginError::BadVersion(Tool::Sqlx, "2023-01-01".into()),
            ),
            (" sqlx 1 -- 1_a.sql", OriginError::NoChecksum(Tool::Sqlx)),
            (
                " sqlx 1 sha384:abc -- 1_a.sql",
                OriginError::BadChecksum(Tool::Sqlx, "sha384:abc".into()),
            ),
            (
                &format!(
                    " sqlx 1 {} -- 1_a.sql",
                    SUM.to_uppercase().replace("SHA", "sha")
                ),
                OriginError::BadChecksum(Tool::Sqlx, SUM.to_uppercase().replace("SHA", "sha")),
            ),
            (
                " refinery 3 sha384:1 -- V3__a.sql",
                OriginError::BadChecksum(Tool::Refinery, "sha384:1".into()),
            ),
            (
                " refinery 3 siphash13:-1 -- V3__a.sql",
                OriginError::BadChecksum(Tool::Refinery, "siphash13:-1".into()),
            ),
            (
                " diesel 20230101120000 sha384:1 -- x/up.sql",
                OriginError::Extra(Tool::Diesel, "sha384:1".into()),
            ),
            (
                " alembic 0123456789abcdef0123456789abcdef0 -- up.sql",
                OriginError::BadVersion(Tool::Alembic, "0123456789abcdef0123456789abcdef0".into()),
            ),
            (
                " alembic 1975ea83b712",
                OriginError::NoSource(Tool::Alembic),
            ),
            (
                " alembic 1975ea83b712 --  ",
                OriginError::NoSource(Tool::Alembic),
            ),
        ];
        for (rest, error) in cases {
            assert_eq!(Imported::parse(rest), Err(error), "{rest:?}");
        }
    }

    #[test]
    fn the_source_is_everything_after_the_separator() {
        let parsed = Imported::parse(" alembic a1 -- dir -- with dashes/up.sql").unwrap();
        assert_eq!(parsed.source, "dir -- with dashes/up.sql");
    }
}
