//! The desired routes of one node: a pure function of the node, its services, lb-ipam's
//! allocations, the configured peers and the advertisements. No I/O, no clocks; the caller diffs the
//! result against each peer's Adj-RIB-Out ([`super::packing`]).
//!
//! Rules (pinned by the tests below):
//! - `PodCIDR` announces `node.podCIDRs` as configured.
//! - `LoadBalancerIP` announces a selected service's lb-ipam allocation, or, when lb-ipam has
//!   none for it, its requested `loadBalancerIP`s; `ExternalIP` its `externalIPs`; `ClusterIP`
//!   its cluster IPs. Service addresses are announced with the advertisement's aggregation length
//!   (host bits cleared), so several addresses may collapse into one prefix.
//! - `externalTrafficPolicy: Local` services get `LoadBalancerIP`/`ExternalIP` routes only from a
//!   node with at least one *ready* endpoint whose `nodeName` is this node; with the last one
//!   gone the prefixes leave the result (and so are withdrawn). `internalTrafficPolicy: Local`
//!   does the same for `ClusterIP`.
//! - A prefix goes to a peer in the family of its own address, if the peer is configured for that
//!   family and the advertisement's `families` (empty: all) include it.
//! - Several advertisements yielding the same prefix for the same peer and family merge: the
//!   union of each community kind; the highest LOCAL_PREF; the lowest MED; the smallest AS-path
//!   prepend (the most preferred value of each). A field unset in one advertisement does not
//!   override another's value.
//! - LOCAL_PREF is sent only to iBGP peers (RFC 4271 §5.1.5) and the AS-path prepend only to eBGP
//!   peers; eBGP routes carry `AS_PATH = local AS × (1 + prepend)`, iBGP routes an empty AS_PATH.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use bgp_proto::{
    AsPath, AttrValue, Community, ExtendedCommunity, LargeCommunity, Origin, PathAttribute,
};
use ipnet::IpNet;
use lb_ipam::ServiceKey;
use lb_ipam::selector::service_labels;
use serde::Deserialize;

use super::model::{Advertisement, AdvertisementKind, Attributes};
use crate::config::Family;
use crate::import_policy::DEFAULT_LOCAL_PREF;

/// The node the speaker runs on, as far as advertisements care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Node name, compared with endpoints' `nodeName`.
    pub name: String,
    /// The node's pod CIDRs.
    pub pod_cidrs: Vec<IpNet>,
}

/// `externalTrafficPolicy` / `internalTrafficPolicy` of a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TrafficPolicy {
    /// Any node may receive the traffic (the Kubernetes default).
    #[default]
    Cluster,
    /// Only nodes with a ready local endpoint may receive the traffic.
    Local,
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    /// The endpoint's address.
    pub ip: IpAddr,
    /// The node it runs on, when known.
    pub node_name: Option<String>,
    /// Whether it is ready to serve.
    pub ready: bool,
    /// The endpoint's ports (an EndpointSlice's, matched to the service's by name and
    /// protocol); empty: each service port's own number.
    pub ports: Vec<PortView>,
}

/// A named port: of a service (its number on the service address) or of an endpoint (the
/// number the pod listens on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    /// Port name; Kubernetes matches endpoint ports to service ports by it.
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
    /// L4 protocol.
    pub protocol: lb_ipam::request::Protocol,
}

impl EndpointView {
    /// The port this endpoint serves `service_port` on: the endpoint port with the same name
    /// and protocol, or the service port itself when the endpoint lists no ports. `None`: the
    /// endpoint does not serve that port.
    pub fn port_for(&self, service_port: &PortView) -> Option<u16> {
        if self.ports.is_empty() {
            return Some(service_port.port);
        }
        self.ports
            .iter()
            .find(|p| p.name == service_port.name && p.protocol == service_port.protocol)
            .map(|p| p.port)
    }
}

