//! The `datapath run` configuration file (YAML): which interfaces get the XDP load balancer and
//! the backend TC programs, where maps are pinned, the Maglev parameters, and the services with
//! their backends. Owns the schema, its validation and the error messages that name the offending
//! key and line. Reading the file in [`load`] is the only I/O; [`parse`] is pure.
//!
//! ```yaml
//! pinDir: /sys/fs/bpf/herald        # `datapath status --pin-dir` reads the maps here
//! interfaces:
//!   - name: eth1
//!     xdp: native                   # native | generic | none
//!     tc: true                      # Geneve decap + reverse NAT (this node hosts backends)
//! maglev: { tableSize: 1021, seed: JLfvgnHc2kaSUFaI }
//! services:
//!   - name: web
//!     vip: 10.200.0.10
//!     port: 80
//!     backends:
//!       - { address: 10.244.1.10:8080, node: 10.0.1.2 }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::error::{Error, Result};
use crate::maglev::{self, Proto, Seed};
use crate::reconcile::service_key;

/// Where maps are pinned unless the file or the command line says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/herald";
/// Default interval between re-resolutions of the next-hop MACs.
pub const DEFAULT_NEIGHBOUR_REFRESH_SECONDS: u64 = 10;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunConfig {
    /// bpffs directory for the pinned maps.
    #[serde(default = "default_pin_dir")]
    pub pin_dir: PathBuf,
    /// Leave the pinned maps in place on exit (so a restarted agent finds its flow and
    /// reverse-NAT state); by default they are removed with the programs.
    #[serde(default)]
    pub keep_pinned_maps: bool,
    /// Interfaces to attach programs to.
    pub interfaces: Spanned<Vec<InterfaceConfig>>,
    /// This node's underlay identity.
    #[serde(default)]
    pub node: NodeConfig,
    /// Maglev table size and seed.
    #[serde(default)]
    pub maglev: MaglevConfig,
    /// How often next-hop MACs are resolved again, in seconds.
    #[serde(default = "default_refresh")]
    pub neighbour_refresh_seconds: u64,
    /// The services to load-balance.
    #[serde(default)]
    pub services: Vec<Spanned<ServiceConfig>>,
}

fn default_pin_dir() -> PathBuf {
    PathBuf::from(DEFAULT_PIN_DIR)
}

fn default_refresh() -> u64 {
    DEFAULT_NEIGHBOUR_REFRESH_SECONDS
}

/// How the XDP load balancer is attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Driver (native) mode, falling back to generic when the driver refuses.
    #[default]
    Native,
    /// Generic (skb) mode.
    Generic,
    /// No load balancer on this interface.
    None,
}

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InterfaceConfig {
    /// Interface name in the agent's network namespace.
    pub name: Spanned<String>,
    /// XDP load balancer mode.
    #[serde(default)]
    pub xdp: XdpMode,
    /// Attach the backend-node TC programs (Geneve decap on ingress, reverse NAT on egress).
    #[serde(default)]
    pub tc: bool,
}

/// This node's underlay identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfig {
    /// Outer source address of Geneve packets; default: the first IPv4 address of the XDP
    /// interface.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// Uplink MTU for the too-big check; default: the XDP interface's MTU.
    #[serde(default)]
    pub mtu: Option<u16>,
}

/// Maglev parameters (the same on every node, or nodes disagree on backends).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaglevConfig {
    /// Table size M (one of [`maglev::TABLE_SIZES`]).
    #[serde(default = "default_table_size")]
    pub table_size: Spanned<u32>,
    /// Cluster seed: base64 of 12 bytes.
    #[serde(default = "default_seed")]
    pub seed: Spanned<String>,
}

impl Default for MaglevConfig {
    fn default() -> Self {
        Self {
            table_size: default_table_size(),
            seed: default_seed(),
        }
    }
}

fn default_table_size() -> Spanned<u32> {
    Spanned::new(
        maglev::DEFAULT_TABLE_SIZE,
        Location::UNKNOWN,
        Location::UNKNOWN,
    )
}

fn default_seed() -> Spanned<String> {
    Spanned::new(
        maglev::DEFAULT_SEED.to_owned(),
        Location::UNKNOWN,
        Location::UNKNOWN,
    )
}

/// L4 protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    /// The Maglev/map protocol.
    pub fn proto(self) -> Proto {
        match self {
            Self::Tcp => Proto::Tcp,
            Self::Udp => Proto::Udp,
        }
    }
}

/// One service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// A name for logs.
    pub name: String,
    /// Service address.
    pub vip: IpAddr,
    /// Service port.
    pub port: u16,
    /// L4 protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Leave the client port out of the hash (ClientIP session affinity).
    #[serde(default)]
    pub session_affinity: bool,
    /// Backends.
    #[serde(default)]
    pub backends: Vec<Spanned<BackendConfig>>,
}

/// One backend of a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendConfig {
    /// Backend (pod) address and port.
    pub address: SocketAddr,
    /// Underlay IPv4 address of the node the backend runs on; when it is one of this node's
    /// addresses the backend is local (DNAT, no encapsulation).
    pub node: Ipv4Addr,
    /// Maglev weight (0: no new flows).
    #[serde(default = "default_weight")]
    pub weight: u16,
}

