//! Settings: command-line flag, then environment, then the configuration file, then default.
//!
//! The names are the application's ([`AppNames`]): `myapp` reads `MYAPP_DB_URL` and
//! `myapp.toml`; the `calista` program is the application `calista`.
//!
//! Each layer is read and checked on its own into the values it sets (a wrong value in a
//! layer is an error even when a higher layer overrides it), then the layers are folded,
//! highest first, and the defaults fill the gaps. Every value remembers where it came
//! from, so that errors and `calista config show` can say "from env CALISTA_DB_URL".

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::database::SchemaName;
pub use crate::engine::plan::TransactionMode;
use crate::url::{self, DatabaseUrl, UrlConvention, UrlError};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, as the application names it ([`FlagNames`]): `--db-url`.
    Flag(String),
    /// An environment variable, as `MYAPP_DB_URL`.
    Env(String),
    /// A key of the configuration file.
    File {
        /// The file, as given (or `calista.toml`).
        path: PathBuf,
        /// The key, as `[db] url`.
        key: &'static str,
    },
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => f.write_str(flag),
            Self::Env(name) => write!(f, "env {name}"),
            Self::File { path, key } => write!(f, "{} {key}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    fn by_default(value: T) -> Self {
        Self {
            value,
            source: Source::Default,
        }
    }
}

/// What an application's command-line flags are called, for the sources that settings
/// show (`from --db-url`). The defaults are the `db` command group's own flags.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlagNames {
    /// The flag of [`Flags::db_url`]: `--db-url`.
    pub db_url: String,
    /// The flag of [`Flags::auto_upgrade`]: `--auto-upgrade`.
    pub auto_upgrade: String,
    /// The flag of [`Flags::no_backup`]: `--no-backup`.
    pub no_backup: String,
    /// The flag of [`Flags::config`]: `--config`.
    pub config: String,
}

impl Default for FlagNames {
    fn default() -> Self {
        Self {
            db_url: "--db-url".to_owned(),
            auto_upgrade: "--auto-upgrade".to_owned(),
            no_backup: "--no-backup".to_owned(),
            config: "--config".to_owned(),
        }
    }
}

/// What the command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--db-url URL`.
    pub db_url: Option<String>,
    /// `--auto-upgrade` was given.
    pub auto_upgrade: bool,
    /// `--no-backup` was given.
    pub no_backup: bool,
    /// `--config PATH`.
    pub config: Option<PathBuf>,
}

/// The deployment environment (defined with the policy it shapes).
pub use crate::engine::migrator::Environment;

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
    /// Where backups go (`None`: a folder named [`backup_dir_name`](Self::backup_dir_name)
    /// beside the SQLite file, or in the current directory).
    pub backup_dir: Setting<Option<PathBuf>>,
    /// The application's name for the backup folder ([`AppNames::backup_dir_name`]).
    pub backup_dir_name: String,
    /// How many backups to keep (at least 1).
    pub backup_keep: Setting<u32>,
    /// The `pg_dump` program (`None`: found on `PATH`).
    pub pg_dump: Setting<Option<PathBuf>>,
    /// The PostgreSQL schema that holds calista's tables (`None`: where the connection's
    /// queries look, its `current_schema()`; the application's [`AppNames::default_schema`]
    /// when it sets one, as the `calista` program sets `calista`).
    pub schema: Setting<Option<SchemaName>>,
    /// One transaction for all pending migrations, or one each.
    pub transaction_mode: Setting<TransactionMode>,
    /// The longest wait for the migration lock, and the overall budget of an upgrade's
    /// attempts to get its table locks (PostgreSQL).
    pub lock_timeout: Setting<Duration>,
    /// How long one attempt of a migration waits for a table lock on PostgreSQL before it
    /// rolls back and tries again (`-- calista:lock-timeout` overrides it per migration).
    pub lock_attempt_timeout: Setting<Duration>,
    /// The longest wait for a connection.
    pub connect_timeout: Setting<Duration>,
    /// The configuration file read, as given, if any.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// (setting, value with any password redacted, source), in a stable order, for
    /// `calista config show`.
    pub fn rows(&self) -> Vec<(&'static str, String, String)> {
        fn row<T>(
            name: &'static str,
            setting: &Setting<T>,
            show: impl FnOnce(&T) -> String,
        ) -> (&'static str, String, String) {
            (
                name,
                url::redact(&show(&setting.value)),
                setting.source.to_string(),
            )
        }
        let on_off = |on: &bool| if *on { "on" } else { "off" }.to_owned();
        let seconds = |d: &Duration| format!("{}s", d.as_secs());
        let path_or = |default: &str| {
            let default = default.to_owned();
            move |path: &Option<PathBuf>| {
                path.as_ref()
                    .map_or(default, |path| path.display().to_string())
            }
        };
        let mut backup = row("backup", &self.backup, on_off);
        if self.backup.source == Source::Default {
            backup.2 = format!("default for {}", self.environment.value);
        }
        vec![
            row("database url", &self.db_url, ToString::to_string),
            row("backend", &self.db_url, |url| url.backend_name().to_owned()),
            row("auto upgrade", &self.auto_upgrade, on_off),
            row("environment", &self.environment, ToString::to_string),
            backup,
            row(
                "backup dir",
                &self.backup_dir,
                path_or(&format!(
                    "{} (beside the SQLite file, or here)",
                    self.backup_dir_name
                )),
            ),
            row("backup keep", &self.backup_keep, ToString::to_string),
            row("pg_dump", &self.pg_dump, path_or("pg_dump (on PATH)")),
            row("schema", &self.schema, |schema| {
                schema.as_ref().map_or_else(
                    || "the connection's own (current_schema())".to_owned(),
                    ToString::to_string,
                )
            }),
            row("transaction", &self.transaction_mode, |mode| {
                transaction_name(*mode).to_owned()
            }),
            row("lock timeout", &self.lock_timeout, seconds),
            row("lock attempt timeout", &self.lock_attempt_timeout, |d| {
                if d.subsec_millis() == 0 {
                    format!("{}s", d.as_secs())
                } else {
                    format!("{}ms", d.as_millis())
                }
            }),
            row("connect timeout", &self.connect_timeout, seconds),
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

fn transaction_name(mode: TransactionMode) -> &'static str {
    match mode {
        TransactionMode::All => "all",
        TransactionMode::Each => "each",
    }
}

impl Settings {
    /// How to reach the database, from these settings.
    pub fn database_options(&self) -> crate::DatabaseOptions {
        crate::DatabaseOptions {
            schema: self.schema.value.clone(),
            connect_timeout: self.connect_timeout.value,
            lock_timeout: self.lock_timeout.value,
            ..crate::DatabaseOptions::default()
        }
    }

    /// Where backups go, how many are kept, and the application's restore command.
    pub fn backup_options(&self, names: &AppNames) -> crate::backup::BackupOptions {
        let program = &names.program;
        crate::backup::BackupOptions {
            dir: self.backup_dir.value.clone(),
            dir_name: self.backup_dir_name.clone(),
            keep: self.backup_keep.value,
            pg_dump: self.pg_dump.value.clone(),
            // Printed after an upgrade: runnable as it is, so in production with --yes.
            restore_hint: if self.environment.value.allows_downgrade() {
                format!("{program} db restore")
            } else {
                format!("{program} db restore --yes")
            },
        }
    }

    /// The guard's and the migrator's policy, from these settings, with hints in the
    /// application's words.
    pub fn policy(&self, names: &AppNames) -> crate::Policy {
        use crate::backup::BackupPolicy;
        let environment = self.environment.value;
        crate::Policy {
            auto_upgrade: self.auto_upgrade.value,
            transaction_mode: self.transaction_mode.value,
            backup: if self.backup.value {
                BackupPolicy::Enabled(self.backup_options(names))
            } else {
                BackupPolicy::Disabled {
                    reason: match &self.backup.source {
                        Source::Default => {
                            format!("backups are off by default in {}", environment.name())
                        }
                        source => format!("backups are off (from {source})"),
                    },
                }
            },
            downgrades: if environment.allows_downgrade() {
                crate::Downgrades::Allowed
            } else {
                crate::Downgrades::Refused { environment }
            },
            app_version: None,
            hints: names.hints(),
            lock_attempt_timeout: self.lock_attempt_timeout.value,
        }
    }
}

/// A setting that cannot be used. The messages never hold a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `--config` or `CALISTA_CONFIG` names a file that does not exist.
    #[error(
        "the configuration file {path} (from {from}) does not exist; create it, or point \
         {from} at an existing file"
    )]
    ConfigNotFound {
        /// The file, as given.
        path: PathBuf,
        /// `--config` or `env MYAPP_CONFIG`.
        from: Source,
    },
    /// The configuration file exists but cannot be read.
    #[error("cannot read the configuration file {path}; it must be a readable file")]
    ConfigUnreadable {
        /// The file, as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("{path} is not valid TOML: line {line}, column {column}: {message}")]
    ConfigSyntax {
        /// The file, as given.
        path: PathBuf,
        /// Where, from 1.
        line: usize,
        /// Where in the line, from 1 (in characters).
        column: usize,
        /// The parser's description of the problem.
        message: String,
    },
    /// A table other than `[db]` and `[app]`.
    #[error("unknown table `[{table}]` in {path}; {hint}")]
    UnknownTable {
        /// The file, as given.
        path: PathBuf,
        /// Its name.
        table: String,
        /// A suggestion, or the tables there are.
        hint: String,
    },
    /// `db` or `app` given a value instead of keys.
    #[error(
        "`{table}` in {path} must be a table: write `[{table}]` on a line of its own and its \
         keys below it"
    )]
    NotATable {
        /// The file, as given.
        path: PathBuf,
        /// `db` or `app`.
        table: &'static str,
    },
    /// A key the program does not know (a typo, or a key in the wrong table).
    #[error("unknown setting `{key}` in {path}; {hint}")]
    UnknownKey {
        /// The file, as given.
        path: PathBuf,
        /// The key, as `[db] backup_kep`.
        key: String,
        /// "did you mean …?", or the keys there are.
        hint: String,
    },
    /// A file value of the wrong TOML type.
    #[error("{from} must be {expected}, not {found}")]
    WrongType {
        /// The file and key.
        from: Source,
        /// What the key holds, as "a string".
        found: String,
        /// What it should hold, as "true or false".
        expected: &'static str,
    },
    /// A value of the right type that is not one of the accepted ones.
    #[error("{from} = {value} is not valid: expected {expected}")]
    InvalidValue {
        /// The variable, or the file and key.
        from: Source,
        /// The value as given, quoted and redacted.
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// A database URL in none of the accepted forms.
    #[error("the database URL from {from} is not accepted")]
    InvalidUrl {
        /// The flag, variable, or file and key.
        from: Source,
        /// What is wrong, and the accepted forms.
        #[source]
        error: UrlError,
    },
    /// An environment variable that is not UTF-8.
    #[error("env {variable} is not valid UTF-8; set it to UTF-8 text, or unset it")]
    EnvNotUnicode {
        /// The variable.
        variable: String,
    },
    /// The current directory cannot be read.
    #[error("cannot determine the current directory")]
    NoCurrentDir(#[source] std::io::Error),
}

/// One setting's names: its environment variable (after the application's prefix and
/// `_`) and its key in the file.
struct Key {
    env: &'static str,
    table: &'static str,
    key: &'static str,
    /// As `[db] url`.
    shown: &'static str,
}

macro_rules! key {
    ($env:literal, $table:literal, $key:literal) => {
        Key {
            env: $env,
            table: $table,
            key: $key,
            shown: concat!("[", $table, "] ", $key),
        }
    };
}

const DB_URL: Key = key!("DB_URL", "db", "url");
const AUTO_UPGRADE: Key = key!("AUTO_UPGRADE", "db", "auto_upgrade");
const ENVIRONMENT: Key = key!("ENV", "app", "env");
const BACKUP: Key = key!("BACKUP", "db", "backup");
const BACKUP_DIR: Key = key!("BACKUP_DIR", "db", "backup_dir");
const BACKUP_KEEP: Key = key!("BACKUP_KEEP", "db", "backup_keep");
const PG_DUMP: Key = key!("PG_DUMP", "db", "pg_dump");
const SCHEMA: Key = key!("DB_SCHEMA", "db", "schema");
const TRANSACTION: Key = key!("TRANSACTION", "db", "transaction");
const LOCK_TIMEOUT: Key = key!("LOCK_TIMEOUT", "db", "lock_timeout");
const CONNECT_TIMEOUT: Key = key!("CONNECT_TIMEOUT", "db", "connect_timeout");
const LOCK_ATTEMPT_TIMEOUT: Key = key!("LOCK_ATTEMPT_TIMEOUT", "db", "lock_attempt_timeout");

/// The default wait of one attempt for a table lock: short enough that the queries queued
/// behind a waiting `ALTER TABLE` are held up no longer than that.
pub const DEFAULT_LOCK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Every key, in the order `calista config show` lists them.
const KEYS: [&Key; 12] = [
    &DB_URL,
    &AUTO_UPGRADE,
    &ENVIRONMENT,
    &BACKUP,
    &BACKUP_DIR,
    &BACKUP_KEEP,
    &PG_DUMP,
    &SCHEMA,
    &TRANSACTION,
    &LOCK_TIMEOUT,
    &LOCK_ATTEMPT_TIMEOUT,
    &CONNECT_TIMEOUT,
];

/// The tables a configuration file may hold.
const TABLES: [&str; 2] = ["db", "app"];

/// The variable that names the configuration file (after the prefix).
const CONFIG_ENV: &str = "CONFIG";

/// What an application's settings are called: the prefix of its environment variables
/// and its configuration file, and how its users run its commands (for hints).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppNames {
    /// The program's name, as users type it: `myapp`.
    pub program: String,
    /// The prefix of the environment variables, without the `_`: `MYAPP`.
    pub env_prefix: String,
    /// The configuration file read when none is named: `myapp.toml`.
    pub config_file: String,
    /// The SQLite file used when no database URL is set: `myapp.db` in the current folder.
    pub default_sqlite_file: String,
    /// The command-line flag that turns automatic upgrades on, if the application's
    /// commands take one (the `calista` program's: `--auto-upgrade`), for hints.
    pub auto_upgrade_flag: Option<String>,
    /// How its SQLite URLs are read: as its own sqlx pool reads them (the default), or,
    /// for the `calista` program, as SQLAlchemy does ([`UrlConvention`]).
    pub url_convention: UrlConvention,
    /// The PostgreSQL schema of calista's tables when no setting names one: `None` (the
    /// default), where the connection's queries look, as the application's own pool does;
    /// the `calista` program's is `calista` (ADR-0004).
    pub default_schema: Option<SchemaName>,
    /// What its command-line flags are called, for the sources settings show.
    pub flags: FlagNames,
    /// The name of the backup folder when none is set, beside the SQLite file or in the
    /// current directory: `myapp-backups`.
    pub backup_dir_name: String,
}

