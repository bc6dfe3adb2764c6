//! The view across every peer's Adj-RIB-In for one prefix: which accepted routes exist, which is
//! best (RFC 4271 §9.1, [`crate::import_policy::select`]), what a route-server client gets
//! (RFC 7947: the best route from the other clients, attributes and next hop unchanged), and the
//! kernel next hops for FIB import. There is no separate Loc-RIB table: the Adj-RIBs-In are the
//! only copy of received routes, which keeps memory per prefix low. Pure: no I/O.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use bgp_proto::{AttrValue, Community, PathAttribute};
use ipnet::IpNet;

use super::rib::{AdjRibIn, PathAttrs, carries, next_hop_addr};
use crate::advertise::packing::OutRoute;
use crate::fib::FibNextHop;
use crate::import_policy::{BestPathConfig, Candidate, PeerInfo, select};

/// One peer's received routes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Who sent them.
    pub peer: PeerInfo,
    /// Its Adj-RIB-In.
    pub rib: &'a AdjRibIn,
}

/// The accepted routes for `prefix` from `sources` (stale ones included: a restarting peer's
/// routes stay usable, RFC 4724 §4.2).
fn accepted<'a>(
    prefix: &IpNet,
    sources: impl Iterator<Item = &'a Source<'a>>,
) -> Vec<(PeerInfo, &'a Arc<PathAttrs>)> {
    sources
        .filter_map(|s| {
            let entry = s.rib.get(prefix)?;
            entry.accepted.then_some((s.peer, &entry.attrs))
        })
        .collect()
}

fn candidates(routes: &[(PeerInfo, &Arc<PathAttrs>)]) -> Vec<Candidate> {
    routes
        .iter()
        .map(|(peer, attrs)| {
            let next_hop = next_hop_addr(&attrs.next_hop).unwrap_or(peer.address);
            // A link-local next hop is on the link of the peer that sent it.
            let ifindex = match next_hop {
                IpAddr::V6(a) if a.is_unicast_link_local() => peer.interface,
                _ => None,
            };
            Candidate::from_attributes(*peer, next_hop, ifindex, &attrs.attributes)
        })
        .collect()
}

/// Builds route-server routes, sharing one attribute allocation per received attribute set.
/// Use one per batch of changes: it is keyed by the addresses of attribute sets that are alive
/// while the batch runs (a later allocation may reuse an address).
#[derive(Debug, Default)]
pub struct RouteServer {
    interned: HashMap<(*const PathAttrs, bool), Arc<OutRoute>>,
}

impl RouteServer {
    /// What a client gets for `prefix`: the best accepted route among `others` (every source
    /// but the client itself). To an eBGP client LOCAL_PREF is dropped (RFC 4271 §5.1.5); the
    /// AS_PATH is not prepended and the next hop is kept (RFC 7947 §2.2). A route tagged
    /// LLGR_STALE goes only to a client that has the LLGR capability (`client_llgr`).
    pub fn route<'a>(
        &mut self,
        prefix: &IpNet,
        others: impl Iterator<Item = &'a Source<'a>>,
        client: Client,
        best_path: &BestPathConfig,
    ) -> Option<Arc<OutRoute>> {
        let Client {
            ebgp: client_ebgp,
            llgr: client_llgr,
        } = client;
        let routes = accepted(prefix, others);
        let chosen = match routes.as_slice() {
            [] => return None,
            [(_, only)] => *only,
            _ => routes.get(select(&candidates(&routes), best_path)?.best)?.1,
        };
        // RFC 9494 §4.5 (paraphrased): an LLGR_STALE route must not be advertised to a
        // neighbor that did not advertise the LLGR capability. Being least preferred, the best
        // route is LLGR-stale only when every route is, so such a client gets none.
        if !client_llgr && carries(chosen, Community::LLGR_STALE) {
            return None;
        }
        let route = self
            .interned
            .entry((Arc::as_ptr(chosen), client_ebgp))
            .or_insert_with(|| {
                let kept: Vec<PathAttribute> = chosen
                    .attributes
                    .iter()
                    .filter(|a| !(client_ebgp && matches!(a.value, AttrValue::LocalPref(_))))
                    .cloned()
                    .collect();
                Arc::new(OutRoute {
                    attributes: Arc::new(kept),
                    next_hop: chosen.next_hop.clone(),
                })
            })
            .clone();
        Some(route)
    }
}

