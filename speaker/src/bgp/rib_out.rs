//! One peer's Adj-RIB-Out as two layers: the routes this node originates for the peer (from the
//! advertisement model: attributes already built for this peer, next hop to be set) and, in
//! route-server mode, routes learned from other peers (attributes and next hop as received,
//! RFC 7947). An originated route wins over a learned one for the same prefix.
//!
//! While the session is Established the peer holds exactly the merge of both layers (restricted
//! to the negotiated families with a usable next hop), so a change of either layer becomes a list
//! of per-prefix [`Change`]s, the input of [`crate::advertise::packing::pack`]. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use bgp_proto::NextHop;
use bgp_proto::iana::Family;
use ipnet::IpNet;

use super::prefix_map::PrefixMap;
use super::rib::family_of;
use crate::advertise::RouteAttributes;
use crate::advertise::packing::{AdjRibOut, OutRoute, next_hop_self};

/// A prefix to announce with a route (`Some`) or to withdraw (`None`).
pub type Change = (IpNet, Option<OutRoute>);

/// A change to the learned layer: routes are shared (one allocation per received attribute
/// set and next hop), so a million learned routes cost a pointer each.
pub type LearnedChange = (IpNet, Option<Arc<OutRoute>>);

/// Our next hops on the current session, per family of the announced prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextHops {
    /// For IPv4 prefixes.
    pub v4: Option<NextHop>,
    /// For IPv6 prefixes.
    pub v6: Option<NextHop>,
}

impl NextHops {
    /// Next hop self from our address on the session: an IPv4 transport gives IPv4 prefixes a
    /// next hop, an IPv6 one gives IPv6 prefixes the global address plus, on a shared segment,
    /// the interface's link-local address (RFC 2545 §3). The other family has none (its routes
    /// are not sent) unless `other` supplies an address of that family.
    pub fn from_local(local: IpAddr, link_local: Option<Ipv6Addr>, other: Option<IpAddr>) -> Self {
        let local = local.to_canonical();
        let mut hops = Self::default();
        for (address, link_local) in [(Some(local), link_local), (other, None)] {
            match address {
                Some(IpAddr::V4(_)) if hops.v4.is_none() => {
                    hops.v4 = address.map(|a| next_hop_self(a, None));
                }
                Some(IpAddr::V6(_)) if hops.v6.is_none() => {
                    hops.v6 = address.map(|a| next_hop_self(a, link_local));
                }
                _ => {}
            }
        }
        hops
    }

    fn for_prefix(&self, prefix: &IpNet) -> Option<&NextHop> {
        match prefix {
            IpNet::V4(_) => self.v4.as_ref(),
            IpNet::V6(_) => self.v6.as_ref(),
        }
    }
}

/// The two layers and, while Established, the session's next hops and families.
#[derive(Debug, Clone, Default)]
pub struct RibOut {
    local: BTreeMap<IpNet, RouteAttributes>,
    learned: PrefixMap<Arc<OutRoute>>,
    open: Option<(NextHops, BTreeSet<Family>)>,
}

fn same(a: Option<&OutRoute>, b: Option<&OutRoute>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            (Arc::ptr_eq(&a.attributes, &b.attributes) || a.attributes == b.attributes)
                && a.next_hop == b.next_hop
        }
        _ => false,
    }
}

impl RibOut {
    /// What the peer gets for `prefix` from the given layer entries.
    fn resolve(
        &self,
        prefix: &IpNet,
        local: Option<&RouteAttributes>,
        learned: Option<&Arc<OutRoute>>,
    ) -> Option<OutRoute> {
        let (hops, families) = self.open.as_ref()?;
        if !families.contains(&family_of(prefix)) {
            return None;
        }
        match local {
            Some(attributes) => hops.for_prefix(prefix).map(|next_hop| OutRoute {
                attributes: attributes.clone(),
                next_hop: next_hop.clone(),
            }),
            None => learned.map(|r| (**r).clone()),
        }
    }

