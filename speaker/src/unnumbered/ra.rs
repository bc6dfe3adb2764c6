//! ICMPv6 Router Advertisements and Router Solicitations (RFC 4861 §4.1, §4.2) as BGP unnumbered
//! uses them: we send a minimal RA (router lifetime 0: we are nobody's default router) so the
//! neighbour learns our link-local address, and a solicitation so it answers at once; we parse
//! the neighbour's RAs only far enough to validate them (RFC 4861 §6.1.2) — their content does
//! not matter, their source address is the peer.
//!
//! Hostile input: every check names what is wrong; nothing here panics. The checksum is the
//! kernel's (raw ICMPv6 sockets compute and verify it, RFC 3542 §3.1). Pure.

use std::net::Ipv6Addr;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// The fixed part of an RA: type, code, checksum, hop limit, flags, router lifetime, reachable
/// time, retransmission timer.
const RA_LEN: usize = 16;

/// Why a received packet is not a valid RA from a neighbour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaError {
    /// Not an RA at all (another ICMPv6 type): ignored silently by the caller.
    #[error("ICMPv6 type {0}, not a router advertisement")]
    NotRa(u8),
    /// RFC 4861 §6.1.2: "The IP Hop Limit field has a value of 255".
    #[error("hop limit {0}, not 255: the RA was forwarded, so it is not from a neighbour")]
    HopLimit(u8),
    /// RFC 4861 §6.1.2: "IP Source Address is a link-local address".
    #[error("source {0} is not a link-local address")]
    Source(Ipv6Addr),
    /// RFC 4861 §6.1.2: "ICMP Code is 0".
    #[error("ICMP code {0}, not 0")]
    Code(u8),
    /// RFC 4861 §6.1.2: "ICMP length ... is 16 or more octets".
    #[error("{0} octets, shorter than the 16-octet RA header")]
    Short(usize),
    /// RFC 4861 §6.1.2: "All included options have a length that is greater than zero", and
    /// each must fit the packet.
    #[error("option at offset {0} has length 0 or runs past the packet")]
    Option(usize),
}

/// Validates a received ICMPv6 packet (`icmp`, starting at the ICMPv6 type) as an RA from the
/// neighbour at `source` that arrived with IP hop limit `hop_limit`.
pub fn validate(icmp: &[u8], source: Ipv6Addr, hop_limit: u8) -> Result<(), RaError> {
    let kind = *icmp.first().ok_or(RaError::Short(0))?;
    if kind != ROUTER_ADVERTISEMENT {
        return Err(RaError::NotRa(kind));
    }
    if hop_limit != 255 {
        return Err(RaError::HopLimit(hop_limit));
    }
    if !source.is_unicast_link_local() {
        return Err(RaError::Source(source));
    }
    if icmp.len() < RA_LEN {
        return Err(RaError::Short(icmp.len()));
    }
    let code = icmp.get(1).copied().unwrap_or(0);
    if code != 0 {
        return Err(RaError::Code(code));
    }
    let mut at = RA_LEN;
    while at < icmp.len() {
        // Option length is in units of 8 octets (RFC 4861 §4.6).
        let len = usize::from(*icmp.get(at + 1).ok_or(RaError::Option(at))?) * 8;
        if len == 0 || at + len > icmp.len() {
            return Err(RaError::Option(at));
        }
        at += len;
    }
    Ok(())
}

/// Our RA: current hop limit 64, no flags, router lifetime 0 (RFC 4861 §4.2: "A Lifetime of 0
/// indicates that the router is not a default router"), no timers, and the source link-layer
/// address option when the interface has one. The checksum is left to the kernel.
pub fn advertisement(mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut out = vec![
        ROUTER_ADVERTISEMENT,
        0,
        0,
        0,
        64,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    if let Some(mac) = mac {
        // Source Link-Layer Address option: type 1, length 1 (8 octets).
        out.extend_from_slice(&[1, 1]);
        out.extend_from_slice(&mac);
    }
    out
}

/// A Router Solicitation (RFC 4861 §4.1), asking the neighbour for its RA now.
pub fn solicitation() -> Vec<u8> {
    vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll() -> Ipv6Addr {
        "fe80::b".parse().expect("ip")
    }

    #[test]
    fn our_advertisement_validates_and_says_not_a_default_router() {
        let ra = advertisement(Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(validate(&ra, ll(), 255), Ok(()));
        assert_eq!(ra.get(6..8), Some(&[0u8, 0][..]), "router lifetime 0");
        assert_eq!(validate(&advertisement(None), ll(), 255), Ok(()));
    }

    #[test]
    fn hostile_or_foreign_packets_are_refused_with_the_reason() {
        let ra = advertisement(None);
        assert_eq!(validate(&ra, ll(), 254), Err(RaError::HopLimit(254)));
        let global: Ipv6Addr = "2001:db8::1".parse().expect("ip");
        assert_eq!(validate(&ra, global, 255), Err(RaError::Source(global)));
        assert_eq!(
            validate(ra.get(..15).expect("15"), ll(), 255),
            Err(RaError::Short(15))
        );
        assert_eq!(validate(&[], ll(), 255), Err(RaError::Short(0)));
        assert_eq!(
            validate(&solicitation(), ll(), 255),
            Err(RaError::NotRa(ROUTER_SOLICITATION))
        );
        let mut coded = ra.clone();
        coded[1] = 3;
        assert_eq!(validate(&coded, ll(), 255), Err(RaError::Code(3)));
        let mut zero_option = ra.clone();
        zero_option.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(validate(&zero_option, ll(), 255), Err(RaError::Option(16)));
        let mut long_option = ra;
        long_option.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(validate(&long_option, ll(), 255), Err(RaError::Option(16)));
    }

    #[test]
    fn no_input_panics() {
        for len in 0..40 {
            for fill in [0u8, 1, 134, 255] {
                let mut p = vec![fill; len];
                if let Some(t) = p.first_mut() {
                    *t = ROUTER_ADVERTISEMENT;
                }
                let _ = validate(&p, ll(), 255);
            }
        }
    }
}
