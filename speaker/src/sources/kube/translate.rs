//! Kubernetes objects → the speaker's desired state, as a pure function of a snapshot
//! ([`Snapshot`]) and this node's name. The output ([`Desired`]) is made of the same types the
//! standalone file feeds: `config::Config` (node, BGP instance, peers), `advertise::Advertisement`s,
//! `advertise::ServiceView`s, lb-ipam's allocations (from `Service.status.loadBalancer`), and
//! arp-responder's `L2Config`; `fibImport` becomes `bgp.importPolicy`. No I/O, no clocks.
//!
//! Mapping rules (Cilium's semantics where a Cilium user would expect them):
//! - A `BGPClusterConfig` applies when its `nodeSelector` matches the node's labels (absent:
//!   every node). Herald runs one BGP instance per node: the first instance by (config name,
//!   position) wins and any other is reported as a problem.
//! - A `BGPNodeConfigOverride` named after the node overrides `routerID`, `localASN`,
//!   `localPort` and peers' `localAddress`. Without a `routerID` the node's first IPv4
//!   `InternalIP` is used.
//! - A peer's `peerConfigRef` names a `BGPPeerConfig`; a missing one is reported and the peer runs
//!   with defaults. A missing `peerASN` means "any AS other than ours". Without `families` a
//!   peer negotiates IPv4 and IPv6 unicast and is sent nothing.
//! - `authSecretRef` names a Secret in the speaker's namespace whose `password` key is the TCP MD5
//!   key. A peer whose Secret or key is missing is left out (reported): starting an
//!   unauthenticated session the operator asked to authenticate would be wrong.
//! - `families[].advertisements` selects `BGPAdvertisement`s by label. A `Service` entry without
//!   `selector` selects no service (Cilium's rule); one with a selector yields one advertisement
//!   per address kind. Advertisements equal in everything but the peer are merged into one with
//!   a list of peers.
//! - LoadBalancer addresses are `status.loadBalancer.ingress[].ip` of `type: LoadBalancer`
//!   services of class `herald.io/lb` or none (lb-ipam's writes); requested but unallocated
//!   addresses are not announced. Endpoints come from EndpointSlices labelled
//!   `kubernetes.io/service-name`; a missing `ready` condition counts as ready.
//! - `L2AnnouncementPolicy`: a service selected by some policy (absent `serviceSelector`: all)
//!   is announced on L2 with the addresses the policy enables; its eligible nodes are the nodes
//!   the selecting policies' `nodeSelector`s match, intersected with nodes holding a ready
//!   endpoint when `externalTrafficPolicy: Local`. arp-responder's `ServiceSpec` has no
//!   per-service node set, so a restricted eligibility is expressed as `Local` with
//!   `readyEndpointNodes` set to exactly the eligible nodes; a service some unrestricted policy
//!   selects keeps its own traffic policy (no node list). Interfaces are the union of the `interfaces` of the policies
//!   that select this node (any policy without `interfaces` means all).
//!
//! Everything invalid is skipped and reported in [`Desired::problems`]; the rest still applies.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use arp_responder::config::{
    InterfaceSelection, L2Config, NodeSpec as L2Node, ServiceSpec as L2Service, StoreConfig,
    TrafficPolicy as L2TrafficPolicy,
};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use lb_ipam::selector::service_labels;
use lb_ipam::{LabelSelector, ServiceKey};
use serde_saphyr::{Location, Spanned};

use super::crd::{
    AdvertisementEntry, AdvertisementType, Afi, BGPAdvertisement, BGPAttributes, BGPClusterConfig,
    BGPInstanceOverride, BGPNodeConfigOverride, BGPPeerConfig, BGPPeerConfigSpec,
    L2AnnouncementPolicy, ServiceAddressType,
};
use crate::advertise::{
    Advertisement, AdvertisementKind, Attributes, EndpointView, PortView, ServiceView,
    TrafficPolicy,
};
use crate::config::{
    ApiConfig, BfdConfig, BgpConfig, Config, Family, GracefulRestartConfig, HoldTime, ListenConfig,
    LlgrStaleTime, LongLivedConfig, NodeConfig, PeerAsn, PeerConfig, PeerKind, RestartTime,
    TimersConfig, Ttl,
};
use crate::import_policy::{ImportPolicy, ImportPolicyConfig};
use crate::sources::external_ips::ExternalIpPolicy;

/// The Secret key holding a peer's TCP MD5 password (as Cilium).
pub const AUTH_SECRET_KEY: &str = "password";
/// The load-balancer class lb-ipam serves (besides none).
pub const LOAD_BALANCER_CLASS: &str = "herald.io/lb";
/// Label EndpointSlices carry with their service's name.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Longest TCP MD5 key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_MD5_KEY_LEN: usize = 80;

