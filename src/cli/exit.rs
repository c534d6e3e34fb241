//! Errors of the commands and the one table from errors to exit codes.

use std::process::ExitCode;

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

/// How a run on many targets (`--targets`) picks its code when not every target succeeded:
/// the first of these that any target exited with. From "the command itself is wrong"
/// through "something broke" and "a person must look" to "try again later" and "run the
/// upgrade", so that a script acts on the worst.
pub(crate) const FLEET_SEVERITY: [u8; 5] = [USAGE, FAILURE, UNSAFE, LOCK_TIMEOUT, BEHIND];

/// The code of a run on many targets, from each target's own: 0 when all are 0, else the
/// most severe by [`FLEET_SEVERITY`].
pub(crate) fn fleet_code(codes: impl IntoIterator<Item = u8>) -> u8 {
    let codes: Vec<u8> = codes.into_iter().collect();
    FLEET_SEVERITY
        .into_iter()
        .find(|code| codes.contains(code))
        .or_else(|| codes.into_iter().find(|code| *code != SUCCESS))
        .unwrap_or(SUCCESS)
}

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
    /// The targets file (`--targets`) cannot be used; nothing ran.
    #[error(transparent)]
    Targets(#[from] calista::fleet::TargetsError),
    /// Not every target of a fleet succeeded; each is reported already.
    #[error("{summary}")]
    Fleet {
        /// How many did not, and how.
        summary: String,
        /// The most severe of the targets' codes, in the order `--help` lists.
        code: u8,
    },
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
            Self::Calista(error) => error.exit_code(),
            Self::Fleet { code, .. } => *code,
            Self::Settings(_) | Self::Targets(_) | Self::Usage(_) => USAGE,
            Self::Failure { .. } => FAILURE,
        }
    }
}

/// Turns a code into the process's exit status.
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calista::ErrorKind;

    #[test]
    fn a_fleet_exits_with_its_most_severe_target_code() {
        assert_eq!(fleet_code([]), SUCCESS);
        assert_eq!(fleet_code([SUCCESS, SUCCESS]), SUCCESS);
        assert_eq!(fleet_code([SUCCESS, BEHIND]), BEHIND);
        assert_eq!(fleet_code([BEHIND, LOCK_TIMEOUT, SUCCESS]), LOCK_TIMEOUT);
        assert_eq!(fleet_code([LOCK_TIMEOUT, UNSAFE, BEHIND]), UNSAFE);
        assert_eq!(fleet_code([UNSAFE, FAILURE]), FAILURE);
        assert_eq!(fleet_code([FAILURE, USAGE, UNSAFE]), USAGE);
    }

    #[test]
    fn the_table_is_the_librarys() {
        for (kind, code) in [
            (ErrorKind::Failure, FAILURE),
            (ErrorKind::Usage, USAGE),
            (ErrorKind::Behind, BEHIND),
            (ErrorKind::Unsafe, UNSAFE),
            (ErrorKind::LockTimeout, LOCK_TIMEOUT),
        ] {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }
}