impl AppNames {
    /// The names derived from a program's name: `my-app` reads `MY_APP_DB_URL`, … and
    /// `my-app.toml`.
    pub fn new(program: &str) -> Self {
        let env_prefix = program
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            program: program.to_owned(),
            env_prefix,
            config_file: format!("{program}.toml"),
            default_sqlite_file: format!("{program}.db"),
            auto_upgrade_flag: None,
            url_convention: UrlConvention::Sqlx,
            default_schema: None,
            flags: FlagNames::default(),
            backup_dir_name: format!("{program}-backups"),
        }
    }

    /// The schema of calista's tables when no setting names one (the `calista` program:
    /// `calista`).
    pub fn with_default_schema(mut self, schema: SchemaName) -> Self {
        self.default_schema = Some(schema);
        self
    }

    /// Reads SQLite URLs by another convention than sqlx's: the `calista` program keeps
    /// SQLAlchemy's, which its users' URLs have always had.
    pub fn with_url_convention(mut self, convention: UrlConvention) -> Self {
        self.url_convention = convention;
        self
    }

    /// Names the flag that turns automatic upgrades on, for hints.
    pub fn with_auto_upgrade_flag(mut self, flag: &str) -> Self {
        self.auto_upgrade_flag = Some(flag.to_owned());
        self
    }

    /// Another prefix for the environment variables.
    pub fn with_env_prefix(mut self, prefix: &str) -> Self {
        self.env_prefix = prefix.to_owned();
        self
    }

    /// Another configuration file.
    pub fn with_config_file(mut self, file: &str) -> Self {
        self.config_file = file.to_owned();
        self
    }

    /// The environment variable of a setting: `MYAPP_DB_URL` for `DB_URL`.
    pub fn env(&self, name: &str) -> String {
        format!("{}_{name}", self.env_prefix)
    }

    /// What the guard's and the migrator's errors tell this application's users to do,
    /// in its own commands, variables and file.
    pub fn hints(&self) -> crate::Hints {
        let program = &self.program;
        crate::Hints {
            upgrade: format!("run `{program} db upgrade` to apply them"),
            auto_upgrade: format!(
                "opt in to automatic upgrades with {}{}=1 or `auto_upgrade = true` under [db] in {}",
                self.auto_upgrade_flag
                    .as_ref()
                    .map_or_else(String::new, |flag| format!("{flag}, ")),
                self.env("AUTO_UPGRADE"),
                self.config_file
            ),
            new_migration: format!("`{program} db new <summary>`"),
            recover: format!(
                "run `{program} db recover --retry`; or, if it did complete, `{program} db recover --mark-applied`"
            ),
            history: format!("`{program} db history`"),
            status: format!("`{program} db status`"),
            adopt: format!("`{program} db adopt`"),
            repair: format!("`{program} db repair --accept <revision> --reason <why>`"),
            allow_downgrade: format!(
                "for development or CI, set {}=development or ci",
                self.env("ENV")
            ),
        }
    }
}

const BOOLEAN_WORDS: &str = "1, true, yes, on, 0, false, no or off (in any case)";

