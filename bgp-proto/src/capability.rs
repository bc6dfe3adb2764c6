//! OPEN capabilities (RFC 5492): multiprotocol, route refresh, enhanced route refresh, 4-octet AS,
//! graceful restart (with the RFC 8538 N bit), ADD-PATH, extended next hop, extended message,
//! FQDN and long-lived graceful restart. Capabilities this crate does not know are kept raw.
//!
//! Pure byte conversion: the caller passes the value of one Capabilities optional parameter.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u24};

use crate::PResult;
use crate::error::{Error, Result};
use crate::iana::{Afi, CapabilityCode, Family, OpenErrorSubcode, Safi};

/// ADD-PATH Send/Receive field (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddPathMode(pub u8);

impl AddPathMode {
    /// Able to receive multiple paths.
    pub const RECEIVE: AddPathMode = AddPathMode(1);
    /// Able to send multiple paths.
    pub const SEND: AddPathMode = AddPathMode(2);
    /// Both.
    pub const BOTH: AddPathMode = AddPathMode(3);

    /// Whether the receive bit is set.
    pub fn can_receive(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether the send bit is set.
    pub fn can_send(self) -> bool {
        self.0 & 2 != 0
    }
}

/// One ⟨AFI, SAFI, Send/Receive⟩ tuple of the ADD-PATH capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub family: Family,
    /// Send/receive.
    pub mode: AddPathMode,
}

/// One ⟨NLRI AFI, NLRI SAFI, Nexthop AFI⟩ tuple of the extended next hop capability (RFC 8950).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHopFamily {
    /// NLRI AFI.
    pub afi: Afi,
    /// NLRI SAFI (two octets in this capability).
    pub safi: u16,
    /// Next hop AFI.
    pub next_hop_afi: Afi,
}

/// One per-family entry of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// Flags for the family; bit 0x80 is "Forwarding State preserved".
    pub flags: u8,
}

impl GracefulRestartFamily {
    /// Whether forwarding state was preserved for this family.
    pub fn forwarding_preserved(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

/// Graceful restart capability (RFC 4724, N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// The four restart flag bits, in the high nibble: 0x8 = Restart State (R), 0x4 = Notification (N).
    pub flags: u8,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families whose routes are retained, with their flags.
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    /// Restart State bit (R): the sender has restarted.
    pub fn restart_state(&self) -> bool {
        self.flags & 0x8 != 0
    }

    /// Notification bit (N, RFC 8538): graceful restart also covers NOTIFICATION messages.
    pub fn notification(&self) -> bool {
        self.flags & 0x4 != 0
    }
}

/// Largest Long-lived Stale Time, seconds: the field is 24 bits (RFC 9494 §3).
pub const LLGR_MAX_STALE_TIME: u32 = 0x00ff_ffff;

/// Forwarding State (F) bit of a long-lived graceful restart family's flags (RFC 9494 §3).
pub const LLGR_FORWARDING_STATE: u8 = 0x80;

/// One per-family entry of the long-lived graceful restart capability (RFC 9494).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    /// The family.
    pub family: Family,
    /// Flags; bit 0x80 is "Forwarding State preserved".
    pub flags: u8,
    /// Long-lived stale time in seconds (24 bits).
    pub stale_time: u32,
}

/// A capability advertised in OPEN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760).
    Multiprotocol(Family),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Enhanced route refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// Extended message (RFC 8654).
    ExtendedMessage,
    /// 4-octet AS number support, with the speaker's AS (RFC 6793).
    FourOctetAs(u32),
    /// Graceful restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// ADD-PATH (RFC 7911).
    AddPath(Vec<AddPathFamily>),
    /// Extended next hop encoding (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHopFamily>),
    /// Long-lived graceful restart (RFC 9494).
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// Hostname and domain name (draft-walton-bgp-hostname-capability); raw octets, usually ASCII.
    Fqdn {
        /// Host name.
        hostname: Vec<u8>,
        /// Domain name.
        domain: Vec<u8>,
    },
    /// A capability this crate does not decode, kept verbatim.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        data: Vec<u8>,
    },
}

