//! The pure decisions of the Kubernetes-mode runtime ([`super::runtime`]): given what runs and
//! the newly translated [`Desired`] state, what to do with the BGP instance ([`bgp_action`]) and
//! the L2 announcer ([`l2_action`]), which configuration the instance gets ([`instance_config`]),
//! and which problems are new or resolved since the last translation ([`ProblemLog`]), so each
//! is logged once rather than on every loop. No I/O, no clocks.

use std::collections::BTreeSet;
use std::path::PathBuf;

use arp_responder::config::L2Config;

use super::translate::Desired;
use super::watch::is_availability_problem;
use crate::advertise::ServiceState;
use crate::config::{ApiConfig, BgpConfig, Config};
use crate::ipam::ServiceStatus;

/// What to do with the BGP instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgpAction {
    /// Nothing runs and nothing should.
    Nothing,
    /// No instance runs; start one.
    Start,
    /// Apply the new configuration to the running instance (only sessions whose peering
    /// changed are reset) and hand it the services.
    Reload,
    /// The configuration changed in something the instance cannot change while running
    /// (listen address or port, route-server mode, FIB import): stop it and start a new one.
    Restart,
    /// This node no longer runs BGP (no `BGPClusterConfig` selects it any more).
    Stop,
}

/// Whether moving from `running` to `desired` needs a new instance.
fn needs_restart(running: &BgpConfig, desired: &BgpConfig) -> bool {
    running.listen != desired.listen
        || running.route_server != desired.route_server
        || running.fib_import.as_ref().map(|f| f.value)
            != desired.fib_import.as_ref().map(|f| f.value)
}

/// Pure: the action that takes the instance running `running` (if any) to `desired`.
pub fn bgp_action(running: Option<&Config>, desired: &Config) -> BgpAction {
    match (running.and_then(|c| c.bgp.as_ref()), desired.bgp.as_ref()) {
        (None, None) => BgpAction::Nothing,
        (None, Some(_)) => BgpAction::Start,
        (Some(_), None) => BgpAction::Stop,
        (Some(r), Some(d)) if needs_restart(r, d) => BgpAction::Restart,
        (Some(_), Some(_)) => BgpAction::Reload,
    }
}

/// Pure: the configuration handed to the instance: the translated one with the runtime's ops
/// settings (`api`, fixed for the process's life), the graceful-restart state directory, and
/// each MD5-authenticated peer pointed at its key file (`key_files`, from
/// [`super::md5::KeyFiles`]).
pub fn instance_config(
    desired: &Desired,
    api: &ApiConfig,
    state_dir: Option<&PathBuf>,
    key_files: &std::collections::BTreeMap<std::net::IpAddr, PathBuf>,
) -> Config {
    let mut config = desired.config.clone();
    config.api = api.clone();
    if let Some(bgp) = config.bgp.as_mut() {
        bgp.state_dir = state_dir.cloned();
        for peer in &mut bgp.peers {
            peer.password_file = key_files.get(&peer.address.value).cloned();
        }
    }
    config
}

/// Pure: the services and allocations the instance's advertisements select from.
pub fn service_state(desired: &Desired) -> ServiceState {
    ServiceState {
        services: desired.services.clone(),
        allocations: desired.allocations.clone(),
    }
}

/// Pure: `speaker services` in Kubernetes mode: every service with the addresses its
/// `status.loadBalancer.ingress` carries (lb-ipam's allocations), sorted by namespace and name.
pub fn service_rows(desired: &Desired) -> Vec<ServiceStatus> {
    desired
        .allocations
        .iter()
        .map(|(key, addresses)| ServiceStatus {
            service: format!("{}/{}", key.namespace, key.name),
            addresses: addresses.clone(),
            lost: Vec::new(),
            satisfied: !addresses.is_empty(),
            reason: None,
            message: None,
            not_served: Default::default(),
        })
        .collect()
}