/// Resolves every setting. `env` reads the environment (tests pass their own; an empty
/// variable counts as unset); relative paths are relative to `cwd`, or, in the
/// configuration file, to the file's folder. Every value given is checked, including one
/// that a higher layer overrides.
pub fn resolve(
    names: &AppNames,
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Settings, SettingsError> {
    // An empty variable counts as unset, as with clap's `env`.
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let file = ConfigFile::find(names, flags, &env, cwd)?;

    let convention = names.url_convention;
    let from_flags = Layer::from_flags(flags, &names.flags, cwd, convention)?;
    let from_env = Layer::read(
        |key| {
            let variable = names.env(key.env);
            Some((Raw::Text(env(&variable)?), Source::Env(variable)))
        },
        cwd,
        convention,
    )?;
    let from_file = match &file {
        Some(file) => Layer::read(|key| file.get(key), &file.dir, convention)?,
        None => Layer::default(),
    };
    let layers = [from_flags, from_env, from_file]
        .into_iter()
        .fold(Layer::default(), Layer::over);

    let environment = layers
        .environment
        .unwrap_or_else(|| Setting::by_default(Environment::Production));
    let backup = layers
        .backup
        .unwrap_or_else(|| Setting::by_default(environment.value == Environment::Production));
    Ok(Settings {
        db_url: layers.db_url.unwrap_or_else(|| {
            Setting::by_default(DatabaseUrl::Sqlite(url::SqliteTarget::File(
                cwd.join(&names.default_sqlite_file),
            )))
        }),
        auto_upgrade: layers
            .auto_upgrade
            .unwrap_or_else(|| Setting::by_default(false)),
        environment,
        backup,
        backup_dir: optional(layers.backup_dir),
        backup_dir_name: names.backup_dir_name.clone(),
        backup_keep: layers
            .backup_keep
            .unwrap_or_else(|| Setting::by_default(crate::backup::DEFAULT_KEEP)),
        pg_dump: optional(layers.pg_dump),
        schema: match layers.schema {
            Some(Setting { value, source }) => Setting {
                value: Some(value),
                source,
            },
            None => Setting::by_default(names.default_schema.clone()),
        },
        transaction_mode: layers
            .transaction_mode
            .unwrap_or_else(|| Setting::by_default(TransactionMode::All)),
        lock_timeout: layers
            .lock_timeout
            .unwrap_or_else(|| Setting::by_default(crate::database::DEFAULT_LOCK_TIMEOUT)),
        lock_attempt_timeout: layers
            .lock_attempt_timeout
            .unwrap_or_else(|| Setting::by_default(DEFAULT_LOCK_ATTEMPT_TIMEOUT)),
        connect_timeout: layers
            .connect_timeout
            .unwrap_or_else(|| Setting::by_default(crate::database::DEFAULT_CONNECT_TIMEOUT)),
        config_file: file.map(|file| file.shown),
    })
}

/// Resolves from the process's environment and current directory.
pub fn resolve_from_process(names: &AppNames, flags: &Flags) -> Result<Settings, SettingsError> {
    // The closure cannot report a value that is not UTF-8, and ignoring one would
    // silently fall back to the file or the default.
    for variable in KEYS.iter().map(|key| key.env).chain([CONFIG_ENV]) {
        let variable = names.env(variable);
        if std::env::var_os(&variable).is_some_and(|value| value.to_str().is_none()) {
            return Err(SettingsError::EnvNotUnicode { variable });
        }
    }
    let cwd = std::env::current_dir().map_err(SettingsError::NoCurrentDir)?;
    resolve(names, flags, &|name| std::env::var(name).ok(), &cwd)
}

fn optional<T>(setting: Option<Setting<T>>) -> Setting<Option<T>> {
    match setting {
        Some(Setting { value, source }) => Setting {
            value: Some(value),
            source,
        },
        None => Setting::by_default(None),
    }
}

/// The values one layer sets; `None` where it says nothing.
#[derive(Default)]
struct Layer {
    db_url: Option<Setting<DatabaseUrl>>,
    auto_upgrade: Option<Setting<bool>>,
    environment: Option<Setting<Environment>>,
    backup: Option<Setting<bool>>,
    backup_dir: Option<Setting<PathBuf>>,
    backup_keep: Option<Setting<u32>>,
    pg_dump: Option<Setting<PathBuf>>,
    schema: Option<Setting<SchemaName>>,
    transaction_mode: Option<Setting<TransactionMode>>,
    lock_timeout: Option<Setting<Duration>>,
    lock_attempt_timeout: Option<Setting<Duration>>,
    connect_timeout: Option<Setting<Duration>>,
}

impl Layer {
    fn from_flags(
        flags: &Flags,
        named: &FlagNames,
        cwd: &Path,
        convention: UrlConvention,
    ) -> Result<Self, SettingsError> {
        let db_url = match &flags.db_url {
            Some(text) => {
                let from = Source::Flag(named.db_url.clone());
                let value = DatabaseUrl::parse_as(text, cwd, convention).map_err(|error| {
                    SettingsError::InvalidUrl {
                        from: from.clone(),
                        error,
                    }
                })?;
                Some(Setting {
                    value,
                    source: from,
                })
            }
            None => None,
        };
        Ok(Self {
            db_url,
            auto_upgrade: flags.auto_upgrade.then(|| Setting {
                value: true,
                source: Source::Flag(named.auto_upgrade.clone()),
            }),
            backup: flags.no_backup.then(|| Setting {
                value: false,
                source: Source::Flag(named.no_backup.clone()),
            }),
            ..Self::default()
        })
    }

    /// Reads and checks every value the environment or the file sets; relative paths are
    /// relative to `base`.
    fn read<'a>(
        get: impl Fn(&Key) -> Option<(Raw<'a>, Source)>,
        base: &Path,
        convention: UrlConvention,
    ) -> Result<Self, SettingsError> {
        Ok(Self {
            db_url: read(get(&DB_URL), |raw| database_url(raw, base, convention))?,
            auto_upgrade: read(get(&AUTO_UPGRADE), boolean)?,
            environment: read(get(&ENVIRONMENT), environment)?,
            backup: read(get(&BACKUP), boolean)?,
            backup_dir: read(get(&BACKUP_DIR), |raw| path(raw, base, false))?,
            backup_keep: read(get(&BACKUP_KEEP), backup_keep)?,
            pg_dump: read(get(&PG_DUMP), |raw| path(raw, base, true))?,
            schema: read(get(&SCHEMA), schema)?,
            transaction_mode: read(get(&TRANSACTION), transaction_mode)?,
            lock_timeout: read(get(&LOCK_TIMEOUT), |raw| seconds(raw, 0))?,
            lock_attempt_timeout: read(get(&LOCK_ATTEMPT_TIMEOUT), lock_attempt)?,
            connect_timeout: read(get(&CONNECT_TIMEOUT), |raw| seconds(raw, 1))?,
        })
    }

    /// This layer's values, and `lower`'s where this one says nothing.
    fn over(self, lower: Self) -> Self {
        Self {
            db_url: self.db_url.or(lower.db_url),
            auto_upgrade: self.auto_upgrade.or(lower.auto_upgrade),
            environment: self.environment.or(lower.environment),
            backup: self.backup.or(lower.backup),
            backup_dir: self.backup_dir.or(lower.backup_dir),
            backup_keep: self.backup_keep.or(lower.backup_keep),
            pg_dump: self.pg_dump.or(lower.pg_dump),
            schema: self.schema.or(lower.schema),
            transaction_mode: self.transaction_mode.or(lower.transaction_mode),
            lock_timeout: self.lock_timeout.or(lower.lock_timeout),
            lock_attempt_timeout: self.lock_attempt_timeout.or(lower.lock_attempt_timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
        }
    }
}

/// A value as a layer holds it, before it is interpreted.
enum Raw<'a> {
    /// From the environment.
    Text(String),
    /// From the file.
    Toml(&'a toml::Value),
}

/// Why a raw value cannot be used.
enum Mismatch {
    /// A file value of another TOML type than this.
    Type(&'static str),
    /// A value that is none of these.
    Value(String),
    /// A database URL in none of the accepted forms.
    Url(UrlError),
}

fn read<T>(
    found: Option<(Raw<'_>, Source)>,
    interpret: impl FnOnce(&Raw<'_>) -> Result<T, Mismatch>,
) -> Result<Option<Setting<T>>, SettingsError> {
    let Some((raw, source)) = found else {
        return Ok(None);
    };
    match interpret(&raw) {
        Ok(value) => Ok(Some(Setting { value, source })),
        Err(Mismatch::Type(expected)) => Err(SettingsError::WrongType {
            from: source,
            found: match raw {
                Raw::Toml(value) => article(value.type_str()),
                Raw::Text(_) => "text".to_owned(),
            },
            expected,
        }),
        Err(Mismatch::Value(expected)) => Err(SettingsError::InvalidValue {
            from: source,
            value: match raw {
                // A value in the wrong setting may be a URL with its password (a database
                // URL given as the schema): shown as a URL that was not accepted is.
                Raw::Text(text) => format!("{:?}", url::mask_unparsed(&text)),
                Raw::Toml(value) => url::mask_unparsed(&value.to_string()),
            },
            expected,
        }),
        Err(Mismatch::Url(error)) => Err(SettingsError::InvalidUrl {
            from: source,
            error,
        }),
    }
}

fn article(type_name: &str) -> String {
    let an = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_name}", if an { "an" } else { "a" })
}

/// The text of a string setting: from the environment as it is, from the file a string.
fn text<'a>(raw: &'a Raw<'_>, expected_type: &'static str) -> Result<&'a str, Mismatch> {
    match raw {
        Raw::Text(text) => Ok(text.trim()),
        Raw::Toml(toml::Value::String(text)) => Ok(text),
        Raw::Toml(_) => Err(Mismatch::Type(expected_type)),
    }
}

fn database_url(
    raw: &Raw<'_>,
    base: &Path,
    convention: UrlConvention,
) -> Result<DatabaseUrl, Mismatch> {
    let text = text(raw, "a string holding a database URL")?;
    DatabaseUrl::parse_as(text, base, convention).map_err(Mismatch::Url)
}

fn boolean(raw: &Raw<'_>) -> Result<bool, Mismatch> {
    match raw {
        Raw::Toml(toml::Value::Boolean(on)) => Ok(*on),
        Raw::Toml(_) => Err(Mismatch::Type("true or false (without quotes)")),
        Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Mismatch::Value(BOOLEAN_WORDS.to_owned())),
        },
    }
}

