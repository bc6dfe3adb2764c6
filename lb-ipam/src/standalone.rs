//! Standalone mode: pools and services from Herald's YAML file, allocations persisted in the
//! state file. I/O boundary: [`StateFile`] reads and writes the state; reading the YAML file is
//! left to the caller ([`parse_config`] takes its text).
//!
//! Every change is computed on a copy of the allocation, saved, and only then made current, so
//! a failed save (state directory read-only or full) leaves the running state as it was. At
//! start-up a failed save is not fatal: the state read from the file (plus new allocations) is
//! kept in memory, [`Standalone::save_error`] says why it is not on disk, and
//! [`Standalone::retry_save`] tries again. A state file that cannot be *read* still stops
//! start-up: without it, held addresses could move.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::allocator::{Allocator, Held, Outcome};
use crate::config::{IpamConfig, build_requests};
use crate::error::{Error, Result};
use crate::request::ServiceKey;
use crate::service::ServiceSpec;
use crate::store::StateFile;

/// The parts of Herald's standalone file lb-ipam reads. The other top-level sections are
/// accepted and skipped (the speaker owns their schema); unknown top-level keys are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StandaloneConfig {
    /// The `ipam:` section.
    #[serde(default)]
    pub ipam: IpamConfig,
    /// The `services:` list.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    #[serde(default, rename = "node")]
    _node: Option<IgnoredAny>,
    #[serde(default, rename = "bgp")]
    _bgp: Option<IgnoredAny>,
    #[serde(default, rename = "l2")]
    _l2: Option<IgnoredAny>,
    #[serde(default, rename = "datapath")]
    _datapath: Option<IgnoredAny>,
    #[serde(default, rename = "nodes")]
    _nodes: Option<IgnoredAny>,
    #[serde(default, rename = "api")]
    _api: Option<IgnoredAny>,
    #[serde(default, rename = "externalIPs")]
    _external_ips: Option<IgnoredAny>,
}

/// Parses a standalone file's text; errors carry line and column.
pub fn parse_config(yaml: &str, file_name: &str) -> Result<StandaloneConfig> {
    serde_saphyr::from_str(yaml).map_err(|e| Error::Yaml {
        context: file_name.to_owned(),
        source: Box::new(e),
    })
}

/// Allocation state of a standalone Herald instance, persisted after every change.
#[derive(Debug)]
pub struct Standalone {
    store: Option<StateFile>,
    allocator: Allocator,
    /// Why the current state is not on disk (the last save failed), if it is not.
    unsaved: Option<String>,
}

impl Standalone {
    /// Loads the state file (if configured), rebuilds the allocation from it without moving
    /// anything, allocates for new services, and saves. A corrupt, foreign or unreadable state
    /// file is an error and is left untouched; a failed save is not (see the module header and
    /// [`Standalone::save_error`]).
    pub fn open(config: &IpamConfig, services: &[ServiceSpec], owner: &str) -> Result<Self> {
        let store = config
            .state_file
            .as_ref()
            .map(|p| StateFile::new(p.clone(), owner));
        let mut held: BTreeMap<ServiceKey, Held> = match &store {
            Some(s) => s.load()?.unwrap_or_default().into_iter().collect(),
            None => BTreeMap::new(),
        };
        let pools = config.pools()?;
        let requests = build_requests(services, &BTreeMap::new());
        let valid = requests
            .valid
            .into_iter()
            .map(|r| {
                let h = held.remove(&r.key).unwrap_or_default();
                (r, h)
            })
            .collect();
        let invalid = requests
            .invalid
            .into_iter()
            .map(|(k, reason)| {
                let h = held.remove(&k).unwrap_or_default();
                (k, reason, h)
            })
            .collect();
        let allocator = Allocator::rebuild_with_invalid(pools, valid, invalid)?;
        let mut this = Self {
            store,
            allocator,
            unsaved: None,
        };
        if let Err(error) = this.save(&this.allocator) {
            this.unsaved = Some(error.to_string());
        }
        Ok(this)
    }

    /// Applies a new configuration: pools first, then removed, changed and new services in
    /// key order. The result is computed on a copy and saved; only then does it replace the
    /// current state. On any error (invalid pools, failed save) nothing changes.
    pub fn apply(&mut self, config: &IpamConfig, services: &[ServiceSpec]) -> Result<()> {
        let mut next = self.allocator.clone();
        Self::plan(&mut next, config, services)?;
        // Nothing to write when the held addresses did not change and the disk is current.
        if self.unsaved.is_some() || next.snapshot() != self.allocator.snapshot() {
            self.save(&next)?;
        }
        self.allocator = next;
        self.unsaved = None;
        Ok(())
    }

