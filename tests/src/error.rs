//! The fixture library's error type: wraps `herald-lab` errors and adds daemon-specific ones.

/// Errors from fixtures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the shared namespace/process/FRR primitives.
    #[error(transparent)]
    Lab(#[from] herald_lab::Error),
    /// A daemon's output could not be understood.
    #[error("could not parse {what}: {reason}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A daemon did not start.
    #[error("{daemon} did not start: {detail}")]
    Start {
        /// Daemon name.
        daemon: String,
        /// Logs or reason.
        detail: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with the fixture [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn parse(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Parse {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
