//! Herald's L2 heartbeat, carried in Ethernet frames of EtherType 0x88B5 (IEEE 802 local
//! experimental) broadcast on each selected segment. It says "node N, incarnation I, is alive on
//! this segment and currently answers for these IPs" (its claims). Layout, big-endian:
//!
//! ```text
//! 0  "HRLD"  4  version(1)  5  reserved(1)  6  cluster(4)  10 incarnation(8)  18 seq(4)
//! 22 chunk(1) 23 chunks(1) 24 name_len(1) 25 name  .. claim_count(2) then per claim:
//!    family(1: 4 or 6) address(4 or 16)
//! ```
//! A node with more claims than fit in one frame sends several chunks with the same `seq`.
//! Pure; no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{array, be16};
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"HRLD";
const VERSION: u8 = 1;
const FIXED_LEN: usize = 25;
/// Longest node name carried.
pub const MAX_NAME_LEN: usize = 63;
/// Largest payload we emit, so a chunk fits a 1500-byte MTU.
pub const MAX_PAYLOAD_LEN: usize = 1400;

/// An owned heartbeat chunk.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HeartbeatRepr {
    /// Cluster identifier: heartbeats of other clusters on the segment are ignored.
    pub cluster: u32,
    /// Node name.
    pub node: String,
    /// Changes every time the node's process starts.
    pub incarnation: u64,
    /// Heartbeat sequence number.
    pub seq: u32,
    /// Index of this chunk (0-based).
    pub chunk: u8,
    /// Number of chunks with this `seq`.
    pub chunks: u8,
    /// IPs the node answers for on this segment (this chunk's share).
    pub claims: Vec<IpAddr>,
}

impl HeartbeatRepr {
    /// Parses a heartbeat payload (after the Ethernet header).
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < FIXED_LEN {
            return Err(Error::Truncated("heartbeat"));
        }
        if &b[0..4] != MAGIC {
            return Err(Error::malformed("heartbeat", "bad magic"));
        }
        if b[4] != VERSION {
            return Err(Error::malformed("heartbeat", "unsupported version"));
        }
        let cluster = u32::from_be_bytes(array(b, 6));
        let incarnation = u64::from_be_bytes(array(b, 10));
        let seq = u32::from_be_bytes(array(b, 18));
        let (chunk, chunks) = (b[22], b[23]);
        if chunks == 0 || chunk >= chunks {
            return Err(Error::malformed("heartbeat", "chunk index out of range"));
        }
        let name_len = usize::from(b[24]);
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(Error::malformed("heartbeat", "node name length"));
        }
        let name = b
            .get(FIXED_LEN..FIXED_LEN + name_len)
            .ok_or(Error::Truncated("heartbeat name"))?;
        let node = std::str::from_utf8(name)
            .map_err(|_| Error::malformed("heartbeat", "node name is not utf-8"))?
            .to_owned();
        let mut at = FIXED_LEN + name_len;
        if b.len() < at + 2 {
            return Err(Error::Truncated("heartbeat claim count"));
        }
        let count = usize::from(be16(b, at));
        at += 2;
        let mut claims = Vec::with_capacity(count.min(256));
        for _ in 0..count {
            let family = *b.get(at).ok_or(Error::Truncated("heartbeat claim"))?;
            at += 1;
            let ip = match family {
                4 if b.len() >= at + 4 => IpAddr::V4(Ipv4Addr::from(array::<4>(b, at))),
                6 if b.len() >= at + 16 => IpAddr::V6(Ipv6Addr::from(array::<16>(b, at))),
                4 | 6 => return Err(Error::Truncated("heartbeat claim")),
                _ => return Err(Error::malformed("heartbeat", "claim family")),
            };
            at += if family == 4 { 4 } else { 16 };
            claims.push(ip);
        }
        Ok(HeartbeatRepr {
            cluster,
            node,
            incarnation,
            seq,
            chunk,
            chunks,
            claims,
        })
    }

    /// Payload length.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN
            + self.node.len().min(MAX_NAME_LEN)
            + 2
            + self.claims.iter().map(claim_len).sum::<usize>()
    }

    /// Appends the payload to `out`. Names longer than [`MAX_NAME_LEN`] bytes are rejected.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.node.is_empty() || self.node.len() > MAX_NAME_LEN {
            return Err(Error::Config(format!(
                "node name {:?} must be 1..=63 bytes",
                self.node
            )));
        }
        let count = u16::try_from(self.claims.len())
            .map_err(|_| Error::Config("too many claims in one heartbeat chunk".into()))?;
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&self.cluster.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.chunk);
        out.push(self.chunks);
        out.push(self.node.len() as u8);
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for ip in &self.claims {
            match ip {
                IpAddr::V4(a) => {
                    out.push(4);
                    out.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    out.push(6);
                    out.extend_from_slice(&a.octets());
                }
            }
        }
        Ok(())
    }

    /// Splits a node's claims into as many chunks as needed to keep each payload within
    /// [`MAX_PAYLOAD_LEN`]. Always returns at least one chunk.
    pub fn chunked(
        cluster: u32,
        node: &str,
        incarnation: u64,
        seq: u32,
        claims: &[IpAddr],
    ) -> Vec<HeartbeatRepr> {
        let budget = MAX_PAYLOAD_LEN - FIXED_LEN - node.len().min(MAX_NAME_LEN) - 2;
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

    #[test]
    fn many_claims_are_split_into_chunks_that_fit() {
        let claims: Vec<IpAddr> = (0..300u16)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        let chunks = HeartbeatRepr::chunked(1, "node-a", 7, 9, &claims);
        assert!(chunks.len() > 1);
        let mut all = Vec::new();
        for c in &chunks {
            assert!(c.buffer_len() <= MAX_PAYLOAD_LEN);
            let mut out = Vec::new();
            c.emit(&mut out).expect("emit");
            assert_eq!(out.len(), c.buffer_len());
            all.extend(HeartbeatRepr::parse(&out).expect("parse").claims);
        }
        assert_eq!(all, claims);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = HeartbeatRepr::parse(&bytes);
            let mut b = bytes.clone();
            if b.len() > 30 {
                b[0..5].copy_from_slice(b"HRLD\x01");
                b[22] = 0;
                b[23] = 1;
                b[24] = 3;
                let _ = HeartbeatRepr::parse(&b);
            }
        }

        #[test]
        fn repr_round_trips(node in "[a-z0-9-]{1,63}", inc in any::<u64>(), seq in any::<u32>(), cluster in any::<u32>(),
                            v4 in proptest::collection::vec(any::<[u8; 4]>(), 0..10),
                            v6 in proptest::collection::vec(any::<[u8; 16]>(), 0..10)) {
            let claims: Vec<IpAddr> = v4.into_iter().map(|a| IpAddr::V4(a.into()))
                .chain(v6.into_iter().map(|a| IpAddr::V6(a.into()))).collect();
            let repr = HeartbeatRepr { cluster, node, incarnation: inc, seq, chunk: 0, chunks: 1, claims };
            let mut out = Vec::new();
            repr.emit(&mut out).expect("emit");
            prop_assert_eq!(HeartbeatRepr::parse(&out).expect("parse"), repr);
        }
    }
}
