//! Configuration reload: peers added, removed, reset only when their peering parameters
//! changed, updated in place otherwise; import-policy changes re-evaluated from the Adj-RIBs-In.
//! Everything that can fail on the configuration (the `bgp` section removed, a password file
//! that cannot be read) is checked before the first peer changes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgp_proto::Notification;
use bgp_proto::iana::CeaseSubcode;
use serde::{Deserialize, Serialize};

use super::super::connect::SocketOptions;
use super::{Owner, now_std};
use crate::advertise::ServiceState;
use crate::advertise::local::is_ebgp;
use crate::bfd::AuthKey;
use crate::bgp::fsm;
use crate::bgp::session::GrConfig;
use crate::config::{Config, PeerConfig};
use crate::error::{Error, Result};

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Peers added.
    pub added: Vec<IpAddr>,
    /// Peers removed.
    pub removed: Vec<IpAddr>,
    /// Peers reset because their peering parameters changed.
    pub reset: Vec<IpAddr>,
    /// Peers updated in place (no reset).
    pub updated: Vec<IpAddr>,
    /// Changes that need a restart of the speaker to apply.
    pub ignored: Vec<String>,
    /// BMP collectors started or stopped (`added NAME` / `removed NAME`; a changed collector
    /// is removed and added).
    #[serde(default)]
    pub bmp: Vec<String>,
}

/// Whether two configurations of a peer describe the same peering, so that a reload may apply
/// the new one without resetting the session. Names, max-prefix, the shutdown switch, the GR
/// restart time, BFD and the import policy are not peering parameters; source positions in the
/// file are ignored.
pub(super) fn same_peering(a: &PeerConfig, b: &PeerConfig) -> bool {
    a.address.value == b.address.value
        && a.asn == b.asn
        && a.port == b.port
        && a.local_address == b.local_address
        && a.passive == b.passive
        && a.timers == b.timers
        && a.password_file == b.password_file
        && a.ebgp_multihop == b.ebgp_multihop
        && a.gtsm == b.gtsm
        && a.graceful_restart.enabled == b.graceful_restart.enabled
        // The LLGR capability is in our OPEN: a change needs a new session.
        && a.graceful_restart.long_lived == b.graceful_restart.long_lived
        && a.effective_families() == b.effective_families()
}

