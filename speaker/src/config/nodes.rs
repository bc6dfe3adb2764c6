//! The `nodes:` list (node name → underlay address, IPv4 or IPv6: Geneve to a node travels in
//! outer headers of its address's family) and the checks that tie it to `services:`
//! and `datapath:`: every endpoint's `nodeName` must resolve when this node runs a datapath,
//! because a backend on another node is reached through that node's address. Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::{Config, ConfigError};

/// One node of the cluster as the datapath needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAddress {
    /// Node name, as endpoints' `nodeName` give it.
    pub name: String,
    /// Underlay address: the outer destination of Geneve packets for backends on this node.
    pub address: IpAddr,
}

/// The `nodes:` list as a map (name → address).
pub fn node_addresses(config: &Config) -> BTreeMap<String, IpAddr> {
    config
        .nodes
        .iter()
        .map(|n| (n.value.name.clone(), n.value.address))
        .collect()
}

/// Cross-field rules of `nodes:` and `datapath:`.
pub(super) fn validate(config: &Config, origin: &str) -> Result<(), ConfigError> {
    let invalid = |line: u64, key: String, message: String| ConfigError::Invalid {
        path: origin.to_owned(),
        line,
        key,
        message,
    };
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, node) in config.nodes.iter().enumerate() {
        let line = node.referenced.line();
        if node.value.name.is_empty() {
            return Err(invalid(
                line,
                format!("nodes[{index}].name"),
                "must not be empty".into(),
            ));
        }
        if let Some(first) = seen.insert(&node.value.name, line) {
            return Err(invalid(
                line,
                format!("nodes[{index}].name"),
                format!(
                    "node {:?} is already listed at line {first}",
                    node.value.name
                ),
            ));
        }
    }
    let Some(datapath) = &config.datapath else {
        return Ok(());
    };
    if let Err(error) = datapath.value.validate(origin) {
        return Err(match error {
            ::datapath::Error::Config {
                line, key, message, ..
            } => invalid(line, key, message),
            other => invalid(
                datapath.referenced.line(),
                "datapath".into(),
                other.to_string(),
            ),
        });
    }
    for (index, service) in config.services.iter().enumerate() {
        for (e, endpoint) in service.value.endpoints.iter().enumerate() {
            if !seen.contains_key(endpoint.node_name.as_str()) {
                return Err(invalid(
                    service.referenced.line(),
                    format!("services[{index}].endpoints[{e}].nodeName"),
                    format!(
                        "node {:?} is not in `nodes:`; the datapath cannot reach its backends \
                         without the node's underlay address",
                        endpoint.node_name
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const BASE: &str = "node: { name: n1, routerId: 10.0.0.1 }\n";

    #[test]
    fn an_endpoint_on_an_unknown_node_is_refused_with_its_key_when_the_datapath_runs() {
        let text = format!(
            "{BASE}nodes:\n  - {{ name: n1, address: 10.0.0.1 }}\n\
             datapath:\n  interfaces: [{{ name: eth1 }}]\n\
             services:\n  - name: web\n    endpoints:\n      - {{ ip: 10.244.1.10, nodeName: n9 }}\n"
        );
        let error = parse(&text, "t.yaml")
            .expect_err("unknown node")
            .to_string();
        assert!(
            error.contains("services[0].endpoints[0].nodeName") && error.contains("\"n9\""),
            "{error}"
        );
    }

    #[test]
    fn without_a_datapath_endpoints_need_no_node_address() {
        let text = format!(
            "{BASE}services:\n  - name: web\n    endpoints:\n      - {{ ip: 10.244.1.10, nodeName: n9 }}\n"
        );
        assert!(parse(&text, "t.yaml").is_ok());
    }

    #[test]
    fn ipv6_node_addresses_are_accepted_with_a_datapath() {
        let text = format!(
            "{BASE}nodes:\n  - {{ name: n1, address: fd00:0:1::2 }}\n  - {{ name: n2, address: 10.0.2.2 }}\n\
             datapath:\n  interfaces: [{{ name: eth1 }}]\n\
             services:\n  - name: web\n    endpoints:\n      - {{ ip: 10.244.1.10, nodeName: n1 }}\n"
        );
        let config = parse(&text, "t.yaml").expect("IPv6 underlay address accepted");
        let nodes = super::node_addresses(&config);
        assert_eq!(nodes.get("n1"), Some(&"fd00:0:1::2".parse().expect("addr")));
    }

    #[test]
    fn a_node_listed_twice_names_both_lines() {
        let text = format!(
            "{BASE}nodes:\n  - {{ name: n1, address: 10.0.0.1 }}\n  - {{ name: n1, address: 10.0.0.2 }}\n"
        );
        let error = parse(&text, "t.yaml").expect_err("duplicate").to_string();
        assert!(
            error.contains("t.yaml:4: nodes[1].name") && error.contains("line 3"),
            "{error}"
        );
    }
}