/// Everything the translation reads: the current contents of the watch caches.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `BGPClusterConfig`s.
    pub cluster_configs: Vec<BGPClusterConfig>,
    /// `BGPPeerConfig`s.
    pub peer_configs: Vec<BGPPeerConfig>,
    /// `BGPAdvertisement`s.
    pub advertisements: Vec<BGPAdvertisement>,
    /// `BGPNodeConfigOverride`s.
    pub overrides: Vec<BGPNodeConfigOverride>,
    /// `L2AnnouncementPolicy`s.
    pub l2_policies: Vec<L2AnnouncementPolicy>,
    /// Every Node.
    pub nodes: Vec<Node>,
    /// Every Service.
    pub services: Vec<Service>,
    /// Every EndpointSlice.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets of the speaker's namespace.
    pub secrets: Vec<Secret>,
    /// Problems found before translation (missing CRDs, forbidden resources), reported as they are.
    pub problems: Vec<String>,
}

/// A TCP MD5 key; its `Debug` output does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key(pub Vec<u8>);

impl fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5Key(<{} octets>)", self.0.len())
    }
}

/// The speaker's desired state in Kubernetes mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Node and BGP instance, as the standalone file would give them. Peers with a key in
    /// [`Desired::md5_keys`] have no `passwordFile` yet: see [`super::md5`].
    pub config: Config,
    /// Advertisements, in a deterministic order.
    pub advertisements: Vec<Advertisement>,
    /// Every service that may be announced, with its endpoints.
    pub services: Vec<ServiceView>,
    /// LoadBalancer addresses per service, from Service status (lb-ipam's allocations).
    pub allocations: BTreeMap<ServiceKey, Vec<IpAddr>>,
    /// TCP MD5 keys by peer address.
    pub md5_keys: BTreeMap<IpAddr, Md5Key>,
    /// arp-responder's configuration for this node (store: Kubernetes Leases), when some
    /// `L2AnnouncementPolicy` exists.
    pub l2: Option<L2Config>,
    /// What was skipped and why, sorted and without duplicates.
    pub problems: Vec<String>,
}

/// Where the Kubernetes-mode speaker runs, and what its operator allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// This node's name.
    pub node_name: String,
    /// Namespace of the speaker (Secrets, Leases).
    pub namespace: String,
    /// Which Services' `spec.externalIPs` may be announced and served
    /// (`--allowed-external-ip-cidrs`); default: none.
    pub external_ips: ExternalIpPolicy,
}

/// Translates a snapshot into this node's desired state.
pub fn translate(me: &Identity, snap: &Snapshot) -> Desired {
    let mut problems: Vec<String> = snap.problems.clone();
    let node = snap
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(me.node_name.as_str()));
    let labels = node
        .and_then(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    if node.is_none() {
        problems.push(format!(
            "Node {} not found: no labels, pod CIDRs or addresses",
            me.node_name
        ));
    }
    let pod_cidrs = node
        .map(|n| pod_cidrs(n, &mut problems))
        .unwrap_or_default();

    let mut desired = Desired {
        config: Config {
            node: NodeConfig {
                name: me.node_name.clone(),
                labels: labels.clone(),
                pod_cidrs,
                router_id: Ipv4Addr::UNSPECIFIED,
            },
            bgp: None,
            api: ApiConfig::default(),
            // lb-ipam's controller allocates in Kubernetes mode (allocations come from Service
            // status), and L2 is carried whole in `Desired::l2`.
            ipam: None,
            services: Vec::new(),
            l2: None,
            // Every Node's InternalIP: endpoints' nodeName resolves to the node hosting them.
            nodes: node_addresses(snap),
            // The datapath section is this node's own (the agent's --datapath file).
            datapath: None,
            // The allow-list is the agent's flag, applied below (`Identity::external_ips`).
            external_ips: None,
        },
        advertisements: Vec::new(),
        services: services(me, snap, &mut problems),
        allocations: allocations(snap),
        md5_keys: BTreeMap::new(),
        l2: None,
        problems: Vec::new(),
    };

    bgp(me, snap, node, &labels, &mut desired, &mut problems);
    desired.l2 = l2(me, snap, &mut problems);

    problems.sort();
    problems.dedup();
    desired.problems = problems;
    desired
}

fn name_of<K: kube::Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|s| s.matches(labels))
}