/// A service, as far as advertisements care (built from `lb_ipam`'s standalone service entries
/// or from Kubernetes Services and EndpointSlices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The service's own labels (the name/namespace pseudo-labels are added for matching).
    pub labels: BTreeMap<String, String>,
    /// `externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
    /// `internalTrafficPolicy`.
    pub internal_traffic_policy: TrafficPolicy,
    /// `clusterIPs`.
    pub cluster_ips: Vec<IpAddr>,
    /// `externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// Requested `loadBalancerIP`s, announced when lb-ipam has no allocation for the service.
    pub load_balancer_ips: Vec<IpAddr>,
    /// Endpoints on every node.
    pub endpoints: Vec<EndpointView>,
    /// The service's ports.
    pub ports: Vec<PortView>,
    /// `sessionAffinity: ClientIP`: the datapath leaves the client port out of the hash.
    pub session_affinity: bool,
}

impl ServiceView {
    /// The allocation key of the service.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(&self.namespace, &self.name)
    }

    /// Whether a ready endpoint of the service runs on `node`.
    pub fn has_ready_endpoint_on(&self, node: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.ready && e.node_name.as_deref() == Some(node))
    }
}

impl From<&lb_ipam::ServiceSpec> for ServiceView {
    /// A service of the standalone file. Only `type: LoadBalancer` services request
    /// LoadBalancer addresses; `spec.loadBalancerIP` is announced when lb-ipam has none for it.
    fn from(spec: &lb_ipam::ServiceSpec) -> Self {
        let load_balancer = spec.service_type == lb_ipam::service::ServiceType::LoadBalancer;
        Self {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            external_traffic_policy: match spec.external_traffic_policy {
                lb_ipam::service::TrafficPolicy::Cluster => TrafficPolicy::Cluster,
                lb_ipam::service::TrafficPolicy::Local => TrafficPolicy::Local,
            },
            internal_traffic_policy: TrafficPolicy::Cluster,
            cluster_ips: spec.cluster_ip.into_iter().collect(),
            external_ips: spec.external_ips.clone(),
            load_balancer_ips: spec
                .load_balancer_ip
                .into_iter()
                .filter(|_| load_balancer)
                .collect(),
            endpoints: spec
                .endpoints
                .iter()
                .map(|e| EndpointView {
                    ip: e.ip,
                    node_name: Some(e.node_name.clone()),
                    ready: e.ready,
                    // The file's one target port applies to every service port.
                    ports: e
                        .port
                        .map(|port| {
                            spec.ports
                                .iter()
                                .map(|p| PortView {
                                    name: p.name.clone(),
                                    port,
                                    protocol: p.protocol,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect(),
            session_affinity: spec.session_affinity == lb_ipam::service::SessionAffinity::ClientIP,
            ports: spec
                .ports
                .iter()
                .map(|p| PortView {
                    name: p.name.clone(),
                    port: p.port,
                    protocol: p.protocol,
                })
                .collect(),
        }
    }
}

/// A configured BGP peer, as far as advertisements care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// The configured name (matched by [`Advertisement::peers`]), if any.
    pub name: Option<String>,
    /// The peer's address (matched by [`Advertisement::peers`] and used as the output key).
    pub address: IpAddr,
    /// Families configured for the session.
    pub families: BTreeSet<Family>,
    /// The peer is in another AS.
    pub ebgp: bool,
}

impl PeerView {
    fn selected_by(&self, names: &[String]) -> bool {
        names.is_empty()
            || names.iter().any(|n| {
                self.name.as_deref() == Some(n.as_str())
                    || n.parse::<IpAddr>().is_ok_and(|a| a == self.address)
            })
    }
}

/// Everything [`desired`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Our AS number.
    pub local_asn: u32,
    /// This node.
    pub node: &'a NodeView,
    /// Every service (selection happens here).
    pub services: &'a [ServiceView],
    /// lb-ipam's LoadBalancer IP allocations.
    pub allocations: &'a BTreeMap<ServiceKey, Vec<IpAddr>>,
    /// The configured peers.
    pub peers: &'a [PeerView],
    /// The configured advertisements, in file order.
    pub advertisements: &'a [Advertisement],
    /// Prefixes announced to every peer of their family (`bgp.staticRoutes`).
    pub fixed_routes: &'a [FixedRoute],
}

/// A prefix announced to every peer that carries its family, whatever the services are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// Its attributes (merged with any advertisement yielding the same prefix).
    pub attributes: Attributes,
}

/// Where a route set goes: one peer, one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerFamily {
    /// The peer's address.
    pub peer: IpAddr,
    /// The family the routes are sent in.
    pub family: Family,
}

/// A route's path attributes, in type-code order, without the next hop (NEXT_HOP or
/// MP_REACH_NLRI, which the session adds). Identical sets share one allocation.
pub type RouteAttributes = Arc<Vec<PathAttribute>>;

/// Routes per peer and family: prefix → attributes.
pub type DesiredRoutes = BTreeMap<PeerFamily, BTreeMap<IpNet, RouteAttributes>>;

/// The family a prefix is announced in.
pub fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::Ipv4Unicast,
        IpNet::V6(_) => Family::Ipv6Unicast,
    }
}

