//! The crate's single error type. Pure data; no I/O.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, querying or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An external program could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why `exec` failed.
        #[source]
        source: std::io::Error,
    },
    /// An external program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Exit status as printed by std.
        status: String,
        /// Trimmed standard error (or standard output when stderr was empty).
        stderr: String,
    },
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A name (namespace, interface, node) is not usable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A condition did not become true in time.
    #[error("timed out after {waited:?} waiting for {what}{}", last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// The last error or observation, if any.
        last: Option<String>,
    },
    /// Output of a daemon or tool could not be understood.
    #[error("could not parse {what}: {reason}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Sending a signal failed.
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        /// Target process.
        pid: u32,
        /// Signal name.
        signal: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A containerlab topology file is not valid YAML or not a valid topology.
    #[error("{file}: {message}")]
    Topology {
        /// The topology file.
        file: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// The topology uses containerlab features this runner does not implement.
    #[error("{file}: unsupported containerlab feature(s): {}", features.join(", "))]
    Unsupported {
        /// The topology file.
        file: String,
        /// One entry per feature, naming where it is used.
        features: Vec<String>,
    },
    /// A program the topology needs is not available on this machine (yet).
    #[error("{what} not available: {reason}")]
    NotAvailable {
        /// The program or image.
        what: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// A node of a lab could not be started.
    #[error("node {node}: {reason}")]
    Node {
        /// Node name.
        node: String,
        /// What failed.
        reason: String,
    },
    /// The on-disk lab state is missing or inconsistent.
    #[error("lab state: {0}")]
    State(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