fn pod_cidrs(node: &Node, problems: &mut Vec<String>) -> Vec<IpNet> {
    let spec = node.spec.as_ref();
    let mut texts: Vec<&String> = spec
        .and_then(|s| s.pod_cidrs.as_ref())
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    if texts.is_empty()
        && let Some(single) = spec.and_then(|s| s.pod_cidr.as_ref())
    {
        texts.push(single);
    }
    texts
        .into_iter()
        .filter_map(|t| match t.parse::<IpNet>() {
            Ok(net) => Some(net),
            Err(_) => {
                problems.push(format!(
                    "Node {}: podCIDR {t:?} is not a CIDR",
                    name_of(node)
                ));
                None
            }
        })
        .collect()
}

/// Node name → Geneve underlay address: the first IPv4 `InternalIP`, else (an IPv6-only node)
/// the first IPv6 one; nodes without either left out.
fn node_addresses(snap: &Snapshot) -> Vec<Spanned<crate::config::nodes::NodeAddress>> {
    snap.nodes
        .iter()
        .filter_map(|n| {
            Some(spanned(crate::config::nodes::NodeAddress {
                name: n.metadata.name.clone()?,
                address: internal_ip(n)?,
            }))
        })
        .collect()
}

fn internal_ip(node: &Node) -> Option<IpAddr> {
    internal_ips(node)
        .find(IpAddr::is_ipv4)
        .or_else(|| internal_ips(node).next())
}

fn internal_ipv4(node: &Node) -> Option<Ipv4Addr> {
    internal_ips(node).find_map(|a| match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    })
}