fn malformed(reason: &'static str) -> Error {
    // RFC 4271 §6.2: "If one of the Optional Parameters in the OPEN message is recognized, but is
    // malformed, then the Error Subcode MUST be set to 0 (Unspecific)."
    Error::open(OpenErrorSubcode::Unspecific, Vec::new(), reason)
}

fn family(input: &[u8]) -> PResult<'_, Family> {
    let (input, afi) = be_u16(input)?;
    let (input, safi) = be_u8(input)?;
    Ok((input, Family::new(afi.into(), safi.into())))
}

fn repeated<'a, T>(
    mut value: &'a [u8],
    size: usize,
    item: impl Fn(&'a [u8]) -> PResult<'a, T>,
    reason: &'static str,
) -> Result<Vec<T>> {
    if !value.len().is_multiple_of(size) {
        return Err(malformed(reason));
    }
    let mut out = Vec::with_capacity(value.len().checked_div(size).unwrap_or(0));
    while !value.is_empty() {
        let (rest, v) = item(value).map_err(|_| malformed(reason))?;
        out.push(v);
        value = rest;
    }
    Ok(out)
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> CapabilityCode {
        match self {
            Capability::Multiprotocol(_) => CapabilityCode::Multiprotocol,
            Capability::RouteRefresh => CapabilityCode::RouteRefresh,
            Capability::EnhancedRouteRefresh => CapabilityCode::EnhancedRouteRefresh,
            Capability::ExtendedMessage => CapabilityCode::ExtendedMessage,
            Capability::FourOctetAs(_) => CapabilityCode::FourOctetAs,
            Capability::GracefulRestart(_) => CapabilityCode::GracefulRestart,
            Capability::AddPath(_) => CapabilityCode::AddPath,
            Capability::ExtendedNextHop(_) => CapabilityCode::ExtendedNextHop,
            Capability::LongLivedGracefulRestart(_) => CapabilityCode::LongLivedGracefulRestart,
            Capability::Fqdn { .. } => CapabilityCode::Fqdn,
            Capability::Unknown { code, .. } => CapabilityCode::from(*code),
        }
    }

    /// Decodes one capability value of the given code.
    pub fn decode_value(code: u8, value: &[u8]) -> Result<Capability> {
        let cap = match CapabilityCode::from(code) {
            CapabilityCode::Multiprotocol => match value {
                [a, b, _reserved, safi] => Capability::Multiprotocol(Family::new(
                    u16::from_be_bytes([*a, *b]).into(),
                    Safi::from(*safi),
                )),
                _ => return Err(malformed("multiprotocol capability length is not 4")),
            },
            CapabilityCode::RouteRefresh if value.is_empty() => Capability::RouteRefresh,
            CapabilityCode::EnhancedRouteRefresh if value.is_empty() => {
                Capability::EnhancedRouteRefresh
            }
            CapabilityCode::ExtendedMessage if value.is_empty() => Capability::ExtendedMessage,
            CapabilityCode::RouteRefresh
            | CapabilityCode::EnhancedRouteRefresh
            | CapabilityCode::ExtendedMessage => {
                return Err(malformed("capability must have an empty value"));
            }
            CapabilityCode::FourOctetAs => match value {
                [a, b, c, d] => Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => return Err(malformed("4-octet AS capability length is not 4")),
            },
            CapabilityCode::GracefulRestart => {
                let Some((head, rest)) = value.split_first_chunk::<2>() else {
                    return Err(malformed("graceful restart capability shorter than 2"));
                };
                let families = repeated(
                    rest,
                    4,
                    |i| {
                        let (i, family) = family(i)?;
                        let (i, flags) = be_u8(i)?;
                        Ok((i, GracefulRestartFamily { family, flags }))
                    },
                    "graceful restart family list length not a multiple of 4",
                )?;
                Capability::GracefulRestart(GracefulRestart {
                    flags: head[0] >> 4,
                    restart_time: u16::from_be_bytes(*head) & 0x0fff,
                    families,
                })
            }
            CapabilityCode::AddPath => Capability::AddPath(repeated(
                value,
                4,
                |i| {
                    let (i, family) = family(i)?;
                    let (i, mode) = be_u8(i)?;
                    Ok((
                        i,
                        AddPathFamily {
                            family,
                            mode: AddPathMode(mode),
                        },
                    ))
                },
                "ADD-PATH capability length not a multiple of 4",
            )?),
            CapabilityCode::ExtendedNextHop => Capability::ExtendedNextHop(repeated(
                value,
                6,
                |i| {
                    let (i, afi) = be_u16(i)?;
                    let (i, safi) = be_u16(i)?;
                    let (i, nh) = be_u16(i)?;
                    Ok((
                        i,
                        ExtendedNextHopFamily {
                            afi: afi.into(),
                            safi,
                            next_hop_afi: nh.into(),
                        },
                    ))
                },
                "extended next hop capability length not a multiple of 6",
            )?),
            CapabilityCode::LongLivedGracefulRestart => {
                Capability::LongLivedGracefulRestart(repeated(
                    value,
                    7,
                    |i| {
                        let (i, family) = family(i)?;
                        let (i, flags) = be_u8(i)?;
                        let (i, stale_time) = be_u24(i)?;
                        Ok((
                            i,
                            LlgrFamily {
                                family,
                                flags,
                                stale_time,
                            },
                        ))
                    },
                    "long-lived graceful restart capability length not a multiple of 7",
                )?)
            }
            CapabilityCode::Fqdn => {
                let parsed: PResult<'_, (&[u8], &[u8])> = (|| {
                    let (i, hl) = be_u8(value)?;
                    let (i, host) = take(hl)(i)?;
                    let (i, dl) = be_u8(i)?;
                    let (i, dom) = take(dl)(i)?;
                    Ok((i, (host, dom)))
                })();
                match parsed {
                    Ok(([], (host, dom))) => Capability::Fqdn {
                        hostname: host.to_vec(),
                        domain: dom.to_vec(),
                    },
                    _ => return Err(malformed("FQDN capability lengths inconsistent")),
                }
            }
            CapabilityCode::Unknown(_) => Capability::Unknown {
                code,
                data: value.to_vec(),
            },
        };
        Ok(cap)
    }

    /// Decodes the sequence of capabilities in one Capabilities optional parameter, appending to `out`.
    pub fn decode_all(mut input: &[u8], out: &mut Vec<Capability>) -> Result<()> {
        while !input.is_empty() {
            let parsed: PResult<'_, (u8, &[u8])> = (|| {
                let (i, code) = be_u8(input)?;
                let (i, len) = be_u8(i)?;
                let (i, value) = take(len)(i)?;
                Ok((i, (code, value)))
            })();
            let (rest, (code, value)) =
                parsed.map_err(|_| malformed("capability overruns its optional parameter"))?;
            out.push(Capability::decode_value(code, value)?);
            input = rest;
        }
        Ok(())
    }

    /// Length of the encoded value (without code and length octets).
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: lengths of values held in memory"
    )]
    pub fn value_len(&self) -> usize {
        match self {
            Capability::Multiprotocol(_) | Capability::FourOctetAs(_) => 4,
            Capability::RouteRefresh
            | Capability::EnhancedRouteRefresh
            | Capability::ExtendedMessage => 0,
            Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
            Capability::AddPath(v) => 4 * v.len(),
            Capability::ExtendedNextHop(v) => 6 * v.len(),
            Capability::LongLivedGracefulRestart(v) => 7 * v.len(),
            Capability::Fqdn { hostname, domain } => 2 + hostname.len() + domain.len(),
            Capability::Unknown { data, .. } => data.len(),
        }
    }

    /// Appends code, length and value.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<()> {
        let len = u8::try_from(self.value_len())
            .map_err(|_| Error::Unencodable("capability value longer than 255 octets"))?;
        if let Capability::Fqdn { hostname, domain } = self {
            // The total fits in 255, so each part does too.
            debug_assert!(hostname.len() <= 255 && domain.len() <= 255);
        }
        // RFC 9494 §3: the Long-lived Stale Time is a 24-bit field; a larger value is refused
        // rather than silently truncated.
        if let Capability::LongLivedGracefulRestart(v) = self
            && v.iter().any(|f| f.stale_time > LLGR_MAX_STALE_TIME)
        {
            return Err(Error::Unencodable(
                "long-lived stale time exceeds 16777215 seconds (24 bits)",
            ));
        }
        out.put_u8(self.code().into());
        out.put_u8(len);
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi.into());
                out.put_u8(0);
                out.put_u8(f.safi.into());
            }
            Capability::RouteRefresh
            | Capability::EnhancedRouteRefresh
            | Capability::ExtendedMessage => {}
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::GracefulRestart(gr) => {
                out.put_u16((u16::from(gr.flags & 0xf) << 12) | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    out.put_u16(f.family.afi.into());
                    out.put_u8(f.family.safi.into());
                    out.put_u8(f.flags);
                }
            }
            Capability::AddPath(v) => {
                for f in v {
                    out.put_u16(f.family.afi.into());
                    out.put_u8(f.family.safi.into());
                    out.put_u8(f.mode.0);
                }
            }
            Capability::ExtendedNextHop(v) => {
                for f in v {
                    out.put_u16(f.afi.into());
                    out.put_u16(f.safi);
                    out.put_u16(f.next_hop_afi.into());
                }
            }
            Capability::LongLivedGracefulRestart(v) => {
                for f in v {
                    out.put_u16(f.family.afi.into());
                    out.put_u8(f.family.safi.into());
                    out.put_u8(f.flags);
                    let [_, high, mid, low] = f.stale_time.to_be_bytes();
                    out.put_slice(&[high, mid, low]);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                out.put_u8(hostname.len() as u8);
                out.put_slice(hostname);
                out.put_u8(domain.len() as u8);
                out.put_slice(domain);
            }
            Capability::Unknown { data, .. } => out.put_slice(data),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(cap: Capability) {
        let mut buf = Vec::new();
        cap.encode(&mut buf).unwrap();
        let mut out = Vec::new();
        Capability::decode_all(&buf, &mut out).unwrap();
        assert_eq!(out, vec![cap]);
    }

    #[test]
    fn every_capability_round_trips() {
        round_trip(Capability::Multiprotocol(Family::IPV6_UNICAST));
        round_trip(Capability::RouteRefresh);
        round_trip(Capability::EnhancedRouteRefresh);
        round_trip(Capability::ExtendedMessage);
        round_trip(Capability::FourOctetAs(4_200_000_000));
        round_trip(Capability::GracefulRestart(GracefulRestart {
            flags: 0xc,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                flags: 0x80,
            }],
        }));
        round_trip(Capability::AddPath(vec![AddPathFamily {
            family: Family::IPV6_UNICAST,
            mode: AddPathMode::BOTH,
        }]));
        round_trip(Capability::ExtendedNextHop(vec![ExtendedNextHopFamily {
            afi: Afi::Ipv4,
            safi: 1,
            next_hop_afi: Afi::Ipv6,
        }]));
        round_trip(Capability::LongLivedGracefulRestart(vec![LlgrFamily {
            family: Family::IPV4_UNICAST,
            flags: 0x80,
            stale_time: 0x00ab_cdef,
        }]));
        round_trip(Capability::Fqdn {
            hostname: b"node1".to_vec(),
            domain: vec![],
        });
        round_trip(Capability::Unknown {
            code: 131,
            data: vec![1, 2, 3],
        });
    }

    #[test]
    fn graceful_restart_flags_decode() {
        let mut out = Vec::new();
        Capability::decode_all(&[64, 2, 0xc0, 0x78], &mut out).unwrap();
        let Capability::GracefulRestart(gr) = &out[0] else {
            panic!("not GR")
        };
        assert!(gr.restart_state() && gr.notification());
        assert_eq!(gr.restart_time, 120);
    }

    /// RFC 9494 §3 layout — AFI (2), SAFI (1), flags (1, F = 0x80), Long-lived Stale Time (3)
    /// per family — on capabilities real daemons sent (from the OPENs in `tests/vectors/`:
    /// `frr/001-open-to-bird.bin`, `gobgp/001-open-to-frr.bin`, `bird/007-open-to-exabgp.bin`).
    #[test]
    fn long_lived_graceful_restart_golden_bytes() {
        let both = |flags, stale_time| {
            Capability::LongLivedGracefulRestart(
                [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                    .into_iter()
                    .map(|family| LlgrFamily {
                        family,
                        flags,
                        stale_time,
                    })
                    .collect(),
            )
        };
        let cases: [(&[u8], Capability); 3] = [
            // FRR 8.4: F bit, 300 s.
            (
                &[71, 14, 0, 1, 1, 0x80, 0, 1, 0x2c, 0, 2, 1, 0x80, 0, 1, 0x2c],
                both(LLGR_FORWARDING_STATE, 300),
            ),
            // GoBGP 3.10: no F bit, 3600 s.
            (
                &[71, 14, 0, 1, 1, 0, 0, 0x0e, 0x10, 0, 2, 1, 0, 0, 0x0e, 0x10],
                both(0, 3600),
            ),
            // BIRD 2 towards ExaBGP: the capability without families.
            (&[71, 0], Capability::LongLivedGracefulRestart(vec![])),
        ];
        for (wire, cap) in cases {
            let mut out = Vec::new();
            Capability::decode_all(wire, &mut out).unwrap();
            assert_eq!(out, vec![cap.clone()]);
            let mut buf = Vec::new();
            cap.encode(&mut buf).unwrap();
            assert_eq!(buf, wire);
        }
    }

    #[test]
    fn long_lived_graceful_restart_bounds_are_checked() {
        // A family entry cut short: not a multiple of 7.
        let mut out = Vec::new();
        let err = Capability::decode_all(&[71, 6, 0, 1, 1, 0, 0, 0], &mut out).unwrap_err();
        assert!(err.notification().is_some(), "{err:?}");
        // A length running past the parameter.
        assert!(Capability::decode_all(&[71, 7, 0, 1, 1, 0, 0, 0], &mut out).is_err());
        // Empty is valid (no family).
        out.clear();
        Capability::decode_all(&[71, 0], &mut out).unwrap();
        assert_eq!(out, vec![Capability::LongLivedGracefulRestart(vec![])]);
        // 2^24 does not fit the field: refused, not truncated.
        let too_long = Capability::LongLivedGracefulRestart(vec![LlgrFamily {
            family: Family::IPV4_UNICAST,
            flags: 0,
            stale_time: LLGR_MAX_STALE_TIME + 1,
        }]);
        assert!(too_long.encode(&mut Vec::new()).is_err());
    }

    #[test]
    fn malformed_known_capability_is_open_unspecific() {
        let mut out = Vec::new();
        let err = Capability::decode_all(&[65, 2, 0, 1], &mut out).unwrap_err();
        let n = err.notification().unwrap();
        assert_eq!((u8::from(n.code), n.subcode), (2, 0));
        let err = Capability::decode_all(&[1, 4, 0, 1], &mut out).unwrap_err();
        assert!(err.notification().is_some());
    }
}
