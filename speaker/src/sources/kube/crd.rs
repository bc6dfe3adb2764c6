//! The speaker's custom resources (`herald.io/v1alpha1`, all cluster scoped): `BGPClusterConfig`,
//! `BGPPeerConfig`, `BGPAdvertisement`, `BGPNodeConfigOverride`, `L2AnnouncementPolicy` and the
//! per-node `BGPNodeStatus`. Field names follow Cilium's `CiliumBGP*` v2 and
//! `CiliumL2AnnouncementPolicy` resources so a Cilium user can move a resource over by changing
//! `apiVersion`/`kind`; our additions (BFD, FIB import policy, MED, AS-path prepend, extended
//! communities) are extra optional fields. Validation the API server can do is in the schema
//! (ranges, enums, CEL `x-kubernetes-validations`); [`super::translate()`] checks the same rules
//! again, because a CRD installed by someone else may lack them.
//!
//! Pure types; the YAML in `deploy/crds/` is generated from them by `cargo run -p speaker --example gen-crds` (see
//! [`crds_yaml`]).
#![expect(
    clippy::duplicated_attributes,
    reason = "each kube printcolumn repeats `type_`; the lint reads them as duplicates"
)]
#![expect(
    unreachable_pub,
    reason = "kube's KubeSchema derive copies each struct into a private module for schemars; \
              the lint fires on those copies, not on the public types"
)]

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use lb_ipam::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// BGPClusterConfig
// ---------------------------------------------------------------------------------------------

/// Spec of a `BGPClusterConfig`: the BGP instances of the nodes it selects.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "BGPClusterConfig",
    plural = "bgpclusterconfigs",
    shortname = "bgpcc",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPClusterConfigSpec {
    /// Nodes this configuration applies to; every node when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// The BGP instances to run on each selected node (Herald runs one per node).
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("bgpInstances[].name must be unique"))]
    pub bgp_instances: Vec<BGPInstance>,
}

/// One BGP instance: a local AS and its peers.
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BGPInstance {
    /// Instance name, matched by `BGPNodeConfigOverride`.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Our AS number.
    #[serde(rename = "localASN")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    #[x_kube(validation = Rule::new("self != 23456").message("23456 is AS_TRANS (RFC 6793)"))]
    pub local_asn: u32,
    /// Port to accept BGP connections on (179 when omitted; 0 disables listening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// The peers.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("peers[].name must be unique"))]
    pub peers: Vec<BGPPeer>,
    /// Herald addition: which received routes enter the Loc-RIB and the kernel FIB. Absent:
    /// accept nothing (the default import policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fib_import: Option<FibImport>,
}

/// A peer of an instance.
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.peerAddress) || has(self.interface)").message("a peer needs peerAddress, or interface alone for BGP unnumbered"))]
pub struct BGPPeer {
    /// Peer name, used by advertisements' peer selection and in status.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The peer's IPv4 or IPv6 address; absent for BGP unnumbered (`interface` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("peerAddress must be an IP address"))]
    pub peer_address: Option<String>,
    /// The peer's AS; when omitted any AS other than ours is accepted (eBGP).
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub peer_asn: Option<u32>,
    /// The `BGPPeerConfig` holding transport, timers, families and advertisements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_config_ref: Option<PeerConfigReference>,
    /// Herald addition: the node's interface a link-local `peerAddress` (fe80::/10) is on
    /// (required for link-local addresses, refused for others); without `peerAddress`, BGP
    /// unnumbered: the neighbour is found on this interface by router advertisements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub interface: Option<String>,
}

/// A reference to a `BGPPeerConfig` by name.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerConfigReference {
    /// Name of the `BGPPeerConfig`.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Herald addition: the import policy for received routes (the speaker's `importPolicy`).
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FibImport {
    /// IPv4 prefixes longer than this are rejected.
    #[serde(
        default,
        rename = "maxLengthIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(max = 32))]
    pub max_length_ipv4: Option<u8>,
    /// IPv6 prefixes longer than this are rejected.
    #[serde(
        default,
        rename = "maxLengthIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(max = 128))]
    pub max_length_ipv6: Option<u8>,
    /// Ordered rules; the first that matches decides; no match rejects.
    #[serde(default)]
    pub rules: Vec<FibImportRule>,
}

/// One import rule.
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FibImportRule {
    /// Conditions (all must hold); empty matches every route.
    #[serde(default, rename = "match")]
    pub matches: FibImportMatch,
    /// `accept` or `reject`.
    pub action: ImportAction,
}

