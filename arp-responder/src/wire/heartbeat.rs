//! Herald's L2 heartbeat, carried in Ethernet frames of EtherType 0x88B5 (IEEE 802 local
//! experimental) broadcast on each selected segment. It says "node N, incarnation I, is alive on
//! this segment and currently answers for these IPs" (its claims). Layout (version 2),
//! big-endian:
//!
//! ```text
//! 0  "HRLD"  4  version(1)=2  5  flags(1)  6  cluster(4)  10 incarnation(8)  18 seq(8)
//! 26 timestamp_ms(8)  34 chunk(1)  35 chunks(1)  36 name_len(1)  37 name
//! .. claim_count(2) then per claim: family(1: 4 or 6) address(4 or 16)
//! .. tag(32), only when flags bit 0 (AUTH) is set: HMAC-SHA256(key, every byte before the tag)
//! ```
//! A node with more claims than fit in one frame sends several chunks with the same `seq`.
//! Frames are padded to the Ethernet minimum, so the tag's position follows from the parsed
//! structure, never from the frame's end; bytes after the tag are ignored.
//!
//! **Authentication.** With a shared key (`auth.keyFile`), the tag covers the whole heartbeat:
//! cluster, node name, incarnation, sequence number, timestamp and claims, so a host without the
//! key can neither forge a heartbeat (claiming every VIP, say) nor alter one. HMAC-SHA256 via the
//! RustCrypto `hmac` crate, verified in constant time. The key is symmetric and shared by the
//! cluster's nodes: any node can speak for any other, which the election trusts anyway.
//!
//! **Replay.** A tag proves who sent a heartbeat, not when. A host that records the leader's
//! heartbeats and sends them again after the leader dies would keep it "alive" and its VIPs dark.
//! Each heartbeat therefore carries (incarnation, seq, timestamp_ms), all authenticated; the
//! receiver ([`crate::election::Election`]) accepts, per sender,
//! - within one incarnation only a `seq` greater than the last accepted one (or a chunk of the
//!   last `seq` not seen yet): a replay of anything already heard is rejected, whatever its age;
//! - a new incarnation (a restart) only if its timestamp is later than the last accepted one from
//!   that sender, so an older incarnation cannot be replayed over a newer one;
//! - anything only if `timestamp_ms` is within `auth.maxClockSkewMs` of the receiver's wall clock.
//!   That bound covers what the counters cannot: a receiver that has pruned (or never had) state
//!   for the sender. Silent senders are pruned only after twice the skew bound, so everything
//!   they sent before going silent is stale by then.
//!
//! We chose an authenticated timestamp window plus counters over a challenge–response exchange
//! because heartbeats are one-way broadcasts and must stay so (one frame per node per 100 ms, no
//! per-peer state on the sender). The price is that node clocks must agree within the skew bound
//! (NTP); a node whose clock is off is treated like a partitioned one (its heartbeats are
//! rejected and counted as `stale`), which the election already handles without split brain.
//! What remains: a receiver that restarts can be fed a dead leader's heartbeats recorded less
//! than `maxClockSkewMs` ago, for at most that long.
//!
//! Pure; no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::array;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"HRLD";
const VERSION: u8 = 2;
/// Flags bit 0: a 32-byte HMAC-SHA256 tag follows the claims.
const FLAG_AUTH: u8 = 0x01;
const FIXED_LEN: usize = 37;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 32;
/// Longest node name carried.
pub const MAX_NAME_LEN: usize = 63;
/// Largest payload we emit, so a chunk fits a 1500-byte MTU.
pub const MAX_PAYLOAD_LEN: usize = 1400;
/// Shortest key accepted (128 bits).
pub const MIN_KEY_LEN: usize = 16;

mod field {
    pub(super) const VERSION: usize = 4;
    pub(super) const FLAGS: usize = 5;
    pub(super) const CLUSTER: usize = 6;
    pub(super) const INCARNATION: usize = 10;
    pub(super) const SEQ: usize = 18;
    pub(super) const TIMESTAMP: usize = 26;
    pub(super) const CHUNK: usize = 34;
    pub(super) const CHUNKS: usize = 35;
    pub(super) const NAME_LEN: usize = 36;
}