    /// What the peer has (or would have once Established) for `prefix`.
    pub fn get(&self, prefix: &IpNet) -> Option<OutRoute> {
        self.resolve(prefix, self.local.get(prefix), self.learned.get(prefix))
    }

    /// The session reached Established: returns the whole table to send.
    pub fn open(&mut self, next_hops: NextHops, families: BTreeSet<Family>) -> AdjRibOut {
        self.open = Some((next_hops, families));
        self.routes()
    }

    /// The session went down: the peer holds nothing of ours any more.
    pub fn close(&mut self) {
        self.open = None;
    }

    /// Whether the session is Established.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The routes the peer holds, in prefix order (empty unless Established).
    pub fn routes(&self) -> AdjRibOut {
        if self.open.is_none() {
            return AdjRibOut::new();
        }
        let mut out: AdjRibOut = self
            .learned
            .iter()
            .filter(|(p, _)| !self.local.contains_key(p))
            .filter_map(|(p, r)| Some((p, self.resolve(&p, None, Some(r))?)))
            .collect();
        out.extend(
            self.local
                .iter()
                .filter_map(|(p, a)| Some((*p, self.resolve(p, Some(a), None)?))),
        );
        out
    }

    /// Number of routes the peer holds.
    pub fn len(&self) -> usize {
        let Some((hops, families)) = &self.open else {
            return 0;
        };
        let carried = |p: &IpNet| families.contains(&family_of(p));
        let local = self
            .local
            .keys()
            .filter(|p| carried(p) && hops.for_prefix(p).is_some())
            .count();
        let learned = self
            .learned
            .keys()
            .filter(|p| carried(p) && !self.local.contains_key(p))
            .count();
        local + learned
    }

    /// Whether the peer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the originated layer; returns what changes for the peer (nothing unless
    /// Established).
    pub fn set_local(&mut self, routes: BTreeMap<IpNet, RouteAttributes>) -> Vec<Change> {
        let old = std::mem::replace(&mut self.local, routes);
        if self.open.is_none() {
            return Vec::new();
        }
        let touched: BTreeSet<IpNet> = old
            .iter()
            .filter(|(p, a)| {
                self.local
                    .get(p)
                    .is_none_or(|n| !Arc::ptr_eq(n, a) && n != *a)
            })
            .map(|(p, _)| *p)
            .chain(
                self.local
                    .iter()
                    .filter(|(p, a)| old.get(p).is_none_or(|o| !Arc::ptr_eq(o, a) && o != *a))
                    .map(|(p, _)| *p),
            )
            .collect();
        touched
            .into_iter()
            .filter_map(|prefix| {
                let learned = self.learned.get(&prefix);
                let before = self.resolve(&prefix, old.get(&prefix), learned);
                let after = self.resolve(&prefix, self.local.get(&prefix), learned);
                (!same(before.as_ref(), after.as_ref())).then_some((prefix, after))
            })
            .collect()
    }

