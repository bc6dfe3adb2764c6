//! The `datapath:` section of the node agent's YAML: which interfaces get the XDP load balancer
//! and the backend TC programs, where maps and program links are pinned, the Maglev parameters
//! and the map capacity. Services are not configured here: the caller derives them from its own
//! service model and hands them to [`crate::driver::Datapath::apply`]. Owns the schema, its
//! validation and the error messages that name the offending key and line. Pure: no I/O.
//!
//! ```yaml
//! datapath:
//!   pinDir: /sys/fs/bpf/herald      # maps and program links; status is read from here
//!   keepPinnedMaps: true            # on shutdown keep maps and links: forwarding continues
//!   interfaces:
//!     - name: eth1
//!       xdp: native                 # native | generic | none
//!       tc: true                    # Geneve decap + reverse NAT (this node hosts backends)
//!   maglev: { tableSize: 1021, seed: JLfvgnHc2kaSUFaI }
//!   maxServices: 10240              # service ports; Maglev map = maxServices × 2 × M × 4 bytes
//!   maxBackends: 131072
//!   neighbourRefreshSeconds: 10
//!   mtu: 1500                       # default: the XDP interface's MTU
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::error::{Error, Result};
use crate::loader::maglev_map_bytes;
use crate::maglev::{self, Seed};

/// Where maps are pinned unless the config or the caller says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/herald";
/// Default interval between re-resolutions of the next-hop MACs.
pub const DEFAULT_NEIGHBOUR_REFRESH_SECONDS: u64 = 10;
/// Default service capacity (service ports) when M is small enough for it to fit
/// [`DEFAULT_MAGLEV_BUDGET`]: 10,000 service ports with headroom.
pub const DEFAULT_MAX_SERVICES: u32 = 10240;
/// Kernel memory the default `maxServices` may give the Maglev map: at M = 1021 the default
/// is [`DEFAULT_MAX_SERVICES`] (80 MiB), at larger M it shrinks to fit (640 at M = 16381).
pub const DEFAULT_MAGLEV_BUDGET: u64 = 80 << 20;
/// Most kernel memory an explicit `maxServices` may give the Maglev map.
pub const MAX_MAGLEV_BYTES: u64 = 2 << 30;
/// Default backend capacity: 10,000 service ports × ~13 distinct endpoints (32 bytes each: 4 MiB).
pub const DEFAULT_MAX_BACKENDS: u32 = 131072;
/// Most backends `maxBackends` may ask for.
pub const MAX_BACKENDS_LIMIT: u32 = 1 << 22;
/// Bytes an LB node puts in front of a client's IP packet at most over an IPv4 underlay: outer
/// IPv4 + UDP + Geneve (36), the DSR option of an IPv6 service (24; 12 for IPv4) and the inner
/// Ethernet header (14).
pub const ENCAP_OVERHEAD: u16 = encap_overhead(false);
/// The same over an IPv6 underlay (outer IPv6 + UDP + Geneve is 56 bytes): 94.
pub const ENCAP_OVERHEAD_V6: u16 = encap_overhead(true);
/// The client packet size the underlay is expected to carry once encapsulated (Ethernet's).
pub const CLIENT_MTU: u16 = 1500;

/// Bytes an LB node puts in front of a client's IP packet at most, over an IPv6 underlay
/// (`outer6`) or an IPv4 one.
pub const fn encap_overhead(outer6: bool) -> u16 {
    let outer = if outer6 {
        datapath_common::OUTER_FIXED_V6
    } else {
        datapath_common::OUTER_FIXED_V4
    };
    (outer + 4 + 4 * datapath_common::GENEVE_OPT_DSR_LEN_V6 as usize + 14) as u16
}