type HmacSha256 = Hmac<Sha256>;

/// The cluster's shared heartbeat key. `Debug` never shows it.
#[derive(Clone)]
pub struct HeartbeatKey {
    mac: HmacSha256,
}

impl fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeartbeatKey(..)")
    }
}

impl HeartbeatKey {
    /// A key of at least [`MIN_KEY_LEN`] bytes.
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() < MIN_KEY_LEN {
            return Err(Error::Config(format!(
                "heartbeat key must be at least {MIN_KEY_LEN} bytes, got {}",
                key.len()
            )));
        }
        let mac = HmacSha256::new_from_slice(key)
            .map_err(|_| Error::Config("heartbeat key rejected by HMAC".into()))?;
        Ok(HeartbeatKey { mac })
    }

    fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
        let mut m = self.mac.clone();
        m.update(signed);
        m.finalize().into_bytes().into()
    }

    fn verify(&self, signed: &[u8], tag: &[u8]) -> bool {
        let mut m = self.mac.clone();
        m.update(signed);
        m.verify_slice(tag).is_ok()
    }
}

/// A zero-copy view of a heartbeat payload whose structure has been checked
/// ([`Packet::new_checked`]): every accessor is in bounds.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    /// End of the claims (start of the tag, if any).
    body_len: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks magic, version, chunk numbering, name and claim lengths and, if flagged, that a tag
    /// follows. Never panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        let Some(fixed) = b.first_chunk::<FIXED_LEN>() else {
            return Err(Error::Truncated("heartbeat"));
        };
        if fixed[0..4] != *MAGIC {
            return Err(Error::malformed("heartbeat", "bad magic"));
        }
        if fixed[field::VERSION] != VERSION {
            return Err(Error::malformed("heartbeat", "unsupported version"));
        }
        let flags = fixed[field::FLAGS];
        if flags & !FLAG_AUTH != 0 {
            return Err(Error::malformed("heartbeat", "unknown flags"));
        }
        let (chunk, chunks) = (fixed[field::CHUNK], fixed[field::CHUNKS]);
        if chunks == 0 || chunk >= chunks {
            return Err(Error::malformed("heartbeat", "chunk index out of range"));
        }
        let name_len = usize::from(fixed[field::NAME_LEN]);
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(Error::malformed("heartbeat", "node name length"));
        }
        let name = name_bytes(b).ok_or(Error::Truncated("heartbeat name"))?;
        if std::str::from_utf8(name).is_err() {
            return Err(Error::malformed("heartbeat", "node name is not utf-8"));
        }
        let (count, mut rest) = claims(b)?;
        for _ in 0..count {
            rest = next_claim(rest)?.1;
        }
        if flags & FLAG_AUTH != 0 && rest.len() < TAG_LEN {
            return Err(Error::Truncated("heartbeat tag"));
        }
        Ok(Packet {
            // `rest` is a suffix of `b`, so this is the offset where the claims end.
            body_len: b.len().saturating_sub(rest.len()),
            buffer,
        })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Cluster identifier.
    pub fn cluster(&self) -> u32 {
        u32::from_be_bytes(array(self.b(), field::CLUSTER))
    }

    /// Sender incarnation.
    pub fn incarnation(&self) -> u64 {
        u64::from_be_bytes(array(self.b(), field::INCARNATION))
    }

    /// Sequence number.
    pub fn seq(&self) -> u64 {
        u64::from_be_bytes(array(self.b(), field::SEQ))
    }

    /// Sender's wall clock at sending, in ms since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        u64::from_be_bytes(array(self.b(), field::TIMESTAMP))
    }

    /// Whether a tag is present.
    pub fn is_authenticated(&self) -> bool {
        self.byte(field::FLAGS) & FLAG_AUTH != 0
    }

    /// The sender's node name (checked UTF-8).
    pub fn node(&self) -> &str {
        name_bytes(self.b())
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or_default()
    }

    /// Checks the tag with `key`. False if there is no tag.
    pub fn verify(&self, key: &HeartbeatKey) -> bool {
        match self.b().split_at_checked(self.body_len) {
            Some((signed, rest)) if self.is_authenticated() => rest
                .first_chunk::<TAG_LEN>()
                .is_some_and(|tag| key.verify(signed, tag)),
            _ => false,
        }
    }

    /// The octet at `at` of the fixed header, which [`Packet::new_checked`] has checked is there.
    fn byte(&self, at: usize) -> u8 {
        self.b().get(at).copied().unwrap_or(0)
    }
}

