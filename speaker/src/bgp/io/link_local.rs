//! The IPv6 link-local address sent as the second next hop to a directly connected peer
//! (RFC 2545 §3: "the link-local address ... of the interface" when the peer shares the subnet).
//!
//! I/O boundary: `getifaddrs(3)` in the calling thread's network namespace.

use std::net::{IpAddr, Ipv6Addr};

use nix::ifaddrs::getifaddrs;

/// Whether `address` is within `network/netmask`.
fn same_subnet(address: Ipv6Addr, network: Ipv6Addr, netmask: Ipv6Addr) -> bool {
    let mask = u128::from(netmask);
    u128::from(address) & mask == u128::from(network) & mask
}

/// The link-local address of the interface that holds our global `local` address, if `peer` is
/// on one of that interface's subnets. `None` for IPv4 sessions and multihop peers.
pub fn link_local_for(local: IpAddr, peer: IpAddr) -> Option<Ipv6Addr> {
    let (IpAddr::V6(local), IpAddr::V6(peer)) = (local.to_canonical(), peer.to_canonical()) else {
        return None;
    };
    if local.is_unicast_link_local() {
        return None;
    }
    let addrs: Vec<_> = getifaddrs().ok()?.collect();
    let v6 = |a: &nix::ifaddrs::InterfaceAddress| {
        let address = a.address.as_ref()?.as_sockaddr_in6()?.ip();
        let netmask = a.netmask.as_ref()?.as_sockaddr_in6()?.ip();
        Some((address, netmask))
    };
    let interface = addrs.iter().find_map(|a| {
        let (address, netmask) = v6(a)?;
        (address == local && same_subnet(peer, address, netmask)).then(|| a.interface_name.clone())
    })?;
    addrs
        .iter()
        .filter(|a| a.interface_name == interface)
        .filter_map(v6)
        .map(|(address, _)| address)
        .find(Ipv6Addr::is_unicast_link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_match_uses_the_mask() {
        let net: Ipv6Addr = "2001:db8:1::1".parse().expect("ip");
        let mask: Ipv6Addr = "ffff:ffff:ffff:ffff::".parse().expect("mask");
        assert!(same_subnet("2001:db8:1::2".parse().expect("ip"), net, mask));
        assert!(!same_subnet(
            "2001:db8:2::2".parse().expect("ip"),
            net,
            mask
        ));
    }

    #[test]
    fn ipv4_sessions_have_no_link_local_next_hop() {
        assert_eq!(
            link_local_for(
                "10.0.0.1".parse().expect("ip"),
                "10.0.0.2".parse().expect("ip")
            ),
            None
        );
    }
}
