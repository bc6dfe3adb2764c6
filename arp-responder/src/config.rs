//! Runtime configuration of the L2 announcer: this node, the cluster's nodes and services,
//! interface selection, timers and the fencing store. Deserialised from the `l2` part of the
//! standalone YAML (or built by the speaker from Kubernetes objects). Heartbeat authentication
//! ([`AuthConfig`]) is read next to it by [`StandaloneConfig`] and handed to the runtime
//! separately. No I/O except the `from_yaml_file` functions and [`AuthConfig::load`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::election::{DEFAULT_MAX_CLOCK_SKEW, ElectionTiming, HeartbeatAuth};
use crate::error::{Error, Result};
use crate::wire::heartbeat::HeartbeatKey;

/// Interfaces excluded unless the configuration says otherwise: loopback and the virtual
/// interfaces container runtimes and CNIs create, which never face the L2 segment.
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "^lo$",
    "^veth",
    "^docker",
    "^cilium",
    "^lxc",
    "^cni",
    "^flannel",
    "^kube-",
    "^vxlan",
    "^genev",
    "^tunl",
    "^ip6tnl",
    "^sit",
    "^nodelocaldns",
    "^virbr",
    "^br-",
    "^tap",
    "^wg",
    "^ifb",
];

/// `externalTrafficPolicy` of a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub enum TrafficPolicy {
    /// Any selected node may attract the traffic.
    #[default]
    Cluster,
    /// Only nodes with a ready local endpoint.
    Local,
}

/// A node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name (1–63 bytes).
    pub name: String,
    /// Node labels, matched by the node selector.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A LoadBalancer service announced on L2.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Its LoadBalancer IPs.
    pub ips: Vec<IpAddr>,
    /// `externalTrafficPolicy`.
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    /// Nodes with a ready endpoint of the service (used with `Local`).
    #[serde(default)]
    pub ready_endpoint_nodes: Vec<String>,
    /// Sharing key: services with the same key may share IPs (one election per IP either way).
    #[serde(default)]
    pub sharing_key: Option<String>,
}

fn default_namespace() -> String {
    "default".into()
}

/// Include/exclude regexes over interface names. An interface is selected when it matches some
/// include (or the include list is empty) and no exclude.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSelection {
    /// Regexes of interfaces to use; empty means all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Regexes of interfaces never to use.
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
}

impl Default for InterfaceSelection {
    fn default() -> Self {
        InterfaceSelection {
            include: Vec::new(),
            exclude: default_exclude(),
        }
    }
}

fn default_exclude() -> Vec<String> {
    DEFAULT_EXCLUDE.iter().map(|s| (*s).to_owned()).collect()
}

/// Timers, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimingConfig {
    /// Heartbeat period.
    #[serde(default = "d_hb")]
    pub heartbeat_ms: u64,
    /// Dead interval.
    #[serde(default = "d_dead")]
    pub dead_ms: u64,
    /// Quorum window.
    #[serde(default = "d_quorum")]
    pub quorum_window_ms: u64,
    /// Startup grace.
    #[serde(default = "d_grace")]
    pub startup_grace_ms: u64,
    /// Offsets after takeover at which gratuitous ARP / unsolicited NA are sent.
    #[serde(default = "d_garp")]
    pub announce_ms: Vec<u64>,
}

fn d_hb() -> u64 {
    100
}
fn d_dead() -> u64 {
    400
}
fn d_quorum() -> u64 {
    250
}
fn d_grace() -> u64 {
    500
}
fn d_garp() -> Vec<u64> {
    vec![0, 250, 1000, 2000]
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            heartbeat_ms: d_hb(),
            dead_ms: d_dead(),
            quorum_window_ms: d_quorum(),
            startup_grace_ms: d_grace(),
            announce_ms: d_garp(),
        }
    }
}

impl TimingConfig {
    /// The election timers.
    pub fn election(&self) -> ElectionTiming {
        ElectionTiming {
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms),
            dead_interval: Duration::from_millis(self.dead_ms),
            quorum_window: Duration::from_millis(self.quorum_window_ms),
            startup_grace: Duration::from_millis(self.startup_grace_ms),
        }
    }

    /// The announcement schedule.
    pub fn announce(&self) -> Vec<Duration> {
        self.announce_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }
}

