//! A peer reached over an IPv6 link-local address: either given (`address: fe80::…` with
//! `interface: eth1`) or, BGP unnumbered, found by router advertisements (`interface` alone; the
//! address is then `::` until [`crate::unnumbered`] finds it). The checks that tie `address` and
//! `interface` together: a link-local address means nothing without its link, and `interface`
//! on a global address would be silently meaningless, so both are refused. Pure.

use std::net::{IpAddr, Ipv6Addr};

use serde_saphyr::{Location, Spanned};

use super::PeerConfig;

/// The longest interface name Linux takes (`IFNAMSIZ` − 1).
const MAX_NAME_LEN: usize = 15;

/// The `address` of a peer that has none in the file: `::`, to be found on its interface.
pub(super) fn to_be_found() -> Spanned<IpAddr> {
    Spanned::new(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Location::UNKNOWN,
        Location::UNKNOWN,
    )
}

/// The line errors about `peer` name: its `address`, or its `interface` when it has no address.
pub(super) fn line(peer: &PeerConfig) -> u64 {
    match &peer.interface {
        Some(i) if peer.is_unnumbered() => i.referenced.line(),
        _ => peer.address.referenced.line(),
    }
}

/// Why `peer`'s `address`/`interface`/`bfd` combination is refused: the key and the message.
pub(crate) fn check(peer: &PeerConfig) -> Option<(&'static str, String)> {
    let address = peer.address.value;
    let link_local = match address {
        IpAddr::V6(a) => a.is_unicast_link_local(),
        IpAddr::V4(_) => false,
    };
    let unnumbered = peer.is_unnumbered();
    match peer.interface_name() {
        None if address.is_unspecified() => Some((
            "address",
            "a peer needs `address`, or `interface` alone for BGP unnumbered".into(),
        )),
        None if link_local => Some((
            "interface",
            format!("the link-local address {address} needs `interface` (the link it is on)"),
        )),
        None => None,
        Some(_) if !link_local && !unnumbered => Some((
            "interface",
            format!(
                "only applies to a link-local (fe80::/10) `address`, not {address} (in the \
                 configuration file, `interface` without `address` is BGP unnumbered)"
            ),
        )),
        Some(name) if !valid_name(name) => Some((
            "interface",
            format!(
                "{name:?} is not an interface name (1–{MAX_NAME_LEN} characters, no '/', '%' or spaces)"
            ),
        )),
        Some(_) if peer.bfd.is_some() => Some((
            "bfd",
            "BFD towards a link-local peer is not implemented".into(),
        )),
        Some(_) if peer.local_address.is_some() => Some((
            "localAddress",
            "a link-local peer is reached from the interface's own link-local address".into(),
        )),
        Some(_) => None,
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '%' || c == ':' || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernels_rules() {
        assert!(valid_name("eth1"));
        assert!(valid_name("swp1s0.100"));
        assert!(!valid_name(""));
        assert!(!valid_name("a-name-that-is-too-long"));
        assert!(!valid_name("eth1%2"));
        assert!(!valid_name("et h"));
        assert!(!valid_name(".."));
    }
}
