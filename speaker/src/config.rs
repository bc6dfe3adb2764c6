//! The standalone configuration file: one YAML document per node.
//!
//! Owns the schema (`node`, `nodes`, `bgp`, `api`, and the agent's view of `ipam`, `services`,
//! `l2` and `datapath`, whose inner schemas belong to lb-ipam, arp-responder and datapath), its
//! validation and the error messages that name the offending key and line. Reading the file is the
//! only I/O here; everything else is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::sources::external_ips::ExternalIpPolicy;

pub mod bmp;
pub mod nodes;
pub(crate) mod peer_interface;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The YAML is malformed or a value does not fit its key (the message names key and line).
    #[error("{path}: {message}")]
    Parse {
        /// The file (or `<input>`).
        path: String,
        /// serde-saphyr's rendering, with line, column and a snippet.
        message: String,
    },
    /// A section is valid but the component behind it cannot use it (an lb-ipam state file that
    /// is corrupt or belongs to another owner, an L2 announcer that cannot start).
    #[error("{key}: {message}")]
    Unusable {
        /// The section or key, e.g. `ipam.stateFile`.
        key: String,
        /// The component's reason.
        message: String,
    },
    /// The values parse but contradict each other.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file (or `<input>`).
        path: String,
        /// 1-based line of the offending value.
        line: u64,
        /// Dotted key path, e.g. `bgp.peers[1].address`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A 4-octet autonomous system number (RFC 6793).
pub type Asn = u32;

/// The whole standalone file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// This node's identity.
    pub node: NodeConfig,
    /// The BGP instance; absent when the node only does L2 announcements.
    #[serde(default)]
    pub bgp: Option<BgpConfig>,
    /// The ops surface: control socket and metrics endpoint.
    #[serde(default)]
    pub api: ApiConfig,
    /// LoadBalancer IP pools and the state file (lb-ipam's `ipam:` schema).
    #[serde(default)]
    pub ipam: Option<Spanned<lb_ipam::IpamConfig>>,
    /// The services this node knows (lb-ipam's `services:` schema).
    #[serde(default)]
    pub services: Vec<Spanned<lb_ipam::ServiceSpec>>,
    /// L2 announcements (arp-responder's schema; `node` defaults to `node.name`).
    #[serde(default)]
    pub l2: Option<Spanned<L2Section>>,
    /// The cluster's nodes and their underlay addresses, so an endpoint's `nodeName` resolves
    /// to the node that hosts it (the datapath sends remote backends' traffic there).
    #[serde(default)]
    pub nodes: Vec<Spanned<nodes::NodeAddress>>,
    /// The eBPF datapath (XDP Maglev + Geneve DSR) serving the services' addresses on this node;
    /// absent: announcement only.
    #[serde(default)]
    pub datapath: Option<Spanned<datapath::config::DatapathConfig>>,
    /// Which `services[].externalIPs` may be announced and served; absent: none.
    #[serde(default, rename = "externalIPs")]
    pub external_ips: Option<Spanned<ExternalIpsSection>>,
}

/// The `externalIPs:` section: the operator's allow-list for services' `externalIPs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalIpsSection {
    /// CIDRs an external IP must lie in to be announced or served.
    #[serde(default, rename = "allowedCIDRs")]
    pub allowed_cidrs: Vec<Spanned<IpNet>>,
}

/// The `l2:` section: arp-responder's [`L2Config`](arp_responder::config::L2Config) with `node`
/// optional (it defaults to this node's name). Its `services` are fixed announcements; the
/// speaker adds the `services:` entries with the addresses lb-ipam gave them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L2Section {
    /// This node's name in the election; must equal `node.name` when given.
    #[serde(default)]
    pub node: Option<String>,
    /// Cluster name: heartbeats of other clusters on the segment are ignored.
    #[serde(default)]
    pub cluster: Option<String>,
    /// All nodes of the cluster (including this one).
    pub nodes: Vec<arp_responder::config::NodeSpec>,
    /// Labels a node must carry to be eligible.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Fixed L2 announcements, in addition to the `services:` list.
    #[serde(default)]
    pub services: Vec<arp_responder::config::ServiceSpec>,
    /// Interface selection (include/exclude regexes).
    #[serde(default)]
    pub interfaces: arp_responder::config::InterfaceSelection,
    /// Election and announcement timers.
    #[serde(default)]
    pub timing: arp_responder::config::TimingConfig,
    /// Membership/fencing store.
    #[serde(default)]
    pub store: arp_responder::config::StoreConfig,
    /// Heartbeat authentication: a shared key file (HMAC-SHA256, replay window). Without it any
    /// host on the segment can forge or replay heartbeats; set it wherever the segment is shared.
    #[serde(default)]
    pub auth: arp_responder::config::AuthConfig,
}

impl Config {
    /// The arp-responder configuration for this node with only the fixed `l2.services`; the
    /// speaker adds the `services:` entries once lb-ipam has allocated for them. `None` without
    /// an `l2:` section.
    pub fn l2_config(&self) -> Option<arp_responder::config::L2Config> {
        let l2 = &self.l2.as_ref()?.value;
        Some(arp_responder::config::L2Config {
            node: l2.node.clone().unwrap_or_else(|| self.node.name.clone()),
            // arp-responder's default cluster name.
            cluster: l2.cluster.clone().unwrap_or_else(|| "herald".to_owned()),
            nodes: l2.nodes.clone(),
            node_selector: l2.node_selector.clone(),
            services: l2.services.clone(),
            interfaces: l2.interfaces.clone(),
            timing: l2.timing.clone(),
            store: l2.store.clone(),
        })
    }

    /// The `services:` entries, without their source positions.
    pub fn service_specs(&self) -> Vec<lb_ipam::ServiceSpec> {
        self.services.iter().map(|s| s.value.clone()).collect()
    }

    /// The allow-list for `services[].externalIPs` (empty without an `externalIPs:` section).
    pub fn external_ip_policy(&self) -> ExternalIpPolicy {
        ExternalIpPolicy::new(
            self.external_ips
                .iter()
                .flat_map(|s| s.value.allowed_cidrs.iter().map(|c| c.value))
                .collect(),
        )
    }

    /// The `externalIPs` of `spec` the allow-list admits; the one place the standalone file's
    /// external IPs are read, so BGP, L2 and the datapath all see the same filtered list.
    pub fn admitted_external_ips(&self, spec: &lb_ipam::ServiceSpec) -> Vec<IpAddr> {
        self.external_ip_policy().admit(
            &spec.namespace,
            &spec.name,
            &spec.external_ips,
            &mut Vec::new(),
        )
    }

