//! The per-peer Adj-RIB-In: the routes the peer announced that the session keeps (the accepted
//! ones, and the rejected ones too only with soft reconfiguration inbound), with the import
//! verdict and the graceful-restart stale mark. The Adj-RIB-Out and UPDATE packing are
//! [`crate::advertise::packing`]'s, shared by the session and the advertisement pipeline.
//!
//! Pure data structures: no I/O. Attribute sets are shared through `Arc` so a million routes
//! with one attribute set cost one copy of the attributes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bgp_proto::iana::Family;
use bgp_proto::{AttrType, AttrValue, Community, NextHop, PathAttribute};
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

    /// Starts the long-lived stale period of `family`'s stale routes (RFC 9494 §4.2): routes
    /// carrying NO_LLGR are removed, the others get the LLGR_STALE community (one new attribute
    /// set per shared set, so sharing survives). Returns the accepted routes whose attributes
    /// changed and the accepted ones removed.
    pub fn mark_llgr_stale(&mut self, family: Family) -> LlgrMarked {
        let mut marked = LlgrMarked::default();
        let mut relabelled: HashMap<*const PathAttrs, Arc<PathAttrs>> = HashMap::new();
        let mut doomed = Vec::new();
        for (prefix, entry) in self.routes.iter_mut() {
            if !entry.stale || family_of(&prefix) != family {
                continue;
            }
            if carries(&entry.attrs, Community::NO_LLGR) {
                doomed.push(prefix);
                continue;
            }
            if carries(&entry.attrs, Community::LLGR_STALE) {
                continue;
            }
            let attrs = relabelled
                .entry(Arc::as_ptr(&entry.attrs))
                .or_insert_with(|| Arc::new(with_community(&entry.attrs, Community::LLGR_STALE)))
                .clone();
            entry.attrs = attrs.clone();
            if entry.accepted {
                marked.updated.push((prefix, attrs));
            }
        }
        for prefix in doomed {
            if self.remove(&prefix).is_some_and(|e| e.accepted) {
                marked.withdrawn.push(prefix);
            }
        }
        marked
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

/// What [`AdjRibIn::mark_llgr_stale`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LlgrMarked {
    /// Accepted routes now carrying LLGR_STALE.
    pub updated: Vec<(IpNet, Arc<PathAttrs>)>,
    /// Accepted routes removed because they carry NO_LLGR.
    pub withdrawn: Vec<IpNet>,
}

/// Whether the route's COMMUNITIES attribute holds `community`.
pub fn carries(attrs: &PathAttrs, community: Community) -> bool {
    has_community(&attrs.attributes, community)
}

/// Whether a COMMUNITIES attribute among `attributes` holds `community`.
pub fn has_community(attributes: &[PathAttribute], community: Community) -> bool {
    attributes
        .iter()
        .any(|a| matches!(&a.value, AttrValue::Communities(c) if c.contains(&community)))
}

/// `attrs` with `community` added to its COMMUNITIES attribute (created, in type-code order,
/// when absent).
fn with_community(attrs: &PathAttrs, community: Community) -> PathAttrs {
    let mut attributes = attrs.attributes.clone();
    match attributes.iter_mut().find_map(|a| match &mut a.value {
        AttrValue::Communities(c) => Some(c),
        _ => None,
    }) {
        Some(c) => c.push(community),
        None => {
            let code = u8::from(AttrType::Communities);
            let at = attributes
                .iter()
                .position(|a| u8::from(a.value.type_code()) > code)
                .unwrap_or(attributes.len());
            attributes.insert(
                at,
                PathAttribute::new(AttrValue::Communities(vec![community])),
            );
        }
    }
    PathAttrs {
        attributes,
        next_hop: attrs.next_hop.clone(),
    }
}

/// The address a route forwards to: the (global) next hop, or the link-local one when the
/// global field is `::` (BIRD sends that on sessions between link-local addresses).
pub fn next_hop_addr(next_hop: &NextHop) -> Option<IpAddr> {
    match next_hop {
        NextHop::Ipv4(a) => Some(IpAddr::V4(*a)),
        NextHop::Ipv6 {
            global,
            link_local: Some(ll),
        } if global.is_unspecified() => Some(IpAddr::V6(*ll)),
        NextHop::Ipv6 { global, .. } => Some(IpAddr::V6(*global)),
        NextHop::Raw(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bgp_proto::{AsPath, AttrValue, Origin};

    use super::*;

    #[test]
    fn forwarding_address_is_the_link_local_one_behind_an_unspecified_global() {
        let ll: std::net::Ipv6Addr = "fe80::b".parse().expect("ip");
        let global: std::net::Ipv6Addr = "2001:db8::b".parse().expect("ip");
        let with = |global| NextHop::Ipv6 {
            global,
            link_local: Some(ll),
        };
        assert_eq!(
            next_hop_addr(&with(std::net::Ipv6Addr::UNSPECIFIED)),
            Some(IpAddr::V6(ll))
        );
        assert_eq!(next_hop_addr(&with(global)), Some(IpAddr::V6(global)));
    }

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
    fn llgr_marking_tags_stale_routes_and_drops_no_llgr_ones() {
        let mut rib = AdjRibIn::default();
        let plain = attrs(NextHop::Ipv4(Ipv4Addr::LOCALHOST));
        let mut no_llgr = (*plain).clone();
        no_llgr
            .attributes
            .push(PathAttribute::new(AttrValue::Communities(vec![
                Community::new(65001, 1),
                Community::NO_LLGR,
            ])));
        let no_llgr = Arc::new(no_llgr);
        for (p, a) in [
            ("10.0.0.0/8", &plain),
            ("10.1.0.0/16", &plain),
            ("10.2.0.0/16", &no_llgr),
            ("2001:db8::/32", &plain),
        ] {
            rib.insert(
                net(p),
                RibInEntry {
                    attrs: a.clone(),
                    accepted: true,
                    stale: false,
                },
            );
        }
        rib.mark_stale(Family::IPV4_UNICAST);
        let marked = rib.mark_llgr_stale(Family::IPV4_UNICAST);
        assert_eq!(marked.withdrawn, vec![net("10.2.0.0/16")]);
        let updated: Vec<IpNet> = marked.updated.iter().map(|(p, _)| *p).collect();
        assert_eq!(updated, vec![net("10.0.0.0/8"), net("10.1.0.0/16")]);
        // Still one shared attribute set, COMMUNITIES inserted after AS_PATH, still stale.
        let a = rib.get(&net("10.0.0.0/8")).expect("kept");
        let b = rib.get(&net("10.1.0.0/16")).expect("kept");
        assert!(Arc::ptr_eq(&a.attrs, &b.attrs) && a.stale);
        assert!(carries(&a.attrs, Community::LLGR_STALE));
        assert!(matches!(
            a.attrs.attributes.last().map(|x| &x.value),
            Some(AttrValue::Communities(c)) if c == &vec![Community::LLGR_STALE]
        ));
        // The other family is untouched; marking again changes nothing.
        assert!(!carries(
            &rib.get(&net("2001:db8::/32")).expect("v6").attrs,
            Community::LLGR_STALE
        ));
        assert_eq!(
            rib.mark_llgr_stale(Family::IPV4_UNICAST),
            LlgrMarked::default()
        );
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