fn default_weight() -> u16 {
    maglev::DEFAULT_WEIGHT
}

impl RunConfig {
    /// The interface that carries the XDP load balancer, if any.
    pub fn xdp_interface(&self) -> Option<&InterfaceConfig> {
        self.interfaces
            .value
            .iter()
            .find(|i| i.xdp != XdpMode::None)
    }

    /// The decoded Maglev seed (validated by [`parse`]).
    pub fn seed(&self) -> Result<Seed> {
        Seed::from_base64(&self.maglev.seed.value)
    }

    /// The Maglev table size.
    pub fn table_size(&self) -> u32 {
        self.maglev.table_size.value
    }

    /// What a running agent cannot change without a restart: pinning, interfaces and Maglev
    /// parameters. Two configs with equal keys can be swapped by a reload.
    pub fn restart_key(&self) -> (PathBuf, Vec<(String, XdpMode, bool)>, u32, String) {
        (
            self.pin_dir.clone(),
            self.interfaces
                .value
                .iter()
                .map(|i| (i.name.value.clone(), i.xdp, i.tc))
                .collect(),
            self.table_size(),
            self.maglev.seed.value.clone(),
        )
    }
}

/// Parses and validates a configuration from YAML text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<RunConfig> {
    let config: RunConfig = serde_saphyr::from_str(text).map_err(|e| Error::ConfigParse {
        path: origin.to_owned(),
        message: e.to_string(),
    })?;
    validate(&config, origin)?;
    Ok(config)
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigParse {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Rules serde cannot express.
fn validate(c: &RunConfig, origin: &str) -> Result<()> {
    let invalid = |line: u64, key: String, message: String| Error::Config {
        path: origin.to_owned(),
        line,
        key,
        message,
    };
    if let Err(e) = maglev::check_table_size(c.maglev.table_size.value) {
        return Err(invalid(
            c.maglev.table_size.referenced.line(),
            "maglev.tableSize".into(),
            e.to_string(),
        ));
    }
    if let Err(e) = Seed::from_base64(&c.maglev.seed.value) {
        return Err(invalid(
            c.maglev.seed.referenced.line(),
            "maglev.seed".into(),
            e.to_string(),
        ));
    }
    let ifaces = &c.interfaces.value;
    if ifaces.is_empty() {
        return Err(invalid(
            c.interfaces.referenced.line(),
            "interfaces".into(),
            "at least one interface is needed".into(),
        ));
    }
    let mut names = BTreeMap::new();
    let mut xdp_at: Option<u64> = None;
    for (i, iface) in ifaces.iter().enumerate() {
        let line = iface.name.referenced.line();
        let name = &iface.name.value;
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(invalid(
                line,
                format!("interfaces[{i}].name"),
                format!("{name:?} is not an interface name"),
            ));
        }
        if let Some(first) = names.insert(name.clone(), line) {
            return Err(invalid(
                line,
                format!("interfaces[{i}].name"),
                format!("{name} is already listed at line {first}"),
            ));
        }
        if iface.xdp == XdpMode::None && !iface.tc {
            return Err(invalid(
                line,
                format!("interfaces[{i}]"),
                format!("{name} has neither `xdp` nor `tc`: nothing to attach"),
            ));
        }
        if iface.xdp != XdpMode::None {
            if let Some(first) = xdp_at {
                return Err(invalid(
                    line,
                    format!("interfaces[{i}].xdp"),
                    format!(
                        "not implemented: more than one XDP uplink (the first is at line {first}); \
                         the node address, MAC and MTU are per node"
                    ),
                ));
            }
            xdp_at = Some(line);
        }
    }
    if c.neighbour_refresh_seconds == 0 {
        return Err(invalid(
            0,
            "neighbourRefreshSeconds".into(),
            "must be at least 1".into(),
        ));
    }
    if !c.services.is_empty() && xdp_at.is_none() {
        return Err(invalid(
            c.services[0].referenced.line(),
            "services".into(),
            "services need an interface with the XDP load balancer (`xdp: native|generic`)".into(),
        ));
    }
    let mut seen = BTreeMap::new();
    for (s, svc) in c.services.iter().enumerate() {
        let line = svc.referenced.line();
        let v = &svc.value;
        let key = service_key(v.vip, v.port, v.protocol.proto());
        if let Some(first) = seen.insert(key, line) {
            return Err(invalid(
                line,
                format!("services[{s}]"),
                format!(
                    "{}:{}/{:?} is already a service at line {first}",
                    v.vip, v.port, v.protocol
                ),
            ));
        }
        let mut addrs = BTreeMap::new();
        for (b, be) in v.backends.iter().enumerate() {
            let bline = be.referenced.line();
            let key = format!("services[{s}].backends[{b}].address");
            if be.value.address.is_ipv4() != v.vip.is_ipv4() {
                return Err(invalid(
                    bline,
                    key,
                    format!(
                        "backend {} and service {} are of different address families",
                        be.value.address, v.vip
                    ),
                ));
            }
            if let Some(first) = addrs.insert(be.value.address, bline) {
                return Err(invalid(
                    bline,
                    key,
                    format!(
                        "backend {} is already listed at line {first}",
                        be.value.address
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
pinDir: /sys/fs/bpf/test
interfaces:
  - name: eth1
    xdp: generic
    tc: true
maglev:
  tableSize: 1021
services:
  - name: web
    vip: 10.200.0.10
    port: 80
    backends:
      - address: 10.244.1.10:8080
        node: 10.0.1.2
      - address: 10.244.2.10:8080
        node: 10.0.2.2
        weight: 50
";

    fn err(text: &str) -> String {
        parse(text, "t.yaml")
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn a_full_file_parses_with_defaults_filled_in() {
        let c = parse(GOOD, "t.yaml").expect("valid");
        assert_eq!(c.pin_dir, Path::new("/sys/fs/bpf/test"));
        assert!(!c.keep_pinned_maps);
        let x = c.xdp_interface().expect("xdp interface");
        assert_eq!(
            (x.name.value.as_str(), x.xdp, x.tc),
            ("eth1", XdpMode::Generic, true)
        );
        assert_eq!(c.table_size(), 1021);
        assert_eq!(c.seed().expect("seed"), Seed::default());
        assert_eq!(
            c.neighbour_refresh_seconds,
            DEFAULT_NEIGHBOUR_REFRESH_SECONDS
        );
        let s = &c.services[0].value;
        assert_eq!((s.protocol, s.session_affinity), (Protocol::Tcp, false));
        assert_eq!(s.backends[0].value.weight, maglev::DEFAULT_WEIGHT);
        assert_eq!(s.backends[1].value.weight, 50);
        assert_eq!(s.backends[1].value.node, Ipv4Addr::new(10, 0, 2, 2));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("        weight: 50", "        weigth: 50");
        let e = err(&text);
        assert!(e.contains("weigth") && e.contains("line 17"), "{e}");
    }

    #[test]
    fn bad_table_size_names_key_and_line() {
        let e = err(&GOOD.replace("tableSize: 1021", "tableSize: 1000"));
        assert!(e.starts_with("t.yaml:7: maglev.tableSize:"), "{e}");
    }

    #[test]
    fn bad_seed_names_key_and_line() {
        let e = err(&GOOD.replace("  tableSize: 1021", "  tableSize: 1021\n  seed: abc"));
        assert!(e.starts_with("t.yaml:8: maglev.seed:"), "{e}");
    }

    #[test]
    fn duplicate_backend_is_named_with_both_lines() {
        let e = err(&GOOD.replace("10.244.2.10:8080", "10.244.1.10:8080"));
        assert!(
            e.starts_with("t.yaml:15: services[0].backends[1].address:") && e.contains("line 13"),
            "{e}"
        );
    }

    #[test]
    fn mixed_families_are_rejected() {
        let e = err(&GOOD.replace("10.244.2.10:8080", "\"[fd00::1]:8080\""));
        assert!(e.contains("different address families"), "{e}");
    }

    #[test]
    fn duplicate_service_is_rejected_at_its_line() {
        let text = format!(
            "{GOOD}  - name: again\n    vip: 10.200.0.10\n    port: 80\n    protocol: TCP\n"
        );
        let e = err(&text);
        assert!(
            e.starts_with("t.yaml:18: services[1]:") && e.contains("line 9"),
            "{e}"
        );
    }

    #[test]
    fn two_xdp_uplinks_are_not_implemented() {
        let text = GOOD.replace(
            "    tc: true\n",
            "    tc: true\n  - name: eth2\n    xdp: native\n",
        );
        let e = err(&text);
        assert!(
            e.starts_with("t.yaml:6: interfaces[1].xdp: not implemented"),
            "{e}"
        );
    }

    #[test]
    fn services_without_an_xdp_interface_are_rejected() {
        let e = err(&GOOD.replace("xdp: generic", "xdp: none"));
        assert!(
            e.contains("services:") && e.contains("XDP load balancer"),
            "{e}"
        );
    }

    #[test]
    fn an_interface_with_nothing_to_attach_is_rejected() {
        let e = err("interfaces:\n  - name: eth0\n    xdp: none\n");
        assert!(e.starts_with("t.yaml:2: interfaces[0]:"), "{e}");
    }

    #[test]
    fn unknown_protocol_and_mode_are_parse_errors() {
        assert!(err(&GOOD.replace("port: 80", "port: 80\n    protocol: ICMP")).contains("ICMP"));
        assert!(err(&GOOD.replace("xdp: generic", "xdp: offload")).contains("offload"));
    }

    #[test]
    fn restart_key_ignores_services() {
        let a = parse(GOOD, "a").expect("valid");
        let b = parse(&GOOD.replace("weight: 50", "weight: 10"), "b").expect("valid");
        assert_eq!(a.restart_key(), b.restart_key());
        let c = parse(&GOOD.replace("tableSize: 1021", "tableSize: 2039"), "c").expect("valid");
        assert_ne!(a.restart_key(), c.restart_key());
    }
}
