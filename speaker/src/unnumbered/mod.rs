//! BGP unnumbered: a peer given by `interface` alone. Its address is found by ICMPv6 router
//! advertisements on that interface — the neighbour's RA comes from its link-local address — and
//! we send our own RAs there so the neighbour (FRR's `neighbor eth1 interface`) finds us the
//! same way.
//!
//! Why RAs on a raw ICMPv6 socket rather than the kernel's neighbour table: the kernel ignores
//! RAs on forwarding interfaces (a router's, which a BGP speaker's node usually is) and does not
//! mark the sender as a router there, so the table cannot be relied on; FRR's zebra does the
//! same with its own socket.
//!
//! [`resolve`] (pure) turns the configuration into what the BGP instance runs: each unnumbered
//! peer gets its discovered address, or is left out until one is known. [`io::Discovery`] runs
//! one task per interface.

pub mod io;
pub mod ra;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use crate::config::Config;

/// Neighbour addresses found so far, by interface.
pub type Discovered = BTreeMap<String, Ipv6Addr>;

/// The interfaces the configuration's unnumbered peers are on.
pub fn interfaces(config: &Config) -> BTreeSet<String> {
    config
        .bgp
        .iter()
        .flat_map(|b| b.peers.iter())
        .filter(|p| p.is_unnumbered())
        .filter_map(|p| p.interface_name().map(str::to_owned))
        .collect()
}

/// The configuration with each unnumbered peer at its discovered address; a peer not found yet,
/// or found at an address another peer already has, is left out (the latter logged).
pub fn resolve(config: &Config, discovered: &Discovered) -> Config {
    let mut config = config.clone();
    if let Some(bgp) = config.bgp.as_mut() {
        let mut taken: BTreeSet<IpAddr> = bgp
            .peers
            .iter()
            .filter(|p| !p.is_unnumbered())
            .map(|p| p.address.value)
            .collect();
        bgp.peers.retain_mut(|peer| {
            if !peer.is_unnumbered() {
                return true;
            }
            let Some(found) = peer.interface_name().and_then(|i| discovered.get(i)) else {
                return false;
            };
            let address = IpAddr::V6(*found);
            if !taken.insert(address) {
                tracing::error!(
                    interface = peer.interface_name().unwrap_or_default(),
                    %address,
                    "unnumbered peer found at an address another peer has; left out"
                );
                return false;
            }
            // Fixed before the address stops saying "unnumbered" (which gives both families).
            peer.families = peer.effective_families().into_iter().collect();
            peer.address.value = address;
            true
        });
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            "node:\n  name: n1\n  routerId: 10.0.0.1\nbgp:\n  localASN: 65001\n  peers:\n    \
             - interface: eth1\n      asn: 65000\n    - interface: eth2\n      asn: 65000\n    \
             - address: fe80::9\n      interface: eth3\n      asn: 65000\n",
            "test.yaml",
        )
        .expect("valid")
    }

    fn addresses(config: &Config) -> Vec<IpAddr> {
        config
            .bgp
            .iter()
            .flat_map(|b| b.peers.iter().map(|p| p.address.value))
            .collect()
    }

    #[test]
    fn unnumbered_peers_appear_once_found_and_never_twice_at_one_address() {
        let c = config();
        assert_eq!(
            interfaces(&c),
            BTreeSet::from(["eth1".to_owned(), "eth2".to_owned()])
        );
        let ip = |s: &str| -> Ipv6Addr { s.parse().expect("ip") };
        assert_eq!(
            addresses(&resolve(&c, &Discovered::new())),
            vec![IpAddr::V6(ip("fe80::9"))],
            "nothing found: only the numbered peer"
        );
        let found = Discovered::from([("eth1".to_owned(), ip("fe80::1"))]);
        let resolved = resolve(&c, &found);
        assert_eq!(
            addresses(&resolved),
            vec![IpAddr::V6(ip("fe80::1")), IpAddr::V6(ip("fe80::9"))]
        );
        for peer in resolved.bgp.iter().flat_map(|b| &b.peers) {
            assert!(!peer.is_unnumbered());
            assert!(peer.effective_extended_next_hop() || peer.interface_name() == Some("eth3"));
        }
        let clash = Discovered::from([
            ("eth1".to_owned(), ip("fe80::9")),
            ("eth2".to_owned(), ip("fe80::2")),
        ]);
        assert_eq!(
            addresses(&resolve(&c, &clash)),
            vec![IpAddr::V6(ip("fe80::2")), IpAddr::V6(ip("fe80::9"))],
            "eth1's neighbour has the numbered peer's address: left out"
        );
    }
}
