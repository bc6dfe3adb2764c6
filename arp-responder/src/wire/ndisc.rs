//! ICMPv6 neighbor discovery messages (RFC 4861 §4.3, §4.4): Neighbor Solicitation and Neighbor
//! Advertisement with their source/target link-layer address options (§4.6.1), and the ICMPv6
//! checksum. Other ICMPv6 types are reported as unsupported. Pure; no I/O.

use std::net::Ipv6Addr;

use super::ethernet::EthernetAddress;
use super::ipv6::{NEXT_HEADER_ICMPV6, upper_layer_checksum};
use super::{array, put16};
use crate::error::{Error, Result};

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Length of an NS/NA without options: type, code, checksum, flags/reserved, target.
pub const BASE_LEN: usize = 24;

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const LLADDR_OPT_LEN: usize = 8;

/// Neighbor Advertisement flags (RFC 4861 §4.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NeighborFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a Neighbor Solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

/// An owned NS or NA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NdiscRepr {
    /// Neighbor Solicitation, with its Source Link-Layer Address option if present.
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor Advertisement, with its Target Link-Layer Address option if present.
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdiscRepr {
    /// Parses an ICMPv6 message carried from `src` to `dst`, verifying its checksum and the
    /// message-level checks of RFC 4861 §7.1.1 and §7.1.2.
    pub fn parse(msg: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<Self> {
        let Some(&[kind, code, _, _]) = msg.first_chunk::<4>() else {
            return Err(Error::Truncated("icmpv6 header"));
        };
        if kind != TYPE_NEIGHBOR_SOLICIT && kind != TYPE_NEIGHBOR_ADVERT {
            return Err(Error::malformed(
                "icmpv6",
                "not a neighbor solicitation or advertisement",
            ));
        }
        // "The IP Hop Limit field has a value of 255 ... ICMP Checksum is valid ... ICMP Code is 0
        //  ... ICMP length (derived from the IP length) is 24 or more octets."
        let Some((base, options)) = msg.split_first_chunk::<BASE_LEN>() else {
            return Err(Error::Truncated("neighbor discovery message"));
        };
        if upper_layer_checksum(src, dst, NEXT_HEADER_ICMPV6, msg) != 0 {
            return Err(Error::malformed("icmpv6", "bad checksum"));
        }
        if code != 0 {
            return Err(Error::malformed("icmpv6", "code is not 0"));
        }
        // "Target Address is not a multicast address."
        let target_addr = Ipv6Addr::from(array::<16>(base, 8));
        if target_addr.is_multicast() {
            return Err(Error::malformed("neighbor discovery", "multicast target"));
        }
        let wanted = if kind == TYPE_NEIGHBOR_SOLICIT {
            OPT_SOURCE_LLADDR
        } else {
            OPT_TARGET_LLADDR
        };
        let lladdr = parse_options(options, wanted)?;
        if kind == TYPE_NEIGHBOR_SOLICIT {
            Ok(NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            })
        } else {
            let f = base[4];
            Ok(NdiscRepr::NeighborAdvert {
                flags: NeighborFlags {
                    router: f & 0x80 != 0,
                    solicited: f & 0x40 != 0,
                    override_: f & 0x20 != 0,
                },
                target_addr,
                lladdr,
            })
        }
    }

    /// Message length including options.
    pub const fn buffer_len(&self) -> usize {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit { lladdr, .. }
            | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        if lladdr.is_some() {
            BASE_LEN + LLADDR_OPT_LEN
        } else {
            BASE_LEN
        }
    }

    /// Writes the message into the first [`Self::buffer_len`] bytes of `buf`, with the checksum
    /// for a packet from `src` to `dst`.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        let len = self.buffer_len();
        let Some(msg) = buf.get_mut(..len) else {
            return;
        };
        msg.fill(0);
        let (kind, flags, target, lladdr, opt) = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => (
                TYPE_NEIGHBOR_SOLICIT,
                0,
                target_addr,
                lladdr,
                OPT_SOURCE_LLADDR,
            ),
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                let f = (u8::from(flags.router) << 7)
                    | (u8::from(flags.solicited) << 6)
                    | (u8::from(flags.override_) << 5);
                (
                    TYPE_NEIGHBOR_ADVERT,
                    f,
                    target_addr,
                    lladdr,
                    OPT_TARGET_LLADDR,
                )
            }
        };
        let Some((base, options)) = msg.split_first_chunk_mut::<BASE_LEN>() else {
            return;
        };
        base[0] = kind;
        base[4] = flags;
        base[8..24].copy_from_slice(&target.octets());
        // `len` made room for the option exactly when there is an address to carry.
        if let (Some(mac), Some(o)) = (lladdr, options.first_chunk_mut::<LLADDR_OPT_LEN>()) {
            o[0] = opt;
            o[1] = 1;
            o[2..8].copy_from_slice(&mac.0);
        }
        let csum = upper_layer_checksum(src, dst, NEXT_HEADER_ICMPV6, msg);
        put16(msg, 2, csum);
    }
}

