//! RFC 5880 §4.1 BFD Control packets: a zero-copy [`Packet`] view over a byte buffer with a
//! checked constructor, and an owned [`Repr`] with `parse`/`emit`/`buffer_len`. Parsing applies
//! every rule of §6.8.6 that needs no session state, each failing with its own [`Error`] variant;
//! nothing here panics on any input. Pure: no I/O.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |
//! ```
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use std::fmt;

use crate::bfd::{Error, Result};

/// The only protocol version (§4.1).
pub const VERSION: u8 = 1;
/// Length of the mandatory section.
pub const HEADER_LEN: usize = 24;
/// Smallest valid Length with the A bit set (§6.8.6).
const MIN_AUTH_LEN: u8 = 26;

mod field {
    pub(super) const VERS_DIAG: usize = 0;
    pub(super) const STATE_FLAGS: usize = 1;
    pub(super) const DETECT_MULT: usize = 2;
    pub(super) const LENGTH: usize = 3;
    pub(super) const MY_DISCR: usize = 4;
    pub(super) const YOUR_DISCR: usize = 8;
    pub(super) const DESIRED_MIN_TX: usize = 12;
    pub(super) const REQUIRED_MIN_RX: usize = 16;
    pub(super) const REQUIRED_MIN_ECHO_RX: usize = 20;
    pub(super) const AUTH_TYPE: usize = 24;
    pub(super) const AUTH_LEN: usize = 25;
}

mod flag {
    pub(super) const POLL: u8 = 0x20;
    pub(super) const FINAL: u8 = 0x10;
    pub(super) const CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
    pub(super) const AUTH: u8 = 0x04;
    pub(super) const DEMAND: u8 = 0x02;
    pub(super) const MULTIPOINT: u8 = 0x01;
}

/// Session state as carried in the Sta field (§4.1); all four 2-bit values are defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// 0: administratively down.
    AdminDown,
    /// 1: down.
    Down,
    /// 2: init (three-way handshake in progress).
    Init,
    /// 3: up.
    Up,
}

impl State {
    /// Decodes the 2-bit field (higher bits are ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x3 {
            0 => Self::AdminDown,
            1 => Self::Down,
            2 => Self::Init,
            _ => Self::Up,
        }
    }

    /// The 2-bit code.
    pub fn bits(self) -> u8 {
        match self {
            Self::AdminDown => 0,
            Self::Down => 1,
            Self::Init => 2,
            Self::Up => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AdminDown => "AdminDown",
            Self::Down => "Down",
            Self::Init => "Init",
            Self::Up => "Up",
        })
    }
}

/// Diagnostic code (§4.1), open: unassigned values survive a parse/emit round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Diagnostic {
    /// 0.
    NoDiagnostic,
    /// 1: the detection timer expired.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the neighbor said it is down.
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: taken down by configuration.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9–31: unassigned.
    Unknown(u8),
}

impl Diagnostic {
    /// Decodes the 5-bit field (higher bits are ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x1f {
            0 => Self::NoDiagnostic,
            1 => Self::ControlDetectionTimeExpired,
            2 => Self::EchoFunctionFailed,
            3 => Self::NeighborSignaledSessionDown,
            4 => Self::ForwardingPlaneReset,
            5 => Self::PathDown,
            6 => Self::ConcatenatedPathDown,
            7 => Self::AdministrativelyDown,
            8 => Self::ReverseConcatenatedPathDown,
            n => Self::Unknown(n),
        }
    }

    /// The 5-bit code (an out-of-range `Unknown` is truncated to 5 bits).
    pub fn bits(self) -> u8 {
        match self {
            Self::NoDiagnostic => 0,
            Self::ControlDetectionTimeExpired => 1,
            Self::EchoFunctionFailed => 2,
            Self::NeighborSignaledSessionDown => 3,
            Self::ForwardingPlaneReset => 4,
            Self::PathDown => 5,
            Self::ConcatenatedPathDown => 6,
            Self::AdministrativelyDown => 7,
            Self::ReverseConcatenatedPathDown => 8,
            Self::Unknown(n) => n & 0x1f,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDiagnostic => f.write_str("no diagnostic"),
            Self::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Self::EchoFunctionFailed => f.write_str("echo function failed"),
            Self::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Self::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Self::PathDown => f.write_str("path down"),
            Self::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Self::AdministrativelyDown => f.write_str("administratively down"),
            Self::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Self::Unknown(n) => write!(f, "diagnostic {n}"),
        }
    }
}