fn environment(raw: &Raw<'_>) -> Result<Environment, Mismatch> {
    const EXPECTED: &str = "production, development or ci";
    match text(raw, "a string: \"production\", \"development\" or \"ci\"")?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "production" => Ok(Environment::Production),
        "development" => Ok(Environment::Development),
        "ci" => Ok(Environment::Ci),
        _ => Err(Mismatch::Value(EXPECTED.to_owned())),
    }
}

fn transaction_mode(raw: &Raw<'_>) -> Result<TransactionMode, Mismatch> {
    const EXPECTED: &str =
        "all (all pending migrations in one transaction) or each (one transaction per migration)";
    match text(raw, "a string: \"all\" or \"each\"")?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "all" => Ok(TransactionMode::All),
        "each" => Ok(TransactionMode::Each),
        _ => Err(Mismatch::Value(EXPECTED.to_owned())),
    }
}

fn schema(raw: &Raw<'_>) -> Result<SchemaName, Mismatch> {
    let name = text(raw, "a string holding a schema name")?.trim();
    if crate::database::is_reserved_schema_name(name) {
        return Err(Mismatch::Value(
            "a schema of the application's own: information_schema and names starting with \
             pg_ are reserved for PostgreSQL's system schemas (use calista or my_app)"
                .to_owned(),
        ));
    }
    if let Ok(name) = SchemaName::new(name) {
        Ok(name)
    } else {
        Err(Mismatch::Value(
            "a plain SQL identifier: 1 to 63 lowercase letters, digits and _, not starting with \
             a digit (such as calista or my_app)"
                .to_owned(),
        ))
    }
}

/// A path. A relative one is relative to `base`, except a bare program name (`pg_dump-16`)
/// when `program` is set: that one is looked up on `PATH` when it runs.
fn path(raw: &Raw<'_>, base: &Path, program: bool) -> Result<PathBuf, Mismatch> {
    let text = text(raw, "a string holding a path")?;
    if text.trim().is_empty() {
        return Err(Mismatch::Value(
            "a path (leave the setting out for the default)".to_owned(),
        ));
    }
    let path = Path::new(text);
    let bare = program && path.components().count() == 1 && path.is_relative();
    Ok(if path.is_absolute() || bare {
        path.to_owned()
    } else {
        base.join(path)
    })
}

fn integer(raw: &Raw<'_>, min: u64, max: u64) -> Result<u64, Mismatch> {
    let number = match raw {
        Raw::Text(text) => text.trim().parse::<u64>().ok(),
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).ok(),
        Raw::Toml(_) => return Err(Mismatch::Type("a whole number (without quotes)")),
    };
    number
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| Mismatch::Value(format!("a whole number from {min} to {max}")))
}

fn backup_keep(raw: &Raw<'_>) -> Result<u32, Mismatch> {
    let keep = integer(raw, 1, u64::from(u32::MAX))?;
    u32::try_from(keep).map_err(|_| Mismatch::Value("a smaller number".to_owned()))
}

/// A timeout in whole seconds, at most a day.
fn seconds(raw: &Raw<'_>, min: u64) -> Result<Duration, Mismatch> {
    integer(raw, min, 86_400).map(Duration::from_secs)
}

/// One attempt's lock wait: a duration as `-- calista:lock-timeout` takes it (`500ms`,
/// `2s`, `1m`), or a whole number of seconds like the other timeouts.
fn lock_attempt(raw: &Raw<'_>) -> Result<Duration, Mismatch> {
    const EXPECTED: &str = "a duration of more than zero and at most 60m, such as 500ms, 2s or 1m (a bare number is seconds)";
    let max = crate::format::MAX_LOCK_TIMEOUT.as_secs();
    let parsed = match raw {
        Raw::Toml(toml::Value::Integer(_)) => {
            return integer(raw, 1, max).map(Duration::from_secs);
        }
        Raw::Toml(toml::Value::String(text)) => crate::format::parse_lock_timeout(text.trim()),
        Raw::Toml(_) => return Err(Mismatch::Type("a string such as \"2s\", or whole seconds")),
        Raw::Text(text) => {
            let text = text.trim();
            match text.parse::<u64>() {
                Ok(secs) => (1..=max).contains(&secs).then(|| Duration::from_secs(secs)),
                Err(_) => crate::format::parse_lock_timeout(text),
            }
        }
    };
    parsed.ok_or_else(|| Mismatch::Value(EXPECTED.to_owned()))
}

/// A configuration file, read and checked for unknown tables and keys.
struct ConfigFile {
    /// As given (or `calista.toml`): how messages name it.
    shown: PathBuf,
    /// Its folder, for relative paths inside it.
    dir: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    /// `--config`, else `<PREFIX>_CONFIG`, else `<program>.toml` in `cwd` if there is one.
    fn find(
        names: &AppNames,
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Option<Self>, SettingsError> {
        let config_env = names.env(CONFIG_ENV);
        let (shown, named_by) = match (&flags.config, env(&config_env)) {
            (Some(path), _) => (path.clone(), Some(Source::Flag(names.flags.config.clone()))),
            (None, Some(path)) => (PathBuf::from(path.trim()), Some(Source::Env(config_env))),
            (None, None) => (PathBuf::from(&names.config_file), None),
        };
        let full = cwd.join(&shown);
        let text = match std::fs::read_to_string(&full) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match named_by {
                    Some(from) => Err(SettingsError::ConfigNotFound { path: shown, from }),
                    None => Ok(None),
                };
            }
            Err(source) => {
                return Err(SettingsError::ConfigUnreadable {
                    path: shown,
                    source,
                });
            }
        };
        let dir = full.parent().map(Path::to_owned).unwrap_or_default();
        Self::parse(&text, shown, dir).map(Some)
    }

    fn parse(text: &str, shown: PathBuf, dir: PathBuf) -> Result<Self, SettingsError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // Not toml's own rendering: it quotes the line, which may hold a password.
            let at = e.span().map_or(0, |span| span.start);
            let before = text.get(..at).unwrap_or(text);
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            SettingsError::ConfigSyntax {
                path: shown.clone(),
                line: before.matches('\n').count() + 1,
                column: before[line_start..].chars().count() + 1,
                message: url::redact(&e.message().trim().replace('\n', "; ")),
            }
        })?;
        for (name, value) in &table {
            let Some(&known) = TABLES.iter().find(|table| *table == name) else {
                return Err(unknown_table_or_key(&shown, name, value));
            };
            let Some(keys) = value.as_table() else {
                return Err(SettingsError::NotATable {
                    path: shown,
                    table: known,
                });
            };
            if let Some(key) = keys.keys().find(|key| find_key(known, key).is_none()) {
                return Err(unknown_key(&shown, known, key));
            }
        }
        Ok(Self { shown, dir, table })
    }

    fn get(&self, key: &Key) -> Option<(Raw<'_>, Source)> {
        let value = self.table.get(key.table)?.as_table()?.get(key.key)?;
        let source = Source::File {
            path: self.shown.clone(),
            key: key.shown,
        };
        Some((Raw::Toml(value), source))
    }
}

fn find_key(table: &str, key: &str) -> Option<&'static Key> {
    KEYS.into_iter()
        .find(|known| known.table == table && known.key == key)
}

/// A top-level name other than `db` and `app`: a mistyped table, or a key outside its table.
fn unknown_table_or_key(path: &Path, name: &str, value: &toml::Value) -> SettingsError {
    let shown_name = url::mask_unparsed(name);
    if value.is_table() {
        let hint = match closest(name, TABLES) {
            Some(table) => format!("did you mean `[{table}]`?"),
            None => "the tables are [db] and [app]".to_owned(),
        };
        return SettingsError::UnknownTable {
            path: path.to_owned(),
            table: shown_name,
            hint,
        };
    }
    let hint = match KEYS.iter().find(|known| known.key == name) {
        Some(known) => format!(
            "settings belong in a table: write `{}` below `[{}]`",
            known.key, known.table
        ),
        None => "settings belong in the [db] or [app] table".to_owned(),
    };
    SettingsError::UnknownKey {
        path: path.to_owned(),
        key: shown_name,
        hint,
    }
}

fn unknown_key(path: &Path, table: &str, key: &str) -> SettingsError {
    let same_table = KEYS.iter().filter(|known| known.table == table);
    let hint = if let Some(name) = closest(key, same_table.clone().map(|known| known.key)) {
        format!("did you mean `[{table}] {name}`?")
    } else if let Some(elsewhere) = KEYS.iter().find(|known| known.key == key) {
        format!("did you mean `{}`?", elsewhere.shown)
    } else {
        let names: Vec<&str> = same_table.map(|known| known.key).collect();
        format!("the keys of [{table}] are: {}", names.join(", "))
    };
    SettingsError::UnknownKey {
        path: path.to_owned(),
        key: format!("[{table}] {}", url::mask_unparsed(key)),
        hint,
    }
}