    /// One message per `externalIPs` entry the allow-list refuses (logged at load and reload).
    pub fn refused_external_ips(&self) -> Vec<String> {
        let policy = self.external_ip_policy();
        let mut problems = Vec::new();
        for spec in self.services.iter().map(|s| &s.value) {
            policy.admit(
                &spec.namespace,
                &spec.name,
                &spec.external_ips,
                &mut problems,
            );
        }
        problems
    }

    /// The `ipam:` section, or an empty one (no pools, no state file).
    pub fn ipam_config(&self) -> lb_ipam::IpamConfig {
        self.ipam
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default()
    }
}

/// Where the running speaker answers the CLI and Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiConfig {
    /// Unix socket for `speaker peers` and friends.
    #[serde(default = "ApiConfig::default_control_socket")]
    pub control_socket: PathBuf,
    /// A group (name or gid) whose members may use the control socket too: it is then created
    /// mode 0660 with that group instead of 0600.
    #[serde(default)]
    pub control_socket_group: Option<String>,
    /// `host:port` of the Prometheus `/metrics` endpoint; must be a loopback address. Absent:
    /// no endpoint.
    #[serde(default)]
    pub metrics_address: Option<std::net::SocketAddr>,
}

impl ApiConfig {
    /// The default control socket path.
    pub fn default_control_socket() -> PathBuf {
        PathBuf::from("/run/herald/speaker.sock")
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            control_socket: Self::default_control_socket(),
            control_socket_group: None,
            metrics_address: None,
        }
    }
}

/// Identity of the node the speaker runs on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfig {
    /// Node name, as Kubernetes would know it.
    pub name: String,
    /// Node labels, matched by node selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The node's pod CIDRs (advertised by `PodCIDR` advertisements).
    #[serde(default, rename = "podCIDRs")]
    pub pod_cidrs: Vec<IpNet>,
    /// BGP identifier (RFC 4271 §4.2); must not be 0.0.0.0.
    pub router_id: Ipv4Addr,
}

/// The node's BGP instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpConfig {
    /// Our AS number.
    #[serde(rename = "localASN")]
    pub local_asn: Asn,
    /// Where to accept incoming sessions.
    #[serde(default)]
    pub listen: ListenConfig,
    /// The configured neighbours; connections from anyone else are reset.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// What received routes are accepted: `reject-all` (the default), `accept-all`, or rules
    /// (see [`crate::import_policy`]).
    #[serde(default)]
    pub import_policy: crate::import_policy::ImportPolicy,
    /// Prefixes announced to every peer of their family, whatever the services are (tests,
    /// infrastructure routes).
    #[serde(default)]
    pub static_routes: Vec<StaticRoute>,
    /// Directory for the graceful-restart state file; GR restarting-speaker mode (R bit after
    /// a crash) needs it.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// What this node announces (pod CIDRs, service addresses), to which peers, with which
    /// attributes; see [`crate::advertise::model`].
    #[serde(default)]
    pub advertisements: Vec<Spanned<crate::advertise::Advertisement>>,
    /// Route-server mode (RFC 7947): routes accepted from one peer are re-advertised to every
    /// other peer with their attributes and next hop unchanged. Off by default.
    #[serde(default)]
    pub route_server: bool,
    /// Install the best received routes (after `importPolicy`) into a kernel routing table.
    /// Absent: received routes are never installed.
    #[serde(default)]
    pub fib_import: Option<Spanned<FibImportConfig>>,
    /// BMP collectors (RFC 7854) that get our peers and the routes they send; absent: none.
    #[serde(default)]
    pub bmp: Option<Spanned<bmp::BmpConfig>>,
}

/// Where and how accepted routes are installed into the kernel (`bgp.fibImport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FibImportConfig {
    /// Kernel routing table id (254 is `main`; 0 and 255, `local`, are refused).
    #[serde(default = "FibImportConfig::default_table")]
    pub table: u32,
    /// Route protocol number our routes carry (rtnetlink `rtm_protocol`). Herald adopts, replaces
    /// and deletes only routes of this protocol in `table`; the default,
    /// [`crate::fib::HERALD_RTPROT`], is used by no other routing daemon. 0–4 are the kernel's own.
    #[serde(default = "FibImportConfig::default_protocol")]
    pub protocol: u8,
    /// Route metric (priority); absent: the kernel's default.
    #[serde(default)]
    pub metric: Option<u32>,
    /// Best-path and ECMP settings.
    #[serde(default)]
    pub best_path: crate::import_policy::BestPathConfig,
    /// Keep the installed routes when the speaker stops (for a restart under graceful
    /// restart); otherwise they are removed at shutdown.
    #[serde(default)]
    pub keep_on_shutdown: bool,
}

impl FibImportConfig {
    fn default_table() -> u32 {
        254
    }

    fn default_protocol() -> u8 {
        crate::fib::HERALD_RTPROT
    }
}

impl Default for FibImportConfig {
    fn default() -> Self {
        Self {
            table: Self::default_table(),
            protocol: Self::default_protocol(),
            metric: None,
            best_path: crate::import_policy::BestPathConfig::default(),
            keep_on_shutdown: false,
        }
    }
}

/// A prefix announced unconditionally.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// Standard communities, `ASN:VALUE`.
    #[serde(default)]
    pub communities: Vec<CommunityValue>,
    /// MULTI_EXIT_DISC.
    #[serde(default)]
    pub med: Option<u32>,
    /// LOCAL_PREF for iBGP peers.
    #[serde(default)]
    pub local_pref: Option<u32>,
}

/// A standard community written `ASN:VALUE` (each 0..=65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CommunityValue(pub u32);

impl TryFrom<String> for CommunityValue {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let parsed = value
            .split_once(':')
            .and_then(|(a, v)| Some((a.parse::<u16>().ok()?, v.parse::<u16>().ok()?)));
        match parsed {
            Some((asn, val)) => Ok(Self((u32::from(asn) << 16) | u32::from(val))),
            None => Err(format!(
                "community {value:?} is not ASN:VALUE with 16-bit parts"
            )),
        }
    }
}

/// The passive listening socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenConfig {
    /// Listening address (`::` accepts IPv4 and IPv6).
    #[serde(default = "ListenConfig::default_address")]
    pub address: IpAddr,
    /// Listening port; 0 disables listening (active sessions only).
    #[serde(default = "default_bgp_port")]
    pub port: u16,
}

impl ListenConfig {
    fn default_address() -> IpAddr {
        IpAddr::from([0u16; 8])
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            address: Self::default_address(),
            port: default_bgp_port(),
        }
    }
}

fn default_bgp_port() -> u16 {
    179
}

/// The peer's AS: a number, or `internal`/`external` to accept what the peer says within that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PeerAsn {
    /// Exactly this AS.
    Number(Asn),
    /// A keyword.
    Kind(PeerKind),
}

/// The AS-less ways to name a peer's AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// Same AS as ours (iBGP).
    Internal,
    /// Any AS other than ours (eBGP).
    External,
}

