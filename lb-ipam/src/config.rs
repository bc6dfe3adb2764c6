//! Schema of the `ipam:` section of Herald's standalone YAML file, and turning it (with the
//! `services:` list) into pools and allocator requests. Pure; the file is read by the caller.
//!
//! ```yaml
//! ipam:
//!   stateFile: /var/lib/herald/lb-ipam.json
//!   pools:
//!     - name: public
//!       blocks: [{cidr: 192.0.2.0/24}, {start: 198.51.100.10, stop: 198.51.100.20}]
//!       serviceSelector: {matchLabels: {exposure: public}}
//!       namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [web]}]}
//!       allowFirstLastIPs: false
//!       disabled: false
//!       autoAssign: true
//!       priority: 10
//! ```
//! Pools are listed oldest first: a pool overlapping an earlier one is marked conflicting.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::{Block, Pool, PoolSpec};
use crate::request::{Request, ServiceKey};
use crate::selector::LabelSelector;
use crate::service::ServiceSpec;

fn default_true() -> bool {
    true
}

/// The `ipam:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfig {
    /// Pools, oldest first.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Where allocations are persisted; without it they do not survive a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,
}

/// One pool of the `ipam.pools` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique pool name.
    pub name: String,
    /// Address blocks.
    pub blocks: Vec<BlockConfig>,
    /// Services allowed to use the pool (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    /// Namespaces allowed to use the pool (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Also hand out the first and last address of each CIDR.
    #[serde(default, rename = "allowFirstLastIPs")]
    pub allow_first_last_ips: bool,
    /// Keep allocations, make no new ones.
    #[serde(default)]
    pub disabled: bool,
    /// Serve services that do not ask for this pool; true when omitted.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Lower is preferred; unset sorts last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// One block: `{cidr}` or `{start, stop}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockConfig {
    /// A prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
    /// First address of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<IpAddr>,
    /// Last address of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<IpAddr>,
}

impl BlockConfig {
    /// The block, if exactly one of `cidr` or `start`+`stop` is given.
    pub fn to_block(&self) -> std::result::Result<Block, String> {
        match (self.cidr, self.start, self.stop) {
            (Some(cidr), None, None) => Ok(Block::Cidr { cidr }),
            (None, Some(start), Some(stop)) => Ok(Block::Range { start, stop }),
            _ => Err("a block needs either `cidr` or both `start` and `stop`".into()),
        }
    }
}

impl PoolConfig {
    /// Validates the pool.
    pub fn to_pool(&self) -> Result<Pool> {
        let blocks = self
            .blocks
            .iter()
            .map(BlockConfig::to_block)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|reason| Error::InvalidPool {
                pool: self.name.clone(),
                reason,
            })?;
        Pool::new(
            self.name.clone(),
            PoolSpec {
                blocks,
                service_selector: self.service_selector.clone(),
                namespace_selector: self.namespace_selector.clone(),
                allow_first_last_ips: self.allow_first_last_ips,
                disabled: self.disabled,
                auto_assign: self.auto_assign,
                priority: self.priority,
            },
        )
    }
}

impl IpamConfig {
    /// Parses the section on its own (for tests and tools); errors carry line and column.
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        serde_saphyr::from_str(yaml).map_err(|e| Error::Yaml {
            context: "ipam section".into(),
            source: Box::new(e),
        })
    }

    /// Validated pools, oldest first. A standalone file with an invalid pool is refused whole.
    pub fn pools(&self) -> Result<Vec<Pool>> {
        let pools = self
            .pools
            .iter()
            .map(PoolConfig::to_pool)
            .collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::BTreeSet::new();
        for p in &pools {
            if !seen.insert(p.name()) {
                return Err(Error::DuplicatePool(p.name().to_owned()));
            }
        }
        Ok(pools)
    }
}

/// Requests built from `services:` entries.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    /// Services to allocate for, in key order.
    pub valid: Vec<Request>,
    /// Services whose request is malformed, with the reason; they keep what they hold.
    pub invalid: Vec<(ServiceKey, String)>,
}