/// A Node's `InternalIP` addresses, in order.
fn internal_ips(node: &Node) -> impl Iterator<Item = IpAddr> + '_ {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse::<IpAddr>().ok())
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// The BGP instance of this node, its peers, keys and advertisements.
fn bgp(
    me: &Identity,
    snap: &Snapshot,
    node: Option<&Node>,
    labels: &BTreeMap<String, String>,
    desired: &mut Desired,
    problems: &mut Vec<String>,
) {
    let mut configs: Vec<&BGPClusterConfig> = snap
        .cluster_configs
        .iter()
        .filter(|c| selects(c.spec.node_selector.as_ref(), labels))
        .collect();
    configs.sort_by_key(|c| name_of(*c));
    let mut instances = configs
        .iter()
        .flat_map(|c| c.spec.bgp_instances.iter().map(move |i| (name_of(*c), i)));
    let Some((config_name, instance)) = instances.next() else {
        return;
    };
    for (other_config, other) in instances {
        problems.push(format!(
            "BGPClusterConfig {other_config}: instance {} ignored: Herald runs one BGP instance \
             per node and uses {config_name}/{}",
            other.name, instance.name
        ));
    }
    let ctx = format!("BGPClusterConfig {config_name} instance {}", instance.name);
    let over: Option<&BGPInstanceOverride> = snap
        .overrides
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(me.node_name.as_str()))
        .and_then(|o| {
            o.spec
                .bgp_instances
                .iter()
                .find(|i| i.name == instance.name)
        });

    let local_asn = over.and_then(|o| o.local_asn).unwrap_or(instance.local_asn);
    if local_asn == 0 || local_asn == 23456 {
        problems.push(format!(
            "{ctx}: localASN {local_asn} is reserved; BGP not started"
        ));
        return;
    }
    let router_id = match over.and_then(|o| o.router_id.as_deref()) {
        Some(text) => match text.parse::<Ipv4Addr>() {
            Ok(id) if !id.is_unspecified() => Some(id),
            _ => {
                problems.push(format!(
                    "BGPNodeConfigOverride {}: routerID {text:?} is not a usable IPv4 address",
                    me.node_name
                ));
                None
            }
        },
        None => node.and_then(internal_ipv4),
    };
    let Some(router_id) = router_id else {
        problems.push(format!(
            "{ctx}: no router ID (no routerID override and no IPv4 InternalIP on Node {}); BGP \
             not started",
            me.node_name
        ));
        return;
    };
    desired.config.node.router_id = router_id;

    let mut peers: Vec<PeerConfig> = Vec::new();
    let mut ads: BTreeMap<(String, usize, AdvertisementKind, Family), Advertisement> =
        BTreeMap::new();
    for peer in &instance.peers {
        let pctx = format!("{ctx} peer {}", peer.name);
        let address = match (peer.peer_address.as_deref(), &peer.interface) {
            (Some(text), _) => match text.trim().parse::<IpAddr>() {
                Ok(address) => address,
                Err(_) => {
                    problems.push(format!(
                        "{pctx}: peerAddress {text:?} is not an IP address; peer skipped"
                    ));
                    continue;
                }
            },
            // BGP unnumbered: the address is found on the interface.
            (None, Some(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            (None, None) => {
                problems.push(format!(
                    "{pctx}: neither peerAddress nor interface; peer skipped"
                ));
                continue;
            }
        };
        if address.is_unspecified()
            && peers
                .iter()
                .any(|p| p.is_unnumbered() && p.interface_name() == peer.interface.as_deref())
        {
            problems.push(format!(
                "{pctx}: another unnumbered peer is on interface {}; skipped",
                peer.interface.as_deref().unwrap_or_default()
            ));
            continue;
        }
        if !address.is_unspecified() && peers.iter().any(|p| p.address.value == address) {
            problems.push(format!(
                "{pctx}: address {address} is already used by another peer; skipped"
            ));
            continue;
        }
        let spec = match &peer.peer_config_ref {
            None => BGPPeerConfigSpec::default(),
            Some(r) => match snap
                .peer_configs
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(r.name.as_str()))
            {
                Some(pc) => pc.spec.clone(),
                None => {
                    problems.push(format!(
                        "{pctx}: BGPPeerConfig {} not found; using defaults",
                        r.name
                    ));
                    BGPPeerConfigSpec::default()
                }
            },
        };
        let asn = match peer.peer_asn {
            Some(n) => PeerAsn::Number(n),
            None => PeerAsn::Kind(PeerKind::External),
        };
        let ebgp = match asn {
            PeerAsn::Number(n) => n != local_asn,
            PeerAsn::Kind(k) => k == PeerKind::External,
        };
        if address.is_unspecified() && spec.auth_secret_ref.is_some() {
            problems.push(format!(
                "{pctx}: authSecretRef on an unnumbered peer is not implemented; peer skipped"
            ));
            continue;
        }
        if let Some(secret_name) = &spec.auth_secret_ref {
            match md5_key(snap, &me.namespace, secret_name) {
                Ok(key) => {
                    desired.md5_keys.insert(address, key);
                }
                Err(why) => {
                    problems.push(format!("{pctx}: {why}; peer skipped"));
                    continue;
                }
            }
        }
        let Some(cfg) = peer_config(
            &pctx,
            peer.name.clone(),
            address,
            asn,
            ebgp,
            &spec,
            over,
            problems,
        ) else {
            continue;
        };
        let cfg = PeerConfig {
            interface: peer.interface.clone().map(spanned),
            ..cfg
        };
        // The same address/interface rules as the configuration file.
        if let Some((key, why)) = crate::config::peer_interface::check(&cfg) {
            problems.push(format!("{pctx}: {key}: {why}; peer skipped"));
            continue;
        }
        for fam in spec.families.clone().unwrap_or_default() {
            let family = match fam.afi {
                Afi::Ipv4 => Family::Ipv4Unicast,
                Afi::Ipv6 => Family::Ipv6Unicast,
            };
            let Some(selector) = &fam.advertisements else {
                continue;
            };
            for advert in snap
                .advertisements
                .iter()
                .filter(|a| selector.matches(&a.metadata.labels.clone().unwrap_or_default()))
            {
                let aname = name_of(advert);
                for (index, entry) in advert.spec.advertisements.iter().enumerate() {
                    match advertisements_of(&aname, index, entry) {
                        Ok(list) => {
                            for mut ad in list {
                                let key = (aname.clone(), index, ad.kind, family);
                                let slot = ads.entry(key).or_insert_with(|| {
                                    ad.families = vec![family];
                                    ad.peers.clear();
                                    ad
                                });
                                if !slot.peers.contains(&peer.name) {
                                    slot.peers.push(peer.name.clone());
                                }
                            }
                        }
                        Err(why) => problems.push(format!(
                            "BGPAdvertisement {aname} advertisements[{index}]: {why}; skipped"
                        )),
                    }
                }
            }
        }
        peers.push(cfg);
    }

    // Without fibImport nothing received is used (the speaker's default import policy).
    let mut import_policy = ImportPolicy::default();
    if let Some(fib) = &instance.fib_import {
        let parsed = serde_json::to_value(fib)
            .and_then(serde_json::from_value::<ImportPolicyConfig>)
            .map_err(|e| e.to_string())
            .and_then(|c| ImportPolicy::new(c).map_err(|e| e.to_string()));
        match parsed {
            Ok(policy) => import_policy = policy,
            Err(e) => problems.push(format!(
                "{ctx}: fibImport: {e}; nothing received is imported"
            )),
        }
    }

    desired.advertisements = ads.into_values().collect();
    desired.config.bgp = Some(BgpConfig {
        local_asn,
        listen: ListenConfig {
            port: over
                .and_then(|o| o.local_port)
                .or(instance.local_port)
                .unwrap_or(179),
            ..ListenConfig::default()
        },
        peers,
        import_policy,
        static_routes: Vec::new(),
        state_dir: None,
        advertisements: desired
            .advertisements
            .iter()
            .cloned()
            .map(spanned)
            .collect(),
        route_server: false,
        // fibImport present: accepted routes go to the main table.
        fib_import: instance
            .fib_import
            .as_ref()
            .map(|_| spanned(crate::config::FibImportConfig::default())),
        // BMP is configured in the standalone file only (no CRD field yet).
        bmp: None,
    });
}

