//! Per-peer RIBs: Adj-RIB-In (every route the peer announced, with the import verdict and the
//! graceful-restart stale mark) and Adj-RIB-Out (what we announced, so only differences are sent
//! and route refresh can replay it), plus UPDATE packing for Adj-RIB-Out changes.
//!
//! Pure data structures: no I/O. Attribute sets are shared through `Arc` so a million routes
//! with one attribute set cost one copy of the attributes.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use bgp_proto::iana::Family;
use bgp_proto::{
    AttrValue, Ipv4Nlri, Ipv4Prefix, Ipv6Nlri, Ipv6Prefix, MpNlri, MpReach, MpUnreach, NextHop,
    PathAttribute, Update,
};
use ipnet::IpNet;

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

/// Routes received from one peer.
#[derive(Debug, Clone, Default)]
pub struct AdjRibIn {
    routes: BTreeMap<IpNet, RibInEntry>,
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
    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &RibInEntry)> {
        self.routes.iter()
    }

    /// Marks every route of `family` stale; returns how many.
    pub fn mark_stale(&mut self, family: Family) -> usize {
        let mut n = 0;
        for (prefix, entry) in &mut self.routes {
            if family_of(prefix) == family {
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
            .map(|(p, _)| *p)
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
            .copied()
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
            .map(|(p, _)| *p)
            .collect();
        self.routes.clear();
        self.accepted = 0;
        withdrawn
    }
}

/// What changed in an Adj-RIB-Out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RibOutDiff {
    /// New or changed routes.
    pub announce: Vec<(IpNet, Arc<PathAttrs>)>,
    /// Removed routes.
    pub withdraw: Vec<IpNet>,
}

impl RibOutDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

/// Routes announced to one peer.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    routes: BTreeMap<IpNet, Arc<PathAttrs>>,
}

impl AdjRibOut {
    /// Replaces the contents with `desired` and returns the difference to send.
    pub fn replace(&mut self, desired: BTreeMap<IpNet, Arc<PathAttrs>>) -> RibOutDiff {
        let mut diff = RibOutDiff::default();
        for (prefix, attrs) in &desired {
            if self.routes.get(prefix) != Some(attrs) {
                diff.announce.push((*prefix, attrs.clone()));
            }
        }
        for prefix in self.routes.keys() {
            if !desired.contains_key(prefix) {
                diff.withdraw.push(*prefix);
            }
        }
        self.routes = desired;
        diff
    }

    /// Every route of `family`, for a route refresh.
    pub fn family_routes(&self, family: Family) -> Vec<(IpNet, Arc<PathAttrs>)> {
        self.routes
            .iter()
            .filter(|(p, _)| family_of(p) == family)
            .map(|(p, a)| (*p, a.clone()))
            .collect()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// All routes in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &Arc<PathAttrs>)> {
        self.routes.iter()
    }

    /// Forgets everything (the session went down; the next one starts from scratch).
    pub fn clear(&mut self) {
        self.routes.clear();
    }
}

fn v4(prefix: &IpNet) -> Option<Ipv4Nlri> {
    match prefix {
        IpNet::V4(p) => Ipv4Prefix::new(p.network(), p.prefix_len()).map(Ipv4Nlri::new),
        IpNet::V6(_) => None,
    }
}

fn v6(prefix: &IpNet) -> Option<Ipv6Nlri> {
    match prefix {
        IpNet::V6(p) => Ipv6Prefix::new(p.network(), p.prefix_len()).map(Ipv6Nlri::new),
        IpNet::V4(_) => None,
    }
}

