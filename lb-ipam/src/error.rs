//! The crate's one error type. Allocation outcomes (pool exhausted, sharing conflict, ...) are
//! not errors: they are reported per service as [`crate::allocator::Unsatisfied`] values.

use std::path::PathBuf;

/// Everything that can fail in lb-ipam: invalid configuration, the state file, the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A label selector is malformed (for example `In` without values).
    #[error("invalid label selector: {0}")]
    InvalidSelector(String),
    /// A pool definition is invalid (bad block, mixed families, bad selector, ...).
    #[error("invalid pool {pool:?}: {reason}")]
    InvalidPool {
        /// Name of the pool.
        pool: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two pools were given the same name.
    #[error("duplicate pool name {0:?}")]
    DuplicatePool(String),
    /// A service entry is invalid (bad annotation value, bad port, ...).
    #[error("invalid service {service}: {reason}")]
    InvalidService {
        /// `namespace/name` of the service.
        service: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The YAML configuration could not be parsed; the message carries line and column.
    #[error("{context}: {source}")]
    Yaml {
        /// Which file or section was being read.
        context: String,
        /// The parser's error, with location.
        source: Box<serde_saphyr::Error>,
    },
    /// Reading, writing or syncing the state file failed.
    #[error("state file {path}: {source}")]
    StateIo {
        /// The state file (or its directory).
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The state file exists but is not a valid Herald lb-ipam state file. It is left untouched.
    #[error("state file {path} is corrupt ({reason}); refusing to use or overwrite it")]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The state file belongs to another owner (another node or configuration). It is left untouched.
    #[error(
        "state file {path} belongs to owner {found:?}, not {expected:?}; refusing to use or overwrite it"
    )]
    StateForeign {
        /// The state file.
        path: PathBuf,
        /// Our owner identity.
        expected: String,
        /// The identity recorded in the file.
        found: String,
    },
    /// A JSON (de)serialisation failed outside the state file (CRD status, patches).
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A Kubernetes API call failed.
    #[cfg(feature = "kubernetes")]
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// A feature that is deliberately not implemented yet.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
