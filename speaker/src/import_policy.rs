//! What received routes may do on this node: the import policy (prefix lists with ge/le,
//! community matches, a maximum prefix length, default deny) and RFC 4271 §9.1 best-path
//! selection with an ECMP set, ending in the routes the FIB installer ([`crate::fib`]) puts in the
//! kernel. Pure functions over values: no I/O.
//!
//! `importPolicy: reject-all` (the default: accept nothing) and `importPolicy: accept-all`
//! (tests, benchmarks, route-server mode) are shorthands for no rule and one empty accept rule.
//!
//! ```yaml
//! importPolicy:
//!   maxLengthIPv4: 24           # longer prefixes are rejected before any rule
//!   maxLengthIPv6: 48
//!   rules:                      # first matching rule decides; no match: reject
//!     - match:
//!         prefixes: [{ prefix: 10.0.0.0/8, ge: 16, le: 24 }]
//!         communities: { standard: ["65000:100"] }   # every listed community must be present
//!       action: accept
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bgp_proto::{AsPath, AttrValue, Community, Origin, PathAttribute};
use ipnet::IpNet;
use serde::Deserialize;

use crate::advertise::model::Communities;
use crate::error::{Error, Result};
use crate::fib::{FibNextHop, FibRoutes};

/// The `importPolicy` configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportPolicyConfig {
    /// IPv4 prefixes longer than this are rejected whatever the rules say.
    #[serde(default, rename = "maxLengthIPv4")]
    pub max_length_ipv4: Option<u8>,
    /// IPv6 prefixes longer than this are rejected whatever the rules say.
    #[serde(default, rename = "maxLengthIPv6")]
    pub max_length_ipv6: Option<u8>,
    /// Ordered rules; the first that matches decides. No rule matching means reject.
    #[serde(default)]
    pub rules: Vec<ImportRule>,
}

/// One rule: conditions (all must hold) and a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportRule {
    /// Conditions; an empty match matches every route.
    #[serde(default, rename = "match")]
    pub matches: RuleMatch,
    /// What happens to a matching route.
    pub action: Verdict,
}

/// Conditions of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleMatch {
    /// The route's prefix matches at least one entry (empty: any prefix).
    #[serde(default)]
    pub prefixes: Vec<PrefixListEntry>,
    /// The route carries every listed community (standard, well-known, large; extended
    /// communities are matched by value too).
    #[serde(default)]
    pub communities: Communities,
}

/// The decision of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The route enters the Loc-RIB.
    Accept,
    /// The route is ignored (kept in Adj-RIB-In only).
    Reject,
}

/// A prefix-list entry: routes inside `prefix` whose length is `prefix`'s own length, or, with
/// `ge`/`le`, within `ge..=le` (`ge` alone: up to the address width; `le` alone: from the
/// prefix's length), as in FRR and Cisco prefix lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixListEntry {
    /// The covering prefix.
    pub prefix: IpNet,
    /// Shortest matching length.
    #[serde(default)]
    pub ge: Option<u8>,
    /// Longest matching length.
    #[serde(default)]
    pub le: Option<u8>,
}

