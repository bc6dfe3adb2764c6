//! Glue between the speaker and arp-responder: builds the L2 announcer's service list from the
//! `services:` entries and their lb-ipam allocations (plus the fixed `l2.services`), starts the
//! announcer, and turns its status into the rows of `speaker l2`.
//!
//! I/O boundary: [`L2`] owns the running announcer (AF_PACKET sockets, netlink, inside
//! arp-responder); [`desired_services`], [`report`] and [`render_table`] are pure.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use arp_responder::config::{NodeSpec, ServiceSpec as L2Service, TrafficPolicy as L2Policy};
use arp_responder::election::MembershipStore;
use arp_responder::runtime::{L2Handle, L2Responder, store_from_config};
use arp_responder::status::Status;
use lb_ipam::service::{SHARING_KEY_ANNOTATIONS, TrafficPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::{Config, ConfigError};
use crate::ipam::Allocations;
use crate::sanitize::printable;

/// What the announcer should answer for: every service with addresses (lb-ipam's allocation,
/// its `externalIPs` the file's allow-list admits) and the fixed `l2.services`. Services without
/// an address are left out.
pub fn desired_services(config: &Config, allocations: &Allocations) -> Vec<L2Service> {
    let mut out = Vec::new();
    for spec in config.services.iter().map(|s| &s.value) {
        let mut ips: Vec<IpAddr> = allocations.get(&spec.key()).cloned().unwrap_or_default();
        for ip in config.admitted_external_ips(spec) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        if ips.is_empty() {
            continue;
        }
        let ready_endpoint_nodes: BTreeSet<String> = spec
            .endpoints
            .iter()
            .filter(|e| e.ready)
            .map(|e| e.node_name.clone())
            .collect();
        let sharing_key = SHARING_KEY_ANNOTATIONS
            .iter()
            .find_map(|name| spec.annotations.get(*name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        out.push(L2Service {
            name: spec.name.clone(),
            namespace: spec.namespace.clone(),
            ips,
            external_traffic_policy: match spec.external_traffic_policy {
                TrafficPolicy::Cluster => L2Policy::Cluster,
                TrafficPolicy::Local => L2Policy::Local,
            },
            ready_endpoint_nodes: ready_endpoint_nodes.into_iter().collect(),
            sharing_key,
        });
    }
    if let Some(l2) = &config.l2 {
        out.extend(l2.value.services.iter().cloned());
    }
    out
}

/// One VIP row of `speaker l2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VipRow {
    /// The service IP.
    pub vip: IpAddr,
    /// Services using it (`namespace/name`).
    pub services: Vec<String>,
    /// The leader as this node sees it.
    pub leader: Option<String>,
    /// Whether this node answers for it.
    pub led_by_me: bool,
    /// Interfaces it is answered on here (empty when another node leads).
    pub interfaces: Vec<String>,
    /// ARP replies / neighbor advertisements this node sent for it.
    pub replies_sent: u64,
    /// Gratuitous ARPs / unsolicited NAs this node sent for it.
    pub garps_sent: u64,
}

/// The answer to `speaker l2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2Report {
    /// This node.
    pub node: String,
    /// Whether it hears a majority of the membership.
    pub quorum: bool,
    /// Peers heard within the dead interval.
    pub alive_peers: Vec<String>,
    /// Per VIP.
    pub vips: Vec<VipRow>,
}

/// The report for a status snapshot.
pub fn report(status: &Status) -> L2Report {
    L2Report {
        node: status.node.clone(),
        quorum: status.quorum,
        alive_peers: status.alive_peers.iter().map(|n| printable(n)).collect(),
        vips: status
            .vips
            .iter()
            .map(|v| VipRow {
                vip: v.vip,
                services: v.services.clone(),
                leader: v.leader.as_deref().map(printable),
                led_by_me: v.led_by_me,
                interfaces: v.interfaces.clone(),
                replies_sent: v.replies_sent,
                garps_sent: v.garps_sent,
            })
            .collect(),
    }
}

/// The human-readable `speaker l2` table.
pub fn render_table(report: &L2Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {} quorum {} alive peers [{}]",
        report.node,
        if report.quorum { "yes" } else { "no" },
        report.alive_peers.join(", ")
    );
    let _ = writeln!(
        out,
        "{:<40} {:<16} {:<4} {:<16} {:>8} {:>6}  SERVICES",
        "VIP", "LEADER", "ME", "INTERFACES", "REPLIES", "GARPS"
    );
    for v in &report.vips {
        let interfaces = if v.interfaces.is_empty() {
            "-".to_owned()
        } else {
            v.interfaces.join(",")
        };
        let _ = writeln!(
            out,
            "{:<40} {:<16} {:<4} {:<16} {:>8} {:>6}  {}",
            v.vip,
            v.leader.as_deref().unwrap_or("-"),
            if v.led_by_me { "yes" } else { "no" },
            interfaces,
            v.replies_sent,
            v.garps_sent,
            v.services.join(",")
        );
    }
    out
}

fn unusable(e: arp_responder::Error) -> ConfigError {
    ConfigError::Unusable {
        key: "l2".into(),
        message: e.to_string(),
    }
}

/// The running announcer, shared by the control socket, metrics and the reload loop.
#[derive(Debug, Clone)]
pub struct L2 {
    handle: Arc<Mutex<Option<L2Handle>>>,
    status_rx: tokio::sync::watch::Receiver<Status>,
    /// What the announcer was started with, services left out (those change at run time).
    settings: arp_responder::config::L2Config,
}