/// Where membership and fencing leases live.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum StoreConfig {
    /// Membership = the configured `nodes`; no lease fencing.
    #[default]
    Static,
    /// Lease files in a shared directory.
    File {
        /// The directory.
        dir: PathBuf,
        /// Lease duration in ms.
        #[serde(default = "d_lease")]
        lease_ms: u64,
        /// Renew period in ms.
        #[serde(default = "d_renew")]
        renew_ms: u64,
        /// How long after its lease ran out with the store unreachable a node keeps answering
        /// on wire quorum of the last membership (see [`crate::election::Election`]); 0: none.
        #[serde(default = "d_outage_grace")]
        outage_grace_ms: u64,
    },
    /// Kubernetes Leases, one per node (the speaker builds this store; see
    /// `speaker::sources::kube::lease`).
    Kubernetes {
        /// Namespace of the Lease objects.
        namespace: String,
        /// Lease duration in ms (rounded up to whole seconds in the Lease object).
        #[serde(default = "d_kube_lease")]
        lease_ms: u64,
        /// Renew period in ms: two API requests per node per period.
        #[serde(default = "d_kube_renew")]
        renew_ms: u64,
        /// How long after its lease ran out with the API server unreachable a node keeps
        /// answering on wire quorum of the last membership; 0: none.
        #[serde(default = "d_outage_grace")]
        outage_grace_ms: u64,
    },
}

/// Kubernetes Lease duration: a node cut off from the API server stops answering after this.
pub const KUBE_LEASE_MS: u64 = 15_000;
/// Kubernetes Lease renew period.
pub const KUBE_RENEW_MS: u64 = 2_000;
/// Store outage ride-through: an API server restart or upgrade rarely takes longer.
pub const OUTAGE_GRACE_MS: u64 = 300_000;

fn d_outage_grace() -> u64 {
    OUTAGE_GRACE_MS
}

fn d_kube_lease() -> u64 {
    KUBE_LEASE_MS
}
fn d_kube_renew() -> u64 {
    KUBE_RENEW_MS
}

fn d_lease() -> u64 {
    3000
}
fn d_renew() -> u64 {
    500
}

/// Configuration of the L2 announcer on one node.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L2Config {
    /// This node's name.
    pub node: String,
    /// Cluster name: heartbeats of other clusters on the segment are ignored.
    #[serde(default = "d_cluster")]
    pub cluster: String,
    /// All nodes of the cluster (including this one).
    pub nodes: Vec<NodeSpec>,
    /// Labels a node must carry to be eligible.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Services announced on L2.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Interface selection.
    #[serde(default)]
    pub interfaces: InterfaceSelection,
    /// Timers.
    #[serde(default)]
    pub timing: TimingConfig,
    /// Membership/fencing store.
    #[serde(default)]
    pub store: StoreConfig,
}

fn d_cluster() -> String {
    "herald".into()
}

impl L2Config {
    /// Parses YAML; errors name the line and column.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let cfg: L2Config =
            serde_saphyr::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a YAML file.
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::from_yaml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Checks names, timers and regexes.
    pub fn validate(&self) -> Result<()> {
        let name_ok = |n: &str| !n.is_empty() && n.len() <= crate::wire::heartbeat::MAX_NAME_LEN;
        if !name_ok(&self.node) {
            return Err(Error::Config(format!(
                "node name {:?} must be 1..=63 bytes",
                self.node
            )));
        }
        if let Some(n) = self.nodes.iter().find(|n| !name_ok(&n.name)) {
            return Err(Error::Config(format!(
                "node name {:?} must be 1..=63 bytes",
                n.name
            )));
        }
        if !self.nodes.iter().any(|n| n.name == self.node) {
            return Err(Error::Config(format!(
                "this node {:?} is not in `nodes`",
                self.node
            )));
        }
        self.timing.election().validate()?;
        for re in self
            .interfaces
            .include
            .iter()
            .chain(&self.interfaces.exclude)
        {
            regex::Regex::new(re)
                .map_err(|e| Error::Config(format!("interface regex {re:?}: {e}")))?;
        }
        if let StoreConfig::File {
            lease_ms, renew_ms, ..
        }
        | StoreConfig::Kubernetes {
            lease_ms, renew_ms, ..
        } = &self.store
            && renew_ms * 2 > *lease_ms
        {
            return Err(Error::Config(
                "store renewMs must be at most half of leaseMs".into(),
            ));
        }
        Ok(())
    }
}

