//! The per-peer Adj-RIB-In: the routes the peer announced that the session keeps (the accepted
//! ones, and the rejected ones too only with soft reconfiguration inbound), with the import
//! verdict and the graceful-restart stale mark. The Adj-RIB-Out and UPDATE packing are
//! [`crate::advertise::packing`]'s, shared by the session and the advertisement pipeline.
//!
//! Pure data structures: no I/O. Attribute sets are shared through `Arc` so a million routes
//! with one attribute set cost one copy of the attributes.

use std::net::IpAddr;
use std::sync::Arc;

use bgp_proto::iana::Family;
use bgp_proto::{NextHop, PathAttribute};
use ipnet::IpNet;

use super::prefix_map::PrefixMap;

/// The path attributes of a route, without the reachability attributes (NEXT_HOP, MP_REACH_NLRI,
/// MP_UNREACH_NLRI), which depend on the family and are carried in [`PathAttrs::next_hop`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathAttrs {
    /// Attributes in the order they are sent.
    pub attributes: Vec<PathAttribute>,
    /// The route's next hop.
    pub next_hop: NextHop,
}

/// One route in the Adj-RIB-In.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibInEntry {
    /// Its attributes.
    pub attrs: Arc<PathAttrs>,
    /// The import policy accepted it.
    pub accepted: bool,
    /// Retained from a previous session of a restarting peer (RFC 4724 §4.2).
    pub stale: bool,
}

/// The family a prefix belongs to (unicast).
pub fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    }
}

/// Estimated bytes per stored IPv4 route: the 8-byte key and the 24-byte [`RibInEntry`] in a
/// B-tree leaf (about two thirds full, plus node headers), and a share of its attributes.
const V4_ROUTE_BYTES: usize = 64;
/// Estimated bytes per stored IPv6 route (17-byte key).
const V6_ROUTE_BYTES: usize = 80;

/// Routes received from one peer.
#[derive(Debug, Clone, Default)]
pub struct AdjRibIn {
    routes: PrefixMap<RibInEntry>,
    accepted: usize,
}

impl AdjRibIn {
    /// Stores (or replaces) a route; returns the previous entry.
    pub fn insert(&mut self, prefix: IpNet, entry: RibInEntry) -> Option<RibInEntry> {
        if entry.accepted {
            self.accepted += 1;
        }
        let old = self.routes.insert(prefix, entry);
        if old.as_ref().is_some_and(|o| o.accepted) {
            self.accepted -= 1;
        }
        old
    }

    /// Removes a route; returns it if it was there.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<RibInEntry> {
        let old = self.routes.remove(prefix);
        if old.as_ref().is_some_and(|o| o.accepted) {
            self.accepted -= 1;
        }
        old
    }

    /// A route.
    pub fn get(&self, prefix: &IpNet) -> Option<&RibInEntry> {
        self.routes.get(prefix)
    }

    /// Number of routes received (before import policy).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Number of routes stored for `family` (what the per-family prefix limit counts).
    pub fn len_family(&self, family: Family) -> usize {
        match family {
            Family::IPV4_UNICAST => self.routes.len_v4(),
            Family::IPV6_UNICAST => self.routes.len_v6(),
            _ => 0,
        }
    }

    /// An estimate of the heap memory the table holds, in bytes, from its size: a B-tree slot
    /// per route (key, entry, node overhead). Attribute sets are shared through `Arc` and most
    /// routes share one, so they are only counted as a flat share per route.
    pub fn memory_estimate(&self) -> usize {
        self.routes.len_v4() * V4_ROUTE_BYTES + self.routes.len_v6() * V6_ROUTE_BYTES
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of routes the import policy accepted.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// Number of stale routes.
    pub fn stale(&self) -> usize {
        self.routes.values().filter(|e| e.stale).count()
    }

    /// All routes in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &RibInEntry)> {
        self.routes.iter()
    }

    /// Marks every route of `family` stale; returns how many.
    pub fn mark_stale(&mut self, family: Family) -> usize {
        let mut n = 0;
        for (prefix, entry) in self.routes.iter_mut() {
            if family_of(&prefix) == family {
                entry.stale = true;
                n += 1;
            }
        }
        n
    }

    /// Removes the stale routes of `family` (or of every family); returns the accepted ones
    /// removed, which the Loc-RIB must withdraw.
    pub fn sweep_stale(&mut self, family: Option<Family>) -> Vec<IpNet> {
        let doomed: Vec<IpNet> = self
            .routes
            .iter()
            .filter(|(p, e)| e.stale && family.is_none_or(|f| family_of(p) == f))
            .map(|(p, _)| p)
            .collect();
        let mut withdrawn = Vec::new();
        for prefix in doomed {
            if self.remove(&prefix).is_some_and(|e| e.accepted) {
                withdrawn.push(prefix);
            }
        }
        withdrawn
    }

    /// Removes every route of `family`; returns the accepted ones.
    pub fn sweep_family(&mut self, family: Family) -> Vec<IpNet> {
        let doomed: Vec<IpNet> = self
            .routes
            .keys()
            .filter(|p| family_of(p) == family)
            .collect();
        doomed
            .into_iter()
            .filter(|p| self.remove(p).is_some_and(|e| e.accepted))
            .collect()
    }

    /// Removes everything; returns the accepted prefixes.
    pub fn clear(&mut self) -> Vec<IpNet> {
        let withdrawn = self
            .routes
            .iter()
            .filter(|(_, e)| e.accepted)
            .map(|(p, _)| p)
            .collect();
        self.routes.clear();
        self.accepted = 0;
        withdrawn
    }
}

/// The next hop address of a route, for display.
pub fn next_hop_addr(next_hop: &NextHop) -> Option<IpAddr> {
    match next_hop {
        NextHop::Ipv4(a) => Some(IpAddr::V4(*a)),
        NextHop::Ipv6 { global, .. } => Some(IpAddr::V6(*global)),
        NextHop::Raw(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bgp_proto::{AsPath, AttrValue, Origin};

    use super::*;

    fn attrs(nh: NextHop) -> Arc<PathAttrs> {
        Arc::new(PathAttrs {
            attributes: vec![
                PathAttribute::new(AttrValue::Origin(Origin::Igp)),
                PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65001]))),
            ],
            next_hop: nh,
        })
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    #[test]
    fn stale_routes_are_swept_per_family() {
        let mut rib = AdjRibIn::default();
        let a = attrs(NextHop::Ipv4(Ipv4Addr::LOCALHOST));
        for (p, accepted) in [
            ("10.0.0.0/8", true),
            ("2001:db8::/32", true),
            ("10.9.0.0/16", false),
        ] {
            rib.insert(
                net(p),
                RibInEntry {
                    attrs: a.clone(),
                    accepted,
                    stale: false,
                },
            );
        }
        assert_eq!(rib.accepted(), 2);
        assert_eq!(rib.mark_stale(Family::IPV4_UNICAST), 2);
        // The peer re-announces one IPv4 route: fresh again.
        rib.insert(
            net("10.0.0.0/8"),
            RibInEntry {
                attrs: a,
                accepted: true,
                stale: false,
            },
        );
        assert_eq!(
            rib.sweep_stale(Some(Family::IPV4_UNICAST)),
            Vec::<IpNet>::new()
        );
        assert_eq!(rib.len(), 2);
        assert!(rib.get(&net("10.9.0.0/16")).is_none());
        assert_eq!(rib.clear(), vec![net("10.0.0.0/8"), net("2001:db8::/32")]);
        assert_eq!(rib.accepted(), 0);
    }
}