/// Attribute values merged over every advertisement that yields one (peer, family, prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Merged {
    communities: BTreeSet<Community>,
    extended: BTreeSet<ExtendedCommunity>,
    large: BTreeSet<LargeCommunity>,
    local_pref: Option<u32>,
    med: Option<u32>,
    prepend: Option<u8>,
}

impl Merged {
    fn add(&mut self, a: &Attributes) {
        let c = &a.communities;
        self.communities.extend(c.standard.iter().map(|s| s.0));
        self.communities
            .extend(c.well_known.iter().map(|w| w.community()));
        self.extended.extend(c.extended.iter().map(|e| e.0));
        self.large.extend(c.large.iter().map(|l| l.0));
        self.local_pref = max_opt(self.local_pref, a.local_preference);
        self.med = min_opt(self.med, a.med);
        self.prepend = match (self.prepend, a.as_path_prepend) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
    }

    /// The wire attributes for a peer of the given kind, in type-code order.
    fn to_attributes(&self, local_asn: u32, ebgp: bool) -> Vec<PathAttribute> {
        let mut out = vec![PathAttribute::new(AttrValue::Origin(Origin::Igp))];
        let as_path = if ebgp {
            let mut path = AsPath::new();
            path.prepend(local_asn, 1 + usize::from(self.prepend.unwrap_or(0)));
            path
        } else {
            AsPath::new()
        };
        out.push(PathAttribute::new(AttrValue::AsPath(as_path)));
        if let Some(med) = self.med {
            out.push(PathAttribute::new(AttrValue::MultiExitDisc(med)));
        }
        // RFC 4271 §5.1.5: LOCAL_PREF "SHALL" be included in UPDATEs to internal peers and
        // "MUST NOT" be sent to external ones.
        if !ebgp {
            let lp = self.local_pref.unwrap_or(DEFAULT_LOCAL_PREF);
            out.push(PathAttribute::new(AttrValue::LocalPref(lp)));
        }
        if !self.communities.is_empty() {
            let v = self.communities.iter().copied().collect();
            out.push(PathAttribute::new(AttrValue::Communities(v)));
        }
        if !self.extended.is_empty() {
            let v = self.extended.iter().copied().collect();
            out.push(PathAttribute::new(AttrValue::ExtendedCommunities(v)));
        }
        if !self.large.is_empty() {
            let v = self.large.iter().copied().collect();
            out.push(PathAttribute::new(AttrValue::LargeCommunities(v)));
        }
        out
    }
}