/// Walks the options, returning the Ethernet link-layer address of type `wanted` if present.
/// "All included options have a length that is greater than zero."
fn parse_options(mut opts: &[u8], wanted: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while let [kind, units, ..] = *opts {
        // The length is in units of 8 octets: at most 255 * 8, so the product never saturates.
        let len = usize::from(units).saturating_mul(8);
        if len == 0 {
            return Err(Error::malformed("ndisc option", "zero length"));
        }
        let Some((opt, rest)) = opts.split_at_checked(len) else {
            return Err(Error::Truncated("ndisc option"));
        };
        // An Ethernet link-layer address option is exactly 8 bytes (RFC 2464 §6); other lengths
        // belong to other link types and are skipped like unknown options.
        if kind == wanted && len == LLADDR_OPT_LEN && found.is_none() {
            found = Some(EthernetAddress(array(opt, 2)));
        }
        opts = rest;
    }
    if !opts.is_empty() {
        return Err(Error::Truncated("ndisc option"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A DAD probe for fd00::10 as Linux sends it (ICMPv6 part), built with scapy:
    /// `ICMPv6ND_NS(tgt="fd00::10")` from :: to ff02::1:ff00:10.
    const DAD_NS: [u8; 24] = [
        0x87, 0x00, 0x7d, 0x87, 0, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().expect("addr")
    }

    #[test]
    fn parses_dad_probe_with_valid_checksum() {
        let r = NdiscRepr::parse(&DAD_NS, Ipv6Addr::UNSPECIFIED, addr("ff02::1:ff00:10"))
            .expect("parse");
        assert_eq!(
            r,
            NdiscRepr::NeighborSolicit {
                target_addr: addr("fd00::10"),
                lladdr: None
            }
        );
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut m = DAD_NS;
        m[3] ^= 1;
        assert!(NdiscRepr::parse(&m, Ipv6Addr::UNSPECIFIED, addr("ff02::1:ff00:10")).is_err());
    }

    #[test]
    fn zero_length_option_is_rejected() {
        let r = NdiscRepr::NeighborSolicit {
            target_addr: addr("fd00::10"),
            lladdr: Some(EthernetAddress([2; 6])),
        };
        let (src, dst) = (addr("fe80::1"), addr("ff02::1:ff00:10"));
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, src, dst);
        buf[25] = 0;
        buf[2] = 0;
        buf[3] = 0;
        let c = upper_layer_checksum(src, dst, 58, &buf);
        put16(&mut buf, 2, c);
        assert!(matches!(
            NdiscRepr::parse(&buf, src, dst),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn unknown_options_are_skipped() {
        let (src, dst) = (addr("fe80::1"), addr("ff02::1:ff00:10"));
        let mut buf = DAD_NS.to_vec();
        buf.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]); // nonce option (RFC 3971)
        buf.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]); // source link-layer address
        buf[2] = 0;
        buf[3] = 0;
        let c = upper_layer_checksum(src, dst, 58, &buf);
        put16(&mut buf, 2, c);
        let r = NdiscRepr::parse(&buf, src, dst).expect("parse");
        assert_eq!(
            r,
            NdiscRepr::NeighborSolicit {
                target_addr: addr("fd00::10"),
                lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 9]))
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                       src in any::<[u8; 16]>(), dst in any::<[u8; 16]>()) {
            let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let _ = NdiscRepr::parse(&bytes, s, d);
            // With a fixed-up checksum the option walk is reached too.
            let mut b = bytes.clone();
            if b.len() >= BASE_LEN {
                b[0] = if b[0] & 1 == 0 { TYPE_NEIGHBOR_SOLICIT } else { TYPE_NEIGHBOR_ADVERT };
                b[1] = 0;
                b[2] = 0;
                b[3] = 0;
                let c = upper_layer_checksum(s, d, 58, &b);
                put16(&mut b, 2, c);
                let _ = NdiscRepr::parse(&b, s, d);
            }
        }

        #[test]
        fn repr_round_trips(solicit in any::<bool>(), r in any::<bool>(), so in any::<bool>(), o in any::<bool>(),
                            target in any::<[u8; 16]>(), mac in proptest::option::of(any::<[u8; 6]>()),
                            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>()) {
            let mut target = target;
            target[0] = 0xfd; // not multicast
            let target_addr = Ipv6Addr::from(target);
            let lladdr = mac.map(EthernetAddress);
            let repr = if solicit {
                NdiscRepr::NeighborSolicit { target_addr, lladdr }
            } else {
                NdiscRepr::NeighborAdvert { flags: NeighborFlags { router: r, solicited: so, override_: o }, target_addr, lladdr }
            };
            let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf, s, d);
            prop_assert_eq!(NdiscRepr::parse(&buf, s, d).expect("parse"), repr);
        }
    }
}
