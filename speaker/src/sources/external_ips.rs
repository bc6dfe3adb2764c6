//! The operator's allow-list for Services' `externalIPs` (the CVE-2020-8554 class: a tenant who
//! may create Services must not make the agent announce or serve an arbitrary address, such as
//! the gateway's or another tenant's). Every source runs each service's `externalIPs` through
//! [`ExternalIpPolicy::admit`] before anything else sees them, so BGP, L2 and the datapath table
//! only ever hold admitted addresses. Default: nothing is admitted. Pure.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// Which `externalIPs` may be announced and served: those inside one of the CIDRs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalIpPolicy {
    /// The operator-allowed CIDRs; empty: no external IP is allowed.
    #[serde(default, rename = "allowedCIDRs")]
    pub allowed_cidrs: Vec<IpNet>,
}

impl ExternalIpPolicy {
    /// A policy allowing the given CIDRs.
    pub fn new(allowed_cidrs: Vec<IpNet>) -> Self {
        Self { allowed_cidrs }
    }

    /// Parses a comma-separated CIDR list (the `--allowed-external-ip-cidrs` flag).
    pub fn parse_list(text: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net: IpNet = item
                .parse()
                .map_err(|e| format!("{item:?} is not a CIDR ({e})"))?;
            allowed.push(net);
        }
        Ok(Self::new(allowed))
    }

    /// Whether `ip` lies inside an allowed CIDR.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed_cidrs.iter().any(|net| net.contains(&ip))
    }

    /// The `externalIPs` of service `namespace/name` that may be used; one problem per refused
    /// address is appended to `problems`.
    pub fn admit(
        &self,
        namespace: &str,
        name: &str,
        ips: &[IpAddr],
        problems: &mut Vec<String>,
    ) -> Vec<IpAddr> {
        let mut kept = Vec::with_capacity(ips.len());
        for &ip in ips {
            if self.allows(ip) {
                kept.push(ip);
            } else {
                problems.push(format!(
                    "service {namespace}/{name}: externalIP {ip} refused: outside the allowed \
                     external IP CIDRs ({}); not announced or served",
                    self.describe()
                ));
            }
        }
        kept
    }

    fn describe(&self) -> String {
        if self.allowed_cidrs.is_empty() {
            return "none configured".to_owned();
        }
        self.allowed_cidrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn nothing_is_admitted_by_default() {
        let mut problems = Vec::new();
        let kept =
            ExternalIpPolicy::default().admit("t", "evil", &[ip("10.77.0.2")], &mut problems);
        assert!(kept.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("t/evil") && problems[0].contains("10.77.0.2"),
            "{problems:?}"
        );
    }

    #[test]
    fn only_addresses_inside_an_allowed_cidr_are_admitted() {
        let policy = ExternalIpPolicy::parse_list("198.51.100.0/24, 2001:db8::/64").expect("list");
        let mut problems = Vec::new();
        let kept = policy.admit(
            "t",
            "web",
            &[
                ip("198.51.100.7"),
                ip("10.77.0.2"),
                ip("2001:db8::1"),
                ip("2001:db9::1"),
            ],
            &mut problems,
        );
        assert_eq!(kept, [ip("198.51.100.7"), ip("2001:db8::1")]);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    const STANDALONE: &str = "node: { name: node, routerId: 10.77.0.1 }\n\
        externalIPs:\n  allowedCIDRs: [198.51.100.0/24]\n\
        services:\n  - name: tenant\n    namespace: t\n    ports: [{ port: 80 }]\n\
        \x20   externalIPs: [10.77.0.2, 198.51.100.7]\n\
        \x20   endpoints: [{ ip: 10.244.1.10, nodeName: node }]\n\
        nodes:\n  - { name: node, address: 10.77.0.1 }\n";

    /// The standalone file: BGP's services, the datapath's table and L2's list all hold only the
    /// allowed external IP, and the refused one is reported with its service.
    #[test]
    fn the_standalone_file_feeds_only_admitted_external_ips_to_bgp_datapath_and_l2() {
        let config = crate::config::parse(STANDALONE, "test.yaml").expect("config");
        let state = crate::advertise::ServiceState::from_config(&config, Default::default());
        assert_eq!(state.services[0].external_ips, [ip("198.51.100.7")]);
        let nodes = [("node".to_owned(), ip("10.77.0.1"))].into_iter().collect();
        let table = crate::daemon::desired::service_table(&crate::daemon::desired::TableInputs {
            node_name: "node",
            nodes: &nodes,
            state: &state,
            cluster_ips: false,
        });
        let vips: Vec<IpAddr> = table.services.iter().map(|s| s.vip).collect();
        assert_eq!(vips, [ip("198.51.100.7")]);
        let l2 = crate::l2::desired_services(&config, &Default::default());
        assert_eq!(l2[0].ips, [ip("198.51.100.7")]);
        let refused = config.refused_external_ips();
        assert!(
            refused.len() == 1
                && refused[0].contains("t/tenant")
                && refused[0].contains("10.77.0.2"),
            "{refused:?}"
        );
    }

    #[test]
    fn without_the_section_no_external_ip_is_used() {
        let text = STANDALONE.replace("externalIPs:\n  allowedCIDRs: [198.51.100.0/24]\n", "");
        let config = crate::config::parse(&text, "test.yaml").expect("config");
        let state = crate::advertise::ServiceState::from_config(&config, Default::default());
        assert!(state.services[0].external_ips.is_empty());
        assert!(crate::l2::desired_services(&config, &Default::default()).is_empty());
        assert_eq!(config.refused_external_ips().len(), 2);
    }

    #[test]
    fn an_allowed_cidr_with_host_bits_is_rejected_with_key_and_line() {
        let text = STANDALONE.replace("198.51.100.0/24]", "198.51.100.1/24]");
        let error = crate::config::parse(&text, "test.yaml")
            .expect_err("rejected")
            .to_string();
        assert!(
            error.contains("test.yaml:3: externalIPs.allowedCIDRs[0]")
                && error.contains("198.51.100.0/24"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_of_the_section_is_rejected() {
        let text = STANDALONE.replace("allowedCIDRs:", "allowedCidrs:");
        let error = crate::config::parse(&text, "test.yaml")
            .expect_err("rejected")
            .to_string();
        assert!(error.contains("allowedCidrs"), "{error}");
    }

    #[test]
    fn a_bad_cidr_in_the_list_is_named() {
        let error = ExternalIpPolicy::parse_list("10.0.0.0/8,nope").expect_err("rejected");
        assert!(error.contains("\"nope\""), "{error}");
    }
}
