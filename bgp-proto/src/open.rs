//! OPEN messages (RFC 4271 §4.2) with capabilities (RFC 5492) and RFC 9072 extended optional
//! parameters length, and the OPEN checks of RFC 4271 §6.2 that need no session configuration.
//!
//! Checks that need configuration (the expected peer AS, our own BGP identifier, required
//! capabilities) belong to the session FSM. Pure byte conversion: no I/O.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use std::net::Ipv4Addr;

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16};

use crate::PResult;
use crate::capability::Capability;
use crate::error::{Error, Result};
use crate::iana::{AS_TRANS, OpenErrorSubcode, OptParamType};

/// How the capabilities were (or will be) spread over optional parameters.
///
/// Implementations differ (one Capabilities parameter holding all, or one parameter per
/// capability); keeping the layout lets a decoded OPEN re-encode byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum CapabilityLayout {
    /// All capabilities in a single Capabilities optional parameter (none if there are none).
    #[default]
    OneParameter,
    /// One Capabilities optional parameter per capability.
    OnePerCapability,
    /// Explicit grouping: the number of capabilities in each successive parameter.
    Groups(Vec<usize>),
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// BGP version; always 4 after a successful decode.
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the AS needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities in wire order.
    pub capabilities: Vec<Capability>,
    /// How `capabilities` map onto optional parameters.
    pub layout: CapabilityLayout,
    /// Use the RFC 9072 extended optional parameters encoding. Encoding also uses it, whatever this
    /// says, when the parameters exceed 255 octets.
    pub extended_params: bool,
}

