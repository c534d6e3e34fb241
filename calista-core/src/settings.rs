//! Settings: command-line flag, then environment, then `calista.toml`, then default.
//!
//! Resolution is a fold over those layers, and every value remembers where it came from,
//! so that errors (and `calista config show`) can say "from CALISTA_DB_URL".

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::url::{self, DatabaseUrl, UrlError};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A key of the configuration file.
    File {
        /// The file, as given.
        path: PathBuf,
        /// The key, as `[db] url`.
        key: &'static str,
    },
    /// The built-in default.
    Default,
    /// The default for the environment in effect (production, development, ci).
    DefaultFor(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => f.write_str(flag),
            Self::Env(name) => write!(f, "env {name}"),
            Self::File { path, key } => write!(f, "{} {key}", path.display()),
            Self::Default => f.write_str("default"),
            Self::DefaultFor(environment) => write!(f, "default in {environment}"),
        }
    }
}

/// A resolved value and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// What the command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--db-url`.
    pub db_url: Option<String>,
    /// `--auto-upgrade`.
    pub auto_upgrade: bool,
    /// `--no-backup`.
    pub no_backup: bool,
    /// `--config`.
    pub config: Option<PathBuf>,
}

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Forward-only, backups on.
    Production,
    /// Downgrades allowed, backups off by default.
    Development,
    /// Like development, for continuous integration.
    Ci,
}

impl Environment {
    /// Whether downgrades may run.
    pub fn allows_downgrade(&self) -> bool {
        !matches!(self, Self::Production)
    }

    /// `production`, `development` or `ci`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Development => "development",
            Self::Ci => "ci",
        }
    }
}

/// How pending migrations are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionMode {
    /// All pending migrations in one transaction.
    All,
    /// One transaction per migration.
    Each,
}