/// Heartbeat authentication (`auth:`): a key shared by the cluster's nodes, in a file (in
/// Kubernetes mode, a mounted Secret).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// File holding the key (at least 16 bytes; one trailing newline is ignored). Without it
    /// heartbeats are unauthenticated: any host on the segment can forge or replay them.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Largest accepted difference between a heartbeat's timestamp and this node's clock, in ms
    /// (replay window; node clocks must agree within it). Used only with a key.
    #[serde(default = "d_skew")]
    pub max_clock_skew_ms: u64,
}

fn d_skew() -> u64 {
    DEFAULT_MAX_CLOCK_SKEW.as_millis() as u64
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            key_file: None,
            max_clock_skew_ms: d_skew(),
        }
    }
}

impl AuthConfig {
    /// Checks the skew bound: at least one second (NTP-synchronised clocks, scheduling) and at
    /// most a minute (a replay window longer than that defeats the purpose).
    pub fn validate(&self) -> Result<()> {
        if !(1000..=60_000).contains(&self.max_clock_skew_ms) {
            return Err(Error::Config(
                "auth maxClockSkewMs must be between 1000 and 60000".into(),
            ));
        }
        Ok(())
    }

    /// Reads the key file (if any) into the runtime's [`HeartbeatAuth`].
    pub fn load(&self) -> Result<HeartbeatAuth> {
        self.validate()?;
        let key = match &self.key_file {
            None => None,
            Some(path) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|e| Error::io(format!("reading key file {}", path.display()), e))?;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
                Some(
                    HeartbeatKey::new(&bytes)
                        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
                )
            }
        };
        Ok(HeartbeatAuth {
            key,
            max_clock_skew: Duration::from_millis(self.max_clock_skew_ms),
        })
    }
}

/// The standalone `herald-l2` file: an [`L2Config`] plus `auth:`. The speaker builds an
/// [`L2Config`] itself and passes the authentication to the runtime on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandaloneConfig {
    /// The announcer's configuration.
    pub l2: L2Config,
    /// Heartbeat authentication.
    pub auth: AuthConfig,
}

/// The YAML shape of [`StandaloneConfig`]: the keys of [`L2Config`] and `auth`, so unknown keys
/// are still rejected with line and column (serde's `flatten` would lose both).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StandaloneYaml {
    node: String,
    #[serde(default = "d_cluster")]
    cluster: String,
    nodes: Vec<NodeSpec>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    services: Vec<ServiceSpec>,
    #[serde(default)]
    interfaces: InterfaceSelection,
    #[serde(default)]
    timing: TimingConfig,
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    auth: AuthConfig,
}

impl StandaloneConfig {
    /// Parses YAML; errors name the line and column.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let y: StandaloneYaml =
            serde_saphyr::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        let cfg = StandaloneConfig {
            l2: L2Config {
                node: y.node,
                cluster: y.cluster,
                nodes: y.nodes,
                node_selector: y.node_selector,
                services: y.services,
                interfaces: y.interfaces,
                timing: y.timing,
                store: y.store,
            },
            auth: y.auth,
        };
        cfg.l2.validate()?;
        cfg.auth.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a YAML file.
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::from_yaml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_config_with_defaults() {
        let cfg = L2Config::from_yaml(
            "node: a\nnodes: [{name: a}, {name: b}]\nservices:\n  - name: web\n    ips: [10.0.0.1, 'fd00::1']\n    externalTrafficPolicy: Local\n    readyEndpointNodes: [b]\n",
        )
        .expect("valid config");
        assert_eq!(cfg.timing, TimingConfig::default());
        assert_eq!(cfg.store, StoreConfig::Static);
        assert_eq!(
            cfg.services[0].external_traffic_policy,
            TrafficPolicy::Local
        );
        assert!(cfg.interfaces.exclude.iter().any(|e| e == "^veth"));
    }

