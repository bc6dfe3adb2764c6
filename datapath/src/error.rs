//! The datapath crate's error type: one enum for the Maglev builder, the loader and reconcile.

/// Everything that can go wrong in the datapath crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Maglev seed is not base64 of exactly 12 bytes.
    #[error("invalid Maglev seed: {0}")]
    InvalidSeed(String),
    /// The Maglev table size is not one of the supported primes.
    #[error("invalid Maglev table size {0}: must be one of {sizes:?}", sizes = crate::maglev::TABLE_SIZES)]
    InvalidTableSize(u32),
    /// A backend specification could not be parsed or is inconsistent.
    #[error("invalid backend {0}")]
    InvalidBackend(String),
    /// A Maglev table needs at least one backend with a non-zero weight.
    #[error("no backends with a non-zero weight")]
    NoBackends,
    /// A map or program the eBPF object should contain is missing.
    #[error("eBPF object has no map or program named {0}")]
    MissingObject(String),
    /// Loading the eBPF object failed (verifier, map creation, pinning).
    #[error("loading eBPF: {0}")]
    Ebpf(#[from] aya::EbpfError),
    /// A map operation failed.
    #[error("BPF map: {0}")]
    Map(#[from] aya::maps::MapError),
    /// A program operation (load, attach, test run) failed.
    #[error("BPF program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    /// A bpf_link operation (open, convert, take over) failed.
    #[error("BPF link: {0}")]
    Link(#[from] aya::programs::links::LinkError),
    /// Pinning an object in bpffs failed.
    #[error("pinning: {0}")]
    Pin(#[from] aya::pin::PinError),
    /// A system call or file operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The next hop towards an underlay address could not be found or resolved.
    #[error("next hop: {0}")]
    Neighbour(String),
    /// The `datapath:` config section is malformed (serde-saphyr's message names line and
    /// column).
    #[error("{path}: {message}")]
    ConfigParse {
        /// The file (or `<input>`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A `datapath:` config value is invalid.
    #[error("{path}:{line}: {key}: {message}")]
    Config {
        /// The file (or `<input>`).
        path: String,
        /// 1-based line of the offending value (0 when unknown).
        line: u64,
        /// Dotted key path, e.g. `datapath.maglev.tableSize`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A feature that is not written yet.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