/// Every setting, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the database is.
    pub db_url: Setting<DatabaseUrl>,
    /// Upgrade at start-up instead of refusing.
    pub auto_upgrade: Setting<bool>,
    /// Production, development or CI.
    pub environment: Setting<Environment>,
    /// Back up before upgrading.
    pub backup: Setting<bool>,
    /// Where backups go (`None`: the default folder).
    pub backup_dir: Setting<Option<PathBuf>>,
    /// How many backups to keep.
    pub backup_keep: Setting<u32>,
    /// The `pg_dump` program (`None`: found on `PATH`).
    pub pg_dump: Setting<Option<PathBuf>>,
    /// The PostgreSQL schema.
    pub schema: Setting<String>,
    /// One transaction for all, or one each.
    pub transaction_mode: Setting<TransactionMode>,
    /// The longest wait for the migration lock.
    pub lock_timeout: Setting<Duration>,
    /// The longest wait for a connection.
    pub connect_timeout: Setting<Duration>,
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// (setting, value with any password redacted, source), for `calista config show`.
    pub fn rows(&self) -> Vec<(&'static str, String, String)> {
        let on_off = |on: bool| if on { "on" } else { "off" }.to_owned();
        let seconds = |d: Duration| format!("{}s", d.as_secs());
        vec![
            (
                "database url",
                self.db_url.value.to_string(),
                self.db_url.source.to_string(),
            ),
            (
                "backend",
                self.db_url.value.backend_name().to_owned(),
                self.db_url.source.to_string(),
            ),
            (
                "auto upgrade",
                on_off(self.auto_upgrade.value),
                self.auto_upgrade.source.to_string(),
            ),
            (
                "environment",
                self.environment.value.name().to_owned(),
                self.environment.source.to_string(),
            ),
            (
                "backup",
                on_off(self.backup.value),
                self.backup.source.to_string(),
            ),
            (
                "backup dir",
                self.backup_dir.value.as_ref().map_or_else(
                    || {
                        format!(
                            "{} (beside the SQLite file, or here)",
                            crate::backup::DEFAULT_DIR_NAME
                        )
                    },
                    |d| d.display().to_string(),
                ),
                self.backup_dir.source.to_string(),
            ),
            (
                "backup keep",
                self.backup_keep.value.to_string(),
                self.backup_keep.source.to_string(),
            ),
            (
                "pg_dump",
                self.pg_dump.value.as_ref().map_or_else(
                    || "pg_dump (on PATH)".to_owned(),
                    |p| p.display().to_string(),
                ),
                self.pg_dump.source.to_string(),
            ),
            (
                "schema",
                self.schema.value.clone(),
                self.schema.source.to_string(),
            ),
            (
                "transaction",
                match self.transaction_mode.value {
                    TransactionMode::All => "all",
                    TransactionMode::Each => "each",
                }
                .to_owned(),
                self.transaction_mode.source.to_string(),
            ),
            (
                "lock timeout",
                seconds(self.lock_timeout.value),
                self.lock_timeout.source.to_string(),
            ),
            (
                "connect timeout",
                seconds(self.connect_timeout.value),
                self.connect_timeout.source.to_string(),
            ),
            (
                "config file",
                self.config_file
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
                String::new(),
            ),
        ]
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A named configuration file does not exist.
    #[error("the configuration file {path} (from {from}) does not exist; create it, or fix {from}")]
    ConfigNotFound {
        /// The file.
        path: PathBuf,
        /// `--config` or `env CALISTA_CONFIG`.
        from: String,
    },
    /// The configuration file cannot be read.
    #[error("cannot read the configuration file {path}")]
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("{path} is not valid TOML: {message}")]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key the program does not know (probably a typo).
    #[error("unknown setting `{key}` in {path}{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, as `[db] backup_kep`.
        key: String,
        /// "; did you mean …?" and the known keys.
        hint: String,
    },
    /// A value that cannot be used, from any source.
    #[error("{value} is not a valid {what} (from {from}): expected {expected}")]
    InvalidValue {
        /// What it was for, e.g. "auto-upgrade setting".
        what: &'static str,
        /// Where it came from.
        from: Source,
        /// The value as given (redacted), or its TOML type.
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// A database URL in no accepted form.
    #[error("invalid database URL (from {from})")]
    InvalidUrl {
        /// Where it came from.
        from: Source,
        /// What is wrong.
        #[source]
        error: UrlError,
    },
    /// The current directory cannot be read.
    #[error("cannot determine the current directory")]
    NoCurrentDir(#[source] std::io::Error),
}

/// The keys a configuration file may hold, by table.
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("app", &["env"]),
    (
        "db",
        &[
            "url",
            "auto_upgrade",
            "backup",
            "backup_dir",
            "backup_keep",
            "pg_dump",
            "schema",
            "transaction",
            "lock_timeout",
            "connect_timeout",
        ],
    ),
];

/// A configuration file, read and checked.
struct ConfigFile {
    /// As given (or `calista.toml`): how messages name it.
    shown: PathBuf,
    /// Its folder, for relative paths inside it.
    dir: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    fn read(path: &Path, shown: PathBuf) -> Result<Self, SettingsError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SettingsError::ConfigUnreadable {
                path: shown.clone(),
                source,
            })?;
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| SettingsError::ConfigSyntax {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
        for (name, value) in &table {
            let Some((_, keys)) = KNOWN_KEYS.iter().find(|(table, _)| table == name) else {
                return Err(unknown_key(&shown, name.clone()));
            };
            let Some(inner) = value.as_table() else {
                return Err(unknown_key(&shown, name.clone()));
            };
            if let Some(key) = inner.keys().find(|key| !keys.contains(&key.as_str())) {
                return Err(unknown_key(&shown, format!("[{name}] {key}")));
            }
        }
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(Self { shown, dir, table })
    }

    fn get(&self, key: &FileKey) -> Option<(&toml::Value, Source)> {
        let value = self.table.get(key.table)?.as_table()?.get(key.key)?;
        Some((
            value,
            Source::File {
                path: self.shown.clone(),
                key: key.shown,
            },
        ))
    }
}