/// Conditions of an import rule.
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FibImportMatch {
    /// The route's prefix is inside one of these (with optional `ge`/`le` lengths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PrefixMatch>,
    /// The route carries every listed community.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Communities>,
}

/// A prefix-list entry.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.ge) || !has(self.le) || self.ge <= self.le").message("ge must not exceed le"))]
pub struct PrefixMatch {
    /// A CIDR such as `10.0.0.0/8`.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("prefix must be a CIDR"))]
    pub prefix: String,
    /// Shortest matching length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 128))]
    pub ge: Option<u8>,
    /// Longest matching length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 128))]
    pub le: Option<u8>,
}

/// The verdict of an import rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportAction {
    /// The route is used.
    Accept,
    /// The route is ignored.
    #[default]
    Reject,
}

// ---------------------------------------------------------------------------------------------
// BGPPeerConfig
// ---------------------------------------------------------------------------------------------

/// Spec of a `BGPPeerConfig`: how to talk to a peer and what to send it.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "BGPPeerConfig",
    plural = "bgppeerconfigs",
    shortname = "bgppc",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerConfigSpec {
    /// TCP transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Session timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<Timers>,
    /// TTL of our packets to an eBGP peer (1: directly connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub ebgp_multihop: Option<u8>,
    /// Name of a Secret in the speaker's namespace whose `password` key is the TCP MD5 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<String>,
    /// Graceful restart (RFC 4724).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// Address families and the advertisements sent in each. Absent: IPv4 and IPv6 unicast with
    /// no advertisements, as Cilium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<FamilyAdvertisements>>,
    /// Herald addition: BFD bound to the session (RFC 5880/5881/5883).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
    /// Herald addition: the session is reset (Cease, Maximum Number of Prefixes Reached) when
    /// the peer's stored routes of one family exceed this; 100000 when omitted, 0 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<u32>,
    /// Herald addition: keep routes the import policy rejects, so policy changes apply without
    /// a ROUTE-REFRESH (costs memory for every rejected route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_reconfiguration_inbound: Option<bool>,
}

/// TCP transport of a peering.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transport {
    /// The peer's port (179 when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub peer_port: Option<u16>,
}

/// Session timers, in seconds.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.keepAliveTimeSeconds) || !has(self.holdTimeSeconds) || self.holdTimeSeconds == 0 || self.keepAliveTimeSeconds < self.holdTimeSeconds").message("keepAliveTimeSeconds must be below holdTimeSeconds"))]
pub struct Timers {
    /// Delay between connection attempts (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub connect_retry_time_seconds: Option<u16>,
    /// Hold time we propose: 0 or at least 3 (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == 0 || self >= 3").message("holdTimeSeconds must be 0 or at least 3 (RFC 4271)"))]
    pub hold_time_seconds: Option<u16>,
    /// Keepalive interval (default: a third of the hold time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_alive_time_seconds: Option<u16>,
}

/// Graceful restart settings.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Advertise the capability and act as helper.
    #[serde(default)]
    pub enabled: bool,
    /// How long peers keep our routes while we restart (default 120, at most 4095).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4095))]
    pub restart_time_seconds: Option<u16>,
    /// Herald addition: long-lived graceful restart (RFC 9494); needs `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_lived: Option<LongLivedGracefulRestart>,
}

/// Long-lived graceful restart settings (RFC 9494).
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LongLivedGracefulRestart {
    /// How long peers keep our routes, marked LLGR_STALE, after the restart time (a 24-bit
    /// field: at most 16777215).
    #[schemars(range(min = 0, max = 16777215))]
    pub stale_time_seconds: u32,
}

/// One address family of a peering and the advertisements sent in it.
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyAdvertisements {
    /// Address family identifier.
    pub afi: Afi,
    /// Subsequent address family identifier.
    pub safi: Safi,
    /// Selects `BGPAdvertisement` resources by label; none when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertisements: Option<LabelSelector>,
}

/// AFI (only the ones Herald speaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Afi {
    /// IPv4.
    #[default]
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// SAFI (only the ones Herald speaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Safi {
    /// Unicast.
    #[default]
    Unicast,
}