/// The node name: `name_len` octets after the fixed header.
fn name_bytes(b: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*b.get(field::NAME_LEN)?);
    b.get(FIXED_LEN..)?.get(..len)
}

/// The claim count and everything after it (the claims, then the tag and any padding).
fn claims(b: &[u8]) -> Result<(u16, &[u8])> {
    let name_len = usize::from(b.get(field::NAME_LEN).copied().unwrap_or(0));
    let after_name = b
        .get(FIXED_LEN..)
        .and_then(|r| r.get(name_len..))
        .ok_or(Error::Truncated("heartbeat name"))?;
    let (count, rest) = after_name
        .split_first_chunk::<2>()
        .ok_or(Error::Truncated("heartbeat claim count"))?;
    Ok((u16::from_be_bytes(*count), rest))
}

/// Reads one claim (family octet, then 4 or 16 address octets) off the front of `b`.
fn next_claim(b: &[u8]) -> Result<(IpAddr, &[u8])> {
    let truncated = Error::Truncated("heartbeat claim");
    match b {
        [4, rest @ ..] => {
            let (a, rest) = rest.split_first_chunk::<4>().ok_or(truncated)?;
            Ok((IpAddr::V4(Ipv4Addr::from(*a)), rest))
        }
        [6, rest @ ..] => {
            let (a, rest) = rest.split_first_chunk::<16>().ok_or(truncated)?;
            Ok((IpAddr::V6(Ipv6Addr::from(*a)), rest))
        }
        [_, ..] => Err(Error::malformed("heartbeat", "claim family")),
        [] => Err(truncated),
    }
}

/// An owned heartbeat chunk.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HeartbeatRepr {
    /// Cluster identifier: heartbeats of other clusters on the segment are ignored.
    pub cluster: u32,
    /// Node name.
    pub node: String,
    /// Changes every time the node's process starts.
    pub incarnation: u64,
    /// Heartbeat sequence number: grows by one per heartbeat round within an incarnation.
    pub seq: u64,
    /// Sender's wall clock in ms since the Unix epoch (replay window).
    pub timestamp_ms: u64,
    /// Index of this chunk (0-based).
    pub chunk: u8,
    /// Number of chunks with this `seq`.
    pub chunks: u8,
    /// IPs the node answers for on this segment (this chunk's share).
    pub claims: Vec<IpAddr>,
}