/// Builds allocator requests from `services:` entries: those of type LoadBalancer with our class
/// or none. Namespace labels come from `namespace_labels` (by namespace name) or default to
/// the `kubernetes.io/metadata.name` label. Duplicate keys are reported as invalid.
pub fn build_requests(
    services: &[ServiceSpec],
    namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> Requests {
    let mut out = Requests::default();
    let mut seen = BTreeMap::new();
    for s in services.iter().filter(|s| s.wants_load_balancer_ip()) {
        let key = s.key();
        if seen.insert(key.clone(), ()).is_some() {
            out.invalid
                .push((key, "service listed more than once".into()));
            continue;
        }
        match s.ipam_request(namespace_labels.get(&s.namespace)) {
            Ok(r) => out.valid.push(r),
            Err(e) => out.invalid.push((key, e.to_string())),
        }
    }
    out.valid.sort_by(|a, b| a.key.cmp(&b.key));
    out.valid.dedup_by(|a, b| a.key == b.key);
    out.valid
        .retain(|r| !out.invalid.iter().any(|(k, _)| *k == r.key));
    out.invalid.sort();
    out.invalid.dedup_by(|a, b| a.0 == b.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_with_defaults() {
        let c = IpamConfig::from_yaml(
            "stateFile: /tmp/x.json\npools:\n  - name: p\n    blocks: [{cidr: 10.0.0.0/24}, {start: 10.0.1.5, stop: 10.0.1.9}]\n",
        )
        .expect("parse");
        let pools = c.pools().expect("pools");
        assert_eq!(pools[0].total(), 254 + 5);
        assert!(pools[0].spec().auto_assign);
        assert_eq!(
            c.state_file.as_deref(),
            Some(std::path::Path::new("/tmp/x.json"))
        );
    }

    #[test]
    fn allow_first_last_ips_uses_the_cilium_spelling() {
        let c = IpamConfig::from_yaml(
            "pools:\n  - name: p\n    allowFirstLastIPs: true\n    blocks: [{cidr: 10.0.0.0/30}]\n",
        )
        .expect("parse");
        assert_eq!(c.pools().expect("pools")[0].total(), 4);
    }

    #[test]
    fn bad_values_report_line_and_key() {
        let err =
            IpamConfig::from_yaml("pools:\n  - name: p\n    blocks:\n      - cidr: 10.0.0.0/33\n")
                .expect_err("bad cidr")
                .to_string();
        assert!(err.contains('4'), "{err}");
        let err = IpamConfig::from_yaml("pools:\n  - name: p\n    blocks: []\n    prio: 1\n")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("prio"), "{err}");
    }

    #[test]
    fn half_blocks_and_duplicates_are_refused() {
        let c = IpamConfig::from_yaml("pools:\n  - name: p\n    blocks: [{start: 10.0.0.1}]\n")
            .expect("parse");
        assert!(c.pools().is_err());
        let c = IpamConfig::from_yaml(
            "pools:\n  - {name: p, blocks: [{cidr: 10.0.0.0/24}]}\n  - {name: p, blocks: [{cidr: 10.0.1.0/24}]}\n",
        )
        .expect("parse");
        assert!(matches!(c.pools(), Err(Error::DuplicatePool(_))));
    }

    #[test]
    fn requests_skip_foreign_services_and_report_bad_ones() {
        let mut ok = ServiceSpec::new("a", "ok");
        ok.ports.push(crate::service::ServicePort {
            name: None,
            port: 80,
            protocol: crate::request::Protocol::TCP,
        });
        let mut bad = ServiceSpec::new("a", "bad");
        bad.annotations
            .insert("herald.io/ips".into(), "nope".into());
        let mut foreign = ServiceSpec::new("a", "foreign");
        foreign.load_balancer_class = Some("x".into());
        let dup = ServiceSpec::new("a", "ok");
        let r = build_requests(&[ok, bad, foreign, dup], &BTreeMap::new());
        assert!(r.valid.is_empty(), "duplicate key makes both invalid");
        let keys: Vec<_> = r.invalid.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(keys, ["bad", "ok"]);
    }
}