fn md5_key(snap: &Snapshot, namespace: &str, name: &str) -> Result<Md5Key, String> {
    let secret = snap
        .secrets
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata
                    .namespace
                    .as_deref()
                    .is_none_or(|n| n == namespace)
        })
        .ok_or_else(|| format!("authSecretRef: Secret {namespace}/{name} not found"))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(AUTH_SECRET_KEY))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(AUTH_SECRET_KEY))
                .map(|s| s.as_bytes().to_vec())
        })
        .ok_or_else(|| {
            format!("authSecretRef: Secret {namespace}/{name} has no `{AUTH_SECRET_KEY}` key")
        })?;
    let trimmed = String::from_utf8_lossy(&value).trim().as_bytes().to_vec();
    if trimmed.is_empty() || trimmed.len() > MAX_MD5_KEY_LEN {
        return Err(format!(
            "authSecretRef: Secret {namespace}/{name}: key is {} octets; TCP MD5 takes 1..={MAX_MD5_KEY_LEN}",
            trimmed.len()
        ));
    }
    Ok(Md5Key(trimmed))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the values are the peer's identity from three resources"
)]
fn peer_config(
    pctx: &str,
    name: String,
    address: IpAddr,
    asn: PeerAsn,
    ebgp: bool,
    spec: &BGPPeerConfigSpec,
    over: Option<&BGPInstanceOverride>,
    problems: &mut Vec<String>,
) -> Option<PeerConfig> {
    let mut timers = TimersConfig::default();
    if let Some(t) = &spec.timers {
        if let Some(hold) = t.hold_time_seconds {
            match HoldTime::try_from(hold) {
                Ok(h) => timers.hold_time_seconds = h,
                Err(why) => {
                    problems.push(format!("{pctx}: {why}; peer skipped"));
                    return None;
                }
            }
        }
        if let Some(ka) = t.keep_alive_time_seconds {
            let hold = timers.hold_time_seconds.0;
            if hold != 0 && ka >= hold {
                problems.push(format!(
                    "{pctx}: keepAliveTimeSeconds {ka} is not below holdTimeSeconds {hold}; peer skipped"
                ));
                return None;
            }
            timers.keepalive_time_seconds = Some(ka);
        }
        if let Some(cr) = t.connect_retry_time_seconds {
            timers.connect_retry_time_seconds = cr.max(1);
        }
    }
    let ebgp_multihop = match spec.ebgp_multihop {
        Some(hops) if hops > 1 && ebgp => Some(Ttl(hops)),
        Some(hops) if hops > 1 => {
            problems.push(format!(
                "{pctx}: ebgpMultihop {hops} ignored: the peer is iBGP"
            ));
            None
        }
        _ => None,
    };
    let mut graceful_restart = GracefulRestartConfig::default();
    if let Some(gr) = &spec.graceful_restart {
        graceful_restart.enabled = gr.enabled;
        if let Some(t) = gr.restart_time_seconds {
            match RestartTime::try_from(t) {
                Ok(rt) => graceful_restart.restart_time_seconds = rt,
                Err(why) => problems.push(format!("{pctx}: {why}; default used")),
            }
        }
        if let Some(ll) = &gr.long_lived {
            match (
                gr.enabled,
                LlgrStaleTime::try_from(u64::from(ll.stale_time_seconds)),
            ) {
                (true, Ok(stale_time_seconds)) => {
                    graceful_restart.long_lived = Some(LongLivedConfig { stale_time_seconds })
                }
                (false, _) => problems.push(format!(
                    "{pctx}: gracefulRestart.longLived ignored: needs gracefulRestart.enabled"
                )),
                (true, Err(why)) => {
                    problems.push(format!("{pctx}: gracefulRestart.longLived ignored: {why}"))
                }
            }
        }
    }
    let bfd = spec.bfd.as_ref().map(|b| BfdConfig {
        min_tx_ms: b.min_tx_ms.unwrap_or(300).max(1),
        min_rx_ms: b.min_rx_ms.unwrap_or(300).max(1),
        multiplier: b.multiplier.unwrap_or(3).max(1),
        multihop: b.multihop,
        // The CRD has no BFD authentication yet.
        authentication: None,
    });
    let families = match &spec.families {
        None => vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        Some(list) => {
            let set: BTreeSet<Family> = list
                .iter()
                .map(|f| match f.afi {
                    Afi::Ipv4 => Family::Ipv4Unicast,
                    Afi::Ipv6 => Family::Ipv6Unicast,
                })
                .collect();
            set.into_iter().collect()
        }
    };
    let local_address = match over
        .and_then(|o| o.peers.iter().find(|p| p.name == name))
        .and_then(|p| p.local_address.as_deref())
    {
        Some(text) => match text.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "{pctx}: override localAddress {text:?} is not an IP address; ignored"
                ));
                None
            }
        },
        None => None,
    };
    Some(PeerConfig {
        name: Some(name),
        address: spanned(address),
        asn,
        port: spec
            .transport
            .as_ref()
            .and_then(|t| t.peer_port)
            .unwrap_or(179),
        local_address,
        passive: false,
        timers,
        password_file: None,
        ebgp_multihop,
        gtsm: None,
        graceful_restart,
        bfd,
        families,
        max_prefixes: spec.max_prefixes,
        soft_reconfiguration_inbound: spec.soft_reconfiguration_inbound.unwrap_or(false),
        send_hold_time_seconds: None,
        shutdown: None,
        extended_next_hop: None,
        interface: None,
    })
}

