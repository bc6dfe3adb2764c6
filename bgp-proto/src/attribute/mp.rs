//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760) for IPv4/IPv6 unicast, including IPv6 link-local
//! next hops (RFC 2545) and IPv6 next hops for IPv4 NLRI (RFC 8950). Other families stay raw.
//! Pure data and byte conversion.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BufMut;

use crate::context::{DecodeContext, EncodeContext};
use crate::error::{Error, Result};
use crate::iana::{Afi, Family, Safi};
use crate::nlri::{self, Ipv4Nlri, Ipv6Nlri};

/// The next hop of an MP_REACH_NLRI attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// A 4-octet IPv4 next hop.
    Ipv4(Ipv4Addr),
    /// A 16-octet global IPv6 next hop, optionally followed by a link-local one (32 octets).
    Ipv6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address (RFC 2545 §3).
        link_local: Option<Ipv6Addr>,
    },
    /// Any other length (VPN route distinguisher forms, ...), kept verbatim.
    Raw(Vec<u8>),
}

impl NextHop {
    fn decode(b: &[u8]) -> NextHop {
        if let Ok(a) = <[u8; 4]>::try_from(b) {
            return NextHop::Ipv4(Ipv4Addr::from(a));
        }
        match b.as_chunks::<16>() {
            ([global], []) => NextHop::Ipv6 {
                global: Ipv6Addr::from(*global),
                link_local: None,
            },
            ([global, link_local], []) => NextHop::Ipv6 {
                global: Ipv6Addr::from(*global),
                link_local: Some(Ipv6Addr::from(*link_local)),
            },
            _ => NextHop::Raw(b.to_vec()),
        }
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        match self {
            NextHop::Ipv4(_) => 4,
            NextHop::Ipv6 {
                link_local: None, ..
            } => 16,
            NextHop::Ipv6 {
                link_local: Some(_),
                ..
            } => 32,
            NextHop::Raw(b) => b.len(),
        }
    }

    /// Whether the next hop has no octets (only possible for `Raw`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encode(&self, out: &mut impl BufMut) {
        match self {
            NextHop::Ipv4(a) => out.put_slice(&a.octets()),
            NextHop::Ipv6 { global, link_local } => {
                out.put_slice(&global.octets());
                if let Some(l) = link_local {
                    out.put_slice(&l.octets());
                }
            }
            NextHop::Raw(b) => out.put_slice(b),
        }
    }
}

/// NLRI carried in MP_REACH_NLRI / MP_UNREACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpNlri {
    /// IPv4 unicast prefixes.
    Ipv4(Vec<Ipv4Nlri>),
    /// IPv6 unicast prefixes.
    Ipv6(Vec<Ipv6Nlri>),
    /// Prefixes of a family this crate does not decode, verbatim.
    Raw(Vec<u8>),
}

impl MpNlri {
    /// Whether there are no prefixes.
    pub fn is_empty(&self) -> bool {
        match self {
            MpNlri::Ipv4(v) => v.is_empty(),
            MpNlri::Ipv6(v) => v.is_empty(),
            MpNlri::Raw(v) => v.is_empty(),
        }
    }

    fn decode(family: Family, b: &[u8], cx: &DecodeContext) -> Result<MpNlri, nlri::NlriError> {
        let add_path = cx.add_path(family);
        Ok(match (family.afi, family.safi) {
            (Afi::Ipv4, Safi::Unicast) => {
                let mut v = Vec::with_capacity(nlri::ipv4_capacity(b, add_path));
                nlri::decode_ipv4(b, add_path, &mut v)?;
                MpNlri::Ipv4(v)
            }
            (Afi::Ipv6, Safi::Unicast) => {
                // The decoder reserves the exact count.
                let mut v = Vec::new();
                nlri::decode_ipv6(b, add_path, &mut v)?;
                MpNlri::Ipv6(v)
            }
            _ => MpNlri::Raw(b.to_vec()),
        })
    }

    fn len(&self, add_path: bool) -> usize {
        match self {
            MpNlri::Ipv4(v) => nlri::ipv4_len(v, add_path),
            MpNlri::Ipv6(v) => nlri::ipv6_len(v, add_path),
            MpNlri::Raw(v) => v.len(),
        }
    }