impl Owner {
    pub(super) fn reload(
        &mut self,
        config: Config,
        services: Option<ServiceState>,
    ) -> Result<ReloadReport> {
        let Some(mut new_bgp) = config.bgp.clone() else {
            return Err(Error::NotImplemented(
                "removing the bgp section at run time",
            ));
        };
        let old_bgp = self.bgp().clone();
        let mut report = ReloadReport::default();
        let identity_changed = new_bgp.local_asn != old_bgp.local_asn
            || config.node.router_id != self.config.node.router_id;
        if new_bgp.listen != old_bgp.listen {
            report
                .ignored
                .push("bgp.listen changes need a restart".to_owned());
        }
        if config.api != self.config.api {
            report.ignored.push("api changes need a restart".to_owned());
        }
        if new_bgp.route_server != old_bgp.route_server {
            report
                .ignored
                .push("bgp.routeServer changes need a restart".to_owned());
        }
        if new_bgp.fib_import.as_ref().map(|f| f.value)
            != old_bgp.fib_import.as_ref().map(|f| f.value)
        {
            report
                .ignored
                .push("bgp.fibImport changes need a restart".to_owned());
        }
        // Kept as running until the restart the report asks for.
        new_bgp.route_server = old_bgp.route_server;
        new_bgp.fib_import = old_bgp.fib_import.clone();
        let new_peers: BTreeMap<IpAddr, PeerConfig> = new_bgp
            .peers
            .iter()
            .map(|p| (p.address.value, p.clone()))
            .collect();
        // Every password and BFD key file is read before anything changes: one that cannot be
        // read fails the reload with all peers as they were.
        let mut options: BTreeMap<IpAddr, (SocketOptions, Option<AuthKey>)> = BTreeMap::new();
        for (address, peer) in &new_peers {
            let ebgp = is_ebgp(new_bgp.local_asn, peer.asn);
            options.insert(
                *address,
                (SocketOptions::for_peer(peer, ebgp)?, super::bfd_key(peer)?),
            );
        }
        self.config = config;
        self.bgp_config = new_bgp.clone();
        let removed: Vec<IpAddr> = self
            .peers
            .keys()
            .filter(|a| !new_peers.contains_key(a))
            .copied()
            .collect();
        for address in removed {
            self.remove_peer(address, Notification::cease(CeaseSubcode::PeerDeconfigured));
            report.removed.push(address);
        }
        for (address, peer) in new_peers {
            let Some((peer_options, bfd_key)) = options.remove(&address) else {
                continue;
            };
            let Some(slot) = self.peers.get_mut(&address) else {
                self.add_peer_with(peer, peer_options, bfd_key)?;
                report.added.push(address);
                continue;
            };
            // A changed key file content counts as a changed peering too.
            let same_key = peer_options.md5_key == slot.options.md5_key;
            let same_peering = !identity_changed && same_peering(&slot.config, &peer) && same_key;
            if !same_peering {
                self.remove_peer(
                    address,
                    Notification::cease(CeaseSubcode::OtherConfigurationChange),
                );
                self.add_peer_with(peer, peer_options, bfd_key)?;
                report.reset.push(address);
                continue;
            }
            let now = now_std();
            let mut outputs = Vec::new();
            // Keep the restart state of the running session.
            let restarting = slot
                .session
                .config()
                .graceful_restart
                .is_some_and(|g| g.restarting);
            let new_config = {
                let mut c = self.session_config(&peer);
                c.graceful_restart = c.graceful_restart.map(|gr| GrConfig { restarting, ..gr });
                c
            };
            let Some(slot) = self.peers.get_mut(&address) else {
                continue;
            };
            slot.session.update_config(new_config);
            match (&slot.config.shutdown, &peer.shutdown) {
                (None, Some(message)) => {
                    let notification =
                        Notification::shutdown(CeaseSubcode::AdministrativeShutdown, message)
                            .unwrap_or_else(|_| {
                                Notification::cease(CeaseSubcode::AdministrativeShutdown)
                            });
                    outputs.extend(slot.session.handle(now, fsm::Input::Stop { notification }));
                }
                (Some(_), None) => outputs.extend(slot.session.handle(now, fsm::Input::Start)),
                _ => {}
            }
            // A changed BFD key file content re-registers the BFD session like a changed section.
            let bfd_changed = slot.config.bfd != peer.bfd || slot.bfd_key != bfd_key;
            slot.config = peer;
            if bfd_changed {
                let bfd = slot.config.bfd.clone();
                let peer_config = slot.config.clone();
                let task = bfd.map(|config| self.start_bfd(&peer_config, config, bfd_key.clone()));
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.bfd_task = task;
                    slot.bfd_state = None;
                    slot.bfd_key = bfd_key;
                    slot.bfd_auth_failures = None;
                }
            }
            self.apply(address, outputs);
            report.updated.push(address);
        }
        if new_bgp.import_policy != old_bgp.import_policy {
            // Soft reconfiguration from the Adj-RIB-In: no session is reset.
            let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
            for address in addresses {
                if let Some(slot) = self.peers.get_mut(&address) {
                    let outputs = slot.session.reevaluate_import();
                    self.apply(address, outputs);
                }
            }
        }
        let (added, removed) = self.bmp.configure(&super::bmp::collectors(&new_bgp));
        report
            .bmp
            .extend(removed.into_iter().map(|n| format!("removed {n}")));
        report
            .bmp
            .extend(added.into_iter().map(|n| format!("added {n}")));
        if let Some(services) = services {
            self.services = services;
        }
        self.refresh_local_routes();
        Ok(report)
    }
}