impl PrefixListEntry {
    fn bounds(&self) -> (u8, u8) {
        let len = self.prefix.prefix_len();
        match (self.ge, self.le) {
            (None, None) => (len, len),
            (Some(ge), None) => (ge, self.prefix.max_prefix_len()),
            (None, Some(le)) => (len, le),
            (Some(ge), Some(le)) => (ge, le),
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let len = self.prefix.prefix_len();
        let max = self.prefix.max_prefix_len();
        let (lo, hi) = self.bounds();
        if lo < len || hi > max || lo > hi {
            return Err(format!(
                "prefix {}: need {len} <= ge <= le <= {max}, got ge {:?} le {:?}",
                self.prefix, self.ge, self.le
            ));
        }
        Ok(())
    }

    /// Whether `route` falls inside the entry.
    pub fn matches(&self, route: &IpNet) -> bool {
        let (lo, hi) = self.bounds();
        let len = route.prefix_len();
        self.prefix.contains(route)
            && len >= lo
            && len <= hi
            && matches!(
                (self.prefix, route),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            )
    }
}

/// A validated import policy. In YAML: `reject-all`, `accept-all`, or an [`ImportPolicyConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ImportPolicyRepr")]
pub struct ImportPolicy {
    config: ImportPolicyConfig,
}

/// The YAML forms of an import policy.
#[derive(Deserialize)]
#[serde(untagged)]
enum ImportPolicyRepr {
    Shorthand(Shorthand),
    Rules(ImportPolicyConfig),
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Shorthand {
    AcceptAll,
    RejectAll,
}

impl TryFrom<ImportPolicyRepr> for ImportPolicy {
    type Error = Error;
    fn try_from(repr: ImportPolicyRepr) -> Result<Self> {
        match repr {
            ImportPolicyRepr::Shorthand(Shorthand::AcceptAll) => Ok(Self::accept_all()),
            ImportPolicyRepr::Shorthand(Shorthand::RejectAll) => Ok(Self::reject_all()),
            ImportPolicyRepr::Rules(config) => Self::new(config),
        }
    }
}

impl ImportPolicy {
    /// Accepts nothing (the default).
    pub fn reject_all() -> Self {
        Self::default()
    }

    /// Accepts every route: one rule with an empty match.
    pub fn accept_all() -> Self {
        Self {
            config: ImportPolicyConfig {
                rules: vec![ImportRule {
                    matches: RuleMatch::default(),
                    action: Verdict::Accept,
                }],
                ..ImportPolicyConfig::default()
            },
        }
    }

    /// The configuration this policy was built from.
    pub fn config(&self) -> &ImportPolicyConfig {
        &self.config
    }

    /// Whether a received route enters the Loc-RIB.
    pub fn accepts(&self, prefix: &IpNet, attributes: &[PathAttribute]) -> bool {
        self.evaluate(prefix, attributes) == Verdict::Accept
    }

    /// Validates a configuration (prefix-list bounds, maximum lengths).
    pub fn new(config: ImportPolicyConfig) -> Result<Self> {
        if config.max_length_ipv4.is_some_and(|l| l > 32) {
            return Err(Error::InvalidPolicy("maxLengthIPv4 above 32".into()));
        }
        if config.max_length_ipv6.is_some_and(|l| l > 128) {
            return Err(Error::InvalidPolicy("maxLengthIPv6 above 128".into()));
        }
        for (i, rule) in config.rules.iter().enumerate() {
            for entry in &rule.matches.prefixes {
                entry
                    .validate()
                    .map_err(|e| Error::InvalidPolicy(format!("rules[{i}]: {e}")))?;
            }
        }
        Ok(Self { config })
    }

