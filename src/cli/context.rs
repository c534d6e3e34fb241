//! From flags and settings to the objects commands use. Resolving settings never connects.

use calista::backup::{BackupOptions, BackupPolicy};
use calista::settings::{self, Settings, Source};
use calista::url::DatabaseUrl;
use calista::{Database, DatabaseOptions, Downgrades, Migrations, Policy};

use super::args::GlobalArgs;
use super::exit::CliError;

/// CALISTA's own migrations, embedded at build time.
static MIGRATIONS: Migrations = calista::migrations!();

/// What every command starts from.
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) migrations: &'static Migrations,
    migrations_dir: Option<std::path::PathBuf>,
}

impl Context {
    /// Resolves the settings and picks the migrations (built in, or `--migrations DIR`).
    pub(crate) fn load(global: &GlobalArgs) -> Result<Self, CliError> {
        let flags = settings::Flags {
            db_url: global.db_url.clone(),
            auto_upgrade: global.auto_upgrade,
            no_backup: global.no_backup,
            config: global.config.clone(),
        };
        let settings = settings::resolve_from_process(&flags)?;
        let migrations: &'static Migrations = match &global.migrations {
            // Read once per process and kept for its lifetime, like the embedded set.
            Some(dir) => Box::leak(Box::new(
                Migrations::from_dir(dir).map_err(calista::Error::from)?,
            )),
            None => &MIGRATIONS,
        };
        Ok(Self {
            settings,
            migrations,
            migrations_dir: global.migrations.clone(),
        })
    }

    /// The folder `db new` writes to: `--migrations DIR`, else `migrations/` here.
    pub(crate) fn migrations_dir(&self) -> std::path::PathBuf {
        self.migrations_dir
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("migrations"))
    }

    pub(crate) fn url(&self) -> &DatabaseUrl {
        &self.settings.db_url.value
    }

    pub(crate) fn database_options(&self) -> DatabaseOptions {
        DatabaseOptions {
            schema: self.settings.schema.value.clone(),
            connect_timeout: self.settings.connect_timeout.value,
            lock_timeout: self.settings.lock_timeout.value,
            ..DatabaseOptions::default()
        }
    }

    /// A database handle (no connection is made until it is used).
    pub(crate) fn database(&self) -> Result<Database, CliError> {
        Ok(Database::connect(self.url(), self.database_options())?)
    }

    pub(crate) fn backup_options(&self) -> BackupOptions {
        BackupOptions {
            dir: self.settings.backup_dir.value.clone(),
            keep: self.settings.backup_keep.value,
            pg_dump: self.settings.pg_dump.value.clone(),
            // Printed after an upgrade: runnable as it is, so in production with --yes.
            restore_hint: if self.settings.environment.value.allows_downgrade() {
                "calista db restore".to_owned()
            } else {
                "calista db restore --yes".to_owned()
            },
        }
    }

    /// The migrator's policy, from the settings.
    pub(crate) fn policy(&self) -> Policy {
        let s = &self.settings;
        let environment = &s.environment.value;
        Policy {
            auto_upgrade: s.auto_upgrade.value,
            transaction_mode: s.transaction_mode.value,
            backup: if s.backup.value {
                BackupPolicy::Enabled(self.backup_options())
            } else {
                BackupPolicy::Disabled {
                    reason: match &s.backup.source {
                        Source::Default => {
                            format!("backups are off by default in {}", environment.name())
                        }
                        source => format!("backups are off (from {source})"),
                    },
                }
            },
            downgrades: if environment.allows_downgrade() {
                Downgrades::Allowed
            } else {
                Downgrades::Refused {
                    environment: environment.name().to_owned(),
                }
            },
            app_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            upgrade_hint: calista::DEFAULT_UPGRADE_HINT.to_owned(),
            lock_attempt_timeout: s.lock_attempt_timeout.value,
        }
    }
}