/// What to do with the L2 announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L2Action {
    /// Nothing runs and nothing should.
    Nothing,
    /// No announcer runs; start one.
    Start,
    /// Keep the running announcer; hand it the nodes when `nodes` and the services when
    /// `services` (each only if changed).
    Update {
        /// The cluster's nodes (eligibility) changed.
        nodes: bool,
        /// The announced services changed.
        services: bool,
    },
    /// Something the announcer takes only at start changed (interfaces, timers, store): stop
    /// it and start a new one.
    Restart,
    /// No `L2AnnouncementPolicy` any more (or this node is gone): stop answering.
    Stop,
}

fn settings_of(c: &L2Config) -> L2Config {
    L2Config {
        services: Vec::new(),
        nodes: Vec::new(),
        ..c.clone()
    }
}

/// Pure: the action that takes the announcer running with `running` (services and nodes as
/// last applied) to `desired`.
pub fn l2_action(running: Option<&L2Config>, desired: Option<&L2Config>) -> L2Action {
    match (running, desired) {
        (None, None) => L2Action::Nothing,
        (None, Some(_)) => L2Action::Start,
        (Some(_), None) => L2Action::Stop,
        (Some(r), Some(d)) if settings_of(r) != settings_of(d) => L2Action::Restart,
        (Some(r), Some(d)) => L2Action::Update {
            nodes: r.nodes != d.nodes,
            services: r.services != d.services,
        },
    }
}

/// The problems reported so far, so that each is logged once: when it first appears and, as
/// resolved, when it goes. Problems about unreadable resources are left to the watcher, which
/// reports those itself.
#[derive(Debug, Default)]
pub struct ProblemLog {
    reported: BTreeSet<String>,
}

/// What changed in the problem list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProblemChanges {
    /// Problems not reported before.
    pub new: Vec<String>,
    /// Problems reported before and gone now.
    pub resolved: Vec<String>,
}