/// A warning when an underlay MTU of `mtu` (on `ifname`) cannot carry a full-size client
/// packet once encapsulated, in outer IPv6 headers when `outer6` (some node's underlay address
/// is IPv6) or else IPv4 ones. Traffic still flows: backend nodes lower the TCP MSS of service
/// flows to fit (the eBPF `mss.rs`) and the LB node answers other packets that do not fit with
/// ICMP too-big, but clients then send smaller packets.
pub fn encap_mtu_warning(ifname: &str, mtu: u16, outer6: bool) -> Option<String> {
    let overhead = encap_overhead(outer6);
    let needed = CLIENT_MTU + overhead;
    let family = if outer6 { "IPv6" } else { "IPv4" };
    (mtu < needed).then(|| {
        format!(
            "{ifname}: MTU {mtu} cannot carry {CLIENT_MTU}-byte client packets once \
             Geneve-encapsulated over {family} (needs {needed}: {overhead} bytes of headers); \
             TCP service flows get a lower MSS, larger packets get ICMP too-big"
        )
    })
}

/// The `datapath:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatapathConfig {
    /// bpffs directory for the pinned maps and program links.
    #[serde(default = "default_pin_dir")]
    pub pin_dir: PathBuf,
    /// On shutdown, leave the pinned maps and program links in place, so the kernel keeps
    /// forwarding and the next agent takes over the flow and reverse-NAT state (default true).
    /// When false, shutdown detaches the programs and removes the pins.
    #[serde(default = "default_true")]
    pub keep_pinned_maps: bool,
    /// Interfaces to attach programs to.
    pub interfaces: Spanned<Vec<InterfaceConfig>>,
    /// Maglev table size and seed.
    #[serde(default)]
    pub maglev: MaglevConfig,
    /// Service capacity (service ports); default [`DatapathConfig::max_services`].
    #[serde(default)]
    pub max_services: Option<Spanned<u32>>,
    /// Backend capacity; default [`DEFAULT_MAX_BACKENDS`].
    #[serde(default)]
    pub max_backends: Option<Spanned<u32>>,
    /// How often the caller should call [`crate::driver::Datapath::refresh`], in seconds.
    #[serde(default = "default_refresh")]
    pub neighbour_refresh_seconds: Spanned<u64>,
    /// Uplink MTU for the too-big check; default: the XDP interface's MTU.
    #[serde(default)]
    pub mtu: Option<Spanned<u16>>,
}

fn default_true() -> bool {
    true
}

fn default_pin_dir() -> PathBuf {
    PathBuf::from(DEFAULT_PIN_DIR)
}