    /// Applies changes to the learned layer (route-server mode); returns what changes for the
    /// peer (prefixes shadowed by an originated route change nothing).
    pub fn update_learned(
        &mut self,
        changes: impl IntoIterator<Item = LearnedChange>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for (prefix, route) in changes {
            let before = match route {
                Some(route) => self.learned.insert(prefix, route),
                None => self.learned.remove(&prefix),
            };
            if self.open.is_none() || self.local.contains_key(&prefix) {
                continue;
            }
            let before = before.and_then(|r| self.resolve(&prefix, None, Some(&r)));
            let after = self.resolve(&prefix, None, self.learned.get(&prefix));
            if !same(before.as_ref(), after.as_ref()) {
                out.push((prefix, after));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use bgp_proto::{AttrValue, Origin, PathAttribute};

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn attrs(med: u32) -> RouteAttributes {
        Arc::new(vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::MultiExitDisc(med)),
        ])
    }

    fn learned(med: u32, nh: &str) -> Arc<OutRoute> {
        Arc::new(OutRoute {
            attributes: attrs(med),
            next_hop: NextHop::Ipv4(nh.parse().expect("ip")),
        })
    }

    fn v4_session() -> (NextHops, BTreeSet<Family>) {
        (
            NextHops::from_local("10.0.0.1".parse().expect("ip"), None, None),
            BTreeSet::from([Family::IPV4_UNICAST]),
        )
    }

    #[test]
    fn nothing_is_sent_before_established_and_everything_at_open() {
        let mut rib = RibOut::default();
        let changes = rib.set_local(BTreeMap::from([(net("192.0.2.0/24"), attrs(1))]));
        assert!(changes.is_empty());
        assert!(
            rib.update_learned([(net("198.51.100.0/24"), Some(learned(5, "10.9.9.9")))])
                .is_empty()
        );
        assert_eq!(rib.len(), 0);
        let (hops, families) = v4_session();
        let table = rib.open(hops, families);
        assert_eq!(table.len(), 2);
        assert_eq!(
            table[&net("192.0.2.0/24")].next_hop,
            NextHop::Ipv4("10.0.0.1".parse().expect("ip")),
            "originated routes get next hop self"
        );
        assert_eq!(
            table[&net("198.51.100.0/24")].next_hop,
            NextHop::Ipv4("10.9.9.9".parse().expect("ip")),
            "learned routes keep their next hop"
        );
        assert_eq!(rib.len(), 2);
    }

    #[test]
    fn originated_route_shadows_learned_one_and_uncovers_it_when_removed() {
        let mut rib = RibOut::default();
        let (hops, families) = v4_session();
        rib.open(hops, families);
        let p = net("192.0.2.0/24");
        let out = rib.update_learned([(p, Some(learned(5, "10.9.9.9")))]);
        assert_eq!(out.len(), 1);
        let out = rib.set_local(BTreeMap::from([(p, attrs(1))]));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].1.as_ref().map(|r| r.attributes.clone()),
            Some(attrs(1))
        );
        // A learned change under an originated route changes nothing on the wire.
        assert!(
            rib.update_learned([(p, Some(learned(6, "10.9.9.8")))])
                .is_empty()
        );
        let out = rib.set_local(BTreeMap::new());
        assert_eq!(out, vec![(p, Some((*learned(6, "10.9.9.8")).clone()))]);
        let out = rib.update_learned([(p, None)]);
        assert_eq!(out, vec![(p, None)]);
        assert!(rib.is_empty());
    }

    #[test]
    fn unchanged_local_routes_produce_no_changes_and_other_family_is_not_sent() {
        let mut rib = RibOut::default();
        let (hops, families) = v4_session();
        rib.open(hops, families);
        let a = attrs(1);
        let routes = BTreeMap::from([(net("192.0.2.0/24"), a.clone()), (net("2001:db8::/48"), a)]);
        let out = rib.set_local(routes.clone());
        assert_eq!(out.len(), 1, "the IPv6 prefix is not negotiated: {out:?}");
        assert!(rib.set_local(routes).is_empty());
        rib.close();
        assert!(rib.routes().is_empty());
    }

    #[test]
    fn ipv6_next_hop_carries_link_local_on_shared_segment() {
        let ll: Ipv6Addr = "fe80::1".parse().expect("ip");
        let hops = NextHops::from_local("2001:db8::1".parse().expect("ip"), Some(ll), None);
        assert_eq!(
            hops.v6,
            Some(NextHop::Ipv6 {
                global: "2001:db8::1".parse().expect("ip"),
                link_local: Some(ll)
            })
        );
        assert_eq!(hops.v4, None);
        let mapped = NextHops::from_local("::ffff:10.0.0.1".parse().expect("ip"), None, None);
        assert_eq!(
            mapped.v4,
            Some(NextHop::Ipv4("10.0.0.1".parse().expect("ip")))
        );
    }
}