/// An address family the session negotiates (AFI/SAFI, RFC 4760).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
pub enum Family {
    /// IPv4 unicast (AFI 1, SAFI 1).
    #[serde(rename = "ipv4-unicast")]
    Ipv4Unicast,
    /// IPv6 unicast (AFI 2, SAFI 1).
    #[serde(rename = "ipv6-unicast")]
    Ipv6Unicast,
}

/// One BGP neighbour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerConfig {
    /// A name for logs and the CLI; defaults to the address.
    #[serde(default)]
    pub name: Option<String>,
    /// The neighbour's address; `::` when not given, for a BGP unnumbered peer found on
    /// `interface` by router advertisements (see [`PeerConfig::is_unnumbered`]).
    #[serde(default = "peer_interface::to_be_found")]
    pub address: Spanned<IpAddr>,
    /// The neighbour's AS.
    pub asn: PeerAsn,
    /// The neighbour's TCP port.
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// Source address for outgoing connections; the kernel picks one when absent.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Never connect; only accept the neighbour's connection.
    #[serde(default)]
    pub passive: bool,
    /// Hold, keepalive and connect-retry timers.
    #[serde(default)]
    pub timers: TimersConfig,
    /// A file holding the TCP MD5 key (RFC 2385); its content, trimmed, is the key.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// eBGP multihop: the TTL of our packets (1 = directly connected, the default).
    #[serde(default)]
    pub ebgp_multihop: Option<Ttl>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only packets with TTL ≥ 255 − (hops − 1).
    #[serde(default)]
    pub gtsm: Option<GtsmConfig>,
    /// Graceful restart (RFC 4724, RFC 8538).
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    /// BFD bound to this session (RFC 5880/5881/5883).
    #[serde(default)]
    pub bfd: Option<BfdConfig>,
    /// Address families to negotiate; by default the family of the peer's address.
    #[serde(default)]
    pub families: Vec<Family>,
    /// Tear the session down (Cease, Maximum Number of Prefixes Reached) when the peer's routes
    /// stored for one family exceed this; [`DEFAULT_MAX_PREFIXES`] when absent, 0 for no limit.
    #[serde(default)]
    pub max_prefixes: Option<u32>,
    /// Keep the routes the import policy rejects (soft reconfiguration inbound), so a policy
    /// change applies without asking the peer again; off by default, as they cost memory.
    #[serde(default)]
    pub soft_reconfiguration_inbound: bool,
    /// RFC 9687 send hold time: the session is closed when the peer accepts none of our data
    /// for this long. Default: 8 minutes or twice the hold time, whichever is longer.
    #[serde(default)]
    pub send_hold_time_seconds: Option<u32>,
    /// Keep the session administratively down, sending this RFC 8203 message.
    #[serde(default)]
    pub shutdown: Option<String>,
    /// Extended next hop (RFC 8950): IPv4 routes with IPv6 next hops on an IPv6 session. By
    /// default on when the session is IPv6 and carries IPv4 unicast.
    #[serde(default)]
    pub extended_next_hop: Option<bool>,
    /// The interface a link-local `address` is on (required for, and only for, link-local);
    /// alone, without `address`, the interface of a BGP unnumbered peer.
    #[serde(default)]
    pub interface: Option<Spanned<String>>,
}

/// The per-family prefix limit of a peer without `maxPrefixes`.
pub const DEFAULT_MAX_PREFIXES: u32 = 100_000;

impl PeerConfig {
    /// The per-family prefix limit in force: the configured one (0 = none) or the default.
    pub fn effective_max_prefixes(&self) -> Option<u32> {
        match self.max_prefixes {
            None => Some(DEFAULT_MAX_PREFIXES),
            Some(0) => None,
            Some(n) => Some(n),
        }
    }

    /// The RFC 9687 send hold time in force.
    ///
    /// RFC 9687 (paraphrased): the suggested default is 8 minutes or twice the negotiated hold
    /// time, whichever is longer. The configured hold time stands in for the negotiated one
    /// (which is never longer).
    pub fn effective_send_hold_time(&self) -> std::time::Duration {
        let seconds = self
            .send_hold_time_seconds
            .unwrap_or_else(|| 480.max(2 * u32::from(self.timers.hold_time_seconds.0)));
        std::time::Duration::from_secs(u64::from(seconds.max(1)))
    }

    /// The name used in logs and the CLI.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.address.value.to_string())
    }

    /// Whether the CLI's `peer` (a configured name or an address) means this peer.
    pub fn is_named(&self, peer: &str) -> bool {
        self.name.as_deref() == Some(peer)
            || peer
                .parse::<IpAddr>()
                .is_ok_and(|a| a == self.address.value)
    }

    /// Whether we offer the extended next hop capability (RFC 8950) for IPv4 unicast with IPv6
    /// next hops: as configured, else when an IPv6 session carries IPv4 unicast (without it,
    /// such a session has no next hop to give our IPv4 routes).
    pub fn effective_extended_next_hop(&self) -> bool {
        self.extended_next_hop.unwrap_or_else(|| {
            self.address.value.is_ipv6() && self.effective_families().contains(&Family::Ipv4Unicast)
        })
    }

    /// A BGP unnumbered peer: no `address`, found on `interface` by router advertisements.
    pub fn is_unnumbered(&self) -> bool {
        self.address.value.is_unspecified() && self.interface.is_some()
    }

    /// The name of the peer's interface, if it has one.
    pub fn interface_name(&self) -> Option<&str> {
        self.interface.as_ref().map(|i| i.value.as_str())
    }

    /// The families to negotiate: configured ones, or the transport's family.
    pub fn effective_families(&self) -> BTreeSet<Family> {
        if self.families.is_empty() && self.is_unnumbered() {
            // An unnumbered link carries both families over the one IPv6 session.
            BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast])
        } else if self.families.is_empty() {
            let family = match self.address.value {
                IpAddr::V4(_) => Family::Ipv4Unicast,
                IpAddr::V6(_) => Family::Ipv6Unicast,
            };
            BTreeSet::from([family])
        } else {
            self.families.iter().copied().collect()
        }
    }
}

/// A TTL / hop count in 1..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
pub struct Ttl(pub u8);

impl TryFrom<u16> for Ttl {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        match u8::try_from(value) {
            Ok(ttl) if ttl >= 1 => Ok(Self(ttl)),
            _ => Err(format!("{value} is not a TTL (1..=255)")),
        }
    }
}

/// GTSM settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GtsmConfig {
    /// How many hops away the peer may be (1 = directly connected).
    #[serde(default = "GtsmConfig::default_hops")]
    pub hops: Ttl,
}

impl GtsmConfig {
    fn default_hops() -> Ttl {
        Ttl(1)
    }
}

