//! The crate's one error type. Wire decoding, configuration, I/O and the fencing store all report
//! through [`Error`]; input-driven paths return it instead of panicking.

use std::io;

/// Everything that can go wrong in the L2 announcer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A buffer is shorter than the header or field being read.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field holds a value the format does not allow.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// The structure being decoded.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A feature that is designed but not built yet.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the interface or path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The fencing/membership store failed.
    #[error("store: {0}")]
    Store(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) const fn malformed(what: &'static str, why: &'static str) -> Self {
        Error::Malformed { what, why }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