/// One `BGPAdvertisement` entry as speaker advertisements (without peers and families yet).
fn advertisements_of(
    advert: &str,
    index: usize,
    entry: &AdvertisementEntry,
) -> Result<Vec<Advertisement>, String> {
    let attributes = attributes(entry.attributes.as_ref())?;
    let name = Some(format!("{advert}/{index}"));
    let out = match entry.advertisement_type {
        AdvertisementType::PodCIDR => vec![Advertisement {
            name,
            kind: AdvertisementKind::PodCidr,
            selector: None,
            peers: Vec::new(),
            families: Vec::new(),
            aggregation_length_ipv4: None,
            aggregation_length_ipv6: None,
            attributes,
        }],
        AdvertisementType::Service => {
            let service = entry
                .service
                .as_ref()
                .ok_or("advertisementType Service needs `service`")?;
            // Cilium: without a selector no service is selected.
            let Some(selector) = &entry.selector else {
                return Ok(Vec::new());
            };
            let kinds: BTreeSet<ServiceAddressType> = service.addresses.iter().copied().collect();
            kinds
                .into_iter()
                .map(|k| Advertisement {
                    name: name.clone(),
                    kind: match k {
                        ServiceAddressType::LoadBalancerIP => AdvertisementKind::LoadBalancerIp,
                        ServiceAddressType::ExternalIP => AdvertisementKind::ExternalIp,
                        ServiceAddressType::ClusterIP => AdvertisementKind::ClusterIp,
                    },
                    selector: Some(selector.clone()),
                    peers: Vec::new(),
                    families: Vec::new(),
                    aggregation_length_ipv4: service.aggregation_length_ipv4,
                    aggregation_length_ipv6: service.aggregation_length_ipv6,
                    attributes: attributes.clone(),
                })
                .collect()
        }
    };
    for ad in &out {
        ad.validate()?;
    }
    Ok(out)
}

/// CRD attributes → the advertisement model's attributes (the community strings are parsed by
/// the model's own parsers, through JSON, so both sources accept exactly the same spellings).
fn attributes(attrs: Option<&BGPAttributes>) -> Result<Attributes, String> {
    let Some(a) = attrs else {
        return Ok(Attributes::default());
    };
    let value = serde_json::to_value(a).map_err(|e| e.to_string())?;
    serde_json::from_value::<Attributes>(value).map_err(|e| format!("attributes: {e}"))
}

fn parse_ips<'a>(texts: impl IntoIterator<Item = &'a String>) -> Vec<IpAddr> {
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}

fn policy(text: Option<&String>) -> TrafficPolicy {
    match text.map(String::as_str) {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    }
}

/// A Service's `spec.externalIPs` that the operator's allow-list admits (each refused address is
/// reported). The only place this translation reads `spec.externalIPs`: BGP, the datapath and L2
/// all see what this returns.
fn admitted_external_ips(
    me: &Identity,
    namespace: &str,
    name: &str,
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    problems: &mut Vec<String>,
) -> Vec<IpAddr> {
    let ips = parse_ips(spec.external_ips.iter().flatten());
    me.external_ips.admit(namespace, name, &ips, problems)
}