impl L2 {
    /// Starts the announcer for `config.l2` (`None` without that section) with `services`
    /// (from [`desired_services`], gated by what the datapath serves). Must run inside a tokio
    /// runtime.
    pub fn start(config: &Config, services: Vec<L2Service>) -> Result<Option<Self>, ConfigError> {
        let Some(mut l2_config) = config.l2_config() else {
            return Ok(None);
        };
        l2_config.services = services;
        let store = store_from_config(&l2_config).map_err(unusable)?;
        let auth = config
            .l2
            .as_ref()
            .map(|l2| l2.value.auth.clone())
            .unwrap_or_default();
        Self::start_with(l2_config, store, &auth).map(Some)
    }

    /// Starts the announcer for a complete arp-responder configuration (services included)
    /// with an explicit membership store and heartbeat authentication: Kubernetes mode builds
    /// them from cluster objects and flags. Must run inside a tokio runtime.
    pub fn start_with(
        l2_config: arp_responder::config::L2Config,
        store: Arc<dyn MembershipStore>,
        auth: &arp_responder::config::AuthConfig,
    ) -> Result<Self, ConfigError> {
        let key = auth.load().map_err(|e| ConfigError::Unusable {
            key: "l2.auth".into(),
            message: e.to_string(),
        })?;
        let settings = arp_responder::config::L2Config {
            services: Vec::new(),
            ..l2_config.clone()
        };
        let handle = L2Responder::start_with_auth(l2_config, store, key).map_err(unusable)?;
        Ok(Self {
            settings,
            status_rx: handle.watch_status(),
            handle: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// What the announcer was started with, services left out.
    pub fn settings(&self) -> &arp_responder::config::L2Config {
        &self.settings
    }

    /// Replaces the cluster's nodes (eligibility) without restarting the election.
    pub async fn set_nodes(&self, nodes: Vec<NodeSpec>) -> Result<(), ConfigError> {
        let guard = self.handle.lock().await;
        let Some(handle) = guard.as_ref() else {
            return Ok(());
        };
        handle.set_nodes(nodes).await.map_err(unusable)
    }

    /// Replaces the announced services (after a reload or a new allocation).
    pub async fn set_services(&self, services: Vec<L2Service>) -> Result<(), ConfigError> {
        let guard = self.handle.lock().await;
        let Some(handle) = guard.as_ref() else {
            return Ok(());
        };
        handle
            .set_services(services)
            .await
            .map_err(|e| ConfigError::Unusable {
                key: "l2".into(),
                message: e.to_string(),
            })
    }

    /// True when `config`'s `l2` section differs from the running one in anything but its
    /// services (interfaces, nodes, timers, store): those need a restart of the speaker.
    pub fn needs_restart_for(&self, config: &Config) -> bool {
        match config.l2_config() {
            Some(mut next) => {
                next.services.clear();
                next != self.settings
            }
            None => true,
        }
    }

    /// The latest status snapshot.
    pub fn status(&self) -> Status {
        self.status_rx.borrow().clone()
    }

    /// Stops answering, announces it to the peers and releases the store lease.
    pub async fn shutdown(&self) {
        if let Some(handle) = self.handle.lock().await.take() {
            handle.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "node: {name: n1, routerId: 10.0.0.1}\nexternalIPs: {allowedCIDRs: [198.51.100.0/24]}\nl2:\n  nodes: [{name: n1}, {name: n2}]\n  services:\n    - {name: fixed, ips: [192.168.9.9]}\nservices:\n  - name: web\n    externalTrafficPolicy: Local\n    annotations: {herald.io/sharing-key: k}\n    externalIPs: [198.51.100.7]\n    endpoints:\n      - {ip: 10.244.0.5, nodeName: n2}\n      - {ip: 10.244.0.6, nodeName: n1, ready: false}\n  - name: idle\n";

    #[test]
    fn services_get_allocated_and_external_ips_and_fixed_ones_follow() {
        let config = crate::config::parse(BASE, "t.yaml").expect("valid");
        let allocations = Allocations::from([(
            lb_ipam::ServiceKey::new("default", "web"),
            vec!["192.0.2.1".parse().expect("ip")],
        )]);
        let services = desired_services(&config, &allocations);
        assert_eq!(services.len(), 2, "idle has no address: {services:?}");
        let web = &services[0];
        assert_eq!(
            web.ips,
            vec![
                "192.0.2.1".parse::<IpAddr>().expect("ip"),
                "198.51.100.7".parse().expect("ip")
            ]
        );
        assert_eq!(web.external_traffic_policy, L2Policy::Local);
        assert_eq!(web.ready_endpoint_nodes, vec!["n2".to_owned()]);
        assert_eq!(web.sharing_key.as_deref(), Some("k"));
        assert_eq!(services[1].name, "fixed");
    }

    #[test]
    fn table_shows_leader_interface_and_counters() {
        let report = L2Report {
            node: "n1".into(),
            quorum: true,
            alive_peers: vec!["n2".into()],
            vips: vec![VipRow {
                vip: "192.0.2.1".parse().expect("ip"),
                services: vec!["default/web".into()],
                leader: Some("n1".into()),
                led_by_me: true,
                interfaces: vec!["eth0".into()],
                replies_sent: 3,
                garps_sent: 4,
            }],
        };
        let text = render_table(&report);
        let row = text.lines().nth(2).expect("a VIP row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            vec!["192.0.2.1", "n1", "yes", "eth0", "3", "4", "default/web"]
        );
    }
}