impl ProblemLog {
    /// Pure: records `problems` as the current list and returns what changed.
    pub fn update(&mut self, problems: &[String]) -> ProblemChanges {
        let now: BTreeSet<String> = problems
            .iter()
            .filter(|p| !is_availability_problem(p))
            .cloned()
            .collect();
        let changes = ProblemChanges {
            new: now.difference(&self.reported).cloned().collect(),
            resolved: self.reported.difference(&now).cloned().collect(),
        };
        self.reported = now;
        changes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::FibImportConfig;

    const BGP: &str = "node: {name: n1, routerId: 10.0.0.1}\nbgp:\n  localASN: 65001\n  peers:\n    - {name: tor1, address: 10.0.0.2, asn: 65000}\n    - {name: tor2, address: 10.0.0.3, asn: 65000}\n";

    fn config(yaml: &str) -> Config {
        crate::config::parse(yaml, "t.yaml").expect("valid")
    }

    #[test]
    fn instance_starts_reloads_restarts_and_stops() {
        let bgp = config(BGP);
        let none = config("node: {name: n1, routerId: 10.0.0.1}\n");
        assert_eq!(bgp_action(None, &none), BgpAction::Nothing);
        assert_eq!(bgp_action(None, &bgp), BgpAction::Start);
        assert_eq!(bgp_action(Some(&none), &bgp), BgpAction::Start);
        assert_eq!(bgp_action(Some(&bgp), &none), BgpAction::Stop);

        let mut timers = bgp.clone();
        timers.bgp.as_mut().expect("bgp").peers[0]
            .timers
            .hold_time_seconds
            .0 = 30;
        assert_eq!(bgp_action(Some(&bgp), &timers), BgpAction::Reload);
        let mut asn = bgp.clone();
        asn.bgp.as_mut().expect("bgp").local_asn = 65009;
        assert_eq!(
            bgp_action(Some(&bgp), &asn),
            BgpAction::Reload,
            "the instance resets its sessions itself on an identity change"
        );

        let mut port = bgp.clone();
        port.bgp.as_mut().expect("bgp").listen.port = 1179;
        assert_eq!(bgp_action(Some(&bgp), &port), BgpAction::Restart);
        let mut fib = bgp.clone();
        fib.bgp.as_mut().expect("bgp").fib_import = Some(serde_saphyr::Spanned::new(
            FibImportConfig::default(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        ));
        assert_eq!(bgp_action(Some(&bgp), &fib), BgpAction::Restart);
    }

    fn desired(config: Config) -> Desired {
        Desired {
            config,
            advertisements: Vec::new(),
            services: Vec::new(),
            allocations: BTreeMap::new(),
            md5_keys: BTreeMap::new(),
            l2: None,
            problems: Vec::new(),
        }
    }

    #[test]
    fn instance_config_carries_api_state_dir_and_key_files() {
        let d = desired(config(BGP));
        let api = ApiConfig {
            control_socket: "/tmp/x.sock".into(),
            control_socket_group: None,
            metrics_address: None,
        };
        let state = PathBuf::from("/var/lib/herald");
        let keys = BTreeMap::from([(
            "10.0.0.3".parse().expect("ip"),
            PathBuf::from("/run/herald/md5/10.0.0.3.2.key"),
        )]);
        let c = instance_config(&d, &api, Some(&state), &keys);
        assert_eq!(c.api, api);
        let bgp = c.bgp.expect("bgp");
        assert_eq!(bgp.state_dir, Some(state));
        assert_eq!(bgp.peers[0].password_file, None);
        assert_eq!(
            bgp.peers[1].password_file,
            Some(PathBuf::from("/run/herald/md5/10.0.0.3.2.key"))
        );
    }

    fn l2(interfaces: &[&str], nodes: &[&str], vip: Option<&str>) -> L2Config {
        let mut yaml = format!(
            "node: a\nnodes: [{}]\ninterfaces: {{include: [{}]}}\nstore: {{kind: kubernetes, namespace: ns}}\n",
            nodes
                .iter()
                .map(|n| format!("{{name: {n}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            interfaces.join(", ")
        );
        if let Some(ip) = vip {
            yaml.push_str(&format!("services: [{{name: web, ips: [{ip}]}}]\n"));
        }
        L2Config::from_yaml(&yaml).expect("valid")
    }

    #[test]
    fn announcer_restarts_only_for_start_time_settings() {
        let base = l2(&["eth1"], &["a", "b"], Some("10.0.0.1"));
        assert_eq!(l2_action(None, None), L2Action::Nothing);
        assert_eq!(l2_action(None, Some(&base)), L2Action::Start);
        assert_eq!(l2_action(Some(&base), None), L2Action::Stop);
        assert_eq!(
            l2_action(Some(&base), Some(&base)),
            L2Action::Update {
                nodes: false,
                services: false
            }
        );
        assert_eq!(
            l2_action(
                Some(&base),
                Some(&l2(&["eth1"], &["a", "b", "c"], Some("10.0.0.2")))
            ),
            L2Action::Update {
                nodes: true,
                services: true
            },
            "a node joining and a new VIP do not restart the election"
        );
        assert_eq!(
            l2_action(
                Some(&base),
                Some(&l2(&["eth2"], &["a", "b"], Some("10.0.0.1")))
            ),
            L2Action::Restart
        );
    }

    #[test]
    fn problems_are_reported_once_and_resolved_once() {
        let mut log = ProblemLog::default();
        let p = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let missing = "BGPClusterConfig all instance main peer tor2: BGPPeerConfig x not found; using defaults";
        let crd = "bgpadvertisements.herald.io: CustomResourceDefinition not installed (404); treated as empty until it is (kubectl apply -k deploy/crds)";
        let changes = log.update(&p(&[missing, crd]));
        assert_eq!(changes.new, p(&[missing]), "the watcher reports the CRD");
        assert!(log.update(&p(&[missing, crd])).new.is_empty());
        assert!(log.update(&p(&[missing])).resolved.is_empty());
        let changes = log.update(&[]);
        assert_eq!(changes.resolved, p(&[missing]));
        assert_eq!(log.update(&p(&[missing])).new, p(&[missing]), "back again");
    }
}