impl Open {
    /// A version-4 OPEN for `asn` (written as AS_TRANS in the 2-octet field when it does not fit).
    ///
    /// The caller includes [`Capability::FourOctetAs`] in `capabilities` when it wants 4-octet AS.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
            layout: CapabilityLayout::OneParameter,
            extended_params: false,
        }
    }

    /// The speaker's AS: the 4-octet AS capability's value if present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The value of the 4-octet AS capability, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// Decodes an OPEN body (everything after the header) and applies RFC 4271 §6.2 checks.
    pub fn decode(body: &[u8]) -> Result<Open> {
        let unspecific = |reason| Error::open(OpenErrorSubcode::Unspecific, Vec::new(), reason);
        let fixed: PResult<'_, (u8, u16, u16, u32, u8)> = (|| {
            let (i, version) = be_u8(body)?;
            let (i, my_as) = be_u16(i)?;
            let (i, hold) = be_u16(i)?;
            let (i, id) = nom::number::complete::be_u32(i)?;
            let (i, opt_len) = be_u8(i)?;
            Ok((i, (version, my_as, hold, id, opt_len)))
        })();
        let (rest, (version, my_as, hold_time, id, opt_len)) =
            fixed.map_err(|_| unspecific("OPEN shorter than its fixed part"))?;

        // RFC 4271 §6.2: "If the version number in the Version field of the received OPEN message
        // is not supported, then the Error Subcode MUST be set to Unsupported Version Number. The
        // Data field is a 2-octet unsigned integer, which indicates the largest, locally-supported
        // version number less than the version the remote BGP peer bid".
        if version != 4 {
            return Err(Error::open(
                OpenErrorSubcode::UnsupportedVersion,
                vec![0, 4],
                "BGP version is not 4",
            ));
        }
        // RFC 7607 §2: "A BGP speaker MUST NOT originate or propagate a route with an AS number of
        // zero ... [an OPEN with My AS zero] MUST be ... Bad Peer AS".
        if my_as == 0 {
            return Err(Error::open(
                OpenErrorSubcode::BadPeerAs,
                Vec::new(),
                "My AS is zero",
            ));
        }
        // RFC 4271 §6.2: "An implementation MUST reject Hold Time values of one or two seconds."
        if hold_time == 1 || hold_time == 2 {
            return Err(Error::open(
                OpenErrorSubcode::UnacceptableHoldTime,
                Vec::new(),
                "hold time of 1 or 2 seconds",
            ));
        }
        // RFC 6286 §2.2: "the BGP Identifier is a 4-octet, unsigned, non-zero integer".
        if id == 0 {
            return Err(Error::open(
                OpenErrorSubcode::BadBgpIdentifier,
                Vec::new(),
                "BGP identifier is zero",
            ));
        }

        // RFC 9072 §2: "a BGP speaker ... MUST recognize the extended format if the Non-Ext OP Type
        // is 255 (and the Non-Ext OP Len is 255)".
        let extended = opt_len == 255 && rest.first() == Some(&255);
        let params = if extended {
            let Some((&[_, hi, lo], params)) = rest.split_first_chunk::<3>() else {
                return Err(unspecific("extended optional parameters length missing"));
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if params.len() != len {
                return Err(unspecific(
                    "optional parameters length inconsistent with message",
                ));
            }
            params
        } else {
            if rest.len() != usize::from(opt_len) {
                return Err(unspecific(
                    "optional parameters length inconsistent with message",
                ));
            }
            rest
        };

        let mut capabilities = Vec::new();
        let mut groups = Vec::new();
        let mut input = params;
        while !input.is_empty() {
            let parsed: PResult<'_, (u8, &[u8])> = (|| {
                let (i, ty) = be_u8(input)?;
                let (i, len) = if extended {
                    be_u16(i)?
                } else {
                    let (i, l) = be_u8(i)?;
                    (i, u16::from(l))
                };
                let (i, value) = take(len)(i)?;
                Ok((i, (ty, value)))
            })();
            let (next, (ty, value)) =
                parsed.map_err(|_| unspecific("optional parameter overruns the parameters"))?;
            match OptParamType::from(ty) {
                OptParamType::Capabilities => {
                    let mut group = Vec::new();
                    Capability::decode_all(value, &mut group)?;
                    groups.push(group.len());
                    capabilities.append(&mut group);
                }
                // RFC 4271 §6.2: "If one of the Optional Parameters in the OPEN message is not
                // recognized, then the Error Subcode MUST be set to Unsupported Optional
                // Parameters."
                _ => {
                    return Err(Error::open(
                        OpenErrorSubcode::UnsupportedOptionalParameter,
                        Vec::new(),
                        "unsupported optional parameter",
                    ));
                }
            }
            input = next;
        }
        // RFC 7607 §2 applies to the 4-octet AS capability as well.
        if capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(0)))
        {
            return Err(Error::open(
                OpenErrorSubcode::BadPeerAs,
                Vec::new(),
                "4-octet AS is zero",
            ));
        }
        let layout = if groups.len() <= 1 {
            CapabilityLayout::OneParameter
        } else if groups.iter().all(|&n| n == 1) {
            CapabilityLayout::OnePerCapability
        } else {
            CapabilityLayout::Groups(groups)
        };
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
            layout,
            extended_params: extended,
        })
    }

    fn groups(&self) -> Result<Vec<&[Capability]>> {
        let caps = self.capabilities.as_slice();
        Ok(match &self.layout {
            CapabilityLayout::OneParameter if caps.is_empty() => Vec::new(),
            CapabilityLayout::OneParameter => vec![caps],
            CapabilityLayout::OnePerCapability => caps.chunks(1).collect(),
            CapabilityLayout::Groups(counts) => {
                let mismatch = || Error::Unencodable("capability groups do not add up");
                let mut out = Vec::with_capacity(counts.len());
                let mut rest = caps;
                for &n in counts {
                    let (g, r) = rest.split_at_checked(n).ok_or_else(mismatch)?;
                    out.push(g);
                    rest = r;
                }
                if !rest.is_empty() {
                    return Err(mismatch());
                }
                out
            }
        })
    }

    /// Appends the OPEN body (everything after the header).
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: sums lengths of capabilities held in memory"
    )]
    pub fn encode_body(&self, out: &mut impl BufMut) -> Result<()> {
        let groups = self.groups()?;
        let group_lens: Vec<usize> = groups
            .iter()
            .map(|g| g.iter().map(|c| 2 + c.value_len()).sum())
            .collect();
        let plain_len: usize = group_lens.iter().map(|l| 2 + l).sum();
        let extended =
            self.extended_params || plain_len > 255 || group_lens.iter().any(|&l| l > 255);
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_u32(self.bgp_id.into());
        if extended {
            let ext_len: usize = group_lens.iter().map(|l| 3 + l).sum();
            let ext_len = u16::try_from(ext_len)
                .map_err(|_| Error::Unencodable("optional parameters longer than 65535 octets"))?;
            out.put_u8(255);
            out.put_u8(255);
            out.put_u16(ext_len);
        } else {
            out.put_u8(plain_len as u8);
        }
        for (group, len) in groups.iter().zip(group_lens) {
            out.put_u8(OptParamType::Capabilities.into());
            if extended {
                out.put_u16(len as u16);
            } else {
                out.put_u8(len as u8);
            }
            for cap in *group {
                cap.encode(out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iana::Family;

    fn sample() -> Open {
        Open::new(
            4_200_000_001,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_001),
            ],
        )
    }

    #[test]
    fn open_round_trips_in_every_layout() {
        for (layout, ext) in [
            (CapabilityLayout::OneParameter, false),
            (CapabilityLayout::OnePerCapability, false),
            (CapabilityLayout::Groups(vec![2, 1]), false),
            (CapabilityLayout::OnePerCapability, true),
        ] {
            let mut open = sample();
            open.layout = layout;
            open.extended_params = ext;
            let mut buf = Vec::new();
            open.encode_body(&mut buf).unwrap();
            assert_eq!(Open::decode(&buf).unwrap(), open);
        }
        assert_eq!(sample().my_as, AS_TRANS);
        assert_eq!(sample().asn(), 4_200_000_001);
    }

    #[test]
    fn large_capability_set_switches_to_extended_format() {
        let mut open = sample();
        open.capabilities.push(Capability::Unknown {
            code: 200,
            data: vec![7; 250],
        });
        open.capabilities.push(Capability::Unknown {
            code: 201,
            data: vec![8; 250],
        });
        let mut buf = Vec::new();
        open.encode_body(&mut buf).unwrap();
        assert_eq!(&buf[9..11], &[255, 255]);
        let back = Open::decode(&buf).unwrap();
        assert!(back.extended_params);
        assert_eq!(back.capabilities, open.capabilities);
    }

    #[test]
    fn capability_groups_that_do_not_add_up_are_unencodable() {
        // `usize::MAX + 1` wrapped to 0 and matched an empty list, then split_at panicked.
        for counts in [vec![usize::MAX, 1], vec![4], vec![1, 1]] {
            let mut open = sample();
            open.layout = CapabilityLayout::Groups(counts);
            let mut buf = Vec::new();
            assert!(matches!(
                open.encode_body(&mut buf),
                Err(Error::Unencodable(_))
            ));
        }
    }

    fn err_of(body: &[u8]) -> (u8, u8, Vec<u8>) {
        let e = Open::decode(body).unwrap_err();
        let n = e.notification().unwrap();
        (n.code.into(), n.subcode, n.data.clone())
    }

    #[test]
    fn open_errors_map_to_rfc4271_subcodes() {
        let ok = [4, 0xfd, 0xe8, 0, 90, 10, 0, 0, 1, 0];
        assert!(Open::decode(&ok).is_ok());
        let mut v = ok;
        v[0] = 3;
        assert_eq!(err_of(&v), (2, 1, vec![0, 4]));
        let mut v = ok;
        v[4] = 2;
        assert_eq!(err_of(&v).1, 6);
        let mut v = ok;
        v[5..9].copy_from_slice(&[0; 4]);
        assert_eq!(err_of(&v).1, 3);
        let mut v = ok.to_vec();
        v[9] = 3;
        v.extend_from_slice(&[1, 1, 0]);
        assert_eq!(err_of(&v).1, 4);
        let mut v = ok.to_vec();
        v[9] = 5;
        assert_eq!(err_of(&v).1, 0);
    }
}