    /// The verdict for a received route (its attributes as received).
    pub fn evaluate(&self, prefix: &IpNet, attributes: &[PathAttribute]) -> Verdict {
        let max = match prefix {
            IpNet::V4(_) => self.config.max_length_ipv4,
            IpNet::V6(_) => self.config.max_length_ipv6,
        };
        if max.is_some_and(|m| prefix.prefix_len() > m) {
            return Verdict::Reject;
        }
        self.config
            .rules
            .iter()
            .find(|r| rule_matches(&r.matches, prefix, attributes))
            .map_or(Verdict::Reject, |r| r.action)
    }
}

fn rule_matches(m: &RuleMatch, prefix: &IpNet, attributes: &[PathAttribute]) -> bool {
    if !m.prefixes.is_empty() && !m.prefixes.iter().any(|e| e.matches(prefix)) {
        return false;
    }
    let c = &m.communities;
    let standard = attributes.iter().find_map(|a| match &a.value {
        AttrValue::Communities(v) => Some(v.as_slice()),
        _ => None,
    });
    let standard = standard.unwrap_or(&[]);
    let large = attributes
        .iter()
        .find_map(|a| match &a.value {
            AttrValue::LargeCommunities(v) => Some(v.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    let extended = attributes
        .iter()
        .find_map(|a| match &a.value {
            AttrValue::ExtendedCommunities(v) => Some(v.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    c.standard.iter().all(|s| standard.contains(&s.0))
        && c.well_known
            .iter()
            .all(|w| standard.contains(&w.community()))
        && c.large.iter().all(|l| large.contains(&l.0))
        && c.extended.iter().all(|e| extended.contains(&e.0))
}

/// The peer a candidate route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerInfo {
    /// The peer's address (last tie-breaker, RFC 4271 §9.1.2.2 g).
    pub address: IpAddr,
    /// The peer's BGP identifier (tie-breaker f).
    pub router_id: Ipv4Addr,
    /// The session is eBGP (step d).
    pub ebgp: bool,
    /// The interface index of a peer reached over its link-local address: the link-local next
    /// hops it sends are on that link.
    pub interface: Option<u32>,
}

/// One received, accepted route for a prefix: what best-path selection compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where it came from.
    pub peer: PeerInfo,
    /// Its next hop (already resolved to be reachable by the caller).
    pub next_hop: IpAddr,
    /// The interface, for IPv6 link-local next hops.
    pub ifindex: Option<u32>,
    /// LOCAL_PREF (absent on eBGP routes: [`DEFAULT_LOCAL_PREF`]).
    pub local_pref: Option<u32>,
    /// AS_PATH.
    pub as_path: AsPath,
    /// ORIGIN.
    pub origin: Origin,
    /// MULTI_EXIT_DISC (absent: 0, RFC 4271 §9.1.2.2 c).
    pub med: Option<u32>,
    /// ORIGINATOR_ID (route reflection, RFC 4456 §9): replaces the peer's router id.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST length (RFC 4456 §9: shorter wins).
    pub cluster_list_len: usize,
    /// IGP cost to the next hop; we have no IGP, so callers pass 0 (step e is then a tie).
    pub igp_cost: u32,
    /// Carries the LLGR_STALE community (RFC 9494): less preferred than any other route.
    pub llgr_stale: bool,
}

/// LOCAL_PREF assumed for routes that carry none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

impl Candidate {
    /// A candidate from a received route's attributes.
    pub fn from_attributes(
        peer: PeerInfo,
        next_hop: IpAddr,
        ifindex: Option<u32>,
        attributes: &[PathAttribute],
    ) -> Self {
        let mut c = Candidate {
            peer,
            next_hop,
            ifindex,
            local_pref: None,
            as_path: AsPath::new(),
            origin: Origin::Incomplete,
            med: None,
            originator_id: None,
            cluster_list_len: 0,
            igp_cost: 0,
            llgr_stale: false,
        };
        for a in attributes {
            match &a.value {
                AttrValue::LocalPref(v) => c.local_pref = Some(*v),
                AttrValue::AsPath(p) => c.as_path = p.clone(),
                AttrValue::Origin(o) => c.origin = *o,
                AttrValue::MultiExitDisc(m) => c.med = Some(*m),
                AttrValue::OriginatorId(id) => c.originator_id = Some(*id),
                AttrValue::ClusterList(l) => c.cluster_list_len = l.len(),
                AttrValue::Communities(v) => c.llgr_stale |= v.contains(&Community::LLGR_STALE),
                _ => {}
            }
        }
        c
    }

    fn local_pref(&self) -> u32 {
        self.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }

    fn origin_rank(&self) -> u8 {
        u8::from(self.origin)
    }

    /// The neighbour AS used for MED comparison: the first AS of the path, or "local" (none)
    /// for routes from our own AS.
    fn neighbor_as(&self) -> Option<u32> {
        self.as_path.first_asn()
    }

    /// Tie-breakers after step e: lowest router id (or ORIGINATOR_ID), shortest CLUSTER_LIST,
    /// lowest peer address.
    fn tie_key(&self) -> (Ipv4Addr, usize, IpAddr) {
        (
            self.originator_id.unwrap_or(self.peer.router_id),
            self.cluster_list_len,
            self.peer.address,
        )
    }
}

/// How the ECMP set is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BestPathConfig {
    /// Largest ECMP set (1: no multipath).
    #[serde(default = "BestPathConfig::default_max_paths")]
    pub max_paths: usize,
    /// Paths with different AS_PATHs of equal length may share the ECMP set (FRR's
    /// `as-path multipath-relax`); otherwise their AS_PATHs must be identical.
    #[serde(default)]
    pub multipath_relax: bool,
    /// Compare MED across routes from different neighbour ASes (`always-compare-med`).
    #[serde(default)]
    pub always_compare_med: bool,
}

impl BestPathConfig {
    fn default_max_paths() -> usize {
        1
    }
}

impl Default for BestPathConfig {
    fn default() -> Self {
        Self {
            max_paths: 1,
            multipath_relax: false,
            always_compare_med: false,
        }
    }
}

/// The outcome of best-path selection for one prefix: indices into the candidate slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The best path.
    pub best: usize,
    /// The ECMP set, best first, then in tie-breaker order; never longer than `max_paths`.
    pub ecmp: Vec<usize>,
}

/// Keeps the candidates whose `key` is minimal.
fn keep_min<K: Ord>(set: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if let Some(min) = set.iter().map(|&i| key(i)).min() {
        set.retain(|&i| key(i) == min);
    }
}

/// RFC 4271 §9.1.2.2 over accepted candidates with reachable next hops. `None` when empty.
///
/// First, RFC 9494 §4.3: a route carrying LLGR_STALE is less preferred than any route that
/// does not. Steps: (a) highest LOCAL_PREF (§9.1.1's degree of preference), (b) shortest AS_PATH, (c) lowest
/// ORIGIN, (c) lowest MED among routes from the same neighbour AS, (d) eBGP over iBGP, (e) lowest
/// IGP cost; the survivors form the multipath pool. Then (f) lowest BGP identifier (ORIGINATOR_ID
/// when present, RFC 4456 §9), shortest CLUSTER_LIST, (g) lowest peer address pick the best.
pub fn select(candidates: &[Candidate], config: &BestPathConfig) -> Option<Selection> {
    let mut set: Vec<usize> = (0..candidates.len()).collect();
    if set.is_empty() {
        return None;
    }
    #[expect(
        clippy::indexing_slicing,
        reason = "every index in `set` is in 0..candidates.len(), built just above"
    )]
    let c = |i: usize| &candidates[i];
    keep_min(&mut set, |i| c(i).llgr_stale);
    keep_min(&mut set, |i| Reverse(c(i).local_pref()));
    keep_min(&mut set, |i| c(i).as_path.path_len());
    keep_min(&mut set, |i| c(i).origin_rank());
    // "remove from consideration all routes that are not tied for having the smallest available
    // MULTI_EXIT_DISC value", per neighbour AS: MED only compares routes from the same AS.
    let med = |i: usize| c(i).med.unwrap_or(0);
    let before = set.clone();
    set.retain(|&i| {
        !before.iter().any(|&j| {
            (config.always_compare_med || c(j).neighbor_as() == c(i).neighbor_as())
                && med(j) < med(i)
        })
    });
    if set.iter().any(|&i| c(i).peer.ebgp) {
        set.retain(|&i| c(i).peer.ebgp);
    }
    keep_min(&mut set, |i| c(i).igp_cost);
    let mut pool = set;
    pool.sort_by_key(|&i| c(i).tie_key());
    let best = *pool.first()?;
    let mut ecmp: Vec<usize> = pool
        .into_iter()
        .filter(|&i| config.multipath_relax || c(i).as_path == c(best).as_path)
        .collect();
    // One path per next hop: two peers behind one gateway are one kernel next hop.
    let mut seen = BTreeSet::new();
    ecmp.retain(|&i| seen.insert((c(i).next_hop, c(i).ifindex)));
    ecmp.truncate(config.max_paths.max(1));
    Some(Selection { best, ecmp })
}

/// The kernel routes for a Loc-RIB: per prefix, the ECMP set's next hops.
pub fn fib_routes(rib: &BTreeMap<IpNet, Vec<Candidate>>, config: &BestPathConfig) -> FibRoutes {
    rib.iter()
        .filter_map(|(prefix, candidates)| {
            let sel = select(candidates, config)?;
            let hops = sel
                .ecmp
                .iter()
                .filter_map(|&i| candidates.get(i))
                .map(|c| FibNextHop {
                    gateway: c.next_hop,
                    ifindex: c.ifindex,
                })
                .collect();
            Some((*prefix, hops))
        })
        .collect()
}

#[cfg(test)]
#[path = "import_policy_tests.rs"]
mod tests;