    fn encode(&self, add_path: bool, out: &mut impl BufMut) {
        match self {
            MpNlri::Ipv4(v) => nlri::encode_ipv4(v, add_path, out),
            MpNlri::Ipv6(v) => nlri::encode_ipv6(v, add_path, out),
            MpNlri::Raw(v) => out.put_slice(v),
        }
    }
}

/// MP_REACH_NLRI: reachable prefixes of one family with their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// Family of the prefixes.
    pub family: Family,
    /// Next hop.
    pub next_hop: NextHop,
    /// Reachable prefixes.
    pub nlri: MpNlri,
}

/// MP_UNREACH_NLRI: withdrawn prefixes of one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// Family of the prefixes.
    pub family: Family,
    /// Withdrawn prefixes.
    pub withdrawn: MpNlri,
}

/// Why an MP attribute could not be parsed; RFC 7606 §7.11 makes every case a session reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MpError {
    Truncated,
    NextHopLength,
    Nlri,
}

/// Splits AFI and SAFI off the front of an MP_REACH/MP_UNREACH value.
fn family(b: &[u8]) -> Option<(Family, &[u8])> {
    let ([a0, a1, s], rest) = b.split_first_chunk::<3>()?;
    let family = Family::new(Afi::from(u16::from_be_bytes([*a0, *a1])), Safi::from(*s));
    Some((family, rest))
}

impl MpReach {
    pub(crate) fn decode(b: &[u8], cx: &DecodeContext) -> Result<MpReach, MpError> {
        let (family, rest) = family(b).ok_or(MpError::Truncated)?;
        let (&nh_len, rest) = rest.split_first().ok_or(MpError::Truncated)?;
        let nh_len = usize::from(nh_len);
        let (nh, rest) = rest.split_at_checked(nh_len).ok_or(MpError::Truncated)?;
        // RFC 7606 §7.11: "If the Length of Next Hop Network Address field of the MP_REACH
        // attribute is inconsistent with that which was expected, the attribute is considered
        // malformed."
        let nh_ok = match (family.afi, family.safi) {
            (Afi::Ipv4, Safi::Unicast) => matches!(nh_len, 4 | 16 | 32),
            (Afi::Ipv6, Safi::Unicast) => matches!(nh_len, 16 | 32),
            _ => true,
        };
        if !nh_ok {
            return Err(MpError::NextHopLength);
        }
        // One reserved octet (formerly the SNPA count) follows the next hop.
        let (_reserved, rest) = rest.split_first().ok_or(MpError::Truncated)?;
        let nlri = MpNlri::decode(family, rest, cx).map_err(|_| MpError::Nlri)?;
        Ok(MpReach {
            family,
            next_hop: NextHop::decode(nh),
            nlri,
        })
    }

    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: lengths of values held in memory"
    )]
    pub(crate) fn encoded_len(&self, cx: &EncodeContext) -> usize {
        5 + self.next_hop.len() + self.nlri.len(cx.add_path(self.family))
    }

    pub(crate) fn encode(&self, cx: &EncodeContext, out: &mut impl BufMut) -> Result<()> {
        let nh_len = u8::try_from(self.next_hop.len())
            .map_err(|_| Error::Unencodable("MP_REACH_NLRI next hop longer than 255 octets"))?;
        out.put_u16(self.family.afi.into());
        out.put_u8(self.family.safi.into());
        out.put_u8(nh_len);
        self.next_hop.encode(out);
        out.put_u8(0);
        self.nlri.encode(cx.add_path(self.family), out);
        Ok(())
    }
}

impl MpUnreach {
    pub(crate) fn decode(b: &[u8], cx: &DecodeContext) -> Result<MpUnreach, MpError> {
        let (family, rest) = family(b).ok_or(MpError::Truncated)?;
        let withdrawn = MpNlri::decode(family, rest, cx).map_err(|_| MpError::Nlri)?;
        Ok(MpUnreach { family, withdrawn })
    }

    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: lengths of values held in memory"
    )]
    pub(crate) fn encoded_len(&self, cx: &EncodeContext) -> usize {
        3 + self.withdrawn.len(cx.add_path(self.family))
    }

    pub(crate) fn encode(&self, cx: &EncodeContext, out: &mut impl BufMut) {
        out.put_u16(self.family.afi.into());
        out.put_u8(self.family.safi.into());
        self.withdrawn.encode(cx.add_path(self.family), out);
    }
}
