//! Which nodes may lead each service IP: the node selector, `externalTrafficPolicy: Local`
//! (only nodes with a ready local endpoint) and shared IPs (services that share an IP through a
//! sharing key form one election per IP, so one node answers for it). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::config::{NodeSpec, ServiceSpec, TrafficPolicy};

/// One election: an IP and the nodes eligible to lead it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipSpec {
    /// The service IP.
    pub vip: IpAddr,
    /// Eligible node names.
    pub eligible: BTreeSet<String>,
    /// The services using this IP (`namespace/name`), for status output.
    pub services: Vec<String>,
}

/// Builds the election table: one entry per distinct service IP.
///
/// For an IP used by several services (a sharing key), the eligible nodes are those that can
/// serve the largest number of those services: with `externalTrafficPolicy: Local` on some of them
/// no node may be able to serve all, and the IP must still have exactly one leader.
pub fn vip_table(
    services: &[ServiceSpec],
    nodes: &[NodeSpec],
    selector: &BTreeMap<String, String>,
) -> Vec<VipSpec> {
    let selected: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
        .map(|n| n.name.as_str())
        .collect();
    let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceSpec>> = BTreeMap::new();
    for s in services {
        for ip in &s.ips {
            by_ip.entry(*ip).or_default().push(s);
        }
    }
    by_ip
        .into_iter()
        .map(|(vip, svcs)| {
            let mut coverage: BTreeMap<&str, usize> = BTreeMap::new();
            for s in &svcs {
                for node in &selected {
                    let ok = match s.external_traffic_policy {
                        TrafficPolicy::Cluster => true,
                        TrafficPolicy::Local => s.ready_endpoint_nodes.iter().any(|n| n == node),
                    };
                    if ok {
                        *coverage.entry(node).or_default() += 1;
                    }
                }
            }
            let best = coverage.values().copied().max().unwrap_or(0);
            let eligible = coverage
                .into_iter()
                .filter(|&(_, c)| c == best && c > 0)
                .map(|(n, _)| n.to_owned())
                .collect();
            VipSpec {
                vip,
                eligible,
                services: svcs
                    .iter()
                    .map(|s| format!("{}/{}", s.namespace, s.name))
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, zone: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            labels: BTreeMap::from([("zone".to_owned(), zone.to_owned())]),
        }
    }

    fn svc(name: &str, ip: &str, local: Option<&[&str]>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            namespace: "default".into(),
            ips: vec![ip.parse().expect("ip")],
            external_traffic_policy: if local.is_some() {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            },
            ready_endpoint_nodes: local
                .unwrap_or_default()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            sharing_key: None,
        }
    }

    fn names(v: &VipSpec) -> Vec<&str> {
        v.eligible.iter().map(String::as_str).collect()
    }

    #[test]
    fn local_policy_limits_eligibility_to_nodes_with_ready_endpoints() {
        let nodes = [node("a", "1"), node("b", "1"), node("c", "1")];
        let t = vip_table(
            &[svc("web", "10.0.0.1", Some(&["b"]))],
            &nodes,
            &BTreeMap::new(),
        );
        assert_eq!(names(&t[0]), ["b"]);
        let t = vip_table(
            &[svc("web", "10.0.0.1", Some(&[]))],
            &nodes,
            &BTreeMap::new(),
        );
        assert!(t[0].eligible.is_empty());
    }

    #[test]
    fn node_selector_filters_nodes() {
        let nodes = [node("a", "1"), node("b", "2"), node("c", "1")];
        let sel = BTreeMap::from([("zone".to_owned(), "1".to_owned())]);
        let t = vip_table(&[svc("web", "10.0.0.1", None)], &nodes, &sel);
        assert_eq!(names(&t[0]), ["a", "c"]);
    }

    #[test]
    fn services_sharing_an_ip_form_one_election() {
        let nodes = [node("a", "1"), node("b", "1"), node("c", "1")];
        let t = vip_table(
            &[
                svc("dns-udp", "10.0.0.53", Some(&["a", "b"])),
                svc("dns-tcp", "10.0.0.53", Some(&["b", "c"])),
            ],
            &nodes,
            &BTreeMap::new(),
        );
        assert_eq!(t.len(), 1);
        assert_eq!(names(&t[0]), ["b"]);
        assert_eq!(t[0].services, ["default/dns-udp", "default/dns-tcp"]);
    }
}
