//! Route-server fan-out and route views: what one peer's UPDATE changes for the others'
//! learned Adj-RIB-Out and the FIB, and the rows of `speaker routes`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Owner;
use crate::bgp::loc_rib::{Client, RouteServer, Source, fib_next_hops};
use crate::bgp::rib_out::LearnedChange;
use crate::bgp::route_rows::{RouteQuery, RouteRow, advertised_rows, received_rows};
use crate::import_policy::BestPathConfig;

impl Owner {
    /// Best-path settings (FIB import's, else the defaults).
    pub(super) fn best_path(&self) -> BestPathConfig {
        self.bgp()
            .fib_import
            .as_ref()
            .map(|f| f.value.best_path)
            .unwrap_or_default()
    }

    /// Every peer's received routes, except `except`'s.
    pub(super) fn sources(&self, except: Option<IpAddr>) -> Vec<Source<'_>> {
        self.peers
            .iter()
            .filter(|(a, _)| Some(**a) != except)
            .map(|(a, slot)| Source {
                peer: self.peer_info(*a, slot),
                rib: slot.session.rib_in(),
            })
            .collect()
    }

    /// Route-server mode: what `client` should now have for `prefixes`.
    pub(super) fn learned_changes(
        &self,
        client: IpAddr,
        prefixes: &[IpNet],
        server: &mut RouteServer,
    ) -> Vec<LearnedChange> {
        let Some(slot) = self.peers.get(&client) else {
            return Vec::new();
        };
        let client_kind = Client {
            ebgp: self.peer_info(client, slot).ebgp,
            llgr: slot.session.peer_supports_llgr(),
        };
        let sources = self.sources(Some(client));
        let best_path = self.best_path();
        prefixes
            .iter()
            .map(|p| (*p, server.route(p, sources.iter(), client_kind, &best_path)))
            .collect()
    }

    pub(super) fn send_learned(&mut self, client: IpAddr, changes: Vec<LearnedChange>) {
        if let Some(slot) = self.peers.get_mut(&client) {
            let outputs = slot.session.update_learned_routes(changes);
            self.apply(client, outputs);
        }
    }

    /// How many prefixes wait in `pending_changes` (one entry per peer with changes).
    pub(super) fn pending_len(&self) -> usize {
        self.pending_changes.values().map(Vec::len).sum()
    }

    /// Passes on the accepted-route changes collected since the last call. Deferring them to the
    /// end of a batch of events is safe because [`Owner::routes_changed`] recomputes from the
    /// current Adj-RIBs-In: a prefix that changed several times is computed once, and the
    /// clients get packed UPDATEs instead of one per received UPDATE.
    pub(super) fn flush_route_changes(&mut self) {
        for (source, mut prefixes) in std::mem::take(&mut self.pending_changes) {
            prefixes.sort_unstable();
            prefixes.dedup();
            self.routes_changed(source, &prefixes);
        }
    }

    /// Accepted routes of `source` changed for `prefixes`: route-server clients and the FIB
    /// get the new best routes.
    pub(super) fn routes_changed(&mut self, source: IpAddr, prefixes: &[IpNet]) {
        if let Some(fib) = &self.fib {
            let sources = self.sources(None);
            let best_path = self.best_path();
            fib.update(
                prefixes
                    .iter()
                    .map(|p| (*p, fib_next_hops(p, sources.iter(), &best_path)))
                    .collect(),
            );
        }
        if self.bgp().route_server {
            let mut server = RouteServer::default();
            let clients: Vec<IpAddr> = self
                .peers
                .keys()
                .copied()
                .filter(|a| *a != source)
                .collect();
            for client in clients {
                let changes = self.learned_changes(client, prefixes, &mut server);
                self.send_learned(client, changes);
            }
        }
    }

    /// Route-server mode: every prefix the peers other than `client` have accepted.
    pub(super) fn learned_prefixes(&self, client: IpAddr) -> Vec<IpNet> {
        let prefixes: std::collections::BTreeSet<IpNet> = self
            .sources(Some(client))
            .iter()
            .flat_map(|s| s.rib.iter().filter(|(_, e)| e.accepted).map(|(p, _)| p))
            .collect();
        prefixes.into_iter().collect()
    }

    pub(super) fn route_rows(&self, query: &RouteQuery) -> Vec<RouteRow> {
        let selected = self.peers.iter().filter(|(_, slot)| {
            query
                .peer
                .as_deref()
                .is_none_or(|p| slot.config.is_named(p))
        });
        let mut rows = Vec::new();
        for (address, slot) in selected {
            let name = slot.config.display_name();
            if query.received {
                rows.extend(received_rows(
                    &name,
                    *address,
                    slot.session.rib_in(),
                    query.family,
                ));
            } else {
                let routes = slot.session.advertised();
                rows.extend(advertised_rows(&name, *address, &routes, query.family));
            }
        }
        rows
    }
}