/// Octets an NLRI entry takes at most (length octet + address).
fn nlri_octets(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Packs a diff into UPDATEs of at most `max_len` octets: withdrawals first, then announcements
/// grouped by attribute set (many prefixes per message).
pub fn pack_updates(diff: &RibOutDiff, max_len: usize) -> Vec<Update> {
    // Header 19, two length fields 4, and room for the MP attribute header and a 32-octet next
    // hop; attribute sets are measured below.
    let budget = max_len.saturating_sub(19 + 4 + 64);
    let mut updates = Vec::new();

    let (w4, w6): (Vec<&IpNet>, Vec<&IpNet>) = diff
        .withdraw
        .iter()
        .partition(|p| matches!(p, IpNet::V4(_)));
    for chunk in chunk_by_size(&w4, budget) {
        updates.push(Update {
            withdrawn: chunk.iter().filter_map(|p| v4(p)).collect(),
            ..Update::default()
        });
    }
    for chunk in chunk_by_size(&w6, budget) {
        let withdrawn = MpNlri::Ipv6(chunk.iter().filter_map(|p| v6(p)).collect());
        updates.push(Update {
            attributes: vec![PathAttribute::new(AttrValue::MpUnreach(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn,
            }))],
            ..Update::default()
        });
    }

    // Group by attribute set, keeping first-seen order so output is deterministic.
    let mut order: Vec<Arc<PathAttrs>> = Vec::new();
    let mut groups: HashMap<Arc<PathAttrs>, (Vec<&IpNet>, Vec<&IpNet>)> = HashMap::new();
    for (prefix, attrs) in &diff.announce {
        let group = groups.entry(attrs.clone()).or_insert_with(|| {
            order.push(attrs.clone());
            (Vec::new(), Vec::new())
        });
        match prefix {
            IpNet::V4(_) => group.0.push(prefix),
            IpNet::V6(_) => group.1.push(prefix),
        }
    }
    for attrs in order {
        let Some((p4, p6)) = groups.get(&attrs) else {
            continue;
        };
        let attr_len: usize = attrs
            .attributes
            .iter()
            .map(|a| 4 + attr_value_hint(a))
            .sum();
        let room = budget.saturating_sub(attr_len).max(64);
        for chunk in chunk_by_size(p4, room) {
            let mut attributes = attrs.attributes.clone();
            if let NextHop::Ipv4(nh) = attrs.next_hop {
                attributes.push(PathAttribute::new(AttrValue::NextHop(nh)));
            }
            updates.push(Update {
                attributes,
                nlri: chunk.iter().filter_map(|p| v4(p)).collect(),
                ..Update::default()
            });
        }
        for chunk in chunk_by_size(p6, room) {
            let mut attributes = vec![PathAttribute::new(AttrValue::MpReach(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: attrs.next_hop.clone(),
                nlri: MpNlri::Ipv6(chunk.iter().filter_map(|p| v6(p)).collect()),
            }))];
            attributes.extend(attrs.attributes.iter().cloned());
            updates.push(Update {
                attributes,
                ..Update::default()
            });
        }
    }
    updates
}

/// A generous estimate of an attribute's value length, for packing.
fn attr_value_hint(attr: &PathAttribute) -> usize {
    match &attr.value {
        AttrValue::Origin(_) => 1,
        AttrValue::AsPath(p) => 2 + 4 * p.segments().map(|s| s.asns.len() + 1).sum::<usize>(),
        AttrValue::Communities(c) => 4 * c.len(),
        AttrValue::LargeCommunities(c) => 12 * c.len(),
        AttrValue::ExtendedCommunities(c) => 8 * c.len(),
        AttrValue::Unknown { data, .. } => data.len(),
        _ => 16,
    }
}

fn chunk_by_size<'a>(prefixes: &[&'a IpNet], budget: usize) -> Vec<Vec<&'a IpNet>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for prefix in prefixes {
        let size = nlri_octets(prefix);
        if used + size > budget && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += size;
        current.push(*prefix);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    use bgp_proto::{AsPath, DecodeContext, EncodeContext, Message, Origin};

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
    fn rib_out_sends_only_differences() {
        let a = attrs(NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = attrs(NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 2)));
        let mut out = AdjRibOut::default();
        let first = out.replace(BTreeMap::from([
            (net("10.1.0.0/24"), a.clone()),
            (net("10.2.0.0/24"), a.clone()),
        ]));
        assert_eq!(first.announce.len(), 2);
        let second = out.replace(BTreeMap::from([
            (net("10.1.0.0/24"), a.clone()),
            (net("10.3.0.0/24"), b.clone()),
        ]));
        assert_eq!(second.announce, vec![(net("10.3.0.0/24"), b)]);
        assert_eq!(second.withdraw, vec![net("10.2.0.0/24")]);
        assert!(
            out.replace(out.iter().map(|(p, a)| (*p, a.clone())).collect())
                .is_empty()
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

    #[test]
    fn packed_updates_fit_and_round_trip() {
        let a = attrs(NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
        let b = attrs(NextHop::Ipv6 {
            global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            link_local: None,
        });
        let mut announce: Vec<(IpNet, Arc<PathAttrs>)> = (0..3000u32)
            .map(|i| {
                (
                    IpNet::V4(
                        ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24)
                            .expect("net"),
                    ),
                    a.clone(),
                )
            })
            .collect();
        announce.push((net("2001:db8:1::/48"), b));
        let diff = RibOutDiff {
            announce,
            withdraw: vec![net("10.200.0.0/16"), net("2001:db8:9::/48")],
        };
        let updates = pack_updates(&diff, 4096);
        assert!(
            updates.len() >= 4 && updates.len() < 10,
            "{} updates",
            updates.len()
        );
        let cx = EncodeContext::default();
        let mut seen_v4 = 0;
        for update in updates {
            let bytes = Message::Update(update).to_bytes(&cx).expect("fits in 4096");
            let decoded = Message::decode(&bytes, &DecodeContext::default()).expect("decodes");
            assert!(decoded.rfc7606.is_clean(), "{:?}", decoded.rfc7606);
            if let Message::Update(u) = decoded.message {
                seen_v4 += u.nlri.len();
            }
        }
        assert_eq!(seen_v4, 3000);
    }
}