fn max_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// The addresses a service contributes to an advertisement of `kind` on `node`, before
/// aggregation; empty when the traffic policy keeps this node out.
fn service_addresses<'s>(
    kind: AdvertisementKind,
    svc: &'s ServiceView,
    allocations: &'s BTreeMap<ServiceKey, Vec<IpAddr>>,
    node: &NodeView,
) -> &'s [IpAddr] {
    let policy = match kind {
        AdvertisementKind::ClusterIp => svc.internal_traffic_policy,
        _ => svc.external_traffic_policy,
    };
    if policy == TrafficPolicy::Local && !svc.has_ready_endpoint_on(&node.name) {
        return &[];
    }
    match kind {
        AdvertisementKind::PodCidr => &[],
        AdvertisementKind::ClusterIp => &svc.cluster_ips,
        AdvertisementKind::ExternalIp => &svc.external_ips,
        AdvertisementKind::LoadBalancerIp => allocations
            .get(&svc.key())
            .map_or(&svc.load_balancer_ips, |a| a),
    }
}

/// The prefixes one advertisement yields on this node (deduplicated, ordered).
pub fn advertised_prefixes(ad: &Advertisement, inputs: &Inputs<'_>) -> BTreeSet<IpNet> {
    if ad.kind == AdvertisementKind::PodCidr {
        return inputs.node.pod_cidrs.iter().map(IpNet::trunc).collect();
    }
    let mut out = BTreeSet::new();
    for svc in inputs.services {
        if let Some(selector) = &ad.selector {
            let labels = service_labels(&svc.namespace, &svc.name, &svc.labels);
            if !selector.matches(&labels) {
                continue;
            }
        }
        for &addr in service_addresses(ad.kind, svc, inputs.allocations, inputs.node) {
            // Lengths were validated; an out-of-range one yields nothing rather than a panic.
            if let Ok(net) = IpNet::new(addr, ad.aggregation_length(addr)) {
                out.insert(net.trunc());
            }
        }
    }
    out
}

/// The routes this node should announce, per peer and family, with their attributes.
pub fn desired(inputs: &Inputs<'_>) -> DesiredRoutes {
    let mut merged: BTreeMap<PeerFamily, BTreeMap<IpNet, Merged>> = BTreeMap::new();
    let mut add = |peer: &PeerView, prefix: IpNet, attributes: &Attributes| {
        let key = PeerFamily {
            peer: peer.address,
            family: family_of(&prefix),
        };
        merged
            .entry(key)
            .or_default()
            .entry(prefix)
            .or_default()
            .add(attributes);
    };
    for fixed in inputs.fixed_routes {
        let family = family_of(&fixed.prefix);
        for peer in inputs.peers.iter().filter(|p| p.families.contains(&family)) {
            add(peer, fixed.prefix.trunc(), &fixed.attributes);
        }
    }
    for ad in inputs.advertisements {
        let prefixes = advertised_prefixes(ad, inputs);
        for peer in inputs.peers.iter().filter(|p| p.selected_by(&ad.peers)) {
            for prefix in &prefixes {
                let family = family_of(prefix);
                if peer.families.contains(&family)
                    && (ad.families.is_empty() || ad.families.contains(&family))
                {
                    add(peer, *prefix, &ad.attributes);
                }
            }
        }
    }
    let ebgp: HashMap<IpAddr, bool> = inputs.peers.iter().map(|p| (p.address, p.ebgp)).collect();
    let mut interned: HashMap<(Merged, bool), RouteAttributes> = HashMap::new();
    merged
        .into_iter()
        .map(|(key, routes)| {
            let is_ebgp = ebgp.get(&key.peer).copied().unwrap_or(true);
            let routes = routes
                .into_iter()
                .map(|(prefix, m)| {
                    let attrs = interned
                        .entry((m, is_ebgp))
                        .or_insert_with_key(|(m, e)| {
                            Arc::new(m.to_attributes(inputs.local_asn, *e))
                        })
                        .clone();
                    (prefix, attrs)
                })
                .collect();
            (key, routes)
        })
        .collect()
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