/// The known name nearest to `name`, if it is near enough to be a typo of it.
fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    let limit = (name.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|candidate| (crate::problem::edit_distance(candidate, &name), candidate))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A temporary folder, with `calista.toml` holding `config` if given.
    fn folder(config: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = config {
            std::fs::write(dir.path().join("calista.toml"), text).unwrap();
        }
        dir
    }

    fn resolve_in(
        dir: &Path,
        flags: &Flags,
        env: &[(&str, &str)],
    ) -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // The `calista` program's names: its URLs keep SQLAlchemy's meaning.
        let names = AppNames::new("calista").with_url_convention(UrlConvention::SqlAlchemy);
        resolve(&names, flags, &move |name| env.get(name).cloned(), dir)
    }

    /// The error's message and every cause, as the program prints them.
    fn failure_in(dir: &Path, flags: &Flags, env: &[(&str, &str)]) -> String {
        let error = match resolve_in(dir, flags, env) {
            Err(error) => error,
            Ok(settings) => panic!("resolved: {settings:?}"),
        };
        // Each cause once, as the program prints them: the message never quotes its cause.
        let mut chain = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(c) = cause {
            let line = c.to_string();
            assert!(!chain.contains(&line), "repeated: {line}");
            chain.push_str("\n  caused by: ");
            chain.push_str(&line);
            cause = c.source();
        }
        chain
    }

    /// Resolves for the application `myapp` in `dir`.
    #[test]
    fn an_applications_flags_and_backup_folder_carry_its_names() {
        let dir = folder(None);
        let mut names = AppNames::new("myapp");
        names.flags.auto_upgrade = "--upgrade-at-start".to_owned();
        let flags = Flags {
            auto_upgrade: true,
            ..Flags::default()
        };
        let settings = resolve(&names, &flags, &|_| None, dir.path()).unwrap();
        assert_eq!(
            settings.auto_upgrade.source.to_string(),
            "--upgrade-at-start"
        );
        assert_eq!(
            settings.backup_options(&names).dir_name,
            "myapp-backups",
            "the backup folder is the application's"
        );
        let shown: Vec<_> = settings.rows();
        assert!(
            shown
                .iter()
                .any(|(name, value, _)| *name == "backup dir" && value.starts_with("myapp-backups")),
            "{shown:?}"
        );
        // The library's own default names no program.
        assert_eq!(
            crate::backup::BackupOptions::default().dir_name,
            "db-backups"
        );
    }

    fn resolve_myapp(dir: &Path, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(
            &AppNames::new("myapp"),
            &Flags::default(),
            &move |name| env.get(name).cloned(),
            dir,
        )
    }

    #[test]
    fn an_application_reads_its_own_variables_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("myapp.toml"),
            "[db]\nschema = \"shop\"\nbackup_keep = 3\n",
        )
        .unwrap();
        // calista's own names mean nothing to it.
        std::fs::write(
            dir.path().join("calista.toml"),
            "[db]\nschema = \"other\"\n",
        )
        .unwrap();
        let settings = resolve_myapp(
            dir.path(),
            &[
                ("MYAPP_DB_URL", "sqlite:///from-env.db"),
                ("MYAPP_AUTO_UPGRADE", "yes"),
                ("CALISTA_BACKUP_KEEP", "9"),
            ],
        )
        .unwrap();
        assert_eq!(settings.db_url.source.to_string(), "env MYAPP_DB_URL");
        assert!(settings.auto_upgrade.value);
        assert_eq!(
            settings.schema.value.as_ref().map(SchemaName::as_str),
            Some("shop")
        );
        assert_eq!(settings.schema.source.to_string(), "myapp.toml [db] schema");
        assert_eq!(settings.backup_keep.value, 3);
        // Into what the library needs: the same schema for the database, and the policy.
        assert_eq!(
            settings.database_options().schema,
            Some(SchemaName::new("shop").unwrap())
        );
        let policy = settings.policy(&AppNames::new("myapp"));
        assert!(policy.auto_upgrade);
        assert_eq!(policy.hints.upgrade, "run `myapp db upgrade` to apply them");
        assert_eq!(
            policy.hints.auto_upgrade,
            "opt in to automatic upgrades with MYAPP_AUTO_UPGRADE=1 or `auto_upgrade = true` under [db] in myapp.toml"
        );
    }

    #[test]
    fn an_applications_checks_name_its_variables_and_its_default_database() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve_myapp(dir.path(), &[("MYAPP_BACKUP", "maybe")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("env MYAPP_BACKUP = \"maybe\" is not valid"),
            "{error}"
        );
        let error = resolve_myapp(dir.path(), &[("MYAPP_CONFIG", "missing.toml")]).unwrap_err();
        assert!(
            error.to_string().contains("(from env MYAPP_CONFIG)"),
            "{error}"
        );
        let settings = resolve_myapp(dir.path(), &[]).unwrap();
        assert_eq!(
            settings.db_url.value,
            DatabaseUrl::Sqlite(url::SqliteTarget::File(dir.path().join("myapp.db")))
        );
    }

    #[test]
    fn an_applications_database_url_means_what_it_means_to_its_sqlx_pool() {
        let dir = tempfile::tempdir().unwrap();
        let url_of = |text: &str| resolve_myapp(dir.path(), &[("MYAPP_DB_URL", text)]);
        let file = |path: PathBuf| DatabaseUrl::Sqlite(url::SqliteTarget::File(path));
        for (text, expected) in [
            ("sqlite://second.db", dir.path().join("second.db")),
            ("sqlite:second.db?mode=rwc", dir.path().join("second.db")),
            (
                "sqlite:///var/lib/myapp.db",
                PathBuf::from("/var/lib/myapp.db"),
            ),
        ] {
            assert_eq!(url_of(text).unwrap().db_url.value, file(expected), "{text}");
        }
        // In the file, a relative path is relative to the file's folder, as every path there.
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        std::fs::write(conf.join("myapp.toml"), "[db]\nurl = \"sqlite://app.db\"\n").unwrap();
        let config = conf.join("myapp.toml").display().to_string();
        let settings = resolve_myapp(dir.path(), &[("MYAPP_CONFIG", &config)]).unwrap();
        assert_eq!(settings.db_url.value, file(conf.join("app.db")));
        // A slip from SQLAlchemy's spelling is refused, naming the variable and sqlx's forms.
        let message = crate::error::with_causes(&url_of("sqlite:///:memory:").unwrap_err());
        assert!(message.contains("env MYAPP_DB_URL"), "{message}");
        assert!(message.contains("sqlite::memory:"), "{message}");
        assert!(message.contains("sqlite://relative/path.db"), "{message}");
    }

    /// The error for this configuration file (and nothing else set).
    fn file_failure(config: &str) -> String {
        let dir = folder(Some(config));
        failure_in(dir.path(), &Flags::default(), &[])
    }

    /// (value, source) of the row named `name`.
    fn row(settings: &Settings, name: &str) -> (String, String) {
        let (_, value, source) = settings
            .rows()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        (value, source)
    }

    #[test]
    fn defaults_need_no_setup() {
        let dir = folder(None);
        let s = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
        assert_eq!(
            s.db_url,
            Setting {
                value: DatabaseUrl::default_sqlite(dir.path()),
                source: Source::Default
            }
        );
        assert!(!s.auto_upgrade.value);
        assert_eq!(s.environment.value, Environment::Production);
        assert!(s.backup.value, "backups are on in production");
        assert_eq!(s.backup_dir.value, None);
        assert_eq!(s.backup_keep.value, 10);
        assert_eq!(s.pg_dump.value, None);
        assert_eq!(s.schema.value, None, "the connection's own schema");
        assert_eq!(s.transaction_mode.value, TransactionMode::All);
        assert_eq!(s.lock_timeout.value, Duration::from_secs(60));
        assert_eq!(s.connect_timeout.value, Duration::from_secs(10));
        assert_eq!(s.config_file, None);
        for (name, _, source) in s.rows() {
            assert!(
                source.starts_with("default") || name == "config file",
                "{name}: {source}"
            );
        }
    }

    #[test]
    fn every_setting_takes_env_over_file_over_default() {
        /// One setting: its row, its variable with a value and how it shows, its key with
        /// a TOML value and how it shows, and how its default shows ("" if it varies).
        struct Case {
            row: &'static str,
            variable: &'static str,
            env: (&'static str, &'static str),
            key: &'static str,
            file: (&'static str, &'static str),
            default: &'static str,
        }
        let table = [
            Case {
                row: "database url",
                variable: "CALISTA_DB_URL",
                env: ("sqlite:////tmp/env.db", "sqlite:////tmp/env.db"),
                key: "[db] url",
                file: ("\"sqlite:////tmp/file.db\"", "sqlite:////tmp/file.db"),
                default: "",
            },
            Case {
                row: "auto upgrade",
                variable: "CALISTA_AUTO_UPGRADE",
                env: ("off", "off"),
                key: "[db] auto_upgrade",
                file: ("true", "on"),
                default: "off",
            },
            Case {
                row: "environment",
                variable: "CALISTA_ENV",
                env: ("CI", "ci"),
                key: "[app] env",
                file: ("\"Development\"", "development"),
                default: "production",
            },
            Case {
                row: "backup",
                variable: "CALISTA_BACKUP",
                env: (" Yes ", "on"),
                key: "[db] backup",
                file: ("false", "off"),
                default: "on",
            },
            Case {
                row: "backup dir",
                variable: "CALISTA_BACKUP_DIR",
                env: ("/tmp/env-backups", "/tmp/env-backups"),
                key: "[db] backup_dir",
                file: ("\"/tmp/file-backups\"", "/tmp/file-backups"),
                default: "calista-backups (beside the SQLite file, or here)",
            },
            Case {
                row: "backup keep",
                variable: "CALISTA_BACKUP_KEEP",
                env: ("3", "3"),
                key: "[db] backup_keep",
                file: ("5", "5"),
                default: "10",
            },
            Case {
                row: "pg_dump",
                variable: "CALISTA_PG_DUMP",
                env: (
                    "/usr/lib/postgresql/16/bin/pg_dump",
                    "/usr/lib/postgresql/16/bin/pg_dump",
                ),
                key: "[db] pg_dump",
                file: ("\"/opt/pg_dump\"", "/opt/pg_dump"),
                default: "pg_dump (on PATH)",
            },
            Case {
                row: "schema",
                variable: "CALISTA_DB_SCHEMA",
                env: ("env_schema", "env_schema"),
                key: "[db] schema",
                file: ("\"file_schema\"", "file_schema"),
                default: "the connection's own (current_schema())",
            },
            Case {
                row: "transaction",
                variable: "CALISTA_TRANSACTION",
                env: ("ALL", "all"),
                key: "[db] transaction",
                file: ("\"each\"", "each"),
                default: "all",
            },
            Case {
                row: "lock timeout",
                variable: "CALISTA_LOCK_TIMEOUT",
                env: ("0", "0s"),
                key: "[db] lock_timeout",
                file: ("7", "7s"),
                default: "60s",
            },
            Case {
                row: "lock attempt timeout",
                variable: "CALISTA_LOCK_ATTEMPT_TIMEOUT",
                env: ("500ms", "500ms"),
                key: "[db] lock_attempt_timeout",
                file: ("\"1m\"", "60s"),
                default: "2s",
            },
            Case {
                row: "connect timeout",
                variable: "CALISTA_CONNECT_TIMEOUT",
                env: ("2", "2s"),
                key: "[db] connect_timeout",
                file: ("3", "3s"),
                default: "10s",
            },
        ];
        assert_eq!(table.len(), KEYS.len(), "every key is covered");
        for Case {
            row: name,
            variable,
            env: (env_value, env_shown),
            key,
            file: (toml, file_shown),
            default,
        } in table
        {
            let empty = folder(None);
            let (value, source) = row(
                &resolve_in(empty.path(), &Flags::default(), &[]).unwrap(),
                name,
            );
            assert!(source.starts_with("default"), "{name}: {source}");
            if !default.is_empty() {
                assert_eq!(value, default, "{name} by default");
            }

            let (table_name, key_name) = key[1..].split_once("] ").unwrap();
            let dir = folder(Some(&format!("[{table_name}]\n{key_name} = {toml}\n")));
            let from_file = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
            assert_eq!(
                row(&from_file, name),
                (file_shown.to_owned(), format!("calista.toml {key}")),
                "{name} from the file"
            );

            let from_env =
                resolve_in(dir.path(), &Flags::default(), &[(variable, env_value)]).unwrap();
            assert_eq!(
                row(&from_env, name),
                (env_shown.to_owned(), format!("env {variable}")),
                "{name} from the environment"
            );
        }
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = folder(Some(
            "[db]\nurl = \"sqlite:///from-file.db\"\nauto_upgrade = false\nbackup = true\n",
        ));
        let file = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
        assert_eq!(
            file.db_url.source,
            Source::File {
                path: "calista.toml".into(),
                key: "[db] url"
            }
        );
        assert_eq!(file.db_url.source.to_string(), "calista.toml [db] url");
        assert_eq!(
            file.db_url.value,
            DatabaseUrl::Sqlite(crate::url::SqliteTarget::File(
                dir.path().join("from-file.db")
            ))
        );

        let env = [
            ("CALISTA_DB_URL", "sqlite:///from-env.db"),
            ("CALISTA_AUTO_UPGRADE", "0"),
            ("CALISTA_BACKUP", "1"),
        ];
        let from_env = resolve_in(dir.path(), &Flags::default(), &env).unwrap();
        assert_eq!(from_env.db_url.source, Source::Env("CALISTA_DB_URL".into()));
        assert_eq!(from_env.db_url.source.to_string(), "env CALISTA_DB_URL");
        assert_eq!(
            from_env.auto_upgrade.source,
            Source::Env("CALISTA_AUTO_UPGRADE".into())
        );
        assert_eq!(from_env.backup.source, Source::Env("CALISTA_BACKUP".into()));

        let flags = Flags {
            db_url: Some("sqlite:///from-flag.db".into()),
            auto_upgrade: true,
            no_backup: true,
            config: None,
        };
        let from_flag = resolve_in(dir.path(), &flags, &env).unwrap();
        assert_eq!(
            from_flag.db_url.value,
            DatabaseUrl::Sqlite(crate::url::SqliteTarget::File(
                dir.path().join("from-flag.db")
            ))
        );
        assert_eq!(from_flag.db_url.source.to_string(), "--db-url");
        assert_eq!(
            from_flag.auto_upgrade,
            Setting {
                value: true,
                source: Source::Flag("--auto-upgrade".into())
            }
        );
        assert_eq!(
            from_flag.backup,
            Setting {
                value: false,
                source: Source::Flag("--no-backup".into())
            }
        );
    }

    #[test]
    fn absent_flags_leave_the_lower_layers_alone() {
        let dir = folder(Some("[db]\nauto_upgrade = true\nbackup = false\n"));
        let s = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
        assert!(s.auto_upgrade.value, "no --auto-upgrade is not false");
        assert!(!s.backup.value, "no --no-backup is not true");
    }

    #[test]
    fn boolean_words_in_any_case_with_spaces() {
        let dir = folder(None);
        for (word, expected) in [
            ("1", true),
            ("true", true),
            ("YES", true),
            (" On\n", true),
            ("0", false),
            ("False", false),
            ("no", false),
            ("\tOFF ", false),
        ] {
            let s = resolve_in(
                dir.path(),
                &Flags::default(),
                &[("CALISTA_AUTO_UPGRADE", word), ("CALISTA_BACKUP", word)],
            )
            .unwrap();
            assert_eq!(
                (s.auto_upgrade.value, s.backup.value),
                (expected, expected),
                "{word:?}"
            );
        }
    }

    #[test]
    fn invalid_auto_upgrade_value_names_the_variable() {
        let dir = folder(None);
        let message = failure_in(
            dir.path(),
            &Flags::default(),
            &[("CALISTA_AUTO_UPGRADE", "maybe")],
        );
        assert_eq!(
            message,
            "env CALISTA_AUTO_UPGRADE = \"maybe\" is not valid: expected 1, true, yes, on, 0, \
             false, no or off (in any case)"
        );
    }

    #[test]
    fn invalid_environment_values_name_the_variable_and_what_is_accepted() {
        let dir = folder(None);
        for (variable, value, expected) in [
            ("CALISTA_BACKUP", "2", "1, true, yes, on"),
            ("CALISTA_ENV", "prod", "production, development or ci"),
            ("CALISTA_TRANSACTION", "some", "all (all pending"),
            (
                "CALISTA_BACKUP_KEEP",
                "0",
                "a whole number from 1 to 4294967295",
            ),
            ("CALISTA_BACKUP_KEEP", "-1", "a whole number from 1"),
            ("CALISTA_BACKUP_KEEP", "ten", "a whole number from 1"),
            ("CALISTA_BACKUP_KEEP", "4294967296", "a whole number from 1"),
            ("CALISTA_DB_SCHEMA", "Bad-Name", "a plain SQL identifier"),
            ("CALISTA_DB_SCHEMA", "1abc", "a plain SQL identifier"),
            ("CALISTA_DB_SCHEMA", &"a".repeat(64), "1 to 63"),
            (
                "CALISTA_LOCK_TIMEOUT",
                "-1",
                "a whole number from 0 to 86400",
            ),
            ("CALISTA_LOCK_TIMEOUT", "1.5", "a whole number from 0"),
            ("CALISTA_LOCK_ATTEMPT_TIMEOUT", "0", "more than zero"),
            ("CALISTA_LOCK_ATTEMPT_TIMEOUT", "0ms", "more than zero"),
            ("CALISTA_LOCK_ATTEMPT_TIMEOUT", "2 s", "such as 500ms"),
            ("CALISTA_LOCK_ATTEMPT_TIMEOUT", "2h", "at most 60m"),
            (
                "CALISTA_CONNECT_TIMEOUT",
                "0",
                "a whole number from 1 to 86400",
            ),
            ("CALISTA_CONNECT_TIMEOUT", "86401", "a whole number from 1"),
        ] {
            let message = failure_in(dir.path(), &Flags::default(), &[(variable, value)]);
            let quoted = format!("{value:?}");
            assert!(
                message.starts_with(&format!("env {variable} = {quoted} is not valid"))
                    && message.contains(expected),
                "{variable}={value}: {message}"
            );
        }
    }

    #[test]
    fn schema_names_follow_the_identifier_rule() {
        let dir = folder(None);
        let longest = format!("_{}", "a".repeat(62));
        for good in ["calista", "_x", "app_2", longest.as_str()] {
            let s = resolve_in(
                dir.path(),
                &Flags::default(),
                &[("CALISTA_DB_SCHEMA", good)],
            )
            .unwrap();
            assert_eq!(s.schema.value.as_ref().map(SchemaName::as_str), Some(good));
        }
        for bad in ["App", "my-app", "2app", "a b", "sch\u{e9}ma", "x;drop"] {
            let message = failure_in(dir.path(), &Flags::default(), &[("CALISTA_DB_SCHEMA", bad)]);
            assert!(
                message.contains("a plain SQL identifier"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn a_database_url_in_another_setting_never_shows_its_password() {
        let dir = folder(None);
        for variable in [
            "CALISTA_DB_SCHEMA",
            "CALISTA_ENV",
            "CALISTA_AUTO_UPGRADE",
            "CALISTA_TRANSACTION",
            "CALISTA_BACKUP_KEEP",
        ] {
            for url in [
                "postgresql:user:s3cr3t@h/db",
                "postgres://user:s3cr3t@h/db?x=1",
            ] {
                let message = failure_in(dir.path(), &Flags::default(), &[(variable, url)]);
                assert!(message.contains(variable), "{variable}: {message}");
                assert!(!message.contains("s3cr3t"), "{variable}: {message}");
            }
        }
        for config in [
            "[db]\nschema = \"postgres:s3cr3t@h/db\"\n",
            "[db]\n\"postgres:s3cr3t@h\" = 1\n",
            "[\"postgres:s3cr3t@h\"]\nx = 1\n",
            "\"postgres:s3cr3t@h\" = 1\n",
        ] {
            let message = file_failure(config);
            assert!(!message.contains("s3cr3t"), "{config}: {message}");
        }
    }

    #[test]
    fn system_schema_names_are_refused() {
        let dir = folder(None);
        for system in [
            "information_schema",
            "pg_catalog",
            "pg_toast",
            "pg_temp",
            "pg_temp_3",
            "pg_toast_temp_1",
            "pg_anything",
        ] {
            let message = failure_in(
                dir.path(),
                &Flags::default(),
                &[("CALISTA_DB_SCHEMA", system)],
            );
            assert!(
                message.contains("CALISTA_DB_SCHEMA") && message.contains("reserved"),
                "{system}: {message}"
            );
            let message = file_failure(&format!("[db]\nschema = \"{system}\"\n"));
            assert!(message.contains("[db] schema"), "{system}: {message}");
        }
        // Only the prefix is reserved.
        let s = resolve_in(
            dir.path(),
            &Flags::default(),
            &[("CALISTA_DB_SCHEMA", "pgx")],
        )
        .unwrap();
        assert_eq!(s.schema.value.as_ref().map(SchemaName::as_str), Some("pgx"));
    }

    #[test]
    fn invalid_file_value_names_key_and_file() {
        for (config, expected) in [
            (
                "[db]\nbackup_keep = 0\n",
                "calista.toml [db] backup_keep = 0 is not valid: expected a whole number from 1 \
                 to 4294967295",
            ),
            (
                "[app]\nenv = \"prod\"\n",
                "calista.toml [app] env = \"prod\" is not valid: expected production, \
                 development or ci",
            ),
            (
                "[db]\ntransaction = \"some\"\n",
                "calista.toml [db] transaction = \"some\" is not valid: expected all",
            ),
            (
                "[db]\nschema = \"Bad\"\n",
                "calista.toml [db] schema = \"Bad\" is not valid: expected a plain SQL",
            ),
            (
                "[db]\nlock_timeout = -5\n",
                "calista.toml [db] lock_timeout = -5 is not valid: expected a whole number from \
                 0 to 86400",
            ),
            (
                "[db]\nbackup_dir = \"\"\n",
                "calista.toml [db] backup_dir = \"\" is not valid: expected a path (leave the \
                 setting out for the default)",
            ),
        ] {
            let message = file_failure(config);
            assert!(message.starts_with(expected), "{config}: {message}");
        }
    }

    #[test]
    fn wrong_type_names_key_file_and_the_type_to_write() {
        for (config, expected) in [
            (
                "[db]\nauto_upgrade = \"yes\"\n",
                "calista.toml [db] auto_upgrade must be true or false (without quotes), not a \
                 string",
            ),
            (
                "[db]\nbackup_keep = \"10\"\n",
                "calista.toml [db] backup_keep must be a whole number (without quotes), not a \
                 string",
            ),
            (
                "[db]\nurl = 5\n",
                "calista.toml [db] url must be a string holding a database URL, not an integer",
            ),
            (
                "[db]\nlock_timeout = 1.5\n",
                "calista.toml [db] lock_timeout must be a whole number (without quotes), not a \
                 float",
            ),
            (
                "[app]\nenv = [\"ci\"]\n",
                "calista.toml [app] env must be a string: \"production\", \"development\" or \
                 \"ci\", not an array",
            ),
            (
                "[db]\nbackup_dir = 3\n",
                "calista.toml [db] backup_dir must be a string holding a path, not an integer",
            ),
        ] {
            assert_eq!(file_failure(config), expected, "{config}");
        }
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        assert_eq!(
            file_failure("[db]\nbackup_kep = 3\n"),
            "unknown setting `[db] backup_kep` in calista.toml; did you mean `[db] backup_keep`?"
        );
        assert_eq!(
            file_failure("[db]\nURL = \"sqlite://\"\n"),
            "unknown setting `[db] URL` in calista.toml; did you mean `[db] url`?"
        );
        assert_eq!(
            file_failure("[app]\nurl = \"sqlite://\"\n"),
            "unknown setting `[app] url` in calista.toml; did you mean `[db] url`?"
        );
        assert_eq!(
            file_failure("[db]\ncolour = true\n"),
            "unknown setting `[db] colour` in calista.toml; the keys of [db] are: url, \
             auto_upgrade, backup, backup_dir, backup_keep, pg_dump, schema, transaction, \
             lock_timeout, lock_attempt_timeout, connect_timeout"
        );
        assert_eq!(
            file_failure("url = \"sqlite://\"\n"),
            "unknown setting `url` in calista.toml; settings belong in a table: write `url` \
             below `[db]`"
        );
        assert_eq!(
            file_failure("[db.extra]\nx = 1\n"),
            "unknown setting `[db] extra` in calista.toml; the keys of [db] are: url, \
             auto_upgrade, backup, backup_dir, backup_keep, pg_dump, schema, transaction, \
             lock_timeout, lock_attempt_timeout, connect_timeout"
        );
    }

    #[test]
    fn unknown_table_names_table_and_file() {
        assert_eq!(
            file_failure("[database]\nurl = \"sqlite://\"\n"),
            "unknown table `[database]` in calista.toml; the tables are [db] and [app]"
        );
        assert_eq!(
            file_failure("[dbb]\nurl = \"sqlite://\"\n"),
            "unknown table `[dbb]` in calista.toml; did you mean `[db]`?"
        );
        assert_eq!(
            file_failure("db = 1\n"),
            "`db` in calista.toml must be a table: write `[db]` on a line of its own and its \
             keys below it"
        );
    }

    #[test]
    fn toml_syntax_error_names_file_line_and_column() {
        let message = file_failure("# settings\n[db]\nurl = \"sqlite://\"\nbackup = yes\n");
        assert!(
            message.starts_with("calista.toml is not valid TOML: line 4, column 10: "),
            "{message}"
        );
        let message = file_failure("[db\n");
        assert!(
            message.starts_with("calista.toml is not valid TOML: line 1, column "),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn named_config_file_must_exist_but_the_implicit_one_may_not() {
        let dir = folder(None);
        let by_flag = Flags {
            config: Some("nope.toml".into()),
            ..Flags::default()
        };
        assert_eq!(
            failure_in(dir.path(), &by_flag, &[]),
            "the configuration file nope.toml (from --config) does not exist; create it, or \
             point --config at an existing file"
        );
        assert_eq!(
            failure_in(
                dir.path(),
                &Flags::default(),
                &[("CALISTA_CONFIG", "conf/nope.toml")]
            ),
            "the configuration file conf/nope.toml (from env CALISTA_CONFIG) does not exist; \
             create it, or point env CALISTA_CONFIG at an existing file"
        );
        assert!(resolve_in(dir.path(), &Flags::default(), &[]).is_ok());
    }

    #[test]
    fn a_folder_named_as_the_config_file_is_unreadable() {
        let dir = folder(None);
        let flags = Flags {
            config: Some(".".into()),
            ..Flags::default()
        };
        let message = failure_in(dir.path(), &flags, &[]);
        assert!(
            message.starts_with(
                "cannot read the configuration file .; it must be a readable file\n  caused by: "
            ),
            "{message}"
        );
    }

    #[test]
    fn config_flag_beats_config_env_beats_the_implicit_file() {
        let dir = folder(Some("[db]\nbackup_keep = 1\n"));
        std::fs::write(dir.path().join("env.toml"), "[db]\nbackup_keep = 2\n").unwrap();
        std::fs::write(dir.path().join("flag.toml"), "[db]\nbackup_keep = 3\n").unwrap();
        let env = [("CALISTA_CONFIG", "env.toml")];
        let flags = Flags {
            config: Some("flag.toml".into()),
            ..Flags::default()
        };
        let cases = [
            (Flags::default(), &[][..], 1, "calista.toml"),
            (Flags::default(), &env[..], 2, "env.toml"),
            (flags, &env[..], 3, "flag.toml"),
        ];
        for (flags, env, keep, file) in cases {
            let s = resolve_in(dir.path(), &flags, env).unwrap();
            assert_eq!(s.backup_keep.value, keep);
            assert_eq!(s.config_file, Some(PathBuf::from(file)));
            assert_eq!(
                s.backup_keep.source.to_string(),
                format!("{file} [db] backup_keep")
            );
        }
    }

    #[test]
    fn relative_paths_in_the_file_follow_the_file_and_elsewhere_the_current_directory() {
        let dir = folder(None);
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(
            dir.path().join("conf/app.toml"),
            "[db]\nurl = \"sqlite:///app.db\"\nbackup_dir = \"backups\"\npg_dump = \"bin/pg_dump\"\n",
        )
        .unwrap();
        let conf = dir.path().join("conf");
        let s = resolve_in(
            dir.path(),
            &Flags::default(),
            &[("CALISTA_CONFIG", "conf/app.toml")],
        )
        .unwrap();
        assert_eq!(s.config_file, Some(PathBuf::from("conf/app.toml")));
        assert_eq!(
            s.db_url.value,
            DatabaseUrl::Sqlite(crate::url::SqliteTarget::File(conf.join("app.db")))
        );
        assert_eq!(s.backup_dir.value, Some(conf.join("backups")));
        assert_eq!(s.pg_dump.value, Some(conf.join("bin/pg_dump")));

        let s = resolve_in(
            dir.path(),
            &Flags::default(),
            &[
                ("CALISTA_DB_URL", "sqlite:x.db"),
                ("CALISTA_BACKUP_DIR", "backups"),
                ("CALISTA_PG_DUMP", "./pg_dump"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.db_url.value,
            DatabaseUrl::Sqlite(crate::url::SqliteTarget::File(dir.path().join("x.db")))
        );
        assert_eq!(s.backup_dir.value, Some(dir.path().join("backups")));
        assert_eq!(s.pg_dump.value, Some(dir.path().join("./pg_dump")));
    }

    #[test]
    fn a_bare_pg_dump_name_is_left_for_the_path_lookup() {
        let dir = folder(Some("[db]\npg_dump = \"pg_dump-16\"\n"));
        let s = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
        assert_eq!(s.pg_dump.value, Some(PathBuf::from("pg_dump-16")));
    }

    #[test]
    fn shadowed_values_are_still_checked() {
        let dir = folder(Some("[db]\nbackup_keep = \"ten\"\n"));
        let message = failure_in(
            dir.path(),
            &Flags::default(),
            &[("CALISTA_BACKUP_KEEP", "3")],
        );
        assert!(
            message.starts_with("calista.toml [db] backup_keep"),
            "{message}"
        );
        let dir = folder(None);
        let flags = Flags {
            db_url: Some("sqlite://".into()),
            ..Flags::default()
        };
        let message = failure_in(dir.path(), &flags, &[("CALISTA_DB_URL", "sqlite:/")]);
        assert!(
            message.starts_with("the database URL from env CALISTA_DB_URL is not accepted"),
            "{message}"
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let dir = folder(Some("[db]\nbackup_keep = 4\n"));
        let env = [
            ("CALISTA_DB_URL", ""),
            ("CALISTA_BACKUP_KEEP", "  "),
            ("CALISTA_CONFIG", ""),
            ("CALISTA_AUTO_UPGRADE", ""),
        ];
        let s = resolve_in(dir.path(), &Flags::default(), &env).unwrap();
        assert_eq!(s.db_url.source, Source::Default);
        assert_eq!(s.backup_keep.value, 4);
        assert_eq!(s.config_file, Some(PathBuf::from("calista.toml")));
        assert_eq!(s.auto_upgrade.source, Source::Default);
    }

    #[test]
    fn backups_default_to_on_in_production_only() {
        for (environment, backup) in [("production", true), ("development", false), ("ci", false)] {
            let dir = folder(Some(&format!("[app]\nenv = \"{environment}\"\n")));
            let s = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
            assert_eq!(
                s.backup,
                Setting {
                    value: backup,
                    source: Source::Default
                }
            );
            assert_eq!(
                row(&s, "backup").1,
                format!("default for {environment}"),
                "the row says why"
            );
            assert_eq!(s.environment.value.allows_downgrade(), !backup);
        }
        let dir = folder(Some("[app]\nenv = \"development\"\n[db]\nbackup = true\n"));
        let s = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
        assert!(s.backup.value, "an explicit setting wins in development");
        assert_eq!(row(&s, "backup").1, "calista.toml [db] backup");
    }

    #[test]
    fn bad_database_url_names_where_it_came_from_and_the_accepted_forms() {
        let dir = folder(Some("[db]\nurl = \"sqlite:/\"\n"));
        let message = failure_in(dir.path(), &Flags::default(), &[]);
        assert!(
            message.starts_with(
                "the database URL from calista.toml [db] url is not accepted\n  caused by: \
                 `sqlite:/` is not an accepted database URL"
            ) && message.contains("sqlite:////absolute/path.db"),
            "{message}"
        );
        let flags = Flags {
            db_url: Some("mysql://h/db".into()),
            ..Flags::default()
        };
        let message = failure_in(dir.path(), &flags, &[]);
        assert!(
            message.starts_with("the database URL from --db-url is not accepted"),
            "{message}"
        );
    }

    #[test]
    fn password_never_appears_in_errors_or_output() {
        const SECRET: &str = "s3cr3t";
        let url = "postgresql://u:s3cr3t@h/db";
        let mysql = "mysql://u:s3cr3t@h/db";
        let dir = folder(None);
        let flagged = Flags {
            db_url: Some(mysql.into()),
            ..Flags::default()
        };
        let mut failures = vec![
            failure_in(dir.path(), &flagged, &[]),
            failure_in(dir.path(), &Flags::default(), &[("CALISTA_DB_URL", mysql)]),
            failure_in(dir.path(), &Flags::default(), &[("CALISTA_ENV", url)]),
            failure_in(
                dir.path(),
                &Flags::default(),
                &[("CALISTA_BACKUP_KEEP", url)],
            ),
            failure_in(dir.path(), &Flags::default(), &[("CALISTA_DB_SCHEMA", url)]),
            failure_in(
                dir.path(),
                &Flags::default(),
                &[("CALISTA_DB_URL", "postgres://u:s3cr3t@h:port/db")],
            ),
        ];
        for config in [
            format!("[db]\nurl = \"{mysql}\"\n"),
            format!("[db]\nurl = \"{url}\n"),
            format!("[db]\nurl = '{url}' x\n"),
            format!("[app]\nenv = \"{url}\"\n"),
            format!("[db]\nschema = \"{url}?password=s3cr3t\"\n"),
            format!("[db]\n\"{url}\" = 1\n"),
            format!("\"{url}\" = 1\n"),
            format!("[\"{url}\"]\nx = 1\n"),
        ] {
            failures.push(file_failure(&config));
        }
        for message in &failures {
            assert!(!message.contains(SECRET), "{message}");
        }

        let s = resolve_in(dir.path(), &Flags::default(), &[("CALISTA_DB_URL", url)]).unwrap();
        let shown = format!("{:?} {:?}", s.rows(), s);
        assert!(!shown.contains(SECRET), "{shown}");
        assert_eq!(row(&s, "database url").0, "postgres://u:***@h/db");
        let DatabaseUrl::Postgres(pg) = &s.db_url.value else {
            panic!("{s:?}")
        };
        assert_eq!(
            pg.password().as_deref(),
            Some(SECRET),
            "still there to connect"
        );
    }

    #[test]
    fn rows_come_in_a_stable_order() {
        let dir = folder(None);
        let s = resolve_in(dir.path(), &Flags::default(), &[]).unwrap();
        let names: Vec<&str> = s.rows().into_iter().map(|(name, _, _)| name).collect();
        assert_eq!(
            names,
            [
                "database url",
                "backend",
                "auto upgrade",
                "environment",
                "backup",
                "backup dir",
                "backup keep",
                "pg_dump",
                "schema",
                "transaction",
                "lock timeout",
                "lock attempt timeout",
                "connect timeout",
                "config file",
            ]
        );
        assert_eq!(row(&s, "backend").0, "SQLite");
        assert_eq!(row(&s, "config file"), ("none".to_owned(), String::new()));
    }

    #[test]
    fn sources_display_as_documented() {
        assert_eq!(Source::Flag("--db-url".into()).to_string(), "--db-url");
        assert_eq!(
            Source::Env("CALISTA_DB_URL".into()).to_string(),
            "env CALISTA_DB_URL"
        );
        assert_eq!(
            Source::File {
                path: "conf/calista.toml".into(),
                key: "[db] url"
            }
            .to_string(),
            "conf/calista.toml [db] url"
        );
        assert_eq!(Source::Default.to_string(), "default");
    }

    #[test]
    fn resolution_never_panics_on_generated_values() {
        const PIECES: &[&str] = &[
            "",
            " ",
            "\0",
            "\u{e9}",
            "\u{1F600}",
            "9999999999999999999999",
            "-",
            "1",
            "0",
            "true",
            "sqlite:",
            "postgres://@:/?&=",
            "\"",
            "'",
            "[",
            "]",
            "=",
            "\n",
            "db",
            "url",
            "%",
            ":memory:",
            "/",
            "..",
            "\\",
            "#",
            "{",
            "}",
            ".",
            "x",
        ];
        let names: Vec<String> = KEYS
            .iter()
            .map(|key| format!("CALISTA_{}", key.env))
            .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % 1_000_003).unwrap_or(0)
        };
        let dir = folder(None);
        for round in 0..2_000_u32 {
            let mut value = String::new();
            for _ in 0..next() % 6 {
                value.push_str(PIECES[next() % PIECES.len()]);
            }
            let name = &names[next() % names.len()];
            let _ = resolve_in(dir.path(), &Flags::default(), &[(name, &value)]);
            if round.is_multiple_of(4) {
                // The same value in the file, raw (often not TOML) and as a string.
                let key = KEYS[next() % KEYS.len()];
                for text in [
                    format!("[{}]\n{} = {value}\n", key.table, key.key),
                    format!("[{}]\n{} = {value:?}\n", key.table, key.key),
                ] {
                    std::fs::write(dir.path().join("calista.toml"), text).unwrap();
                    let _ = resolve_in(dir.path(), &Flags::default(), &[]);
                }
                std::fs::remove_file(dir.path().join("calista.toml")).unwrap();
            }
        }
    }
}