/// Session timers, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimersConfig {
    /// Hold time we propose (RFC 4271 §4.2: 0 or at least 3).
    #[serde(default = "TimersConfig::default_hold")]
    pub hold_time_seconds: HoldTime,
    /// Keepalive interval; by default a third of the negotiated hold time.
    #[serde(default)]
    pub keepalive_time_seconds: Option<u16>,
    /// Delay between connection attempts.
    #[serde(default = "TimersConfig::default_connect_retry")]
    pub connect_retry_time_seconds: u16,
    /// First wait before restarting a failed session; doubled while the peer keeps failing
    /// (damping, up to 120 s).
    #[serde(default = "TimersConfig::default_idle_hold")]
    pub idle_hold_time_seconds: u16,
}

impl TimersConfig {
    fn default_hold() -> HoldTime {
        HoldTime(90)
    }
    fn default_connect_retry() -> u16 {
        5
    }
    fn default_idle_hold() -> u16 {
        1
    }
}

impl Default for TimersConfig {
    fn default() -> Self {
        Self {
            hold_time_seconds: Self::default_hold(),
            keepalive_time_seconds: None,
            connect_retry_time_seconds: Self::default_connect_retry(),
            idle_hold_time_seconds: Self::default_idle_hold(),
        }
    }
}

/// A hold time: 0 (no keepalives) or 3..=65535 seconds (RFC 4271 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
pub struct HoldTime(pub u16);

impl TryFrom<u16> for HoldTime {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        if value == 1 || value == 2 {
            Err(format!(
                "hold time {value} must be 0 or at least 3 seconds (RFC 4271 §4.2)"
            ))
        } else {
            Ok(Self(value))
        }
    }
}

/// Graceful restart settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GracefulRestartConfig {
    /// Advertise the GR capability and act as helper.
    #[serde(default)]
    pub enabled: bool,
    /// How long the peer should keep our routes while we restart (≤ 4095 s, a 12-bit field).
    #[serde(default = "GracefulRestartConfig::default_restart_time")]
    pub restart_time_seconds: RestartTime,
    /// Long-lived graceful restart (RFC 9494): advertise the LLGR capability, and as helper
    /// keep a restarting peer's routes (marked LLGR_STALE, least preferred) this long after its
    /// graceful restart time ran out. Needs `enabled`.
    #[serde(default)]
    pub long_lived: Option<LongLivedConfig>,
}

/// Long-lived graceful restart settings (RFC 9494).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LongLivedConfig {
    /// Long-lived stale time we advertise: how long peers keep our routes after the graceful
    /// restart time (0..=16777215 s, a 24-bit field; 0 advertises the capability without
    /// asking peers to keep anything).
    pub stale_time_seconds: LlgrStaleTime,
}

/// A long-lived stale time that fits the capability's 24-bit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct LlgrStaleTime(pub u32);

impl TryFrom<u64> for LlgrStaleTime {
    type Error = String;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(v) if v <= bgp_proto::capability::LLGR_MAX_STALE_TIME => Ok(Self(v)),
            _ => Err(format!(
                "long-lived stale time {value} exceeds 16777215 seconds (24-bit field, RFC 9494 §3)"
            )),
        }
    }
}

impl GracefulRestartConfig {
    fn default_restart_time() -> RestartTime {
        RestartTime(120)
    }
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            restart_time_seconds: Self::default_restart_time(),
            long_lived: None,
        }
    }
}

/// A restart time that fits the capability's 12-bit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
pub struct RestartTime(pub u16);

impl TryFrom<u16> for RestartTime {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        if value > 4095 {
            Err(format!(
                "restart time {value} exceeds 4095 seconds (12-bit field, RFC 4724 §3)"
            ))
        } else {
            Ok(Self(value))
        }
    }
}

/// BFD settings for one session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BfdConfig {
    /// Desired transmit interval in milliseconds.
    #[serde(default = "BfdConfig::default_interval")]
    pub min_tx_ms: u32,
    /// Required receive interval in milliseconds.
    #[serde(default = "BfdConfig::default_interval")]
    pub min_rx_ms: u32,
    /// Detection multiplier.
    #[serde(default = "BfdConfig::default_multiplier")]
    pub multiplier: u8,
    /// Multihop BFD (RFC 5883, UDP 4784) instead of single-hop (RFC 5881, UDP 3784).
    #[serde(default)]
    pub multihop: bool,
    /// RFC 5880 §6.7 authentication; absent: packets are neither signed nor accepted signed.
    #[serde(default)]
    pub authentication: Option<BfdAuthConfig>,
}

/// BFD authentication (RFC 5880 §6.7.4): the type, the key's ID and a file holding the key, so
/// the secret never appears in the configuration (or in anything that prints it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BfdAuthConfig {
    /// Keyed SHA1 or Meticulous Keyed SHA1.
    #[serde(rename = "type")]
    pub auth_type: BfdAuthType,
    /// Auth Key ID sent with every packet and required of the peer's packets.
    pub key_id: u8,
    /// A file whose content, trimmed, is the key: 1 to 20 octets (§4.4 pads it to 20).
    pub password_file: PathBuf,
}

/// The authentication types Herald implements (RFC 5880 §4.1 Auth Type 4 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BfdAuthType {
    /// Auth Type 4: the sequence number may stay the same between packets; Herald advances it
    /// once a second, so a lost packet never leaves the peer's replay window.
    KeyedSha1,
    /// Auth Type 5: the sequence number advances with every packet, and the receiver refuses a
    /// repeated one.
    MeticulousKeyedSha1,
}

impl BfdConfig {
    fn default_interval() -> u32 {
        300
    }
    fn default_multiplier() -> u8 {
        3
    }
}

/// Parses and validates a configuration from YAML text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let config: Config = serde_saphyr::from_str(text).map_err(|error| ConfigError::Parse {
        path: origin.to_owned(),
        message: error.to_string(),
    })?;
    validate(&config, origin)?;
    Ok(config)
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Reads a file holding only a `datapath:` section's contents (Kubernetes mode's
/// `--datapath-config`, a ConfigMap), with the same checks as in the standalone file.
pub fn load_datapath_section(path: &Path) -> Result<datapath::config::DatapathConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    datapath::config::DatapathConfig::parse(&text, &origin).map_err(|error| match error {
        datapath::Error::Config {
            path,
            line,
            key,
            message,
        } => ConfigError::Invalid {
            path,
            line,
            key,
            message,
        },
        other => ConfigError::Parse {
            path: origin.clone(),
            message: other.to_string(),
        },
    })
}