/// A read-only (or, over `&mut [u8]`, writable) view of a BFD Control packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may then only be used after [`Self::check_len`].
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer holding a whole UDP payload, checking that the mandatory section is present
    /// and that the Length field fits the payload (§6.8.6).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that every accessor stays within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated { len: data.len() });
        }
        let length = self.length();
        if usize::from(length) > data.len() {
            return Err(Error::LengthExceedsPayload {
                length,
                payload: data.len(),
            });
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn word(&self, at: usize) -> u32 {
        let data = self.buffer.as_ref();
        data.get(at..at.saturating_add(4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0)
    }

    /// Vers.
    pub fn version(&self) -> u8 {
        self.byte(field::VERS_DIAG) >> 5
    }
    /// Diag.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::from_bits(self.byte(field::VERS_DIAG))
    }
    /// Sta.
    pub fn state(&self) -> State {
        State::from_bits(self.byte(field::STATE_FLAGS) >> 6)
    }
    fn flag(&self, mask: u8) -> bool {
        self.byte(field::STATE_FLAGS) & mask != 0
    }
    /// P.
    pub fn poll(&self) -> bool {
        self.flag(flag::POLL)
    }
    /// F.
    pub fn final_(&self) -> bool {
        self.flag(flag::FINAL)
    }
    /// C.
    pub fn control_plane_independent(&self) -> bool {
        self.flag(flag::CONTROL_PLANE_INDEPENDENT)
    }
    /// A.
    pub fn auth_present(&self) -> bool {
        self.flag(flag::AUTH)
    }
    /// D.
    pub fn demand(&self) -> bool {
        self.flag(flag::DEMAND)
    }
    /// M.
    pub fn multipoint(&self) -> bool {
        self.flag(flag::MULTIPOINT)
    }
    /// Detect Mult.
    pub fn detect_mult(&self) -> u8 {
        self.byte(field::DETECT_MULT)
    }
    /// Length.
    pub fn length(&self) -> u8 {
        self.byte(field::LENGTH)
    }
    /// My Discriminator.
    pub fn my_discriminator(&self) -> u32 {
        self.word(field::MY_DISCR)
    }
    /// Your Discriminator.
    pub fn your_discriminator(&self) -> u32 {
        self.word(field::YOUR_DISCR)
    }
    /// Desired Min TX Interval (µs).
    pub fn desired_min_tx(&self) -> u32 {
        self.word(field::DESIRED_MIN_TX)
    }
    /// Required Min RX Interval (µs).
    pub fn required_min_rx(&self) -> u32 {
        self.word(field::REQUIRED_MIN_RX)
    }
    /// Required Min Echo RX Interval (µs).
    pub fn required_min_echo_rx(&self) -> u32 {
        self.word(field::REQUIRED_MIN_ECHO_RX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_byte(&mut self, at: usize, value: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(at) {
            *b = value;
        }
    }
    fn set_word(&mut self, at: usize, value: u32) {
        if let Some(b) = self.buffer.as_mut().get_mut(at..at.saturating_add(4)) {
            b.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// Auth Type code points (§4.1), open: unassigned values survive a parse/emit round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthType {
    /// 1.
    SimplePassword,
    /// 2.
    KeyedMd5,
    /// 3.
    MeticulousKeyedMd5,
    /// 4.
    KeyedSha1,
    /// 5.
    MeticulousKeyedSha1,
    /// 0 (reserved) and 6–255.
    Unknown(u8),
}

impl From<u8> for AuthType {
    fn from(code: u8) -> Self {
        match code {
            1 => Self::SimplePassword,
            2 => Self::KeyedMd5,
            3 => Self::MeticulousKeyedMd5,
            4 => Self::KeyedSha1,
            5 => Self::MeticulousKeyedSha1,
            n => Self::Unknown(n),
        }
    }
}

impl From<AuthType> for u8 {
    fn from(t: AuthType) -> u8 {
        match t {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
            AuthType::Unknown(n) => n,
        }
    }
}

/// The optional authentication section: Auth Type and the bytes after Auth Len, kept as they
/// came so a parsed packet re-emits byte for byte (which the digest check relies on). The
/// typed view of the SHA1 types is [`Sha1Auth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSection {
    auth_type: u8,
    data: Vec<u8>,
}

impl AuthSection {
    /// Longest authentication data that still fits the 8-bit Length field.
    pub const MAX_DATA: usize = 255 - HEADER_LEN - 2;

    /// An authentication section; `None` when `data` is longer than [`Self::MAX_DATA`].
    pub fn new(auth_type: u8, data: Vec<u8>) -> Option<Self> {
        (data.len() <= Self::MAX_DATA).then_some(Self { auth_type, data })
    }
    /// Auth Type.
    pub fn auth_type(&self) -> u8 {
        self.auth_type
    }
    /// The bytes after Auth Type and Auth Len.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Auth Len: the section's length, counting the Auth Type and Auth Len octets.
    pub fn auth_len(&self) -> usize {
        self.wire_len()
    }
    fn wire_len(&self) -> usize {
        self.data.len().saturating_add(2)
    }
}

/// The Keyed SHA1 / Meticulous Keyed SHA1 section (§4.4):
///
/// ```text
/// |   Auth Type   |   Auth Len    |  Auth Key ID  |   Reserved    |
/// |                        Sequence Number                        |
/// |                       Auth Key/Hash (20 octets)               |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha1Auth {
    /// Auth Type 5 rather than 4.
    pub meticulous: bool,
    /// Auth Key ID.
    pub key_id: u8,
    /// Sequence Number.
    pub sequence: u32,
    /// Auth Key/Hash: the digest (or, while it is computed, the zero-padded key).
    pub digest: [u8; SHA1_DIGEST_LEN],
}

/// Octets of a SHA1 digest, and of the zero-padded key that stands in for it while hashing.
pub const SHA1_DIGEST_LEN: usize = 20;
/// §4.4: "Auth Len: The length of the Authentication Section, in bytes. For Keyed SHA1 and
/// Meticulous Keyed SHA1 authentication, the length is 28."
pub const SHA1_AUTH_LEN: usize = 28;
/// Where the Auth Key/Hash starts within [`AuthSection::data`] (after key ID, reserved, seq).
const SHA1_DIGEST_AT: usize = 6;

impl Sha1Auth {
    /// The typed view of a section of Auth Type 4 or 5 with Auth Len 28; anything else is an
    /// error naming what differs (`expected` is the session's type, bfd.AuthType).
    pub fn parse(section: &AuthSection, expected: AuthType) -> Result<Self> {
        if section.auth_type != u8::from(expected) {
            return Err(Error::AuthTypeMismatch {
                expected: expected.into(),
                received: section.auth_type,
            });
        }
        let meticulous = match expected {
            AuthType::KeyedSha1 => false,
            AuthType::MeticulousKeyedSha1 => true,
            _ => {
                return Err(Error::AuthTypeMismatch {
                    expected: expected.into(),
                    received: section.auth_type,
                });
            }
        };
        let length_error = Error::AuthLenMismatch {
            auth_len: section.auth_len(),
            expected: SHA1_AUTH_LEN,
        };
        if section.auth_len() != SHA1_AUTH_LEN {
            return Err(length_error);
        }
        let data = section.data.as_slice();
        let (Some(&key_id), Some(sequence), Some(digest)) = (
            data.first(),
            data.get(2..SHA1_DIGEST_AT)
                .and_then(|b| <[u8; 4]>::try_from(b).ok()),
            data.get(SHA1_DIGEST_AT..)
                .and_then(|b| <[u8; SHA1_DIGEST_LEN]>::try_from(b).ok()),
        ) else {
            return Err(length_error);
        };
        Ok(Self {
            meticulous,
            key_id,
            sequence: u32::from_be_bytes(sequence),
            digest,
        })
    }

    /// The section, with the Reserved octet zero ("MUST be set to zero on transmit").
    pub fn to_section(&self) -> AuthSection {
        let auth_type = if self.meticulous {
            AuthType::MeticulousKeyedSha1
        } else {
            AuthType::KeyedSha1
        };
        let mut data = Vec::with_capacity(SHA1_AUTH_LEN - 2);
        data.extend_from_slice(&[self.key_id, 0]);
        data.extend_from_slice(&self.sequence.to_be_bytes());
        data.extend_from_slice(&self.digest);
        AuthSection {
            auth_type: auth_type.into(),
            data,
        }
    }
}

impl Repr {
    /// The packet's bytes with the Auth Key/Hash field of a SHA1 section replaced by
    /// `padded_key`, everything else (the Reserved octet included) as received: the input of the
    /// §6.7.4 hash. `None` without a section of SHA1 length.
    pub fn with_sha1_key_in_digest(&self, padded_key: &[u8; SHA1_DIGEST_LEN]) -> Option<Vec<u8>> {
        let mut keyed = self.clone();
        let section = keyed.auth.as_mut()?;
        if section.auth_len() != SHA1_AUTH_LEN {
            return None;
        }
        section
            .data
            .get_mut(SHA1_DIGEST_AT..)?
            .copy_from_slice(padded_key);
        Some(keyed.to_bytes())
    }
}

/// An owned, validated BFD Control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// Diag.
    pub diagnostic: Diagnostic,
    /// Sta.
    pub state: State,
    /// P: the sender asks for a Final.
    pub poll: bool,
    /// F: answers a Poll.
    pub final_: bool,
    /// C.
    pub control_plane_independent: bool,
    /// D (we never set it; kept for fidelity).
    pub demand: bool,
    /// Detect Mult (non-zero).
    pub detect_mult: u8,
    /// My Discriminator (non-zero).
    pub my_discriminator: u32,
    /// Your Discriminator (zero while the remote one is unknown).
    pub your_discriminator: u32,
    /// Desired Min TX Interval, µs.
    pub desired_min_tx: u32,
    /// Required Min RX Interval, µs.
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval, µs.
    pub required_min_echo_rx: u32,
    /// Authentication section; present iff the A bit is set.
    pub auth: Option<AuthSection>,
}

impl Repr {
    /// Validates a packet view against RFC 5880 §6.8.6 (the rules that need no session) and §4.1.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        packet.check_len()?;
        // "If the version number is not correct (1), the packet MUST be discarded."
        if packet.version() != VERSION {
            return Err(Error::BadVersion(packet.version()));
        }
        // "If the Length field is less than the minimum correct value (24 if the A bit is clear,
        // or 26 if the A bit is set), the packet MUST be discarded."
        let length = packet.length();
        let minimum = if packet.auth_present() {
            MIN_AUTH_LEN
        } else {
            HEADER_LEN as u8
        };
        if length < minimum {
            return Err(Error::LengthTooShort { length, minimum });
        }
        // "If the Length field is greater than the payload of the encapsulating protocol, the
        // packet MUST be discarded." — checked by `check_len` above.
        // "If the Detect Mult field is zero, the packet MUST be discarded."
        if packet.detect_mult() == 0 {
            return Err(Error::ZeroDetectMult);
        }
        // "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
        if packet.multipoint() {
            return Err(Error::Multipoint);
        }
        // "If the My Discriminator field is zero, the packet MUST be discarded."
        if packet.my_discriminator() == 0 {
            return Err(Error::ZeroMyDiscriminator);
        }
        // "If the Your Discriminator field is zero and the State field is not Down or AdminDown,
        // the packet MUST be discarded."
        let state = packet.state();
        if packet.your_discriminator() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(Error::ZeroYourDiscriminator(state));
        }
        // §4.1: "A BFD Control packet MUST NOT have both the Poll (P) and Final (F) bits set."
        if packet.poll() && packet.final_() {
            return Err(Error::PollAndFinal);
        }
        let auth = if packet.auth_present() {
            let auth_len = packet.byte(field::AUTH_LEN);
            // Auth Len counts the Auth Type and Auth Len octets themselves. The section ends the
            // packet (§4.1), so Length must be exactly the two sections: octets between them and
            // Length would escape the §6.7.4 digest, which is computed over what we re-emit.
            if auth_len < 2 || HEADER_LEN + usize::from(auth_len) != usize::from(length) {
                return Err(Error::BadAuthLength { auth_len, length });
            }
            let start = field::AUTH_LEN + 1;
            let end = HEADER_LEN + usize::from(auth_len);
            let data = packet
                .buffer
                .as_ref()
                .get(start..end)
                .ok_or(Error::BadAuthLength { auth_len, length })?;
            Some(AuthSection {
                auth_type: packet.byte(field::AUTH_TYPE),
                data: data.to_vec(),
            })
        } else {
            None
        };
        Ok(Self {
            diagnostic: packet.diagnostic(),
            state,
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discriminator: packet.my_discriminator(),
            your_discriminator: packet.your_discriminator(),
            desired_min_tx: packet.desired_min_tx(),
            required_min_rx: packet.required_min_rx(),
            required_min_echo_rx: packet.required_min_echo_rx(),
            auth,
        })
    }

    /// Parses a UDP payload.
    pub fn parse_bytes(payload: &[u8]) -> Result<Self> {
        Self::parse(&Packet::new_checked(payload)?)
    }

    /// Bytes [`Self::emit`] writes (at most 255).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.auth.as_ref().map_or(0, AuthSection::wire_len))
    }

    /// Writes the packet into the first [`Self::buffer_len`] bytes of `packet`; a shorter buffer
    /// is an error, never a panic.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        let available = packet.buffer.as_ref().len();
        if available < len {
            return Err(Error::Truncated { len: available });
        }
        let mut flags = self.state.bits() << 6;
        for (set, mask) in [
            (self.poll, flag::POLL),
            (self.final_, flag::FINAL),
            (
                self.control_plane_independent,
                flag::CONTROL_PLANE_INDEPENDENT,
            ),
            (self.auth.is_some(), flag::AUTH),
            (self.demand, flag::DEMAND),
        ] {
            if set {
                flags |= mask;
            }
        }
        packet.set_byte(field::VERS_DIAG, (VERSION << 5) | self.diagnostic.bits());
        packet.set_byte(field::STATE_FLAGS, flags);
        packet.set_byte(field::DETECT_MULT, self.detect_mult);
        // `AuthSection::new` bounds the data so the total fits one octet.
        packet.set_byte(field::LENGTH, u8::try_from(len).unwrap_or(u8::MAX));
        packet.set_word(field::MY_DISCR, self.my_discriminator);
        packet.set_word(field::YOUR_DISCR, self.your_discriminator);
        packet.set_word(field::DESIRED_MIN_TX, self.desired_min_tx);
        packet.set_word(field::REQUIRED_MIN_RX, self.required_min_rx);
        packet.set_word(field::REQUIRED_MIN_ECHO_RX, self.required_min_echo_rx);
        if let Some(auth) = &self.auth {
            packet.set_byte(field::AUTH_TYPE, auth.auth_type);
            packet.set_byte(
                field::AUTH_LEN,
                u8::try_from(auth.wire_len()).unwrap_or(u8::MAX),
            );
            if let Some(dst) = packet.buffer.as_mut().get_mut(field::AUTH_LEN + 1..len) {
                dst.copy_from_slice(&auth.data);
            }
        }
        Ok(())
    }

    /// The packet as a fresh byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        // The buffer has exactly `buffer_len` bytes, so emit cannot fail.
        let _ = self.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A Down packet assembled by hand from the §4.1 layout: diag 0, state Down, mult 3,
    /// my discr 0x4e6a1b2c, your 0, intervals 1 s / 100 ms / 50 ms.
    const FRR_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x4e, 0x6a, 0x1b, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42,
        0x40, 0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0xc3, 0x50,
    ];

    fn up_packet() -> Repr {
        Repr {
            diagnostic: Diagnostic::NoDiagnostic,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 7,
            your_discriminator: 9,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    #[test]
    fn parses_a_down_packet_field_by_field() {
        let r = Repr::parse_bytes(&FRR_DOWN).expect("valid");
        assert_eq!(r.state, State::Down);
        assert_eq!(r.diagnostic, Diagnostic::NoDiagnostic);
        assert_eq!(r.detect_mult, 3);
        assert_eq!(r.my_discriminator, 0x4e6a_1b2c);
        assert_eq!(r.your_discriminator, 0);
        assert_eq!(r.desired_min_tx, 1_000_000);
        assert_eq!(r.required_min_rx, 100_000);
        assert_eq!(r.required_min_echo_rx, 50_000);
        assert!(!r.poll && !r.final_ && r.auth.is_none());
        assert_eq!(r.to_bytes(), FRR_DOWN);
    }

    #[test]
    fn emits_flags_and_state_bits() {
        let bytes = up_packet().to_bytes();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[0], 0x20);
        // Up (3 << 6) | P.
        assert_eq!(bytes[1], 0xc0 | 0x20);
        assert_eq!(bytes[3], 24);
        assert_eq!(&bytes[12..16], &300_000u32.to_be_bytes());
    }

    fn rejected(mutate: impl FnOnce(&mut Vec<u8>)) -> Error {
        let mut bytes = up_packet().to_bytes();
        bytes[1] &= !0x20; // clear P so only the mutation matters
        mutate(&mut bytes);
        Repr::parse_bytes(&bytes).expect_err("must be rejected")
    }

    #[test]
    fn every_receive_rule_has_its_own_error() {
        assert_eq!(
            Repr::parse_bytes(&FRR_DOWN[..23]),
            Err(Error::Truncated { len: 23 })
        );
        assert_eq!(rejected(|b| b[0] = 0x40), Error::BadVersion(2));
        assert_eq!(
            rejected(|b| b[3] = 23),
            Error::LengthTooShort {
                length: 23,
                minimum: 24
            }
        );
        assert_eq!(
            rejected(|b| b[3] = 25),
            Error::LengthExceedsPayload {
                length: 25,
                payload: 24
            }
        );
        assert_eq!(rejected(|b| b[2] = 0), Error::ZeroDetectMult);
        assert_eq!(rejected(|b| b[1] |= 0x01), Error::Multipoint);
        assert_eq!(rejected(|b| b[4..8].fill(0)), Error::ZeroMyDiscriminator);
        assert_eq!(
            rejected(|b| b[8..12].fill(0)),
            Error::ZeroYourDiscriminator(State::Up)
        );
        assert_eq!(rejected(|b| b[1] |= 0x30), Error::PollAndFinal);
        // A bit with Length 24: too short for an auth section.
        assert_eq!(
            rejected(|b| b[1] |= 0x04),
            Error::LengthTooShort {
                length: 24,
                minimum: 26
            }
        );
        // A bit, Length 26, but Auth Len claims 5 bytes.
        assert_eq!(
            rejected(|b| {
                b[1] |= 0x04;
                b[3] = 26;
                b.extend_from_slice(&[1, 5]);
            }),
            Error::BadAuthLength {
                auth_len: 5,
                length: 26
            }
        );
    }

    #[test]
    fn zero_your_discriminator_is_fine_while_down_or_admin_down() {
        for state in [State::Down, State::AdminDown] {
            let mut r = up_packet();
            r.state = state;
            r.your_discriminator = 0;
            assert_eq!(Repr::parse_bytes(&r.to_bytes()), Ok(r));
        }
    }

    #[test]
    fn trailing_payload_beyond_length_is_ignored() {
        let mut bytes = FRR_DOWN.to_vec();
        bytes.extend_from_slice(&[0xff; 8]);
        assert_eq!(
            Repr::parse_bytes(&bytes).map(|r| r.to_bytes()),
            Ok(FRR_DOWN.to_vec())
        );
    }

    #[test]
    fn auth_section_round_trips_opaquely() {
        let mut r = up_packet();
        // Simple password, key id 1, "secret".
        r.auth = AuthSection::new(1, b"\x01secret".to_vec());
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), 33);
        assert_eq!((bytes[3], bytes[24], bytes[25]), (33, 1, 9));
        assert_eq!(Repr::parse_bytes(&bytes), Ok(r));
        assert!(AuthSection::new(1, vec![0; AuthSection::MAX_DATA + 1]).is_none());
    }

    #[test]
    fn emit_into_a_short_buffer_fails() {
        let mut buf = [0u8; 10];
        assert_eq!(
            up_packet().emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::Truncated { len: 10 })
        );
    }

    #[test]
    fn unknown_diagnostics_survive() {
        let mut r = up_packet();
        r.diagnostic = Diagnostic::Unknown(31);
        assert_eq!(Repr::parse_bytes(&r.to_bytes()), Ok(r));
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect()
    }

    /// Output of `vectors/scapy_bfd.py` (scapy.contrib.bfd, an independent encoder).
    #[test]
    fn scapy_vectors_parse_to_the_same_fields_and_reemit_byte_for_byte() {
        let cases = [
            (
                "21e0051801020304a0b0c0d0000493e00003d0900000c350",
                Repr {
                    diagnostic: Diagnostic::ControlDetectionTimeExpired,
                    state: State::Up,
                    poll: true,
                    final_: false,
                    control_plane_independent: false,
                    demand: false,
                    detect_mult: 5,
                    my_discriminator: 0x0102_0304,
                    your_discriminator: 0xa0b0_c0d0,
                    desired_min_tx: 300_000,
                    required_min_rx: 250_000,
                    required_min_echo_rx: 50_000,
                    auth: None,
                },
            ),
            (
                "209003180000000700000009000f4240000186a000000000",
                Repr {
                    diagnostic: Diagnostic::NoDiagnostic,
                    state: State::Init,
                    poll: false,
                    final_: true,
                    control_plane_independent: false,
                    demand: false,
                    detect_mult: 3,
                    my_discriminator: 7,
                    your_discriminator: 9,
                    desired_min_tx: 1_000_000,
                    required_min_rx: 100_000,
                    required_min_echo_rx: 0,
                    auth: None,
                },
            ),
            (
                "27000318ffffffff00000000000f4240000f424000000000",
                Repr {
                    diagnostic: Diagnostic::AdministrativelyDown,
                    state: State::AdminDown,
                    poll: false,
                    final_: false,
                    control_plane_independent: false,
                    demand: false,
                    detect_mult: 3,
                    my_discriminator: u32::MAX,
                    your_discriminator: 0,
                    desired_min_tx: 1_000_000,
                    required_min_rx: 1_000_000,
                    required_min_echo_rx: 0,
                    auth: None,
                },
            ),
            (
                "2348ff180000002a00000000000000010000000000000000",
                Repr {
                    diagnostic: Diagnostic::NeighborSignaledSessionDown,
                    state: State::Down,
                    poll: false,
                    final_: false,
                    control_plane_independent: true,
                    demand: false,
                    detect_mult: 255,
                    my_discriminator: 42,
                    your_discriminator: 0,
                    desired_min_tx: 1,
                    required_min_rx: 0,
                    required_min_echo_rx: 0,
                    auth: None,
                },
            ),
        ];
        for (hex, expected) in cases {
            let bytes = unhex(hex);
            assert_eq!(bytes.len(), 24, "{hex}");
            assert_eq!(Repr::parse_bytes(&bytes).as_ref(), Ok(&expected), "{hex}");
            assert_eq!(expected.to_bytes(), bytes, "{hex}");
        }
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            0u8..32,
            0u8..4,
            any::<(bool, bool, bool, bool)>(),
            1u8..=255,
            1u32..,
            any::<u32>(),
            any::<(u32, u32, u32)>(),
            proptest::option::of((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))),
        )
            .prop_map(
                |(diag, state, (p, f, c, d), mult, my, your, (tx, rx, echo), auth)| {
                    let state = State::from_bits(state);
                    Repr {
                        diagnostic: Diagnostic::from_bits(diag),
                        state,
                        poll: p && !f,
                        final_: f,
                        control_plane_independent: c,
                        demand: d,
                        detect_mult: mult,
                        my_discriminator: my,
                        your_discriminator: if matches!(state, State::Up | State::Init) {
                            your.max(1)
                        } else {
                            your
                        },
                        desired_min_tx: tx,
                        required_min_rx: rx,
                        required_min_echo_rx: echo,
                        auth: auth.and_then(|(t, data)| AuthSection::new(t, data)),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn valid_packets_round_trip(repr in arb_repr()) {
            let bytes = repr.to_bytes();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(Repr::parse_bytes(&bytes), Ok(repr));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_reencode_stably(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            if let Ok(repr) = Repr::parse_bytes(&bytes) {
                let again = repr.to_bytes();
                // Only the Length octet may differ: bytes beyond the defined sections are dropped.
                let mut expected = bytes[..again.len()].to_vec();
                expected[3] = again[3];
                prop_assert_eq!(&again[..], &expected[..]);
                prop_assert_eq!(Repr::parse_bytes(&again), Ok(repr));
            }
        }
    }
}
