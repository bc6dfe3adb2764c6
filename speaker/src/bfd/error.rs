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
    /// packet MUST be discarded."
    #[error("BFD packet is authenticated but the session uses no authentication")]
    AuthUnexpected,
    /// §6.8.6: "If the A bit is clear and authentication is in use (bfd.AuthType is nonzero),
    /// the packet MUST be discarded."
    #[error("BFD packet is not authenticated but the session requires it")]
    AuthMissing,
    /// §6.7.4: "If the Auth Type field does not match bfd.AuthType ... the packet MUST be
    /// discarded."
    #[error("BFD auth type {received}, the session uses {expected}")]
    AuthTypeMismatch {
        /// bfd.AuthType.
        expected: u8,
        /// The packet's Auth Type.
        received: u8,
    },
    /// §6.7.4: "... or the Auth Len field is not equal to 28, the packet MUST be discarded."
    #[error("BFD auth len {auth_len}, {expected} required for this auth type")]
    AuthLenMismatch {
        /// The packet's Auth Len.
        auth_len: usize,
        /// What the auth type needs.
        expected: usize,
    },
    /// §6.7.4: "If the Auth Key ID field does not match the ID of a configured authentication
    /// key, the received packet MUST be discarded."
    #[error("BFD auth key ID {received}, the configured key has ID {expected}")]
    AuthKeyId {
        /// The configured key's ID.
        expected: u8,
        /// The packet's Auth Key ID.
        received: u8,
    },
    /// §6.7.4: the sequence number lies outside bfd.RcvAuthSeq (+1 when meticulous) to
    /// bfd.RcvAuthSeq + 3 × Detect Mult: a replayed or stale packet.
    #[error("BFD auth sequence number {received} outside the window after {last} (replay?)")]
    AuthSequence {
        /// The packet's Sequence Number.
        received: u32,
        /// bfd.RcvAuthSeq.
        last: u32,
    },
    /// §6.7.4: "If the calculated hash does not match ..., the received packet MUST be
    /// discarded." Wrong key, or a forged or altered packet.
    #[error("BFD auth digest does not match (wrong key or forged packet)")]
    AuthDigest,
    /// The configured key cannot be used (file unreadable, empty or longer than 20 octets).
    #[error("BFD authentication key {path}: {message}")]
    AuthKey {
        /// The key file (the key itself is never shown).
        path: String,
        /// What is wrong.
        message: String,
    },
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
    /// Whether a received packet was discarded by the authentication rules (§6.7, §6.8.6): these
    /// are counted and logged per session, as they may be an attack or a key mismatch.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            Self::AuthUnexpected
                | Self::AuthMissing
                | Self::AuthTypeMismatch { .. }
                | Self::AuthLenMismatch { .. }
                | Self::AuthKeyId { .. }
                | Self::AuthSequence { .. }
                | Self::AuthDigest
        )
    }

    pub(crate) fn io(what: impl Into<String>, error: &std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            message: error.to_string(),
        }
    }
}

/// Result with the BFD [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