impl HeartbeatRepr {
    /// Parses a checked packet. Does not verify the tag (see [`Packet::verify`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        let (count, mut rest) = claims(p.b())?;
        let mut claims = Vec::with_capacity(usize::from(count).min(256));
        for _ in 0..count {
            let (ip, r) = next_claim(rest)?;
            claims.push(ip);
            rest = r;
        }
        Ok(HeartbeatRepr {
            cluster: p.cluster(),
            node: p.node().to_owned(),
            incarnation: p.incarnation(),
            seq: p.seq(),
            timestamp_ms: p.timestamp_ms(),
            chunk: p.byte(field::CHUNK),
            chunks: p.byte(field::CHUNKS),
            claims,
        })
    }

    /// Checks and parses a payload in one step (no tag verification).
    pub fn parse_bytes(b: &[u8]) -> Result<Self> {
        Self::parse(&Packet::new_checked(b)?)
    }

    /// Payload length, with the tag when `authenticated`.
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: sums lengths of values held in memory, far below usize::MAX"
    )]
    pub fn buffer_len(&self, authenticated: bool) -> usize {
        FIXED_LEN
            + self.node.len().min(MAX_NAME_LEN)
            + 2
            + self.claims.iter().map(claim_len).sum::<usize>()
            + if authenticated { TAG_LEN } else { 0 }
    }

    /// Appends the payload to `out`, tagged when `key` is given. Names longer than
    /// [`MAX_NAME_LEN`] bytes are rejected.
    pub fn emit(&self, key: Option<&HeartbeatKey>, out: &mut Vec<u8>) -> Result<()> {
        if self.node.is_empty() || self.node.len() > MAX_NAME_LEN {
            return Err(Error::Config(format!(
                "node name {:?} must be 1..=63 bytes",
                self.node
            )));
        }
        if self.chunks == 0 || self.chunk >= self.chunks {
            return Err(Error::Config("heartbeat chunk index out of range".into()));
        }
        let count = u16::try_from(self.claims.len())
            .map_err(|_| Error::Config("too many claims in one heartbeat chunk".into()))?;
        // Built apart from `out` so the tag covers exactly these bytes.
        let mut body = Vec::with_capacity(self.buffer_len(key.is_some()));
        body.extend_from_slice(MAGIC);
        body.push(VERSION);
        body.push(if key.is_some() { FLAG_AUTH } else { 0 });
        body.extend_from_slice(&self.cluster.to_be_bytes());
        body.extend_from_slice(&self.incarnation.to_be_bytes());
        body.extend_from_slice(&self.seq.to_be_bytes());
        body.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        body.push(self.chunk);
        body.push(self.chunks);
        body.push(self.node.len() as u8);
        body.extend_from_slice(self.node.as_bytes());
        body.extend_from_slice(&count.to_be_bytes());
        for ip in &self.claims {
            match ip {
                IpAddr::V4(a) => {
                    body.push(4);
                    body.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    body.push(6);
                    body.extend_from_slice(&a.octets());
                }
            }
        }
        let tag = key.map(|key| key.tag(&body));
        out.extend_from_slice(&body);
        if let Some(tag) = tag {
            out.extend_from_slice(&tag);
        }
        Ok(())
    }

    /// Splits a node's claims into as many chunks as needed to keep each payload (tag included)
    /// within [`MAX_PAYLOAD_LEN`]. Always returns at least one chunk.
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: the budget is constants minus a name of at most 63 bytes, and `used` \
                  stays below it"
    )]
    pub fn chunked(
        cluster: u32,
        node: &str,
        (incarnation, seq, timestamp_ms): (u64, u64, u64),
        claims: &[IpAddr],
    ) -> Vec<HeartbeatRepr> {
        let budget = MAX_PAYLOAD_LEN - FIXED_LEN - node.len().min(MAX_NAME_LEN) - 2 - TAG_LEN;
        let mut groups: Vec<Vec<IpAddr>> = vec![Vec::new()];
        let mut used = 0;
        for ip in claims {
            let l = claim_len(ip);
            if used + l > budget {
                groups.push(Vec::new());
                used = 0;
            }
            used += l;
            if let Some(g) = groups.last_mut() {
                g.push(*ip);
            }
        }
        let chunks = groups.len().min(255) as u8;
        groups
            .into_iter()
            .take(255)
            .enumerate()
            .map(|(i, claims)| HeartbeatRepr {
                cluster,
                node: node.to_owned(),
                incarnation,
                seq,
                timestamp_ms,
                chunk: i as u8,
                chunks,
                claims,
            })
            .collect()
    }
}

fn claim_len(ip: &IpAddr) -> usize {
    if ip.is_ipv4() { 5 } else { 17 }
}