/// Services with their endpoints; ExternalName services are left out.
fn services(me: &Identity, snap: &Snapshot, problems: &mut Vec<String>) -> Vec<ServiceView> {
    let mut endpoints: BTreeMap<(String, String), Vec<EndpointView>> = BTreeMap::new();
    for slice in &snap.endpoint_slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let list = endpoints.entry((ns, service.clone())).or_default();
        let ports = slice_ports(slice);
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            for addr in &ep.addresses {
                if let Ok(ip) = addr.parse() {
                    list.push(EndpointView {
                        ip,
                        node_name: ep.node_name.clone(),
                        ready,
                        ports: ports.clone(),
                    });
                }
            }
        }
    }
    let mut out: Vec<ServiceView> = snap
        .services
        .iter()
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            if spec.type_.as_deref() == Some("ExternalName") {
                return None;
            }
            let namespace = s.metadata.namespace.clone().unwrap_or_default();
            let name = s.metadata.name.clone().unwrap_or_default();
            let mut cluster_ips = parse_ips(spec.cluster_ips.iter().flatten());
            if cluster_ips.is_empty() {
                cluster_ips = parse_ips(spec.cluster_ip.iter());
            }
            let mut eps = endpoints
                .remove(&(namespace.clone(), name.clone()))
                .unwrap_or_default();
            eps.sort_by(|a, b| (a.ip, &a.node_name).cmp(&(b.ip, &b.node_name)));
            let external_ips = admitted_external_ips(me, &namespace, &name, spec, problems);
            Some(ServiceView {
                labels: s.metadata.labels.clone().unwrap_or_default(),
                external_traffic_policy: policy(spec.external_traffic_policy.as_ref()),
                internal_traffic_policy: policy(spec.internal_traffic_policy.as_ref()),
                cluster_ips,
                external_ips,
                load_balancer_ips: Vec::new(),
                endpoints: eps,
                ports: service_ports(spec),
                session_affinity: spec.session_affinity.as_deref() == Some("ClientIP"),
                namespace,
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn protocol(text: Option<&String>) -> Option<lb_ipam::Protocol> {
    match text.map(String::as_str) {
        None | Some("TCP") => Some(lb_ipam::Protocol::TCP),
        Some("UDP") => Some(lb_ipam::Protocol::UDP),
        Some("SCTP") => Some(lb_ipam::Protocol::SCTP),
        Some(_) => None,
    }
}

/// A Service's ports (ports with an unknown protocol or out of range are left out).
fn service_ports(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Vec<PortView> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortView {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: u16::try_from(p.port).ok()?,
                protocol: protocol(p.protocol.as_ref())?,
            })
        })
        .collect()
}

/// An EndpointSlice's ports (Kubernetes matches them to the Service's ports by name).
fn slice_ports(slice: &EndpointSlice) -> Vec<PortView> {
    slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortView {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: u16::try_from(p.port?).ok()?,
                protocol: protocol(p.protocol.as_ref())?,
            })
        })
        .collect()
}

fn is_ours(s: &Service) -> bool {
    s.spec.as_ref().is_some_and(|spec| {
        spec.type_.as_deref() == Some("LoadBalancer")
            && spec
                .load_balancer_class
                .as_deref()
                .is_none_or(|c| c == LOAD_BALANCER_CLASS)
    })
}

fn ingress_ips(s: &Service) -> Vec<IpAddr> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_ref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// LoadBalancer addresses from Service status.
fn allocations(snap: &Snapshot) -> BTreeMap<ServiceKey, Vec<IpAddr>> {
    snap.services
        .iter()
        .filter(|s| is_ours(s))
        .filter_map(|s| {
            let ips = ingress_ips(s);
            (!ips.is_empty()).then(|| {
                (
                    ServiceKey::new(
                        s.metadata.namespace.as_deref().unwrap_or_default(),
                        s.metadata.name.as_deref().unwrap_or_default(),
                    ),
                    ips,
                )
            })
        })
        .collect()
}