    #[test]
    fn parses_file_store() {
        let cfg = L2Config::from_yaml(
            "node: a\nnodes: [{name: a}]\nstore: {kind: file, dir: /x, leaseMs: 2000, renewMs: 400}\n",
        )
        .expect("valid config");
        assert_eq!(
            cfg.store,
            StoreConfig::File {
                dir: "/x".into(),
                lease_ms: 2000,
                renew_ms: 400,
                outage_grace_ms: OUTAGE_GRACE_MS,
            }
        );
        assert!(L2Config::from_yaml("node: a\nnodes: [{name: a}]\nstore: {kind: file, dir: /x, leaseMs: 500, renewMs: 400}\n").is_err());
    }

    #[test]
    fn kubernetes_store_has_lease_defaults_and_the_same_renew_rule() {
        let cfg = L2Config::from_yaml(
            "node: a\nnodes: [{name: a}]\nstore: {kind: kubernetes, namespace: herald-system}\n",
        )
        .expect("valid config");
        assert_eq!(
            cfg.store,
            StoreConfig::Kubernetes {
                namespace: "herald-system".into(),
                lease_ms: KUBE_LEASE_MS,
                renew_ms: KUBE_RENEW_MS,
                outage_grace_ms: OUTAGE_GRACE_MS,
            }
        );
        assert!(L2Config::from_yaml("node: a\nnodes: [{name: a}]\nstore: {kind: kubernetes, namespace: x, leaseMs: 3000, renewMs: 2000}\n").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_timers_are_rejected() {
        assert!(L2Config::from_yaml("node: a\nnodes: [{name: a}]\nbogus: 1\n").is_err());
        assert!(
            L2Config::from_yaml("node: a\nnodes: [{name: a}]\ntiming: {deadMs: 200}\n").is_err()
        );
        assert!(L2Config::from_yaml("node: z\nnodes: [{name: a}]\n").is_err());
        assert!(
            L2Config::from_yaml("node: a\nnodes: [{name: a}]\ninterfaces: {include: ['(']}\n")
                .is_err()
        );
    }

    #[test]
    fn standalone_config_reads_auth_and_rejects_bad_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key");
        std::fs::write(&key, "0123456789abcdef0123\n").expect("write");
        let yaml = format!(
            "node: a\ncluster: blue\nnodes: [{{name: a}}]\nauth: {{keyFile: {}, maxClockSkewMs: 1500}}\n",
            key.display()
        );
        let cfg = StandaloneConfig::from_yaml(&yaml).expect("valid");
        assert_eq!(cfg.l2.cluster, "blue");
        let auth = cfg.auth.load().expect("key");
        assert!(auth.key.is_some());
        assert_eq!(auth.max_clock_skew, Duration::from_millis(1500));
        // No auth: unauthenticated, defaults.
        let plain = StandaloneConfig::from_yaml("node: a\nnodes: [{name: a}]\n").expect("valid");
        assert_eq!(plain.auth, AuthConfig::default());
        assert!(plain.auth.load().expect("no key").key.is_none());
        // A short key, a missing file, a bad skew and unknown keys are errors.
        std::fs::write(&key, "short\n").expect("write");
        assert!(cfg.auth.load().is_err());
        let missing = AuthConfig {
            key_file: Some(dir.path().join("nope")),
            ..AuthConfig::default()
        };
        assert!(missing.load().is_err());
        assert!(
            StandaloneConfig::from_yaml(
                "node: a\nnodes: [{name: a}]\nauth: {maxClockSkewMs: 10}\n"
            )
            .is_err()
        );
        assert!(
            StandaloneConfig::from_yaml("node: a\nnodes: [{name: a}]\nauth: {key: x}\n").is_err()
        );
        assert!(StandaloneConfig::from_yaml("node: a\nnodes: [{name: a}]\nbogus: 1\n").is_err());
        // The speaker's L2Config has no `auth` key.
        assert!(L2Config::from_yaml("node: a\nnodes: [{name: a}]\nauth: {}\n").is_err());
    }
}