fn unknown_key(path: &Path, key: String) -> SettingsError {
    let known: Vec<String> = KNOWN_KEYS
        .iter()
        .flat_map(|(table, keys)| keys.iter().map(move |k| format!("[{table}] {k}")))
        .collect();
    let closest = known
        .iter()
        .min_by_key(|k| distance(k, &key))
        .filter(|k| distance(k, &key) <= 3);
    let hint = match closest {
        Some(k) => format!("; did you mean `{k}`?"),
        None => format!("; known settings: {}", known.join(", ")),
    };
    SettingsError::UnknownKey {
        path: path.to_owned(),
        key,
        hint,
    }
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// A key of the configuration file.
struct FileKey {
    table: &'static str,
    key: &'static str,
    shown: &'static str,
}

macro_rules! key {
    ($table:literal, $key:literal) => {
        FileKey {
            table: $table,
            key: $key,
            shown: concat!("[", $table, "] ", $key),
        }
    };
}

/// The layers below the flags: environment, then file.
struct Layers<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<ConfigFile>,
    cwd: &'a Path,
}

/// A raw value from one layer, before it is interpreted.
enum Raw<'a> {
    Text(String),
    Toml(&'a toml::Value),
}

impl Layers<'_> {
    /// The first layer that sets a value: environment, then file.
    fn raw(&self, env: &'static str, key: &FileKey) -> Option<(Raw<'_>, Source)> {
        if let Some(value) = (self.env)(env) {
            return Some((Raw::Text(value), Source::Env(env)));
        }
        let (value, source) = self.file.as_ref()?.get(key)?;
        Some((Raw::Toml(value), source))
    }

    fn relative_base(&self, source: &Source) -> &Path {
        match (source, &self.file) {
            (Source::File { .. }, Some(file)) => &file.dir,
            _ => self.cwd,
        }
    }
}

fn invalid(what: &'static str, source: Source, raw: &Raw<'_>, expected: &str) -> SettingsError {
    let value = match raw {
        Raw::Text(text) => format!("{:?}", url::redact(text)),
        Raw::Toml(value) => format!("a TOML {}", value.type_str()),
    };
    SettingsError::InvalidValue {
        what,
        from: source,
        value,
        expected: expected.to_owned(),
    }
}

fn boolean(what: &'static str, raw: Raw<'_>, source: Source) -> Result<bool, SettingsError> {
    const EXPECTED: &str = "1/true/yes/on or 0/false/no/off (in calista.toml: true or false)";
    match &raw {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
        Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(invalid(what, source, &raw, EXPECTED)),
        },
        Raw::Toml(_) => Err(invalid(what, source, &raw, EXPECTED)),
    }
}

fn text(
    what: &'static str,
    raw: Raw<'_>,
    source: &Source,
    expected: &str,
) -> Result<String, SettingsError> {
    match &raw {
        Raw::Text(text) => Ok(text.trim().to_owned()),
        Raw::Toml(toml::Value::String(text)) => Ok(text.clone()),
        Raw::Toml(_) => Err(invalid(what, source.clone(), &raw, expected)),
    }
}

fn integer(
    what: &'static str,
    raw: Raw<'_>,
    source: Source,
    min: u64,
    max: u64,
) -> Result<u64, SettingsError> {
    let expected = format!("a whole number from {min} to {max}");
    let number = match &raw {
        Raw::Text(text) => text.trim().parse::<u64>().ok(),
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).ok(),
        Raw::Toml(_) => None,
    };
    number
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| invalid(what, source, &raw, &expected))
}