/// Cross-field rules that serde cannot express.
fn validate(config: &Config, origin: &str) -> Result<(), ConfigError> {
    let invalid = |line: u64, key: String, message: String| ConfigError::Invalid {
        path: origin.to_owned(),
        line,
        key,
        message,
    };
    if let Some(addr) = config.api.metrics_address
        && !addr.ip().is_loopback()
    {
        return Err(invalid(
            0,
            "api.metricsAddress".into(),
            format!("{addr} is not a loopback address; metrics are served on localhost only"),
        ));
    }
    validate_services(config, origin)?;
    validate_external_ips(config, origin)?;
    nodes::validate(config, origin)?;
    let Some(bgp) = &config.bgp else {
        return Ok(());
    };
    if config.node.router_id.is_unspecified() {
        return Err(invalid(
            0,
            "node.routerId".into(),
            "0.0.0.0 is not a valid BGP identifier".into(),
        ));
    }
    if bgp.local_asn == 0 || bgp.local_asn == 23456 {
        return Err(invalid(
            0,
            "bgp.localASN".into(),
            format!(
                "{} is reserved (RFC 7607 / RFC 6793 AS_TRANS)",
                bgp.local_asn
            ),
        ));
    }
    let mut seen = BTreeMap::new();
    let mut seen_interfaces = BTreeMap::new();
    for (index, peer) in bgp.peers.iter().enumerate() {
        let line = peer_interface::line(peer);
        let key = |field: &str| format!("bgp.peers[{index}].{field}");
        if let Some(interface) = peer.interface_name().filter(|_| peer.is_unnumbered())
            && let Some(first_line) = seen_interfaces.insert(interface.to_owned(), line)
        {
            return Err(invalid(
                line,
                key("interface"),
                format!(
                    "an unnumbered peer on {interface} is already configured at line {first_line}"
                ),
            ));
        }
        if let Some(first_line) = (!peer.is_unnumbered())
            .then(|| seen.insert(peer.address.value, line))
            .flatten()
        {
            return Err(invalid(
                line,
                key("address"),
                format!(
                    "peer {} is already configured at line {first_line}",
                    peer.address.value
                ),
            ));
        }
        let ebgp = match peer.asn {
            PeerAsn::Number(asn) => asn != bgp.local_asn,
            PeerAsn::Kind(kind) => kind == PeerKind::External,
        };
        if let (Some(hops), Some(_)) = (peer.ebgp_multihop, peer.gtsm)
            && hops.0 > 1
        {
            return Err(invalid(
                line,
                key("gtsm"),
                "GTSM and ebgpMultihop exclude each other; use gtsm.hops for multihop GTSM".into(),
            ));
        }
        if peer.graceful_restart.long_lived.is_some() && !peer.graceful_restart.enabled {
            return Err(invalid(
                line,
                key("gracefulRestart.longLived"),
                "needs gracefulRestart.enabled: true".into(),
            ));
        }
        if peer.ebgp_multihop.is_some() && !ebgp {
            return Err(invalid(
                line,
                key("ebgpMultihop"),
                "only applies to eBGP peers".into(),
            ));
        }
        if let (Some(keepalive), hold) = (
            peer.timers.keepalive_time_seconds,
            peer.timers.hold_time_seconds,
        ) && hold.0 != 0
            && keepalive >= hold.0
        {
            return Err(invalid(
                line,
                key("timers.keepaliveTimeSeconds"),
                format!(
                    "keepalive {keepalive} s must be below the hold time {} s",
                    hold.0
                ),
            ));
        }
        if let Some(bfd) = &peer.bfd
            && (bfd.multiplier == 0 || bfd.min_tx_ms == 0 || bfd.min_rx_ms == 0)
        {
            return Err(invalid(
                line,
                key("bfd"),
                "intervals and multiplier must be non-zero".into(),
            ));
        }
        if let Some(auth) = peer.bfd.as_ref().and_then(|b| b.authentication.as_ref())
            && auth.password_file.as_os_str().is_empty()
        {
            return Err(invalid(
                line,
                key("bfd.authentication.passwordFile"),
                "must name a file holding the key".into(),
            ));
        }
        if let Some((field, message)) = peer_interface::check(peer) {
            return Err(invalid(line, key(field), message));
        }
        if peer.passive && peer.port != default_bgp_port() {
            return Err(invalid(
                line,
                key("port"),
                "a passive peer never connects, so port is unused".into(),
            ));
        }
    }
    if let Some(section) = &bgp.bmp {
        bmp::validate(section, origin)?;
    }
    validate_advertisements(bgp, origin)
}

/// Each advertisement is valid on its own and names only configured peers.
fn validate_advertisements(bgp: &BgpConfig, origin: &str) -> Result<(), ConfigError> {
    for (index, ad) in bgp.advertisements.iter().enumerate() {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            line: ad.referenced.line(),
            key: format!("bgp.advertisements[{index}]"),
            message,
        };
        ad.value.validate().map_err(invalid)?;
        for name in &ad.value.peers {
            let known = bgp.peers.iter().any(|p| {
                p.name.as_deref() == Some(name.as_str())
                    || name.parse::<IpAddr>().is_ok_and(|a| a == p.address.value)
            });
            if !known {
                return Err(invalid(format!(
                    "peers: {name:?} is neither the name nor the address of a configured peer"
                )));
            }
        }
    }
    if let Some(fib) = &bgp.fib_import {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            line: fib.referenced.line(),
            key: format!("bgp.fibImport.{key}"),
            message,
        };
        let fib = &fib.value;
        if fib.table == 0 || fib.table == 255 {
            return Err(invalid(
                "table",
                format!(
                    "table {} is not a routing table for received routes (use 254 for main or \
                     another table id)",
                    fib.table
                ),
            ));
        }
        // linux/rtnetlink.h: values up to RTPROT_STATIC (4) are interpreted by the kernel.
        if fib.protocol <= 4 {
            return Err(invalid(
                "protocol",
                format!(
                    "protocol {} is reserved to the kernel (0-4); the default is {}",
                    fib.protocol,
                    crate::fib::HERALD_RTPROT
                ),
            ));
        }
        if fib.best_path.max_paths == 0 {
            return Err(invalid("bestPath.maxPaths", "must be non-zero".into()));
        }
    }
    Ok(())
}

/// `externalIPs.allowedCIDRs`: each entry is a network address (no host bits set), so what the
/// operator wrote is what is allowed.
fn validate_external_ips(config: &Config, origin: &str) -> Result<(), ConfigError> {
    let Some(section) = &config.external_ips else {
        return Ok(());
    };
    for (index, cidr) in section.value.allowed_cidrs.iter().enumerate() {
        if cidr.value.trunc() != cidr.value {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                line: cidr.referenced.line(),
                key: format!("externalIPs.allowedCIDRs[{index}]"),
                message: format!(
                    "{} has host bits set; write {}",
                    cidr.value,
                    cidr.value.trunc()
                ),
            });
        }
    }
    Ok(())
}

