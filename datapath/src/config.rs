//! The `datapath:` section of the agent's configuration (YAML): which interfaces get the XDP load
//! balancer and the backend TC programs, where maps are pinned, and the Maglev parameters. The
//! services are not here: the agent derives them from its service model and hands them to
//! [`crate::agent::Datapath::apply`]. Owns the schema, its validation and the error messages that
//! name the offending key and line. Pure.
//!
//! ```yaml
//! datapath:
//!   pinDir: /sys/fs/bpf/herald      # `herald datapath status` reads the maps here
//!   interfaces:
//!     - name: eth1
//!       xdp: native                 # native | generic | none
//!       tc: true                    # Geneve decap + reverse NAT (this node hosts backends)
//!   maglev: { tableSize: 1021, seed: JLfvgnHc2kaSUFaI }
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::error::{Error, Result};
use crate::maglev::{self, Seed};

/// Where maps are pinned unless the file or the command line says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/herald";
/// Default interval between re-resolutions of the next-hop MACs.
pub const DEFAULT_NEIGHBOUR_REFRESH_SECONDS: u64 = 10;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatapathConfig {
    /// bpffs directory for the pinned maps.
    #[serde(default = "default_pin_dir")]
    pub pin_dir: PathBuf,
    /// Leave the pinned maps in place on exit, so a restarted agent finds its flow and
    /// reverse-NAT state (the default); `false` removes them with the programs.
    #[serde(default = "default_true")]
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
}

fn default_true() -> bool {
    true
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

impl DatapathConfig {
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

/// Parses and validates a `datapath:` section from YAML text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<DatapathConfig> {
    let config: DatapathConfig = serde_saphyr::from_str(text).map_err(|e| Error::ConfigParse {
        path: origin.to_owned(),
        message: e.to_string(),
    })?;
    validate(&config, origin)?;
    Ok(config)
}

impl DatapathConfig {
    /// The rules serde cannot express (errors name the key and its line).
    pub fn validate(&self) -> Result<()> {
        validate(self, "datapath")
    }
}

/// Rules serde cannot express.
fn validate(c: &DatapathConfig, origin: &str) -> Result<()> {
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
    if xdp_at.is_none() {
        return Err(invalid(
            c.interfaces.referenced.line(),
            "interfaces".into(),
            "no interface carries the XDP load balancer (`xdp: native|generic`): nothing would \
             serve the service addresses"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const GOOD: &str = "\
pinDir: /sys/fs/bpf/test
interfaces:
  - name: eth1
    xdp: generic
    tc: true
maglev:
  tableSize: 1021
";

    fn err(text: &str) -> String {
        parse(text, "t.yaml")
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn a_full_section_parses_with_defaults_filled_in() {
        let c = parse(GOOD, "t.yaml").expect("valid");
        assert_eq!(c.pin_dir, Path::new("/sys/fs/bpf/test"));
        assert!(c.keep_pinned_maps, "restarts keep forwarding by default");
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
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = err(&GOOD.replace("  tableSize: 1021", "  tableSize: 1021\n  tabelSize: 3"));
        assert!(e.contains("tabelSize") && e.contains("line 8"), "{e}");
    }

    #[test]
    fn a_services_list_is_refused_they_come_from_the_agent() {
        let e = err(&format!("{GOOD}services: []\n"));
        assert!(e.contains("services"), "{e}");
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
    fn without_an_xdp_interface_nothing_would_serve() {
        let e = err(&GOOD.replace("xdp: generic", "xdp: none"));
        assert!(
            e.contains("interfaces") && e.contains("XDP load balancer"),
            "{e}"
        );
    }

    #[test]
    fn an_interface_with_nothing_to_attach_is_rejected() {
        let e = err("interfaces:\n  - name: eth0\n    xdp: none\n");
        assert!(e.starts_with("t.yaml:2: interfaces[0]:"), "{e}");
    }

    #[test]
    fn unknown_mode_is_a_parse_error() {
        assert!(err(&GOOD.replace("xdp: generic", "xdp: offload")).contains("offload"));
    }

    #[test]
    fn restart_key_follows_maglev_parameters() {
        let a = parse(GOOD, "a").expect("valid");
        let c = parse(&GOOD.replace("tableSize: 1021", "tableSize: 2039"), "c").expect("valid");
        assert_ne!(a.restart_key(), c.restart_key());
    }
}
