//! The CLI's error: input problems (exit code 2) versus failures (exit code 1).
//!
//! Every command returns `Result<_, CliError>`. Input errors are things the
//! user can fix by typing something else (unknown contact, bad date, unknown
//! kind, empty summary); failures are everything else (a damaged store, a disk
//! error). `main` prints either as one `error: ...` line.

use std::fmt;

/// Exit code for usage and input errors (clap uses the same for bad flags).
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code for every other failure.
pub(crate) const EXIT_FAILURE: u8 = 1;

#[derive(Debug)]
pub(crate) enum CliError {
    /// The user's input is wrong; nothing was changed.
    Input(String),
    /// Something failed that is not the input's fault.
    Failure(anyhow::Error),
    /// stdout was closed by its reader (`kith timeline | head`): stop quietly.
    OutputClosed,
}

impl CliError {
    pub(crate) fn input(msg: impl fmt::Display) -> CliError {
        CliError::Input(msg.to_string())
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => EXIT_INPUT,
            CliError::Failure(_) => EXIT_FAILURE,
            CliError::OutputClosed => 0,
        }
    }

    /// Whether the store was held by another process (nothing was written).
    pub(crate) fn is_store_locked(&self) -> bool {
        match self {
            CliError::Failure(e) => matches!(
                e.downcast_ref::<kith_core::StoreError>(),
                Some(kith_core::StoreError::Locked { .. })
            ),
            _ => false,
        }
    }

    /// The one-line message printed after `error: `.
    pub(crate) fn message(&self) -> String {
        match self {
            CliError::Input(m) => crate::render::one_line(m),
            // "{:#}" prints the whole source chain on one line.
            CliError::Failure(e) => crate::render::one_line(&format!("{e:#}")),
            CliError::OutputClosed => String::new(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::OutputClosed;
        }
        CliError::Failure(anyhow::Error::new(e).context("writing output"))
    }
}

impl From<crate::when::WhenError> for CliError {
    fn from(e: crate::when::WhenError) -> Self {
        CliError::input(e)
    }
}

impl From<kith_core::model::UnknownVariant> for CliError {
    fn from(e: kith_core::model::UnknownVariant) -> Self {
        CliError::input(e.to_string().trim_end().replace(" )", ")"))
    }
}

impl From<kith_core::ids::InvalidId> for CliError {
    fn from(e: kith_core::ids::InvalidId) -> Self {
        CliError::input(e)
    }
}

impl From<crate::datadir::DataDirError> for CliError {
    fn from(e: crate::datadir::DataDirError) -> Self {
        CliError::input(e)
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;
