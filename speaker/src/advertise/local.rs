//! The routes this node originates, per peer: the standalone configuration (node, peers,
//! `bgp.staticRoutes`, `bgp.advertisements`) plus the current services and lb-ipam allocations,
//! run through [`super::desired()`]. The Kubernetes source produces the same [`ServiceState`] and
//! configuration, so both modes share this path. Pure: no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::desired::{
    FixedRoute, Inputs, NodeView, PeerView, RouteAttributes, ServiceView, desired,
};
use super::model::{Attributes, StandardCommunity};
use crate::config::{BgpConfig, Config, PeerAsn, PeerKind, StaticRoute};
use crate::ipam::Allocations;

/// The services the node knows and the addresses lb-ipam gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// Every service (advertisement selectors pick among them).
    pub services: Vec<ServiceView>,
    /// lb-ipam's allocations.
    pub allocations: Allocations,
}

impl ServiceState {
    /// The `services:` of a standalone file with the given allocations; `externalIPs` outside
    /// the file's `externalIPs.allowedCIDRs` are dropped here, before BGP and the datapath.
    pub fn from_config(config: &Config, allocations: Allocations) -> Self {
        Self {
            services: config
                .services
                .iter()
                .map(|s| ServiceView {
                    external_ips: config.admitted_external_ips(&s.value),
                    ..ServiceView::from(&s.value)
                })
                .collect(),
            allocations,
        }
    }
}

/// Routes per peer address: prefix → attributes (without next hop).
pub type PeerRoutes = BTreeMap<IpAddr, BTreeMap<IpNet, RouteAttributes>>;

/// Whether a peer is eBGP under our AS.
pub fn is_ebgp(local_asn: u32, asn: PeerAsn) -> bool {
    match asn {
        PeerAsn::Number(n) => n != local_asn,
        PeerAsn::Kind(kind) => kind == PeerKind::External,
    }
}

/// The configured peers as [`desired`] sees them.
pub fn peer_views(bgp: &BgpConfig) -> Vec<PeerView> {
    bgp.peers
        .iter()
        .map(|p| PeerView {
            name: p.name.clone(),
            address: p.address.value,
            families: p.effective_families(),
            ebgp: is_ebgp(bgp.local_asn, p.asn),
        })
        .collect()
}

fn fixed_route(route: &StaticRoute) -> FixedRoute {
    let mut attributes = Attributes {
        med: route.med,
        local_preference: route.local_pref,
        ..Attributes::default()
    };
    attributes.communities.standard = route
        .communities
        .iter()
        .map(|c| StandardCommunity(bgp_proto::Community(c.0)))
        .collect();
    FixedRoute {
        prefix: route.prefix,
        attributes,
    }
}

/// Every peer's originated routes (peers that get nothing have an empty map).
pub fn local_routes(config: &Config, state: &ServiceState) -> PeerRoutes {
    let Some(bgp) = &config.bgp else {
        return PeerRoutes::new();
    };
    let peers = peer_views(bgp);
    let node = NodeView {
        name: config.node.name.clone(),
        pod_cidrs: config.node.pod_cidrs.clone(),
    };
    let advertisements: Vec<_> = bgp.advertisements.iter().map(|a| a.value.clone()).collect();
    let fixed: Vec<FixedRoute> = bgp.static_routes.iter().map(fixed_route).collect();
    let routes = desired(&Inputs {
        local_asn: bgp.local_asn,
        node: &node,
        services: &state.services,
        allocations: &state.allocations,
        peers: &peers,
        advertisements: &advertisements,
        fixed_routes: &fixed,
    });
    let mut out: PeerRoutes = peers.iter().map(|p| (p.address, BTreeMap::new())).collect();
    for (key, prefixes) in routes {
        out.entry(key.peer).or_default().extend(prefixes);
    }
    out
}

#[cfg(test)]
mod tests {
    use bgp_proto::{AttrValue, Community};

    use super::*;

    const YAML: &str = r#"
node: { name: n1, routerId: 10.0.0.1, podCIDRs: [10.244.1.0/24] }
bgp:
  localASN: 65001
  peers:
    - { name: tor, address: 10.0.0.254, asn: 65000 }
    - { name: rr, address: 10.0.0.253, asn: 65001 }
  staticRoutes:
    - { prefix: 192.0.2.0/24, communities: ["65001:7"], med: 5 }
  advertisements:
    - { kind: PodCIDR, peers: [tor] }
    - kind: LoadBalancerIP
      selector: { matchLabels: { app: web } }
      attributes: { localPreference: 300 }
services:
  - { name: web, labels: { app: web } }
  - { name: db, labels: { app: db } }
"#;

    #[test]
    fn config_and_allocations_become_per_peer_routes() {
        let config = crate::config::parse(YAML, "t.yaml").expect("valid");
        let web: IpAddr = "198.51.100.7".parse().expect("ip");
        let db: IpAddr = "198.51.100.8".parse().expect("ip");
        let allocations = Allocations::from([
            (lb_ipam::ServiceKey::new("default", "web"), vec![web]),
            (lb_ipam::ServiceKey::new("default", "db"), vec![db]),
        ]);
        let routes = local_routes(&config, &ServiceState::from_config(&config, allocations));
        let tor: Vec<String> = routes[&"10.0.0.254".parse::<IpAddr>().expect("ip")]
            .keys()
            .map(ToString::to_string)
            .collect();
        assert_eq!(tor, ["10.244.1.0/24", "192.0.2.0/24", "198.51.100.7/32"]);
        let rr = &routes[&"10.0.0.253".parse::<IpAddr>().expect("ip")];
        assert_eq!(rr.len(), 2, "no pod CIDR to rr: {rr:?}");
        let lb = &rr[&"198.51.100.7/32".parse::<IpNet>().expect("net")];
        assert!(lb.iter().any(|a| a.value == AttrValue::LocalPref(300)));
        let fixed = &rr[&"192.0.2.0/24".parse::<IpNet>().expect("net")];
        assert!(fixed.iter().any(|a| a.value == AttrValue::MultiExitDisc(5)));
        assert!(
            fixed
                .iter()
                .any(|a| a.value == AttrValue::Communities(vec![Community::new(65001, 7)]))
        );
        assert!(
            fixed.iter().any(|a| a.value == AttrValue::LocalPref(100)),
            "iBGP routes carry LOCAL_PREF"
        );
    }

    #[test]
    fn unknown_peer_in_an_advertisement_is_a_config_error_with_line() {
        let yaml = YAML.replace("peers: [tor]", "peers: [tor9]");
        let error = crate::config::parse(&yaml, "t.yaml")
            .expect_err("unknown peer")
            .to_string();
        assert!(
            error.contains("bgp.advertisements[0]") && error.contains("tor9"),
            "{error}"
        );
        assert!(error.starts_with("t.yaml:11: "), "{error}");
    }
}