    /// Saves the current state again after a failed save; `Ok` when it is on disk now (or
    /// already was).
    pub fn retry_save(&mut self) -> Result<()> {
        if self.unsaved.is_none() {
            return Ok(());
        }
        match self.save(&self.allocator) {
            Ok(()) => {
                self.unsaved = None;
                Ok(())
            }
            Err(error) => {
                self.unsaved = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Why the current state is not on disk, when the last save failed.
    pub fn save_error(&self) -> Option<&str> {
        self.unsaved.as_deref()
    }

    fn plan(
        allocator: &mut Allocator,
        config: &IpamConfig,
        services: &[ServiceSpec],
    ) -> Result<()> {
        allocator.set_pools(config.pools()?)?;
        let requests = build_requests(services, &BTreeMap::new());
        let keep: std::collections::BTreeSet<&ServiceKey> = requests
            .valid
            .iter()
            .map(|r| &r.key)
            .chain(requests.invalid.iter().map(|(k, _)| k))
            .collect();
        let gone: Vec<ServiceKey> = allocator
            .services()
            .map(|v| v.key.clone())
            .filter(|k| !keep.contains(k))
            .collect();
        for k in &gone {
            allocator.remove(k);
        }
        for r in requests.valid {
            allocator.upsert(r);
        }
        for (k, reason) in &requests.invalid {
            allocator.reject(k, reason.clone());
        }
        Ok(())
    }

    fn save(&self, allocator: &Allocator) -> Result<()> {
        match &self.store {
            Some(s) => s.save(&allocator.snapshot()),
            None => Ok(()),
        }
    }

    /// The allocation state.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// A serialisable summary of services and pools.
    pub fn report(&self) -> Report {
        report(&self.allocator)
    }
}

/// Summary of an allocation state, for the CLI and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Per service.
    pub services: Vec<ServiceReport>,
    /// Per pool.
    pub pools: Vec<PoolReport>,
}

/// One service of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Allocated addresses.
    pub addresses: Vec<std::net::IpAddr>,
    /// Lost addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<std::net::IpAddr>,
    /// Satisfied or not.
    pub satisfied: bool,
    /// Reason when unsatisfied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation when unsatisfied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One pool of a [`Report`]; counts are decimal strings because they may exceed 64 bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReport {
    /// Name.
    pub name: String,
    /// Allocatable addresses.
    pub total: String,
    /// Used addresses.
    pub used: String,
    /// Free addresses.
    pub available: String,
    /// Disabled.
    pub disabled: bool,
    /// Earlier pool this one overlaps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts_with: Option<String>,
}

/// Builds a [`Report`] from any allocator.
pub fn report(a: &Allocator) -> Report {
    Report {
        services: a
            .services()
            .map(|v| {
                let (satisfied, reason, message) = match v.outcome {
                    Outcome::Satisfied => (true, None, None),
                    Outcome::Unsatisfied(u) => {
                        (false, Some(u.reason().to_owned()), Some(u.to_string()))
                    }
                };
                ServiceReport {
                    namespace: v.key.namespace.clone(),
                    name: v.key.name.clone(),
                    addresses: v.addresses,
                    lost: v.lost,
                    satisfied,
                    reason,
                    message,
                }
            })
            .collect(),
        pools: a
            .pool_statuses()
            .into_iter()
            .map(|p| PoolReport {
                name: p.name,
                total: p.total.to_string(),
                used: p.used.to_string(),
                available: p.available.to_string(),
                disabled: p.disabled,
                conflicts_with: p.conflicts_with,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
node: {name: n1}
bgp: {localAsn: 65001}
ipam:
  pools:
    - name: v4
      blocks: [{cidr: 192.0.2.0/29}]
services:
  - name: a
  - name: b
    ports: [{port: 80}]
"#;

    #[test]
    fn standalone_file_keeps_other_sections_out_of_the_way() {
        let c = parse_config(FILE, "herald.yaml").expect("parse");
        assert_eq!(c.services.len(), 2);
        let err = parse_config("ipam: {}\nipamx: {}\n", "herald.yaml")
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.contains("herald.yaml") && err.contains("ipamx"),
            "{err}"
        );
    }

    #[test]
    fn restart_from_state_file_keeps_addresses_even_when_order_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = parse_config(FILE, "herald.yaml").expect("parse");
        c.ipam.state_file = Some(dir.path().join("state.json"));
        let first = Standalone::open(&c.ipam, &c.services, "n1").expect("open");
        let a_ip = first.report().services[0].addresses.clone();
        drop(first);
        // Without the state file, "aa" (sorting first) would take a's address.
        let mut services = c.services.clone();
        services.insert(0, ServiceSpec::new("default", "0-new"));
        let second = Standalone::open(&c.ipam, &services, "n1").expect("reopen");
        let rep = second.report();
        let a = rep.services.iter().find(|s| s.name == "a").expect("a");
        assert_eq!(a.addresses, a_ip);
        let new = rep
            .services
            .iter()
            .find(|s| s.name == "0-new")
            .expect("new");
        assert_ne!(new.addresses, a_ip);
        assert!(new.satisfied);
    }

    /// Issue 14 item 6: a round is computed on a copy and committed only after the save. The
    /// state file's directory is replaced by a plain file, which fails the save for root too.
    #[test]
    fn a_failed_save_leaves_the_running_state_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("state");
        std::fs::create_dir(&sub).expect("mkdir");
        let mut c = parse_config(FILE, "herald.yaml").expect("parse");
        c.ipam.state_file = Some(sub.join("state.json"));
        let mut s = Standalone::open(&c.ipam, &c.services, "n1").expect("open");
        assert_eq!(s.save_error(), None);
        let before = s.report();
        std::fs::remove_dir_all(&sub).expect("rm");
        std::fs::write(&sub, "not a directory").expect("file in the way");

        let mut services = c.services.clone();
        services.push(ServiceSpec::new("default", "c"));
        let err = s.apply(&c.ipam, &services).expect_err("save fails");
        assert!(matches!(err, Error::StateIo { .. }), "{err}");
        assert!(err.to_string().contains("state.json"), "{err}");
        assert_eq!(s.report(), before, "memory must not run ahead of the disk");

        // A reload that changes no allocation needs no write and succeeds.
        s.apply(&c.ipam, &c.services).expect("nothing to save");
        assert_eq!(s.report(), before);

        // Once the directory is back, the same change goes through and is on disk.
        std::fs::remove_file(&sub).expect("rm");
        std::fs::create_dir(&sub).expect("mkdir");
        s.apply(&c.ipam, &services).expect("apply");
        assert_eq!(s.allocator().len(), 3);
        let reopened = Standalone::open(&c.ipam, &services, "n1").expect("reopen");
        assert_eq!(reopened.report(), s.report());
    }

    /// Issue 14 item 7: a state directory that cannot be written at start-up is not fatal: the
    /// state is kept in memory with the reason, and a later retry writes it. A directory where
    /// the save's temporary file goes makes the write fail for root too.
    #[test]
    fn start_up_with_an_unwritable_state_directory_degrades_and_retries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir
            .path()
            .join(format!(".state.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&blocker).expect("mkdir");
        let mut c = parse_config(FILE, "herald.yaml").expect("parse");
        c.ipam.state_file = Some(dir.path().join("state.json"));
        let mut s = Standalone::open(&c.ipam, &c.services, "n1").expect("starts anyway");
        assert_eq!(s.allocator().len(), 2);
        let reason = s.save_error().expect("not saved").to_owned();
        assert!(reason.contains("state.json.tmp"), "{reason}");
        assert!(s.retry_save().is_err());
        assert!(s.save_error().is_some());

        std::fs::remove_dir(&blocker).expect("rmdir");
        s.retry_save().expect("saved now");
        assert_eq!(s.save_error(), None);
        let reopened = Standalone::open(&c.ipam, &c.services, "n1").expect("reopen");
        assert_eq!(reopened.report(), s.report());
    }

    #[test]
    fn foreign_state_file_stops_startup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = parse_config(FILE, "herald.yaml").expect("parse");
        c.ipam.state_file = Some(dir.path().join("state.json"));
        Standalone::open(&c.ipam, &c.services, "n1").expect("open");
        let err = Standalone::open(&c.ipam, &c.services, "n2").expect_err("foreign");
        assert!(matches!(err, Error::StateForeign { .. }));
    }

    #[test]
    fn apply_removes_and_adds_services() {
        let c = parse_config(FILE, "herald.yaml").expect("parse");
        let mut s = Standalone::open(&c.ipam, &c.services, "n1").expect("open");
        assert_eq!(s.allocator().len(), 2);
        s.apply(&c.ipam, &c.services[1..]).expect("apply");
        assert_eq!(s.allocator().len(), 1);
        assert_eq!(s.report().pools[0].used, "1");
    }
}
