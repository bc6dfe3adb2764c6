//! The speaker library's error type. Pure data: no I/O.

use std::path::PathBuf;

/// Everything the speaker library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A socket option was refused by the kernel.
    #[error("setsockopt {option}: {errno}")]
    SockOpt {
        /// The option.
        option: &'static str,
        /// The kernel's reason.
        errno: nix::errno::Errno,
    },
    /// A TCP MD5 key longer than the kernel allows.
    #[error("TCP MD5 key is {0} octets; the kernel allows at most 80")]
    Md5KeyTooLong(usize),
    /// A password file could not be read.
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A peer's BFD authentication key cannot be used (the message names the key file, never
    /// the key).
    #[error("bgp.peers[{peer}].bfd.authentication.passwordFile: {source}")]
    BfdKey {
        /// The peer's address.
        peer: std::net::IpAddr,
        /// Why.
        source: crate::bfd::Error,
    },
    /// The control socket answered something we do not understand, or refused the request.
    #[error("control socket: {0}")]
    Control(String),
    /// The running instance has stopped.
    #[error("the BGP instance has stopped")]
    InstanceGone,
    /// A requested feature is not implemented yet.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// A route cannot be sent: with its attributes it exceeds the negotiated message size.
    #[error("route {prefix} needs a {len}-octet UPDATE; the session allows {max}")]
    RouteTooLarge {
        /// The prefix.
        prefix: ipnet::IpNet,
        /// Octets the smallest UPDATE carrying it would take.
        len: usize,
        /// The negotiated maximum message size.
        max: usize,
    },
    /// A route cannot be expressed on the wire.
    #[error("route {prefix} cannot be encoded: {reason}")]
    Unencodable {
        /// The prefix.
        prefix: ipnet::IpNet,
        /// Why.
        reason: &'static str,
    },
    /// A netlink request to the kernel failed.
    #[error("netlink {op}: {reason}")]
    Netlink {
        /// What we asked for (`add route 10.0.0.0/24 table 100`, ...).
        op: String,
        /// The kernel's (or the netlink library's) answer.
        reason: String,
    },
    /// An import policy is malformed.
    #[error("invalid import policy: {0}")]
    InvalidPolicy(String),
    /// Kubernetes mode: an API call failed or an object could not be used (the message names
    /// the object and what was being done).
    #[error("Kubernetes: {0}")]
    Kube(String),
}

impl Error {
    /// An I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result with the speaker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