/// A stable 32-bit identifier for a cluster name (FNV-1a).
pub fn cluster_id(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> HeartbeatKey {
        HeartbeatKey::new(&[b; 32]).expect("key")
    }

    fn sample() -> HeartbeatRepr {
        HeartbeatRepr {
            cluster: 7,
            node: "node-a".into(),
            incarnation: 3,
            seq: 9,
            timestamp_ms: 1_700_000_000_000,
            chunk: 0,
            chunks: 1,
            claims: vec![IpAddr::from([10, 0, 0, 1]), "fd00::1".parse().expect("v6")],
        }
    }

    #[test]
    fn many_claims_are_split_into_chunks_that_fit() {
        let claims: Vec<IpAddr> = (0..300u16)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        let chunks = HeartbeatRepr::chunked(1, "node-a", (7, 9, 11), &claims);
        assert!(chunks.len() > 1);
        let k = key(1);
        let mut all = Vec::new();
        for c in &chunks {
            assert!(c.buffer_len(true) <= MAX_PAYLOAD_LEN);
            let mut out = Vec::new();
            c.emit(Some(&k), &mut out).expect("emit");
            assert_eq!(out.len(), c.buffer_len(true));
            let p = Packet::new_checked(&out[..]).expect("checked");
            assert!(p.verify(&k));
            all.extend(HeartbeatRepr::parse(&p).expect("parse").claims);
        }
        assert_eq!(all, claims);
    }

    #[test]
    fn tag_verifies_only_with_the_same_key_and_unaltered_bytes() {
        let mut out = Vec::new();
        sample().emit(Some(&key(1)), &mut out).expect("emit");
        // Ethernet padding after the tag is ignored.
        out.extend_from_slice(&[0; 8]);
        assert!(Packet::new_checked(&out[..]).expect("ok").verify(&key(1)));
        assert!(!Packet::new_checked(&out[..]).expect("ok").verify(&key(2)));
        for i in 0..sample().buffer_len(true) {
            let mut bad = out.clone();
            bad[i] ^= 0x01;
            if let Ok(p) = Packet::new_checked(&bad[..]) {
                assert!(!p.verify(&key(1)), "flipping byte {i} kept the tag valid");
            }
        }
    }

    #[test]
    fn untagged_heartbeats_never_verify() {
        let mut out = Vec::new();
        sample().emit(None, &mut out).expect("emit");
        // Even followed by 32 bytes of anything: the AUTH flag is part of what is signed.
        out.extend_from_slice(&[0xAA; TAG_LEN]);
        let p = Packet::new_checked(&out[..]).expect("ok");
        assert!(!p.is_authenticated());
        assert!(!p.verify(&key(1)));
    }

    #[test]
    fn short_keys_and_truncated_tags_are_rejected() {
        assert!(HeartbeatKey::new(b"too short").is_err());
        let mut out = Vec::new();
        sample().emit(Some(&key(1)), &mut out).expect("emit");
        out.truncate(out.len() - 1);
        assert!(matches!(
            Packet::new_checked(&out[..]),
            Err(Error::Truncated(_))
        ));
        assert_eq!(format!("{:?}", key(1)), "HeartbeatKey(..)");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                       flags in 0u8..2) {
            let k = key(1);
            for b in [bytes.clone(), {
                let mut b = bytes.clone();
                if b.len() > 40 {
                    b[0..6].copy_from_slice(&[b'H', b'R', b'L', b'D', 2, flags]);
                    b[34] = 0;
                    b[35] = 1;
                    b[36] = 3;
                }
                b
            }] {
                if let Ok(p) = Packet::new_checked(&b[..]) {
                    let _ = p.verify(&k);
                    let _ = HeartbeatRepr::parse(&p);
                }
            }
        }

        #[test]
        fn repr_round_trips(node in "[a-z0-9-]{1,63}", inc in any::<u64>(), seq in any::<u64>(),
                            ts in any::<u64>(), cluster in any::<u32>(), auth in any::<bool>(),
                            v4 in proptest::collection::vec(any::<[u8; 4]>(), 0..10),
                            v6 in proptest::collection::vec(any::<[u8; 16]>(), 0..10)) {
            let claims: Vec<IpAddr> = v4.into_iter().map(|a| IpAddr::V4(a.into()))
                .chain(v6.into_iter().map(|a| IpAddr::V6(a.into()))).collect();
            let repr = HeartbeatRepr { cluster, node, incarnation: inc, seq, timestamp_ms: ts,
                                       chunk: 0, chunks: 1, claims };
            let k = key(9);
            let mut out = Vec::new();
            repr.emit(auth.then_some(&k), &mut out).expect("emit");
            prop_assert_eq!(out.len(), repr.buffer_len(auth));
            let p = Packet::new_checked(&out[..]).expect("checked");
            prop_assert_eq!(p.verify(&k), auth);
            prop_assert_eq!(HeartbeatRepr::parse(&p).expect("parse"), repr);
        }
    }
}
