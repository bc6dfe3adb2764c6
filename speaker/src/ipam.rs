//! Glue between the standalone file's `ipam:`/`services:` sections and lb-ipam's standalone
//! allocator: opens the state file at start, re-applies on reload, and publishes the allocations
//! to the rest of the speaker on a `watch` channel.
//!
//! I/O boundary: lb-ipam's state file (read and written inside [`Ipam::open`] / [`Ipam::apply`] /
//! [`Ipam::retry_save`]); [`status_rows`] is pure.
//!
//! A state file that cannot be written (directory read-only or full) does not stop start-up:
//! the allocations are served from memory, the problem is logged, shown by `/readyz` and the
//! `herald_lbipam_state_saved` metric, and the save is retried. A reload computes on a copy and
//! changes nothing unless its result was saved.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_ipam::ServiceKey;
use lb_ipam::standalone::{Report, Standalone};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{Config, ConfigError};

/// Addresses lb-ipam gave each service (services without any are absent).
pub type Allocations = BTreeMap<ServiceKey, Vec<IpAddr>>;

/// One row of `speaker services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// `namespace/name`.
    pub service: String,
    /// Addresses allocated to it.
    pub addresses: Vec<IpAddr>,
    /// Addresses it held that no pool covers any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<IpAddr>,
    /// Whether the request is fully served.
    pub satisfied: bool,
    /// lb-ipam's reason when not (`NoMatchingPool`, `PoolExhausted`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The explanation when not satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Addresses this node's datapath does not serve, so not announced from here, and why.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub not_served: std::collections::BTreeMap<IpAddr, String>,
}

/// The running allocation state of this speaker.
#[derive(Debug)]
pub struct Ipam {
    state: Standalone,
    allocations_tx: watch::Sender<Allocations>,
}

/// The state-file owner recorded by the speaker: the node name, so that two nodes (or the
/// `lb-ipam standalone` tool) never share one file by accident.
pub fn owner(config: &Config) -> String {
    format!("speaker:{}", config.node.name)
}

fn unusable(error: &lb_ipam::Error) -> ConfigError {
    let key = match error {
        lb_ipam::Error::StateIo { .. }
        | lb_ipam::Error::StateCorrupt { .. }
        | lb_ipam::Error::StateForeign { .. } => "ipam.stateFile",
        _ => "ipam",
    };
    ConfigError::Unusable {
        key: key.to_owned(),
        message: error.to_string(),
    }
}

impl Ipam {
    /// Loads the state file (if `ipam.stateFile` is set), re-adopts every held address and
    /// allocates for new services. A corrupt or foreign state file is refused (and left alone).
    pub fn open(config: &Config) -> Result<Self, ConfigError> {
        let state = Standalone::open(
            &config.ipam_config(),
            &config.service_specs(),
            &owner(config),
        )
        .map_err(|e| unusable(&e))?;
        if let Some(error) = state.save_error() {
            tracing::error!(key = "ipam.stateFile", %error, "lb-ipam state not saved: allocations are kept in memory and the save is retried");
        }
        let (allocations_tx, _) = watch::channel(allocations(&state.report()));
        Ok(Self {
            state,
            allocations_tx,
        })
    }

    /// Applies a reloaded configuration without moving held addresses, saves the state and
    /// publishes the new allocations (receivers are only woken when something changed). When
    /// the save fails nothing changes and the error names `ipam.stateFile`.
    pub fn apply(&mut self, config: &Config) -> Result<(), ConfigError> {
        self.state
            .apply(&config.ipam_config(), &config.service_specs())
            .map_err(|e| unusable(&e))?;
        let next = allocations(&self.state.report());
        self.allocations_tx.send_if_modified(|current| {
            let changed = *current != next;
            *current = next;
            changed
        });
        Ok(())
    }

    /// Why the allocations in memory are not on disk, when saving the state file fails.
    pub fn save_error(&self) -> Option<&str> {
        self.state.save_error()
    }

    /// Tries again to save allocations that are not on disk; `Ok` when they are now (or were).
    pub fn retry_save(&mut self) -> Result<(), ConfigError> {
        self.state.retry_save().map_err(|e| unusable(&e))
    }

    /// A receiver of the allocations; it sees every change.
    pub fn subscribe(&self) -> watch::Receiver<Allocations> {
        self.allocations_tx.subscribe()
    }

    /// The current allocations.
    pub fn allocations(&self) -> Allocations {
        self.allocations_tx.borrow().clone()
    }

    /// lb-ipam's report (services and pools).
    pub fn report(&self) -> Report {
        self.state.report()
    }
}

/// The allocations in a report.
pub fn allocations(report: &Report) -> Allocations {
    report
        .services
        .iter()
        .filter(|s| !s.addresses.is_empty())
        .map(|s| (ServiceKey::new(&s.namespace, &s.name), s.addresses.clone()))
        .collect()
}