/// Resolves every setting. `env` reads the environment (tests pass their own); relative
/// paths are relative to `cwd`, or, in the configuration file, to the file's folder.
pub fn resolve(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Settings, SettingsError> {
    let file = match (&flags.config, env("CALISTA_CONFIG")) {
        (Some(path), _) => Some(named_file(path, cwd, "--config")?),
        (None, Some(path)) if !path.trim().is_empty() => Some(named_file(
            Path::new(path.trim()),
            cwd,
            "env CALISTA_CONFIG",
        )?),
        _ => {
            let implicit = cwd.join("calista.toml");
            if implicit.is_file() {
                Some(ConfigFile::read(&implicit, PathBuf::from("calista.toml"))?)
            } else {
                None
            }
        }
    };
    let layers = Layers { env, file, cwd };

    let db_url = match &flags.db_url {
        Some(text) => url_setting(text, Source::Flag("--db-url"), cwd)?,
        None => match layers.raw("CALISTA_DB_URL", &key!("db", "url")) {
            Some((raw, source)) => {
                let text = text("database URL", raw, &source, "a URL string")?;
                let base = layers.relative_base(&source).to_owned();
                url_setting(&text, source, &base)?
            }
            None => Setting {
                value: DatabaseUrl::default_sqlite(cwd),
                source: Source::Default,
            },
        },
    };

    let auto_upgrade = if flags.auto_upgrade {
        Setting {
            value: true,
            source: Source::Flag("--auto-upgrade"),
        }
    } else {
        match layers.raw("CALISTA_AUTO_UPGRADE", &key!("db", "auto_upgrade")) {
            Some((raw, source)) => Setting {
                value: boolean("auto-upgrade setting", raw, source.clone())?,
                source,
            },
            None => Setting {
                value: false,
                source: Source::Default,
            },
        }
    };

    let environment = match layers.raw("CALISTA_ENV", &key!("app", "env")) {
        Some((raw, source)) => {
            let expected = "production, development or ci";
            let value = match text("environment", raw, &source, expected)?
                .to_ascii_lowercase()
                .as_str()
            {
                "production" => Environment::Production,
                "development" => Environment::Development,
                "ci" => Environment::Ci,
                other => {
                    return Err(invalid(
                        "environment",
                        source,
                        &Raw::Text(other.to_owned()),
                        expected,
                    ));
                }
            };
            Setting { value, source }
        }
        None => Setting {
            value: Environment::Production,
            source: Source::Default,
        },
    };

    let backup = if flags.no_backup {
        Setting {
            value: false,
            source: Source::Flag("--no-backup"),
        }
    } else {
        match layers.raw("CALISTA_BACKUP", &key!("db", "backup")) {
            Some((raw, source)) => Setting {
                value: boolean("backup setting", raw, source.clone())?,
                source,
            },
            None => Setting {
                value: environment.value == Environment::Production,
                source: Source::DefaultFor(environment.value.name()),
            },
        }
    };

    let path_setting = |env: &'static str,
                        key: FileKey,
                        what: &'static str|
     -> Result<Setting<Option<PathBuf>>, SettingsError> {
        match layers.raw(env, &key) {
            Some((raw, source)) => {
                let text = text(what, raw, &source, "a path")?;
                let path = PathBuf::from(&text);
                // A bare program name is looked up on PATH; any other relative path is relative
                // to where it was written.
                let bare = what == "pg_dump program" && path.components().count() == 1;
                let value = if path.is_absolute() || bare {
                    path
                } else {
                    layers.relative_base(&source).join(path)
                };
                Ok(Setting {
                    value: Some(value),
                    source,
                })
            }
            None => Ok(Setting {
                value: None,
                source: Source::Default,
            }),
        }
    };
    let backup_dir = path_setting(
        "CALISTA_BACKUP_DIR",
        key!("db", "backup_dir"),
        "backup folder",
    )?;
    let pg_dump = path_setting("CALISTA_PG_DUMP", key!("db", "pg_dump"), "pg_dump program")?;

    let backup_keep = match layers.raw("CALISTA_BACKUP_KEEP", &key!("db", "backup_keep")) {
        Some((raw, source)) => {
            let keep = integer(
                "number of backups to keep",
                raw,
                source.clone(),
                1,
                u64::from(u32::MAX),
            )?;
            Setting {
                value: u32::try_from(keep).unwrap_or(u32::MAX),
                source,
            }
        }
        None => Setting {
            value: crate::backup::DEFAULT_KEEP,
            source: Source::Default,
        },
    };

    let schema = match layers.raw("CALISTA_DB_SCHEMA", &key!("db", "schema")) {
        Some((raw, source)) => {
            let expected =
                "a plain identifier: lowercase letters, digits and _, starting with a letter or _";
            let name = text("schema name", raw, &source, expected)?;
            if !crate::store::is_valid_schema_name(&name) {
                return Err(invalid("schema name", source, &Raw::Text(name), expected));
            }
            Setting {
                value: name,
                source,
            }
        }
        None => Setting {
            value: crate::store::DEFAULT_SCHEMA.to_owned(),
            source: Source::Default,
        },
    };

    let transaction_mode = match layers.raw("CALISTA_TRANSACTION", &key!("db", "transaction")) {
        Some((raw, source)) => {
            let expected =
                "all (one transaction for all pending migrations) or each (one per migration)";
            let value = match text("transaction mode", raw, &source, expected)?
                .to_ascii_lowercase()
                .as_str()
            {
                "all" => TransactionMode::All,
                "each" => TransactionMode::Each,
                other => {
                    return Err(invalid(
                        "transaction mode",
                        source,
                        &Raw::Text(other.to_owned()),
                        expected,
                    ));
                }
            };
            Setting { value, source }
        }
        None => Setting {
            value: TransactionMode::All,
            source: Source::Default,
        },
    };

    let seconds =
        |env: &'static str, key: FileKey, what: &'static str, min: u64, default: u64| match layers
            .raw(env, &key)
        {
            Some((raw, source)) => {
                let value = integer(what, raw, source.clone(), min, 86_400)?;
                Ok::<_, SettingsError>(Setting {
                    value: Duration::from_secs(value),
                    source,
                })
            }
            None => Ok(Setting {
                value: Duration::from_secs(default),
                source: Source::Default,
            }),
        };
    let lock_timeout = seconds(
        "CALISTA_LOCK_TIMEOUT",
        key!("db", "lock_timeout"),
        "lock timeout (seconds)",
        0,
        60,
    )?;
    let connect_timeout = seconds(
        "CALISTA_CONNECT_TIMEOUT",
        key!("db", "connect_timeout"),
        "connect timeout (seconds)",
        1,
        10,
    )?;

    Ok(Settings {
        db_url,
        auto_upgrade,
        environment,
        backup,
        backup_dir,
        backup_keep,
        pg_dump,
        schema,
        transaction_mode,
        lock_timeout,
        connect_timeout,
        config_file: layers.file.map(|f| f.shown),
    })
}

/// Resolves from the process's environment and current directory.
pub fn resolve_from_process(flags: &Flags) -> Result<Settings, SettingsError> {
    let cwd = std::env::current_dir().map_err(SettingsError::NoCurrentDir)?;
    resolve(flags, &|name| std::env::var(name).ok(), &cwd)
}

fn named_file(path: &Path, cwd: &Path, from: &str) -> Result<ConfigFile, SettingsError> {
    let full = cwd.join(path);
    if !full.is_file() {
        return Err(SettingsError::ConfigNotFound {
            path: path.to_owned(),
            from: from.to_owned(),
        });
    }
    ConfigFile::read(&full, path.to_owned())
}

fn url_setting(
    text: &str,
    source: Source,
    base: &Path,
) -> Result<Setting<DatabaseUrl>, SettingsError> {
    match DatabaseUrl::parse(text, base) {
        Ok(value) => Ok(Setting { value, source }),
        Err(error) => Err(SettingsError::InvalidUrl {
            from: source,
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve_with(
        flags: &Flags,
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(flags, &move |name| env.get(name).cloned(), dir)
    }

    fn folder(config: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = config {
            std::fs::write(dir.path().join("calista.toml"), text).unwrap();
        }
        dir
    }

    #[test]
    fn defaults_need_no_setup() {
        let dir = folder(None);
        let s = resolve_with(&Flags::default(), &[], dir.path()).unwrap();
        assert_eq!(s.db_url.value, DatabaseUrl::default_sqlite(dir.path()));
        assert_eq!(s.db_url.source, Source::Default);
        assert!(!s.auto_upgrade.value);
        assert_eq!(s.environment.value, Environment::Production);
        assert!(s.backup.value, "backups are on in production");
        assert_eq!(s.backup.source, Source::DefaultFor("production"));
        assert_eq!(s.backup_keep.value, 10);
        assert_eq!(s.schema.value, "calista");
        assert_eq!(s.transaction_mode.value, TransactionMode::All);
        assert_eq!(s.lock_timeout.value, Duration::from_secs(60));
        assert_eq!(s.config_file, None);
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = folder(Some(
            "[db]\nurl = \"sqlite:///from-file.db\"\nauto_upgrade = false\nbackup = true\n",
        ));
        let file = resolve_with(&Flags::default(), &[], dir.path()).unwrap();
        assert_eq!(
            file.db_url.source,
            Source::File {
                path: "calista.toml".into(),
                key: "[db] url"
            }
        );
        assert_eq!(
            file.db_url.value.to_string(),
            format!("sqlite:///{}", dir.path().join("from-file.db").display())
        );
        let env = [
            ("CALISTA_DB_URL", "sqlite:///from-env.db"),
            ("CALISTA_AUTO_UPGRADE", "on"),
            ("CALISTA_BACKUP", "0"),
        ];
        let from_env = resolve_with(&Flags::default(), &env, dir.path()).unwrap();
        assert_eq!(from_env.db_url.source, Source::Env("CALISTA_DB_URL"));
        assert!(from_env.auto_upgrade.value);
        assert!(!from_env.backup.value);
        let flags = Flags {
            db_url: Some("sqlite:///from-flag.db".into()),
            auto_upgrade: true,
            no_backup: true,
            config: None,
        };
        let from_flag = resolve_with(&flags, &env, dir.path()).unwrap();
        assert_eq!(from_flag.db_url.source, Source::Flag("--db-url"));
        assert_eq!(
            from_flag.auto_upgrade.source,
            Source::Flag("--auto-upgrade")
        );
        assert_eq!(from_flag.backup.source, Source::Flag("--no-backup"));
    }

    #[test]
    fn backups_default_off_outside_production() {
        let dir = folder(Some("[app]\nenv = \"development\"\n"));
        let s = resolve_with(&Flags::default(), &[], dir.path()).unwrap();
        assert!(!s.backup.value);
        assert_eq!(s.backup.source.to_string(), "default in development");
        assert!(s.environment.value.allows_downgrade());
        let ci = resolve_with(&Flags::default(), &[("CALISTA_ENV", "CI")], dir.path()).unwrap();
        assert_eq!(ci.environment.value, Environment::Ci);
    }

    #[test]
    fn invalid_auto_upgrade_value_names_the_variable() {
        let dir = folder(None);
        let err = resolve_with(
            &Flags::default(),
            &[("CALISTA_AUTO_UPGRADE", "maybe")],
            dir.path(),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("CALISTA_AUTO_UPGRADE")
                && message.contains("maybe")
                && message.contains("yes"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_names_key_and_file_and_suggests() {
        let dir = folder(Some("[db]\nbackup_kep = 3\n"));
        let message = resolve_with(&Flags::default(), &[], dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("[db] backup_kep") && message.contains("calista.toml"),
            "{message}"
        );
        assert!(
            message.contains("did you mean `[db] backup_keep`"),
            "{message}"
        );
        let dir = folder(Some("[database]\nurl = \"x\"\n"));
        let message = resolve_with(&Flags::default(), &[], dir.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("`database`"), "{message}");
    }

    #[test]
    fn wrong_type_names_key_and_file() {
        let dir = folder(Some("[db]\nauto_upgrade = \"yes please\"\n"));
        let message = resolve_with(&Flags::default(), &[], dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("calista.toml [db] auto_upgrade") && message.contains("true or false"),
            "{message}"
        );
        let dir = folder(Some("[db]\nbackup_keep = 0\n"));
        let message = resolve_with(&Flags::default(), &[], dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("[db] backup_keep") && message.contains("from 1"),
            "{message}"
        );
    }

    #[test]
    fn toml_syntax_errors_name_the_file() {
        let dir = folder(Some("[db\nurl = 1\n"));
        let message = resolve_with(&Flags::default(), &[], dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("calista.toml is not valid TOML"),
            "{message}"
        );
    }

    #[test]
    fn named_config_file_must_exist_and_relative_paths_follow_it() {
        let dir = folder(None);
        let err = resolve_with(
            &Flags {
                config: Some("nope.toml".into()),
                ..Flags::default()
            },
            &[],
            dir.path(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("nope.toml") && err.to_string().contains("--config"),
            "{err}"
        );
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(
            dir.path().join("conf/app.toml"),
            "[db]\nbackup_dir = \"backups\"\npg_dump = \"pg_dump\"\n",
        )
        .unwrap();
        let s = resolve_with(
            &Flags::default(),
            &[("CALISTA_CONFIG", "conf/app.toml")],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            s.backup_dir.value,
            Some(dir.path().join("conf").join("backups"))
        );
        assert_eq!(
            s.pg_dump.value,
            Some(PathBuf::from("pg_dump")),
            "a bare name is looked up on PATH"
        );
        assert_eq!(s.config_file, Some(PathBuf::from("conf/app.toml")));
    }

    #[test]
    fn password_never_appears_in_errors_or_rows() {
        let dir = folder(None);
        let err = resolve_with(
            &Flags {
                db_url: Some("mysql://u:s3cr3t@h/db".into()),
                ..Flags::default()
            },
            &[],
            dir.path(),
        )
        .unwrap_err();
        let mut chain = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            chain.push_str(&c.to_string());
            cause = c.source();
        }
        assert!(
            !chain.contains("s3cr3t") && chain.contains("--db-url"),
            "{chain}"
        );
        let s = resolve_with(
            &Flags::default(),
            &[("CALISTA_DB_URL", "postgresql://u:s3cr3t@h/db")],
            dir.path(),
        )
        .unwrap();
        let rows = format!("{:?}", s.rows());
        assert!(
            !rows.contains("s3cr3t") && rows.contains("postgres://u:***@h/db"),
            "{rows}"
        );
        let bad = resolve_with(
            &Flags::default(),
            &[("CALISTA_ENV", "postgresql://u:s3cr3t@h/db")],
            dir.path(),
        )
        .unwrap_err();
        assert!(!bad.to_string().contains("s3cr3t"), "{bad}");
    }

    #[test]
    fn schema_transaction_and_timeouts_are_checked() {
        let dir = folder(None);
        let s = resolve_with(
            &Flags::default(),
            &[
                ("CALISTA_DB_SCHEMA", "app_2"),
                ("CALISTA_TRANSACTION", "each"),
                ("CALISTA_LOCK_TIMEOUT", "5"),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            (s.schema.value.as_str(), s.transaction_mode.value),
            ("app_2", TransactionMode::Each)
        );
        assert_eq!(s.lock_timeout.value, Duration::from_secs(5));
        for (name, value) in [
            ("CALISTA_DB_SCHEMA", "Bad-Name"),
            ("CALISTA_TRANSACTION", "some"),
            ("CALISTA_CONNECT_TIMEOUT", "0"),
            ("CALISTA_LOCK_TIMEOUT", "-1"),
        ] {
            let err = resolve_with(&Flags::default(), &[(name, value)], dir.path()).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn resolution_never_panics_on_odd_values() {
        let dir = folder(None);
        let odd = [
            "",
            " ",
            "\u{0}",
            "é",
            "9999999999999999999999",
            "-",
            "true false",
            "sqlite:",
            "postgres://@:/?&=",
        ];
        for value in odd {
            for name in [
                "CALISTA_DB_URL",
                "CALISTA_AUTO_UPGRADE",
                "CALISTA_ENV",
                "CALISTA_BACKUP_KEEP",
                "CALISTA_DB_SCHEMA",
                "CALISTA_BACKUP_DIR",
            ] {
                let _ = resolve_with(&Flags::default(), &[(name, value)], dir.path());
            }
        }
    }
}