/// Rules for `ipam`, `services` and `l2`: pools must build, service keys are unique, and the
/// L2 announcer's own validation passes.
fn validate_services(config: &Config, origin: &str) -> Result<(), ConfigError> {
    let invalid = |line: u64, key: String, message: String| ConfigError::Invalid {
        path: origin.to_owned(),
        line,
        key,
        message,
    };
    if let Some(ipam) = &config.ipam
        && let Err(error) = ipam.value.pools()
    {
        return Err(invalid(
            ipam.referenced.line(),
            "ipam.pools".into(),
            error.to_string(),
        ));
    }
    let mut seen = BTreeMap::new();
    for (index, service) in config.services.iter().enumerate() {
        let line = service.referenced.line();
        let key = service.value.key();
        if let Some(first_line) = seen.insert(key.clone(), line) {
            return Err(invalid(
                line,
                format!("services[{index}]"),
                format!("service {key} is already listed at line {first_line}"),
            ));
        }
        if service.value.wants_load_balancer_ip()
            && let Err(error) = service.value.ipam_request(None)
        {
            return Err(invalid(
                line,
                format!("services[{index}]"),
                error.to_string(),
            ));
        }
    }
    if let Some(l2) = &config.l2 {
        let line = l2.referenced.line();
        if let Some(node) = &l2.value.node
            && *node != config.node.name
        {
            return Err(invalid(
                line,
                "l2.node".into(),
                format!(
                    "{node:?} differs from node.name {:?}; leave it out",
                    config.node.name
                ),
            ));
        }
        if let Some(l2_config) = config.l2_config()
            && let Err(error) = l2_config.validate()
        {
            return Err(invalid(line, "l2".into(), error.to_string()));
        }
        if let Err(error) = l2.value.auth.validate() {
            return Err(invalid(line, "l2.auth".into(), error.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "node:\n  name: n1\n  routerId: 10.0.0.1\nbgp:\n  localASN: 65001\n  peers:\n    - address: 10.0.0.254\n      asn: 65000\n";

    fn error_text(yaml: &str) -> String {
        parse(yaml, "test.yaml")
            .expect_err("config must be rejected")
            .to_string()
    }

    #[test]
    fn a_misspelled_selector_key_is_refused_with_its_line() {
        let text = error_text(&format!(
            "{MINIMAL}  advertisements:\n    - kind: LoadBalancerIP\n      selector: {{ matchLabel: {{ app: web }} }}\n"
        ));
        assert!(
            text.contains("unknown field `matchLabel`") && text.contains("line 11"),
            "{text}"
        );
    }

    #[test]
    fn extended_next_hop_defaults_on_for_ipv4_over_ipv6_sessions() {
        let peer = |extra: &str| {
            let yaml = format!(
                "node:\n  name: n1\n  routerId: 10.0.0.1\nbgp:\n  localASN: 65001\n  peers:\n{extra}"
            );
            let config = parse(&yaml, "test.yaml").expect("valid");
            config
                .bgp
                .expect("bgp")
                .peers
                .first()
                .expect("peer")
                .effective_extended_next_hop()
        };
        let both = "      families: [ipv4-unicast, ipv6-unicast]\n";
        assert!(peer(&format!(
            "    - address: fd00::2\n      asn: 65000\n{both}"
        )));
        assert!(!peer("    - address: fd00::2\n      asn: 65000\n"));
        assert!(!peer(&format!(
            "    - address: 10.0.0.2\n      asn: 65000\n{both}"
        )));
        assert!(!peer(&format!(
            "    - address: fd00::2\n      asn: 65000\n{both}      extendedNextHop: false\n"
        )));
    }

    #[test]
    fn link_local_peers_need_their_interface_and_interface_needs_link_local() {
        let head = "node:\n  name: n1\n  routerId: 10.0.0.1\nbgp:\n  localASN: 65001\n  peers:\n";
        let ok = format!("{head}    - address: fe80::2\n      interface: eth1\n      asn: 65000\n");
        let config = parse(&ok, "test.yaml").expect("valid");
        let bgp = config.bgp.expect("bgp");
        assert_eq!(bgp.peers[0].interface_name(), Some("eth1"));
        for (peer, wanted) in [
            (
                "    - address: fe80::2\n      asn: 65000\n",
                "bgp.peers[0].interface",
            ),
            (
                "    - address: fd00::2\n      interface: eth1\n      asn: 65000\n",
                "`interface` without `address` is BGP unnumbered",
            ),
            (
                "    - address: fe80::2\n      interface: eth1/2\n      asn: 65000\n",
                "not an interface name",
            ),
            (
                "    - address: fe80::2\n      interface: eth1\n      asn: 65000\n      bfd: {}\n",
                "BFD towards a link-local peer is not implemented",
            ),
        ] {
            let text = error_text(&format!("{head}{peer}"));
            assert!(
                text.contains(wanted) && text.contains("test.yaml:7:"),
                "{text}"
            );
        }
        // Interface alone: BGP unnumbered, both families and extended next hop by default; one
        // unnumbered peer per interface; neither key: refused naming `address`.
        let unnumbered = format!("{head}    - interface: eth1\n      asn: 65000\n");
        let config = parse(&unnumbered, "test.yaml").expect("valid");
        let peer = config.bgp.expect("bgp").peers.remove(0);
        assert!(peer.is_unnumbered());
        assert_eq!(peer.effective_families().len(), 2);
        assert!(peer.effective_extended_next_hop());
        let twice = format!("{unnumbered}    - interface: eth1\n      asn: 65002\n");
        let text = error_text(&twice);
        assert!(
            text.contains("test.yaml:9:") && text.contains("already configured at line 7"),
            "{text}"
        );
        let text = error_text(&format!("{head}    - asn: 65000\n"));
        assert!(
            text.contains("bgp.peers[0].address") && text.contains("BGP unnumbered"),
            "{text}"
        );
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(MINIMAL, "test.yaml").expect("valid");
        let bgp = config.bgp.expect("bgp section");
        assert_eq!(bgp.listen.port, 179);
        let peer = &bgp.peers[0];
        assert_eq!(peer.timers.hold_time_seconds, HoldTime(90));
        assert_eq!(
            peer.effective_families(),
            BTreeSet::from([Family::Ipv4Unicast])
        );
        assert_eq!(peer.asn, PeerAsn::Number(65000));
        assert_eq!(peer.display_name(), "10.0.0.254");
    }

    #[test]
    fn peer_limits_default_and_are_settable() {
        let config = parse(MINIMAL, "test.yaml").expect("valid");
        let peer = &config.bgp.expect("bgp").peers[0];
        assert_eq!(peer.effective_max_prefixes(), Some(DEFAULT_MAX_PREFIXES));
        assert!(!peer.soft_reconfiguration_inbound);
        assert_eq!(
            peer.effective_send_hold_time(),
            std::time::Duration::from_secs(480)
        );
        let yaml = MINIMAL.replace(
            "asn: 65000",
            "asn: 65000\n      maxPrefixes: 0\n      softReconfigurationInbound: true\n      sendHoldTimeSeconds: 5",
        );
        let config = parse(&yaml, "t").expect("valid");
        let peer = &config.bgp.expect("bgp").peers[0];
        assert_eq!(peer.effective_max_prefixes(), None, "0 lifts the limit");
        assert!(peer.soft_reconfiguration_inbound);
        assert_eq!(
            peer.effective_send_hold_time(),
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn peer_asn_accepts_keywords() {
        let yaml = MINIMAL.replace("asn: 65000", "asn: internal");
        let config = parse(&yaml, "t").expect("valid");
        assert_eq!(
            config.bgp.expect("bgp").peers[0].asn,
            PeerAsn::Kind(PeerKind::Internal)
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let yaml = MINIMAL.replace("asn: 65000", "asn: 65000\n      holdTime: 9");
        let text = error_text(&yaml);
        assert!(
            text.contains("line 9") && text.contains("unknown field `holdTime`"),
            "{text}"
        );
    }

    #[test]
    fn bfd_authentication_is_parsed_without_the_secret() {
        let yaml = MINIMAL.replace(
            "asn: 65000",
            "asn: 65000\n      bfd:\n        authentication:\n          type: meticulousKeyedSha1\n          keyId: 7\n          passwordFile: /etc/herald/tor.bfd",
        );
        let config = parse(&yaml, "t").expect("valid");
        let bfd = config.bgp.expect("bgp").peers[0].bfd.clone().expect("bfd");
        assert_eq!(
            bfd.authentication,
            Some(BfdAuthConfig {
                auth_type: BfdAuthType::MeticulousKeyedSha1,
                key_id: 7,
                password_file: "/etc/herald/tor.bfd".into(),
            })
        );
        assert_eq!(bfd.min_tx_ms, 300, "timers keep their defaults");
    }

    #[test]
    fn bad_bfd_authentication_is_named_with_its_key_and_line() {
        let with = |auth: &str| {
            MINIMAL.replace(
                "asn: 65000",
                &format!("asn: 65000\n      bfd:\n        authentication:\n{auth}"),
            )
        };
        let text = error_text(&with(
            "          type: simplePassword\n          keyId: 1\n          passwordFile: /k",
        ));
        assert!(
            text.contains("line 11") && text.contains("simplePassword"),
            "{text}"
        );
        let text = error_text(&with(
            "          type: keyedSha1\n          keyId: 256\n          passwordFile: /k",
        ));
        assert!(text.contains("line 12"), "{text}");
        let text = error_text(&with("          type: keyedSha1\n          keyId: 1"));
        assert!(text.contains("passwordFile"), "{text}");
        let text = error_text(&with(
            "          type: keyedSha1\n          keyId: 1\n          password: hunter2",
        ));
        assert!(
            text.contains("line 13") && text.contains("unknown field `password`"),
            "{text}"
        );
        let text = error_text(&with(
            "          type: keyedSha1\n          keyId: 1\n          passwordFile: \"\"",
        ));
        assert!(
            text.contains("test.yaml:7: bgp.peers[0].bfd.authentication.passwordFile"),
            "{text}"
        );
    }

    #[test]
    fn fib_import_protocol_and_table_default_to_herald_and_main() {
        let yaml = format!("{MINIMAL}  fibImport: {{ metric: 20 }}\n");
        let bgp = parse(&yaml, "test.yaml").expect("valid").bgp.expect("bgp");
        let fib = bgp.fib_import.expect("fibImport").value;
        assert_eq!((fib.table, fib.protocol), (254, crate::fib::HERALD_RTPROT));
        let yaml = format!("{MINIMAL}  fibImport:\n    table: 100\n    protocol: 150\n");
        let bgp = parse(&yaml, "test.yaml").expect("valid").bgp.expect("bgp");
        let fib = bgp.fib_import.expect("fibImport").value;
        assert_eq!((fib.table, fib.protocol), (100, 150));
    }

    #[test]
    fn fib_import_kernel_protocol_and_local_table_are_rejected_at_their_line() {
        let text = error_text(&format!("{MINIMAL}  fibImport:\n    protocol: 3\n"));
        assert!(
            text.contains("test.yaml:10:")
                && text.contains("bgp.fibImport.protocol")
                && text.contains("reserved to the kernel"),
            "{text}"
        );
        let text = error_text(&format!("{MINIMAL}  fibImport:\n    table: 255\n"));
        assert!(
            text.contains("test.yaml:10:") && text.contains("bgp.fibImport.table"),
            "{text}"
        );
        let text = error_text(&format!("{MINIMAL}  fibImport:\n    protocol: 300\n"));
        assert!(text.contains("protocol"), "{text}");
    }

    #[test]
    fn hold_time_of_two_seconds_is_rejected_at_its_line() {
        let yaml = MINIMAL.replace(
            "asn: 65000",
            "asn: 65000\n      timers:\n        holdTimeSeconds: 2",
        );
        let text = error_text(&yaml);
        assert!(
            text.contains("line 10") && text.contains("at least 3 seconds"),
            "{text}"
        );
    }

    #[test]
    fn duplicate_peer_names_both_lines() {
        let yaml = format!("{MINIMAL}    - address: 10.0.0.254\n      asn: 65002\n");
        let text = error_text(&yaml);
        assert!(
            text.contains("test.yaml:9: bgp.peers[1].address") && text.contains("line 7"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_key_of_the_datapath_section_is_named_with_its_line() {
        let text = error_text(&format!("{MINIMAL}datapath:\n  interface: eth0\n"));
        assert!(
            text.contains("unknown field `interface`") && text.contains("line 10"),
            "{text}"
        );
    }

    #[test]
    fn keepalive_must_be_below_hold_time() {
        let yaml = MINIMAL.replace(
            "asn: 65000",
            "asn: 65000\n      timers:\n        holdTimeSeconds: 9\n        keepaliveTimeSeconds: 9",
        );
        assert!(error_text(&yaml).contains("bgp.peers[0].timers.keepaliveTimeSeconds"));
    }

    #[test]
    fn multihop_on_ibgp_is_rejected() {
        let yaml = MINIMAL.replace("asn: 65000", "asn: 65001\n      ebgpMultihop: 2");
        assert!(error_text(&yaml).contains("only applies to eBGP peers"));
    }

    #[test]
    fn restart_time_is_twelve_bits() {
        let yaml = MINIMAL.replace(
            "asn: 65000",
            "asn: 65000\n      gracefulRestart:\n        enabled: true\n        restartTimeSeconds: 5000",
        );
        assert!(error_text(&yaml).contains("exceeds 4095"));
    }

    #[test]
    fn long_lived_stale_time_parses_and_is_twenty_four_bits() {
        let with = |body: &str| {
            MINIMAL.replace(
                "asn: 65000",
                &format!("asn: 65000\n      gracefulRestart:\n{body}"),
            )
        };
        let yaml =
            with("        enabled: true\n        longLived:\n          staleTimeSeconds: 16777215");
        let config = parse(&yaml, "t").expect("valid");
        let peer = config
            .bgp
            .expect("bgp")
            .peers
            .into_iter()
            .next()
            .expect("peer");
        assert_eq!(
            peer.graceful_restart.long_lived,
            Some(LongLivedConfig {
                stale_time_seconds: LlgrStaleTime(16_777_215)
            })
        );
        let text = error_text(&with(
            "        enabled: true\n        longLived:\n          staleTimeSeconds: 16777216",
        ));
        assert!(text.contains("exceeds 16777215"), "{text}");
        assert!(
            text.contains("staleTimeSeconds") && text.contains("line"),
            "{text}"
        );
        let text = error_text(&with("        longLived:\n          staleTimeSeconds: 60"));
        assert!(
            text.contains("gracefulRestart.longLived") && text.contains("enabled"),
            "{text}"
        );
    }

    #[test]
    fn static_routes_and_api_parse() {
        let yaml = format!(
            "{MINIMAL}  importPolicy: accept-all\n  staticRoutes:\n    - prefix: 192.0.2.0/24\n      communities: [\"65000:10\"]\n      med: 5\napi:\n  controlSocket: /tmp/x.sock\n  metricsAddress: 127.0.0.1:9179\n"
        );
        let config = parse(&yaml, "t").expect("valid");
        let bgp = config.bgp.expect("bgp");
        assert_eq!(
            bgp.import_policy,
            crate::import_policy::ImportPolicy::accept_all()
        );
        assert_eq!(
            bgp.static_routes[0].communities,
            vec![CommunityValue((65000 << 16) | 10)]
        );
        assert_eq!(config.api.control_socket, PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn bad_community_and_public_metrics_address_are_rejected() {
        let yaml = format!(
            "{MINIMAL}  staticRoutes:\n    - prefix: 192.0.2.0/24\n      communities: [\"70000:1\"]\n"
        );
        assert!(error_text(&yaml).contains("not ASN:VALUE"));
        let yaml = format!("{MINIMAL}api:\n  metricsAddress: 10.0.0.1:9179\n");
        assert!(error_text(&yaml).contains("api.metricsAddress"));
    }

    const SERVICES: &str = "ipam:\n  stateFile: /tmp/x.json\n  pools:\n    - name: p\n      blocks: [{cidr: 192.0.2.0/29}]\nservices:\n  - name: web\n    namespace: shop\n    ports: [{port: 443}]\nl2:\n  nodes: [{name: n1}, {name: n2}]\n  interfaces: {include: ['^eth0$']}\n";

    #[test]
    fn ipam_services_and_l2_parse_and_l2_node_defaults_to_node_name() {
        let config = parse(&format!("{MINIMAL}{SERVICES}"), "t").expect("valid");
        assert_eq!(config.ipam_config().pools.len(), 1);
        assert_eq!(
            config.ipam_config().state_file,
            Some(PathBuf::from("/tmp/x.json"))
        );
        assert_eq!(
            config.service_specs()[0].key(),
            lb_ipam::ServiceKey::new("shop", "web")
        );
        let l2 = config.l2_config().expect("l2 section");
        assert_eq!(l2.node, "n1");
        assert_eq!(l2.cluster, "herald");
        assert_eq!(l2.nodes.len(), 2);
        assert_eq!(l2.interfaces.include, vec!["^eth0$".to_owned()]);
    }

    #[test]
    fn unknown_key_inside_l2_is_named_with_its_line() {
        let yaml = format!("{MINIMAL}{SERVICES}").replace(
            "  nodes: [{name: n1}, {name: n2}]",
            "  nodes: [{name: n1}, {name: n2}]\n  leaseSeconds: 3",
        );
        let text = error_text(&yaml);
        assert!(
            text.contains("line 20") && text.contains("unknown field `leaseSeconds`"),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_inside_a_service_is_named_with_its_line() {
        let yaml = format!("{MINIMAL}{SERVICES}").replace(
            "    ports: [{port: 443}]",
            "    ports: [{port: 443}]\n    loadBalancerIp: 192.0.2.3",
        );
        let text = error_text(&yaml);
        assert!(
            text.contains("line 18") && text.contains("unknown field `loadBalancerIp`"),
            "{text}"
        );
    }

    #[test]
    fn duplicate_service_names_both_lines() {
        let yaml = format!("{MINIMAL}{SERVICES}").replace(
            "    ports: [{port: 443}]",
            "    ports: [{port: 443}]\n  - {name: web, namespace: shop}",
        );
        let text = error_text(&yaml);
        assert!(
            text.contains("test.yaml:18: services[1]") && text.contains("line 15"),
            "{text}"
        );
    }

    #[test]
    fn bad_annotation_is_named_with_the_service_line() {
        let yaml = format!("{MINIMAL}{SERVICES}").replace(
            "    ports: [{port: 443}]",
            "    annotations: {herald.io/ips: not-an-ip}",
        );
        let text = error_text(&yaml);
        assert!(
            text.contains("test.yaml:15: services[0]") && text.contains("not-an-ip"),
            "{text}"
        );
    }

    #[test]
    fn broken_pool_is_named_under_ipam() {
        let yaml = format!("{MINIMAL}{SERVICES}").replace(
            "      blocks: [{cidr: 192.0.2.0/29}]",
            "      blocks: [{cidr: 192.0.2.0/29}]\n    - name: p\n      blocks: [{cidr: 198.51.100.0/29}]",
        );
        let text = error_text(&yaml);
        assert!(text.contains("test.yaml:10: ipam.pools"), "{text}");
    }

    #[test]
    fn l2_node_must_be_this_node_and_listed() {
        let yaml = format!("{MINIMAL}{SERVICES}").replace(
            "  nodes: [{name: n1}, {name: n2}]",
            "  node: n9\n  nodes: [{name: n1}, {name: n2}]",
        );
        let text = error_text(&yaml);
        assert!(text.contains("test.yaml:19: l2.node"), "{text}");
        let yaml = format!("{MINIMAL}{SERVICES}").replace("{name: n1}, ", "");
        let text = error_text(&yaml);
        assert!(
            text.contains("test.yaml:19: l2: ") && text.contains("not in `nodes`"),
            "{text}"
        );
    }

    #[test]
    fn missing_file_is_reported_with_its_path() {
        let error = load(Path::new("/nonexistent/herald.yaml")).expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/herald.yaml"));
    }
}
