//! A peer reached over an IPv6 link-local address (`address: fe80::…` with `interface: eth1`):
//! the checks that tie the two keys together. A link-local address means nothing without its
//! link, and `interface` on any other address would be silently meaningless, so both are
//! refused. Finding the neighbour's address by router advertisements (`interface` without
//! `address`, BGP unnumbered) is not implemented: serde refuses the missing `address`, and
//! [`explain_missing_address`] says so. Pure.

use super::PeerConfig;

/// The longest interface name Linux takes (`IFNAMSIZ` − 1).
const MAX_NAME_LEN: usize = 15;

/// Why `peer`'s `address`/`interface`/`bfd` combination is refused: the key and the message.
pub(crate) fn check(peer: &PeerConfig) -> Option<(&'static str, String)> {
    let link_local = match peer.address.value {
        std::net::IpAddr::V6(a) => a.is_unicast_link_local(),
        std::net::IpAddr::V4(_) => false,
    };
    match &peer.interface {
        None if link_local => Some((
            "interface",
            format!(
                "the link-local address {} needs `interface` (the link it is on)",
                peer.address.value
            ),
        )),
        None => None,
        Some(_) if !link_local => Some((
            "interface",
            format!(
                "only applies to a link-local (fe80::/10) `address`, not {}; peering by interface \
                 alone (BGP unnumbered, address found by router advertisements) is not implemented",
                peer.address.value
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

/// serde's "missing field `address`", with why a peer given by `interface` alone is refused.
pub(super) fn explain_missing_address(message: String) -> String {
    if message.contains("missing field `address`") {
        format!(
            "{message}\n(for a BGP peer given by `interface` alone: BGP unnumbered, finding the \
             neighbour by router advertisements, is not implemented; give the neighbour's \
             link-local `address` together with `interface`)"
        )
    } else {
        message
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