/// Herald addition: BFD timers.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bfd {
    /// Desired transmit interval in ms (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_tx_ms: Option<u32>,
    /// Required receive interval in ms (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_rx_ms: Option<u32>,
    /// Detection multiplier (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub multiplier: Option<u8>,
    /// Multihop BFD (RFC 5883) instead of single-hop.
    #[serde(default)]
    pub multihop: bool,
}

// ---------------------------------------------------------------------------------------------
// BGPAdvertisement
// ---------------------------------------------------------------------------------------------

/// Spec of a `BGPAdvertisement`: what is announced, selected by peers' `families[].advertisements`.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    shortname = "bgpadvert",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// The advertisements.
    pub advertisements: Vec<AdvertisementEntry>,
}

/// One advertisement.
#[derive(KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.advertisementType != 'Service' || has(self.service)").message("service is required for the Service advertisementType"),
    validation = Rule::new("self.advertisementType != 'PodCIDR' || (!has(self.service) && !has(self.selector))").message("PodCIDR takes neither service nor selector")
)]
pub struct AdvertisementEntry {
    /// `PodCIDR` or `Service`.
    pub advertisement_type: AdvertisementType,
    /// Which addresses of the selected services are announced, and how aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceAdvertisement>,
    /// Services announced; none when omitted, as Cilium. May test the pseudo-labels
    /// `io.kubernetes.service.name` and `io.kubernetes.service.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Path attributes of the announced routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BGPAttributes>,
}

/// `advertisementType` values Herald supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum AdvertisementType {
    /// The node's pod CIDRs (`Node.spec.podCIDRs`).
    #[default]
    PodCIDR,
    /// Service addresses.
    Service,
}

/// The service part of an advertisement.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAdvertisement {
    /// Address kinds to announce.
    #[schemars(length(min = 1))]
    pub addresses: Vec<ServiceAddressType>,
    /// Prefix length IPv4 service addresses are announced with (default 32).
    #[serde(
        default,
        rename = "aggregationLengthIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 32))]
    pub aggregation_length_ipv4: Option<u8>,
    /// Prefix length IPv6 service addresses are announced with (default 128).
    #[serde(
        default,
        rename = "aggregationLengthIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 128))]
    pub aggregation_length_ipv6: Option<u8>,
}

/// Service address kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ServiceAddressType {
    /// `status.loadBalancer.ingress[].ip` (lb-ipam's allocation).
    LoadBalancerIP,
    /// `spec.externalIPs`.
    ExternalIP,
    /// `spec.clusterIPs`.
    ClusterIP,
}

/// Path attributes.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BGPAttributes {
    /// Communities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Communities>,
    /// LOCAL_PREF (iBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<u32>,
    /// Herald addition: MULTI_EXIT_DISC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// Herald addition: extra copies of our AS in the AS_PATH (eBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 32))]
    pub as_path_prepend: Option<u8>,
}

/// Community lists.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Communities {
    /// `ASN:VALUE` (16 bits each) or a 32-bit decimal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standard: Vec<String>,
    /// Well-known names: `no-export`, `no-advertise`, `no-export-subconfed`, `no-peer`,
    /// `graceful-shutdown`, `blackhole`, `accept-own`, `no-llgr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub well_known: Vec<String>,
    /// `GLOBAL:LOCAL1:LOCAL2` (32 bits each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large: Vec<String>,
    /// Herald addition: extended communities (`rt:ASN:N`, `soo:IPV4:N`, `0x` + 16 hex digits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extended: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// BGPNodeConfigOverride
// ---------------------------------------------------------------------------------------------

/// Spec of a `BGPNodeConfigOverride`, named after the node it applies to.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "BGPNodeConfigOverride",
    plural = "bgpnodeconfigoverrides",
    shortname = "bgpnco",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPNodeConfigOverrideSpec {
    /// Per-instance overrides.
    pub bgp_instances: Vec<BGPInstanceOverride>,
}

/// Overrides for one instance on one node.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BGPInstanceOverride {
    /// The instance (`BGPClusterConfig` `bgpInstances[].name`).
    pub name: String,
    /// BGP identifier; default: the node's first IPv4 InternalIP.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("routerID must be an IPv4 address"))]
    pub router_id: Option<String>,
    /// Listening port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Our AS number on this node.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub local_asn: Option<u32>,
    /// Per-peer overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<BGPPeerOverride>,
}

/// Overrides for one peer on one node.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerOverride {
    /// The peer (`bgpInstances[].peers[].name`).
    pub name: String,
    /// Source address of our connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("localAddress must be an IP address"))]
    pub local_address: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// L2AnnouncementPolicy