fn default_refresh() -> Spanned<u64> {
    Spanned::new(
        DEFAULT_NEIGHBOUR_REFRESH_SECONDS,
        Location::UNKNOWN,
        Location::UNKNOWN,
    )
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
    /// [`encap_mtu_warning`] for the configured `mtu`, or else for each XDP/TC interface's MTU
    /// as `interface_mtu` reads it (interfaces it cannot read are skipped). `outer6`: some
    /// node's underlay address is IPv6, so Geneve may travel in outer IPv6 headers.
    pub fn mtu_warnings(
        &self,
        interface_mtu: impl Fn(&str) -> Option<u16>,
        outer6: bool,
    ) -> Vec<String> {
        if let Some(m) = &self.mtu {
            return encap_mtu_warning("datapath.mtu", m.value, outer6)
                .into_iter()
                .collect();
        }
        self.interfaces
            .value
            .iter()
            .filter(|i| i.xdp != XdpMode::None || i.tc)
            .filter_map(|i| {
                let name = i.name.value.as_str();
                encap_mtu_warning(name, interface_mtu(name)?, outer6)
            })
            .collect()
    }

    /// Whether `other` asks for the same datapath, whatever lines its settings are written on
    /// (`==` compares the spans too, so an edit elsewhere in a file would count as a change).
    /// Every field is compared.
    pub fn same_settings(&self, other: &Self) -> bool {
        let interfaces = |c: &Self| -> Vec<(String, XdpMode, bool)> {
            c.interfaces
                .value
                .iter()
                .map(|i| (i.name.value.clone(), i.xdp, i.tc))
                .collect()
        };
        let value = |v: &Option<Spanned<u32>>| v.as_ref().map(|s| s.value);
        self.pin_dir == other.pin_dir
            && self.keep_pinned_maps == other.keep_pinned_maps
            && interfaces(self) == interfaces(other)
            && self.maglev.table_size.value == other.maglev.table_size.value
            && self.maglev.seed.value == other.maglev.seed.value
            && value(&self.max_services) == value(&other.max_services)
            && value(&self.max_backends) == value(&other.max_backends)
            && self.neighbour_refresh_seconds.value == other.neighbour_refresh_seconds.value
            && self.mtu.as_ref().map(|m| m.value) == other.mtu.as_ref().map(|m| m.value)
    }

    /// Parses and validates a `datapath:` section given alone as YAML text (tests, tools);
    /// `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let config: Self = serde_saphyr::from_str(text).map_err(|e| Error::ConfigParse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// The interface that carries the XDP load balancer, if any.
    pub fn xdp_interface(&self) -> Option<&InterfaceConfig> {
        self.interfaces
            .value
            .iter()
            .find(|i| i.xdp != XdpMode::None)
    }

    /// The decoded Maglev seed (checked by [`DatapathConfig::validate`]).
    pub fn seed(&self) -> Result<Seed> {
        Seed::from_base64(&self.maglev.seed.value)
    }

    /// The Maglev table size M.
    pub fn table_size(&self) -> u32 {
        self.maglev.table_size.value
    }

    /// Service capacity: `maxServices`, or by default [`DEFAULT_MAX_SERVICES`] capped so the
    /// Maglev map stays within [`DEFAULT_MAGLEV_BUDGET`] at this M.
    pub fn max_services(&self) -> u32 {
        match &self.max_services {
            Some(n) => n.value,
            None => {
                let per_service = maglev_map_bytes(1, self.table_size()).max(1);
                let fit = (DEFAULT_MAGLEV_BUDGET / per_service).clamp(1, u64::from(u32::MAX));
                DEFAULT_MAX_SERVICES.min(fit as u32)
            }
        }
    }

    /// Backend capacity.
    pub fn max_backends(&self) -> u32 {
        self.max_backends
            .as_ref()
            .map_or(DEFAULT_MAX_BACKENDS, |n| n.value)
    }

    /// The refresh interval the caller should keep.
    pub fn neighbour_refresh(&self) -> Duration {
        Duration::from_secs(self.neighbour_refresh_seconds.value)
    }

    /// Rules serde cannot express; errors name the key (under `datapath.`) and its line in
    /// `origin`.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let invalid = |line: u64, key: &str, message: String| Error::Config {
            path: origin.to_owned(),
            line,
            key: format!("datapath.{key}"),
            message,
        };
        if let Err(e) = maglev::check_table_size(self.table_size()) {
            return Err(invalid(
                self.maglev.table_size.referenced.line(),
                "maglev.tableSize",
                e.to_string(),
            ));
        }
        if let Err(e) = Seed::from_base64(&self.maglev.seed.value) {
            return Err(invalid(
                self.maglev.seed.referenced.line(),
                "maglev.seed",
                e.to_string(),
            ));
        }
        if let Some(n) = &self.max_services {
            let bytes = maglev_map_bytes(n.value, self.table_size());
            if n.value == 0 {
                return Err(invalid(
                    n.referenced.line(),
                    "maxServices",
                    "must be at least 1".into(),
                ));
            }
            if bytes > MAX_MAGLEV_BYTES {
                return Err(invalid(
                    n.referenced.line(),
                    "maxServices",
                    format!(
                        "{} services at maglev.tableSize {} need a {} MiB Maglev map \
                         (services × 2 tables × M × 4 bytes), more than the {} MiB limit: \
                         lower maxServices or maglev.tableSize",
                        n.value,
                        self.table_size(),
                        bytes >> 20,
                        MAX_MAGLEV_BYTES >> 20
                    ),
                ));
            }
        }
        if let Some(n) = &self.max_backends
            && !(1..=MAX_BACKENDS_LIMIT).contains(&n.value)
        {
            return Err(invalid(
                n.referenced.line(),
                "maxBackends",
                format!("must be between 1 and {MAX_BACKENDS_LIMIT}"),
            ));
        }
        if let Some(m) = &self.mtu
            && m.value < 576
        {
            return Err(invalid(
                m.referenced.line(),
                "mtu",
                format!("{} is below the IPv4 minimum of 576", m.value),
            ));
        }
        let ifaces = &self.interfaces.value;
        if ifaces.is_empty() {
            return Err(invalid(
                self.interfaces.referenced.line(),
                "interfaces",
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
                    &format!("interfaces[{i}].name"),
                    format!("{name:?} is not an interface name"),
                ));
            }
            if let Some(first) = names.insert(name.clone(), line) {
                return Err(invalid(
                    line,
                    &format!("interfaces[{i}].name"),
                    format!("{name} is already listed at line {first}"),
                ));
            }
            if iface.xdp == XdpMode::None && !iface.tc {
                return Err(invalid(
                    line,
                    &format!("interfaces[{i}]"),
                    format!("{name} has neither `xdp` nor `tc`: nothing to attach"),
                ));
            }
            if iface.xdp != XdpMode::None {
                if let Some(first) = xdp_at {
                    return Err(invalid(
                        line,
                        &format!("interfaces[{i}].xdp"),
                        format!(
                            "not implemented: more than one XDP uplink (the first is at line \
                             {first}); the node address, MAC and MTU are per node"
                        ),
                    ));
                }
                xdp_at = Some(line);
            }
        }
        if self.neighbour_refresh_seconds.value == 0 {
            return Err(invalid(
                self.neighbour_refresh_seconds.referenced.line(),
                "neighbourRefreshSeconds",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const GOOD: &str = "\
pinDir: /sys/fs/bpf/test
interfaces:
  - name: eth1
    xdp: generic
    tc: true
maglev:
  tableSize: 1021
neighbourRefreshSeconds: 3
";

    fn err(text: &str) -> String {
        DatapathConfig::parse(text, "t.yaml")
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn moved_lines_are_the_same_settings_and_a_changed_value_is_not() {
        let c = DatapathConfig::parse(GOOD, "t.yaml").expect("valid");
        let moved =
            DatapathConfig::parse(&format!("# a comment\n{GOOD}"), "t.yaml").expect("valid");
        assert_ne!(c, moved, "the spans differ");
        assert!(c.same_settings(&moved));
        let mtu = DatapathConfig::parse(&format!("{GOOD}mtu: 1400\n"), "t.yaml").expect("valid");
        assert!(!c.same_settings(&mtu));
        let tc =
            DatapathConfig::parse(&GOOD.replace("tc: true", "tc: false"), "t.yaml").expect("valid");
        assert!(!c.same_settings(&tc));
    }

    #[test]
    fn a_section_parses_with_defaults_filled_in() {
        let c = DatapathConfig::parse(GOOD, "t.yaml").expect("valid");
        assert_eq!(c.pin_dir, Path::new("/sys/fs/bpf/test"));
        assert!(c.keep_pinned_maps, "pins are kept by default");
        let x = c.xdp_interface().expect("xdp interface");
        assert_eq!(
            (x.name.value.as_str(), x.xdp, x.tc),
            ("eth1", XdpMode::Generic, true)
        );
        assert_eq!(c.table_size(), 1021);
        assert_eq!(c.seed().expect("seed"), Seed::default());
        assert_eq!(c.neighbour_refresh(), Duration::from_secs(3));
        assert_eq!(c.max_services(), DEFAULT_MAX_SERVICES);
        assert_eq!(c.max_backends(), DEFAULT_MAX_BACKENDS);
        assert_eq!(c.mtu, None);
    }

    #[test]
    fn default_capacity_fits_ten_thousand_service_ports_at_m_1021() {
        let c = DatapathConfig::parse(GOOD, "t").expect("valid");
        assert!(c.max_services() >= 10_000);
        assert!(maglev_map_bytes(c.max_services(), 1021) <= DEFAULT_MAGLEV_BUDGET);
    }

    #[test]
    fn default_capacity_shrinks_with_a_large_table() {
        let c = DatapathConfig::parse(&GOOD.replace("tableSize: 1021", "tableSize: 16381"), "t")
            .expect("valid");
        assert_eq!(c.max_services(), 640);
        assert!(maglev_map_bytes(c.max_services(), 16381) <= DEFAULT_MAGLEV_BUDGET);
    }

    #[test]
    fn too_much_maglev_memory_names_max_services_and_its_line() {
        let text = GOOD.replace("tableSize: 1021", "tableSize: 65521") + "maxServices: 10000\n";
        let e = err(&text);
        assert!(
            e.starts_with("t.yaml:9: datapath.maxServices:") && e.contains("MiB"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = err(&format!("{GOOD}services: []\n"));
        assert!(e.contains("services") && e.contains("line 9"), "{e}");
    }

    #[test]
    fn bad_table_size_names_key_and_line() {
        let e = err(&GOOD.replace("tableSize: 1021", "tableSize: 1000"));
        assert!(e.starts_with("t.yaml:7: datapath.maglev.tableSize:"), "{e}");
    }

    #[test]
    fn bad_seed_names_key_and_line() {
        let e = err(&GOOD.replace("  tableSize: 1021", "  tableSize: 1021\n  seed: abc"));
        assert!(e.starts_with("t.yaml:8: datapath.maglev.seed:"), "{e}");
    }

    #[test]
    fn zero_refresh_names_key_and_line() {
        let e = err(&GOOD.replace("neighbourRefreshSeconds: 3", "neighbourRefreshSeconds: 0"));
        assert!(
            e.starts_with("t.yaml:8: datapath.neighbourRefreshSeconds:"),
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
            e.starts_with("t.yaml:6: datapath.interfaces[1].xdp: not implemented"),
            "{e}"
        );
    }

    #[test]
    fn an_interface_with_nothing_to_attach_is_rejected() {
        let e = err("interfaces:\n  - name: eth0\n    xdp: none\n");
        assert!(e.starts_with("t.yaml:2: datapath.interfaces[0]:"), "{e}");
    }

    #[test]
    fn unknown_mode_is_a_parse_error() {
        assert!(err(&GOOD.replace("xdp: generic", "xdp: offload")).contains("offload"));
    }

    #[test]
    fn embeds_as_an_optional_spanned_section() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Agent {
            datapath: Option<Spanned<DatapathConfig>>,
        }
        let text = format!(
            "datapath:\n{}",
            GOOD.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        let a: Agent = serde_saphyr::from_str(&text).expect("parses");
        let d = a.datapath.expect("section");
        assert_eq!(d.referenced.line(), 2);
        assert_eq!(d.value.maglev.table_size.referenced.line(), 8);
        d.value.validate("agent.yaml").expect("valid");
    }

    #[test]
    fn an_underlay_mtu_without_room_for_the_encapsulation_is_warned_about() {
        let c = DatapathConfig::parse(GOOD, "t.yaml").expect("valid");
        assert_eq!(ENCAP_OVERHEAD, 74);
        let w = c.mtu_warnings(|name| (name == "eth1").then_some(1500), false);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("eth1: MTU 1500 cannot carry"), "{w:?}");
        assert!(w[0].contains("needs 1574"), "{w:?}");
        assert!(c.mtu_warnings(|_| Some(1574), false).is_empty());
        assert!(
            c.mtu_warnings(|_| None, false).is_empty(),
            "unreadable: no claim"
        );
        let c = DatapathConfig::parse(&format!("{GOOD}mtu: 1600\n"), "t.yaml").expect("valid");
        assert!(
            c.mtu_warnings(|_| Some(1500), false).is_empty(),
            "the configured MTU wins"
        );
    }

    #[test]
    fn an_ipv6_underlay_needs_twenty_bytes_more_than_an_ipv4_one() {
        // Outer IPv6 (40) + UDP (8) + Geneve (8) + IPv6 DSR option (24) + inner Ethernet (14).
        assert_eq!(ENCAP_OVERHEAD_V6, 94);
        let c = DatapathConfig::parse(GOOD, "t.yaml").expect("valid");
        assert!(c.mtu_warnings(|_| Some(1574), false).is_empty());
        let w = c.mtu_warnings(|_| Some(1574), true);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("over IPv6") && w[0].contains("needs 1594"),
            "{w:?}"
        );
        assert!(c.mtu_warnings(|_| Some(1594), true).is_empty());
    }
}