/// The rows of `speaker services`, in service order.
pub fn status_rows(report: &Report) -> Vec<ServiceStatus> {
    report
        .services
        .iter()
        .map(|s| ServiceStatus {
            service: format!("{}/{}", s.namespace, s.name),
            addresses: s.addresses.clone(),
            lost: s.lost.clone(),
            satisfied: s.satisfied,
            reason: s.reason.clone(),
            message: s.message.clone(),
            not_served: Default::default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, node: &str, services: &str) -> Config {
        let yaml = format!(
            "node: {{name: {node}, routerId: 10.0.0.1}}\nipam:\n  stateFile: {}/ipam.json\n  pools:\n    - name: p\n      blocks: [{{cidr: 192.0.2.0/29}}]\nservices:\n{services}",
            dir.display()
        );
        crate::config::parse(&yaml, "t.yaml").expect("valid config")
    }

    #[test]
    fn allocations_survive_reopen_and_are_published_on_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = config(dir.path(), "n1", "  - name: b\n");
        let ipam = Ipam::open(&first).expect("open");
        let b = ServiceKey::new("default", "b");
        let b_ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(ipam.allocations().get(&b), Some(&vec![b_ip]));
        drop(ipam);

        // `a` sorts before `b` but must not take b's address after a restart.
        let second = config(dir.path(), "n1", "  - name: a\n  - name: b\n");
        let mut ipam = Ipam::open(&second).expect("reopen");
        let a = ServiceKey::new("default", "a");
        assert_eq!(ipam.allocations().get(&b), Some(&vec![b_ip]));
        assert_eq!(
            ipam.allocations().get(&a),
            Some(&vec!["192.0.2.2".parse::<IpAddr>().expect("ip")])
        );

        let mut rx = ipam.subscribe();
        rx.mark_unchanged();
        ipam.apply(&first).expect("apply");
        assert!(rx.has_changed().expect("sender alive"));
        assert_eq!(rx.borrow().keys().collect::<Vec<_>>(), vec![&b]);
        let rows = status_rows(&ipam.report());
        assert_eq!(rows.len(), 1);
        assert!(rows[0].satisfied);
        assert_eq!(rows[0].service, "default/b");
    }

    #[test]
    fn foreign_state_file_is_a_start_up_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Ipam::open(&config(dir.path(), "n1", "  - name: b\n")).expect("open"));
        let before = std::fs::read(dir.path().join("ipam.json")).expect("state file");
        let error = Ipam::open(&config(dir.path(), "n2", "  - name: b\n"))
            .expect_err("another node's file")
            .to_string();
        assert!(error.starts_with("ipam.stateFile: "), "{error}");
        assert_eq!(
            std::fs::read(dir.path().join("ipam.json")).expect("state file"),
            before,
            "the foreign file must be left untouched"
        );
    }

    /// A reload whose result cannot be saved changes nothing and names `ipam.stateFile`; an
    /// unwritable state directory at start-up is reported, not fatal, and the save is retried.
    /// (A directory where the save's temporary file goes fails the write for root too.)
    #[test]
    fn an_unsaved_state_degrades_and_a_failed_reload_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir
            .path()
            .join(format!(".ipam.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&blocker).expect("mkdir");
        let first = config(dir.path(), "n1", "  - name: b\n");
        let mut ipam = Ipam::open(&first).expect("starts without a writable state file");
        let reason = ipam.save_error().expect("not saved").to_owned();
        assert!(reason.contains("ipam.json"), "{reason}");
        let before = ipam.allocations();
        assert_eq!(before.len(), 1);

        let mut rx = ipam.subscribe();
        rx.mark_unchanged();
        let second = config(dir.path(), "n1", "  - name: a\n  - name: b\n");
        let error = ipam.apply(&second).expect_err("cannot save").to_string();
        assert!(error.starts_with("ipam.stateFile: "), "{error}");
        assert_eq!(ipam.allocations(), before);
        assert!(!rx.has_changed().expect("sender alive"));

        std::fs::remove_dir(&blocker).expect("rmdir");
        ipam.retry_save().expect("saved now");
        assert_eq!(ipam.save_error(), None);
        ipam.apply(&second).expect("apply");
        assert_eq!(ipam.allocations().len(), 2);
    }

    #[test]
    fn corrupt_state_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ipam.json"), "{not json").expect("write");
        let error = Ipam::open(&config(dir.path(), "n1", "  - name: b\n"))
            .expect_err("corrupt")
            .to_string();
        assert!(error.contains("ipam"), "{error}");
    }

    #[test]
    fn unsatisfied_service_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(
            dir.path(),
            "n1",
            "  - name: x\n    annotations: {herald.io/pool: nope}\n",
        );
        let ipam = Ipam::open(&cfg).expect("open");
        let rows = status_rows(&ipam.report());
        assert!(!rows[0].satisfied);
        assert!(rows[0].reason.is_some(), "{rows:?}");
        assert!(ipam.allocations().is_empty());
    }
}
