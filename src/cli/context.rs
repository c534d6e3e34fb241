//! From options and settings to the objects commands use. Resolving settings never connects.

use std::path::PathBuf;

use crate::backup::BackupOptions;
use crate::settings::{self, AppNames, Settings};
use crate::url::DatabaseUrl;
use crate::{Database, DatabaseOptions, Migrations, Policy};

use super::args::DbOptions;
use super::exit::CliError;
use super::output::Output;

/// What every command starts from: the resolved settings, the migrations (built in, or
/// `--migrations DIR`), and the application's names.
#[derive(Debug, Clone)]
pub struct Context {
    settings: Settings,
    migrations: &'static Migrations,
    migrations_dir: Option<PathBuf>,
    names: AppNames,
    app_version: Option<crate::semver::Version>,
}

impl Context {
    /// Resolves the settings and picks the migrations.
    pub(crate) fn load(
        built_in: &'static Migrations,
        names: &AppNames,
        app_version: Option<crate::semver::Version>,
        options: &DbOptions,
    ) -> Result<Self, CliError> {
        let flags = settings::Flags {
            db_url: options.db_url.clone(),
            auto_upgrade: options.auto_upgrade,
            no_backup: options.no_backup,
            config: options.config.clone(),
        };
        let settings = settings::resolve_from_process(names, &flags)?;
        let migrations: &'static Migrations = match &options.migrations {
            // Read once per process and kept for its lifetime, like the embedded set.
            Some(dir) => Box::leak(Box::new(
                Migrations::from_dir(dir).map_err(crate::Error::from)?,
            )),
            None => built_in,
        };
        Ok(Self {
            settings,
            migrations,
            migrations_dir: options.migrations.clone(),
            names: names.clone(),
            app_version,
        })
    }

    /// The resolved settings, each with where it came from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The migrations commands run on.
    pub fn migrations(&self) -> &'static Migrations {
        self.migrations
    }

    /// The application's names.
    pub fn names(&self) -> &AppNames {
        &self.names
    }

    /// The folder `db new` writes to: `--migrations DIR`, else `migrations/` here.
    pub(crate) fn migrations_dir(&self) -> PathBuf {
        self.migrations_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("migrations"))
    }

    /// The database URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.settings.db_url.value
    }

    /// How to reach the database.
    pub fn database_options(&self) -> DatabaseOptions {
        self.settings.database_options()
    }

    /// A database handle (no connection is made until it is used).
    pub fn database(&self) -> Result<Database, CliError> {
        Ok(Database::connect(self.url(), self.database_options())?)
    }

    pub(crate) fn backup_options(&self) -> BackupOptions {
        self.settings.backup_options(&self.names)
    }

    /// The guard's and the migrator's policy, with the application's hints and version.
    pub fn policy(&self) -> Policy {
        let mut policy = self.settings.policy(&self.names);
        policy.app_version = self.app_version.clone();
        policy
    }

    /// Tells `out` never to print the database password.
    pub(crate) fn protect(&self, out: &mut Output) {
        if let DatabaseUrl::Postgres(pg) = self.url()
            && let Some(password) = pg.password()
        {
            out.add_secret(password);
        }
    }
}