/// arp-responder's configuration, when some L2 policy exists.
fn l2(me: &Identity, snap: &Snapshot, problems: &mut Vec<String>) -> Option<L2Config> {
    if snap.l2_policies.is_empty() {
        return None;
    }
    let nodes: Vec<L2Node> = snap
        .nodes
        .iter()
        .filter_map(|n| {
            Some(L2Node {
                name: n.metadata.name.clone()?,
                labels: n.metadata.labels.clone().unwrap_or_default(),
            })
        })
        .collect();
    let Some(me_node) = nodes.iter().find(|n| n.name == me.node_name) else {
        problems.push(format!(
            "L2 announcements off: Node {} not found",
            me.node_name
        ));
        return None;
    };
    let mut policies: Vec<&L2AnnouncementPolicy> = snap.l2_policies.iter().collect();
    policies.sort_by_key(|p| name_of(*p));

    let mut include: BTreeSet<String> = BTreeSet::new();
    let mut all_interfaces = false;
    for p in &policies {
        if selects(p.spec.node_selector.as_ref(), &me_node.labels) {
            if p.spec.interfaces.is_empty() {
                all_interfaces = true;
            }
            for re in &p.spec.interfaces {
                match regex::Regex::new(re) {
                    Ok(_) => {
                        include.insert(re.clone());
                    }
                    Err(e) => problems.push(format!(
                        "L2AnnouncementPolicy {}: interface regex {re:?}: {e}; ignored",
                        name_of(*p)
                    )),
                }
            }
        }
    }

    // Indexes built once, so the per-service loop stays linear in services.
    let policy_nodes: Vec<BTreeSet<&str>> = policies
        .iter()
        .map(|p| {
            nodes
                .iter()
                .filter(|n| selects(p.spec.node_selector.as_ref(), &n.labels))
                .map(|n| n.name.as_str())
                .collect()
        })
        .collect();
    let mut ready_nodes: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for sl in &snap.endpoint_slices {
        let (Some(ns), Some(svc)) = (
            sl.metadata.namespace.as_deref(),
            sl.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        let set = ready_nodes.entry((ns, svc.as_str())).or_default();
        for e in &sl.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
                && let Some(node) = e.node_name.as_deref()
            {
                set.insert(node);
            }
        }
    }

    let mut services = Vec::new();
    for s in &snap.services {
        let Some(spec) = s.spec.as_ref() else {
            continue;
        };
        let mut svc_labels = s.metadata.labels.clone().unwrap_or_default();
        let (ns, name) = (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        );
        svc_labels = service_labels(&ns, &name, &svc_labels);
        let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
        let mut eligible: BTreeSet<&str> = BTreeSet::new();
        // A selecting policy without a node restriction makes every node eligible; the common
        // case then stays O(1) per service instead of listing every node.
        let mut everywhere = false;
        for (p, policy_nodes) in policies.iter().zip(&policy_nodes) {
            if !selects(p.spec.service_selector.as_ref(), &svc_labels) {
                continue;
            }
            let mut from_policy = Vec::new();
            if p.spec.load_balancer_ips && is_ours(s) {
                from_policy.extend(ingress_ips(s));
            }
            if p.spec.external_ips {
                from_policy.extend(admitted_external_ips(me, &ns, &name, spec, problems));
            }
            if !from_policy.is_empty() {
                ips.extend(from_policy);
                if policy_nodes.len() == nodes.len() {
                    everywhere = true;
                } else {
                    eligible.extend(policy_nodes.iter().copied());
                }
            }
        }
        if ips.is_empty() {
            continue;
        }
        let local = policy(spec.external_traffic_policy.as_ref()) == TrafficPolicy::Local;
        let ready = ready_nodes.get(&(ns.as_str(), name.as_str()));
        let (etp, ready_endpoint_nodes): (L2TrafficPolicy, Vec<String>) = match (everywhere, local)
        {
            (true, false) => (L2TrafficPolicy::Cluster, Vec::new()),
            (true, true) => (
                L2TrafficPolicy::Local,
                ready
                    .map(|r| r.iter().map(|n| (*n).to_owned()).collect())
                    .unwrap_or_default(),
            ),
            (false, false) => (
                L2TrafficPolicy::Local,
                eligible.iter().map(|n| (*n).to_owned()).collect(),
            ),
            (false, true) => (
                L2TrafficPolicy::Local,
                eligible
                    .iter()
                    .filter(|n| ready.is_some_and(|r| r.contains(*n)))
                    .map(|n| (*n).to_owned())
                    .collect(),
            ),
        };
        services.push(L2Service {
            name,
            namespace: ns,
            ips: ips.into_iter().collect(),
            external_traffic_policy: etp,
            ready_endpoint_nodes,
            sharing_key: None,
        });
    }
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let config = L2Config {
        node: me.node_name.clone(),
        cluster: "herald".into(),
        nodes,
        node_selector: BTreeMap::new(),
        services,
        interfaces: InterfaceSelection {
            include: if all_interfaces {
                Vec::new()
            } else {
                include.into_iter().collect()
            },
            ..InterfaceSelection::default()
        },
        timing: Default::default(),
        store: StoreConfig::Kubernetes {
            namespace: me.namespace.clone(),
            lease_ms: arp_responder::config::KUBE_LEASE_MS,
            renew_ms: arp_responder::config::KUBE_RENEW_MS,
            outage_grace_ms: arp_responder::config::OUTAGE_GRACE_MS,
        },
    };
    if let Err(e) = config.validate() {
        problems.push(format!("L2 announcements off: {e}"));
        return None;
    }
    Some(config)
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