/// The route-server client a route is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client is an eBGP peer.
    pub ebgp: bool,
    /// Both sides sent the LLGR capability (RFC 9494).
    pub llgr: bool,
}

/// The kernel next hops for `prefix`: the ECMP set of best-path selection over every source.
/// Empty when no accepted route exists.
pub fn fib_next_hops<'a>(
    prefix: &IpNet,
    sources: impl Iterator<Item = &'a Source<'a>>,
    best_path: &BestPathConfig,
) -> BTreeSet<FibNextHop> {
    let routes = accepted(prefix, sources);
    let candidates = candidates(&routes);
    let Some(selection) = select(&candidates, best_path) else {
        return BTreeSet::new();
    };
    selection
        .ecmp
        .iter()
        .filter_map(|&i| candidates.get(i))
        .map(|c| FibNextHop {
            gateway: c.next_hop,
            ifindex: c.ifindex,
        })
        .filter(|hop| usable_gateway(prefix, hop))
        .collect()
}

/// The kernel takes a gateway of the prefix's family, and an IPv6 gateway for an IPv4 prefix
/// (RFC 8950, `via inet6`); not an IPv4 gateway for an IPv6 prefix, nor a link-local gateway
/// without its interface.
fn usable_gateway(prefix: &IpNet, hop: &FibNextHop) -> bool {
    match (prefix, hop.gateway) {
        (IpNet::V6(_), IpAddr::V4(_)) => false,
        (_, IpAddr::V6(a)) if a.is_unicast_link_local() => hop.ifindex.is_some(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bgp_proto::{AsPath, NextHop, Origin};

    use super::*;
    use crate::bgp::rib::RibInEntry;

    fn peer(last: u8, ebgp: bool) -> PeerInfo {
        PeerInfo {
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            router_id: Ipv4Addr::new(1, 1, 1, last),
            ebgp,
            interface: None,
        }
    }

    fn rib(prefix: &str, path: &[u32], local_pref: Option<u32>, nh: u8) -> AdjRibIn {
        let mut attributes = vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(path))),
        ];
        if let Some(lp) = local_pref {
            attributes.push(PathAttribute::new(AttrValue::LocalPref(lp)));
        }
        let mut rib = AdjRibIn::default();
        rib.insert(
            prefix.parse().expect("net"),
            RibInEntry {
                attrs: Arc::new(PathAttrs {
                    attributes,
                    next_hop: NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, nh)),
                }),
                accepted: true,
                stale: false,
            },
        );
        rib
    }

    #[test]
    fn route_server_sends_the_best_other_route_unchanged_but_without_local_pref() {
        let p: IpNet = "192.0.2.0/24".parse().expect("net");
        let long = rib("192.0.2.0/24", &[65010, 65020], Some(50), 1);
        let short = rib("192.0.2.0/24", &[65030], Some(50), 2);
        let sources = [
            Source {
                peer: peer(1, true),
                rib: &long,
            },
            Source {
                peer: peer(2, true),
                rib: &short,
            },
        ];
        let mut rs = RouteServer::default();
        let best = rs
            .route(&p, sources.iter(), EBGP, &BestPathConfig::default())
            .expect("a route");
        assert_eq!(best.next_hop, NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(
            best.attributes
                .iter()
                .any(|a| a.value == AttrValue::AsPath(AsPath::from_sequence(&[65030])))
        );
        assert!(
            !best
                .attributes
                .iter()
                .any(|a| matches!(a.value, AttrValue::LocalPref(_)))
        );
        // Client 2 itself gets the other route.
        let for_two = rs
            .route(
                &p,
                sources.iter().filter(|s| s.peer != peer(2, true)),
                EBGP,
                &BestPathConfig::default(),
            )
            .expect("a route");
        assert_eq!(for_two.next_hop, NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(
            rs.route(
                &"10.0.0.0/8".parse().expect("net"),
                sources.iter(),
                EBGP,
                &BestPathConfig::default()
            )
            .is_none()
        );
    }

    const EBGP: Client = Client {
        ebgp: true,
        llgr: false,
    };

    #[test]
    fn llgr_stale_routes_reach_llgr_clients_only_and_the_fib_as_last_resort() {
        let p: IpNet = "192.0.2.0/24".parse().expect("net");
        let mut stale = rib("192.0.2.0/24", &[65010], Some(500), 1);
        stale.mark_stale(bgp_proto::iana::Family::IPV4_UNICAST);
        stale.mark_llgr_stale(bgp_proto::iana::Family::IPV4_UNICAST);
        let fresh = rib("192.0.2.0/24", &[65020, 65021, 65022], None, 2);
        let only_stale = [Source {
            peer: peer(1, true),
            rib: &stale,
        }];
        let both = [
            only_stale[0],
            Source {
                peer: peer(2, true),
                rib: &fresh,
            },
        ];
        let llgr_client = Client {
            ebgp: true,
            llgr: true,
        };
        let cfg = BestPathConfig::default();
        let mut rs = RouteServer::default();
        // Alone, the LLGR-stale route goes to an LLGR client (with LLGR_STALE) and not to others.
        let route = rs
            .route(&p, only_stale.iter(), llgr_client, &cfg)
            .expect("LLGR client gets it");
        assert!(route.attributes.iter().any(
            |a| matches!(&a.value, AttrValue::Communities(c) if c.contains(&Community::LLGR_STALE))
        ));
        assert!(rs.route(&p, only_stale.iter(), EBGP, &cfg).is_none());
        // With a fresh route around, everybody gets the fresh one despite LOCAL_PREF.
        for client in [EBGP, llgr_client] {
            let route = rs.route(&p, both.iter(), client, &cfg).expect("fresh");
            assert_eq!(route.next_hop, NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 2)));
        }
        // The FIB keeps the stale route while it is the only one, then prefers the fresh one.
        let hops = |s: &[Source<'_>]| fib_next_hops(&p, s.iter(), &cfg);
        assert_eq!(
            hops(&only_stale),
            BTreeSet::from([FibNextHop::via(IpAddr::from([10, 0, 0, 1]))])
        );
        assert_eq!(
            hops(&both),
            BTreeSet::from([FibNextHop::via(IpAddr::from([10, 0, 0, 2]))])
        );
    }

    #[test]
    fn ipv6_gateways_serve_ipv4_prefixes_but_not_the_reverse() {
        let v4: IpNet = "192.0.2.0/24".parse().expect("net");
        let v6: IpNet = "2001:db8::/32".parse().expect("net");
        let gw6 = FibNextHop::via("2001:db8:1::1".parse().expect("ip"));
        let gw4 = FibNextHop::via("10.0.0.1".parse().expect("ip"));
        let ll = FibNextHop::via("fe80::1".parse().expect("ip"));
        let ll_on_link = FibNextHop {
            ifindex: Some(7),
            ..ll
        };
        assert!(usable_gateway(&v4, &gw6), "RFC 8950: IPv4 via inet6");
        assert!(usable_gateway(&v4, &gw4));
        assert!(usable_gateway(&v6, &gw6));
        assert!(!usable_gateway(&v6, &gw4));
        assert!(
            !usable_gateway(&v4, &ll),
            "link-local without its interface"
        );
        assert!(usable_gateway(&v4, &ll_on_link));
        assert!(usable_gateway(&v6, &ll_on_link));
    }

    #[test]
    fn fib_gets_the_ecmp_set() {
        let p: IpNet = "192.0.2.0/24".parse().expect("net");
        let a = rib("192.0.2.0/24", &[65000], None, 1);
        let b = rib("192.0.2.0/24", &[65000], None, 2);
        let sources = [
            Source {
                peer: peer(1, true),
                rib: &a,
            },
            Source {
                peer: peer(2, true),
                rib: &b,
            },
        ];
        let multipath = BestPathConfig {
            max_paths: 4,
            ..BestPathConfig::default()
        };
        assert_eq!(fib_next_hops(&p, sources.iter(), &multipath).len(), 2);
        assert_eq!(
            fib_next_hops(&p, sources.iter(), &BestPathConfig::default()).len(),
            1
        );
        assert!(
            fib_next_hops(
                &"10.0.0.0/8".parse().expect("net"),
                sources.iter(),
                &multipath
            )
            .is_empty()
        );
    }
}