// ---------------------------------------------------------------------------------------------

/// Spec of an `L2AnnouncementPolicy`: which nodes answer ARP/NDP for which services, where.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "L2AnnouncementPolicy",
    plural = "l2announcementpolicies",
    shortname = "l2policy",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementPolicySpec {
    /// Nodes that may answer; every node when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Services announced; every service when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    /// Regexes of interfaces to answer on; every eligible interface when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Announce `status.loadBalancer.ingress` addresses.
    #[serde(default, rename = "loadBalancerIPs")]
    pub load_balancer_ips: bool,
    /// Announce `spec.externalIPs`.
    #[serde(default, rename = "externalIPs")]
    pub external_ips: bool,
}

// ---------------------------------------------------------------------------------------------
// BGPNodeStatus
// ---------------------------------------------------------------------------------------------

/// Spec of a `BGPNodeStatus`, one per node, named after it and written by its speaker.
#[derive(
    CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize,
)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "BGPNodeStatus",
    plural = "bgpnodestatuses",
    shortname = "bgpns",
    status = "BGPNodeStatusStatus",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeName"),
    printcolumn(name = "ASN", type_ = "integer", json_path = ".status.localASN"),
    printcolumn(
        name = "Established",
        type_ = "integer",
        json_path = ".status.establishedPeers"
    ),
    printcolumn(name = "Peers", type_ = "integer", json_path = ".status.totalPeers"),
    printcolumn(name = "Updated", type_ = "date", json_path = ".status.updateTime")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPNodeStatusSpec {
    /// The node the status belongs to.
    pub node_name: String,
}

/// The status a speaker reports for its node.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BGPNodeStatusStatus {
    /// Our AS number, when BGP runs.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<u32>,
    /// Peers in state Established.
    pub established_peers: u32,
    /// Configured peers.
    pub total_peers: u32,
    /// One entry per configured peer, by name.
    #[serde(default)]
    pub peers: Vec<PeerStatusEntry>,
    /// Problems with the configuration of this node (missing CRDs, permissions, bad values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// When the speaker wrote this (RFC 3339).
    pub update_time: String,
}

/// One peer in a `BGPNodeStatus`.
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatusEntry {
    /// Peer name.
    pub name: String,
    /// Peer address.
    pub peer_address: String,
    /// Peer AS, once known.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<u32>,
    /// RFC 4271 session state (`Idle` ... `Established`).
    pub session_state: String,
    /// When the session last reached Established (RFC 3339); uptime is now minus this, so
    /// the status does not change every second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_since: Option<String>,
    /// Negotiated hold time, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time_seconds: Option<u16>,
    /// Negotiated keepalive interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_time_seconds: Option<u16>,
    /// Prefixes we advertise to the peer.
    pub routes_advertised: u64,
    /// Prefixes the peer sent us.
    pub routes_received: u64,
    /// BFD session state, when BFD is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_state: Option<String>,
    /// The last error on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// Every speaker CRD, as (file name under `deploy/crds/`, definition).
pub fn crds() -> Vec<(
    &'static str,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
)> {
    vec![
        ("bgpclusterconfig.yaml", BGPClusterConfig::crd()),
        ("bgppeerconfig.yaml", BGPPeerConfig::crd()),
        ("bgpadvertisement.yaml", BGPAdvertisement::crd()),
        ("bgpnodeconfigoverride.yaml", BGPNodeConfigOverride::crd()),
        ("l2announcementpolicy.yaml", L2AnnouncementPolicy::crd()),
        ("bgpnodestatus.yaml", BGPNodeStatus::crd()),
    ]
}

/// Header of each generated file.
pub const CRD_HEADER: &str = "# Generated by `cargo run -p speaker --example gen-crds` from speaker/src/sources/kube/crd.rs; do not edit by hand.\n";

/// Each CRD as (file name, YAML text exactly as checked in under `deploy/crds/`).
pub fn crds_yaml() -> crate::Result<Vec<(&'static str, String)>> {
    crds()
        .into_iter()
        .map(|(file, crd)| {
            let body = serde_saphyr::to_string(&crd)
                .map_err(|e| crate::Error::Kube(format!("cannot render CRD {file}: {e}")))?;
            Ok((file, format!("{CRD_HEADER}{body}")))
        })
        .collect()
}
