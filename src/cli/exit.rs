//! Errors of the commands and the one table from errors to exit codes.

use std::process::ExitCode;

use calista::ErrorKind;

/// Success.
pub const SUCCESS: u8 = 0;
/// A failure while working.
pub const FAILURE: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// The schema is behind.
pub const BEHIND: u8 = 3;
/// The schema is unsafe to touch.
pub const UNSAFE: u8 = 4;
/// The migration lock timed out.
pub const LOCK_TIMEOUT: u8 = 5;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// From the migration runtime.
    #[error(transparent)]
    Calista(#[from] calista::Error),
    /// A setting is wrong.
    #[error(transparent)]
    Settings(#[from] calista::settings::SettingsError),
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// Something failed, with its cause.
    #[error("{message}")]
    Failure {
        /// What failed and what to do.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl CliError {
    /// A failure with its cause.
    pub fn failure(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Failure {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The exit code, decided here and nowhere else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Calista(error) => match error.kind() {
                ErrorKind::Behind => BEHIND,
                ErrorKind::Unsafe => UNSAFE,
                ErrorKind::LockTimeout => LOCK_TIMEOUT,
                ErrorKind::Usage => USAGE,
                _ => FAILURE,
            },
            Self::Settings(_) | Self::Usage(_) => USAGE,
            Self::Failure { .. } => FAILURE,
        }
    }
}

/// Turns a code into the process's exit status.
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}
