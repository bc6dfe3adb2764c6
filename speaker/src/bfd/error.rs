//! The BFD module's error type: packet validation failures (one variant per rule of RFC 5880
//! §4.1 and §6.8.6 that the codec can check on its own) and driver/socket failures.

use std::net::{IpAddr, SocketAddr};

/// Everything that can go wrong in BFD.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum Error {
    /// Fewer bytes than the 24-octet mandatory section.
    #[error("BFD packet truncated: {len} bytes, at least 24 needed")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// §6.8.6: "If the version number is not correct (1), the packet MUST be discarded."
    #[error("BFD version {0} is not 1")]
    BadVersion(u8),
    /// §6.8.6: "If the Length field is less than the minimum correct value (24 if the A bit is
    /// clear, or 26 if the A bit is set), the packet MUST be discarded."
    #[error("BFD length field {length} below the minimum {minimum}")]
    LengthTooShort {
        /// The Length field.
        length: u8,
        /// 24, or 26 with the A bit.
        minimum: u8,
    },
    /// §6.8.6: "If the Length field is greater than the payload of the encapsulating protocol,
    /// the packet MUST be discarded."
    #[error("BFD length field {length} exceeds the {payload}-byte UDP payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// UDP payload size.
        payload: usize,
    },
    /// §6.8.6: "If the Detect Mult field is zero, the packet MUST be discarded."
    #[error("BFD detect multiplier is zero")]
    ZeroDetectMult,
    /// §6.8.6: "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
    #[error("BFD multipoint bit set")]
    Multipoint,
    /// §6.8.6: "If the My Discriminator field is zero, the packet MUST be discarded."
    #[error("BFD my discriminator is zero")]
    ZeroMyDiscriminator,
    /// §6.8.6: "If the Your Discriminator field is zero and the State field is not Down or
    /// AdminDown, the packet MUST be discarded."
    #[error("BFD your discriminator is zero in state {0}")]
    ZeroYourDiscriminator(crate::bfd::State),
    /// §4.1: "A BFD Control packet MUST NOT have both the Poll (P) and Final (F) bits set."
    #[error("BFD packet has both Poll and Final set")]
    PollAndFinal,
    /// §4.1: the Auth Len field does not fit the packet (it counts the type and length octets).
    #[error("BFD authentication section length {auth_len} does not fit a {length}-byte packet")]
    BadAuthLength {
        /// The Auth Len field.
        auth_len: u8,
        /// The Length field.
        length: u8,
    },
    /// §6.8.6: "If the A bit is set and no authentication is in use (bfd.AuthType is zero), the
    /// packet MUST be discarded." We implement no authentication.
    #[error("BFD authentication is not implemented; packet with the A bit discarded")]
    AuthNotImplemented,
    /// §6.8.6: "If the Your Discriminator field is nonzero, it MUST be used to select the session
    /// with which this BFD packet is associated. If no session is found, the packet MUST be
    /// discarded."
    #[error("no BFD session with discriminator {0}")]
    UnknownDiscriminator(u32),
    /// A packet with Your Discriminator zero from an address no session is registered for.
    #[error("no BFD session for peer {peer} (local {local:?})")]
    UnknownPeer {
        /// Source address of the packet.
        peer: IpAddr,
        /// Destination address, when the kernel reported it.
        local: Option<IpAddr>,
    },
    /// The session selected by discriminator belongs to another peer address.
    #[error(
        "BFD packet for discriminator {discriminator} came from {source_addr}, session peer is {peer}"
    )]
    WrongSource {
        /// Your Discriminator of the packet.
        discriminator: u32,
        /// Source address of the packet.
        source_addr: IpAddr,
        /// The session's registered peer.
        peer: IpAddr,
    },
    /// RFC 5881 §5: single-hop packets "MUST be discarded" unless the received TTL/Hop Limit is 255.
    #[error("single-hop BFD packet from {source_addr} with TTL {ttl}, 255 required")]
    BadTtl {
        /// Source of the packet.
        source_addr: SocketAddr,
        /// TTL or Hop Limit seen.
        ttl: u8,
    },
    /// A session with these addresses and kind is already registered.
    #[error("a BFD session for peer {peer} (local {local}) is already registered")]
    Duplicate {
        /// Peer address.
        peer: IpAddr,
        /// Local address.
        local: IpAddr,
    },
    /// Peer and local addresses are of different families.
    #[error("BFD peer {peer} and local address {local} are of different address families")]
    MixedFamilies {
        /// Peer address.
        peer: IpAddr,
        /// Local address.
        local: IpAddr,
    },
    /// Intervals or multiplier out of range (zero, or an interval beyond the 32-bit µs field).
    #[error("invalid BFD timers: {0}")]
    InvalidConfig(String),
    /// A socket operation failed.
    #[error("BFD socket {what}: {message}")]
    Io {
        /// What was being done (`bind [::]:3784`, ..).
        what: String,
        /// The OS error text.
        message: String,
    },
    /// The BFD driver task is gone (the runtime shut down).
    #[error("the BFD driver task has stopped")]
    DriverGone,
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, error: &std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            message: error.to_string(),
        }
    }
}

/// Result with the BFD [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
