//! [`ServiceSpec`]: one entry of the standalone file's `services:` list, mirroring what Herald
//! needs of a Kubernetes Service. The speaker, L2 and datapath reuse this type; lb-ipam turns it
//! into an allocator [`Request`]. Pure data and parsing; no I/O.
//!
//! IPAM annotations (the first name of each list is Herald's; the others are accepted aliases
//! from Cilium and MetalLB; two names of one list with different values are an error):
//! - requested addresses, comma separated: [`IPS_ANNOTATIONS`]
//! - requested pool: [`POOL_ANNOTATIONS`]
//! - sharing key: [`SHARING_KEY_ANNOTATIONS`]
//! - namespaces allowed to share, comma separated or `*`: [`SHARING_CROSS_NAMESPACE_ANNOTATIONS`]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::{IpFamily, default_namespace_labels};
use crate::request::{FamilyPolicy, PortProto, Protocol, Request, ServiceKey, Sharing};

/// The `loadBalancerClass` Herald serves (services with no class are served too).
pub const LOAD_BALANCER_CLASS: &str = "herald.io/lb";
/// Annotations naming requested addresses.
pub const IPS_ANNOTATIONS: [&str; 4] = [
    "herald.io/ips",
    "lbipam.cilium.io/ips",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// Annotations naming a requested pool.
pub const POOL_ANNOTATIONS: [&str; 3] = [
    "herald.io/pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// Annotations carrying a sharing key.
pub const SHARING_KEY_ANNOTATIONS: [&str; 4] = [
    "herald.io/sharing-key",
    "lbipam.cilium.io/sharing-key",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];
/// Annotations listing the other namespaces allowed to share (`*` for all).
pub const SHARING_CROSS_NAMESPACE_ANNOTATIONS: [&str; 2] = [
    "herald.io/sharing-cross-namespace",
    "lbipam.cilium.io/sharing-cross-namespace",
];

fn default_namespace() -> String {
    "default".to_owned()
}

fn default_true() -> bool {
    true
}

/// `spec.type` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ServiceType {
    /// Gets LoadBalancer addresses (the default in Herald's file, unlike Kubernetes).
    #[default]
    LoadBalancer,
    /// Cluster-internal only.
    ClusterIP,
    /// Node ports only.
    NodePort,
    /// A DNS alias.
    ExternalName,
}

/// `spec.externalTrafficPolicy` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TrafficPolicy {
    /// Any node may serve, forwarding to any endpoint.
    #[default]
    Cluster,
    /// Only nodes with a ready local endpoint serve (and announce).
    Local,
}

/// `spec.sessionAffinity` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SessionAffinity {
    /// Each connection is balanced on its own (the client port is part of the hash).
    #[default]
    None,
    /// A client address always reaches the same backend while it lives.
    ClientIP,
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Port name (optional, as in Kubernetes for single-port services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port number on the service address.
    pub port: u16,
    /// Protocol; TCP when omitted.
    #[serde(default)]
    pub protocol: Protocol,
}

/// One backend endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Endpoint (pod) address.
    pub ip: IpAddr,
    /// Node the endpoint runs on.
    pub node_name: String,
    /// Ready to receive traffic; true when omitted.
    #[serde(default = "default_true")]
    pub ready: bool,
    /// Target port when it differs from the service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One service of the standalone file, mirroring the parts of a Kubernetes Service Herald uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Namespace; `default` when omitted.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Labels, matched by pool and advertisement selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (IPAM requests, see the module header).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Service type; `LoadBalancer` when omitted.
    #[serde(default, rename = "type")]
    pub service_type: ServiceType,
    /// `spec.loadBalancerClass`; Herald serves [`LOAD_BALANCER_CLASS`] and unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// `spec.loadBalancerIP` (deprecated in Kubernetes, still honoured).
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<IpAddr>,
    /// `spec.ipFamilyPolicy`; SingleStack when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<FamilyPolicy>,
    /// `spec.ipFamilies`, in preference order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<IpFamily>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// `spec.externalTrafficPolicy`; Cluster when omitted.
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.externalIPs`.
    #[serde(default, rename = "externalIPs", skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<IpAddr>,
    /// `spec.sessionAffinity`; None when omitted.
    #[serde(default)]
    pub session_affinity: SessionAffinity,
    /// `spec.clusterIP`.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<IpAddr>,
    /// Backends (from EndpointSlices in Kubernetes mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

impl ServiceSpec {
    /// A LoadBalancer service with only a name and namespace set.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            service_type: ServiceType::LoadBalancer,
            load_balancer_class: None,
            load_balancer_ip: None,
            ip_family_policy: None,
            ip_families: Vec::new(),
            ports: Vec::new(),
            external_traffic_policy: TrafficPolicy::Cluster,
            external_ips: Vec::new(),
            session_affinity: SessionAffinity::None,
            cluster_ip: None,
            endpoints: Vec::new(),
        }
    }

    /// The service's identity.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(&self.namespace, &self.name)
    }

    /// True when lb-ipam allocates for this service: type LoadBalancer, class ours or unset.
    pub fn wants_load_balancer_ip(&self) -> bool {
        self.service_type == ServiceType::LoadBalancer
            && self
                .load_balancer_class
                .as_deref()
                .is_none_or(|c| c == LOAD_BALANCER_CLASS)
    }

    /// Builds the allocator request. `namespace_labels` defaults to the name label Kubernetes
    /// puts on every namespace. Errors name the service and the bad annotation or field.
    pub fn ipam_request(
        &self,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<Request> {
        let invalid = |reason: String| Error::InvalidService {
            service: self.key().to_string(),
            reason,
        };
        if self.name.is_empty() || self.namespace.is_empty() {
            return Err(invalid("name and namespace must not be empty".into()));
        }
        let mut req = Request::new(self.key()).with_labels(&self.labels);
        req.namespace_labels = namespace_labels
            .cloned()
            .unwrap_or_else(|| default_namespace_labels(&self.namespace));

        if let Some((name, value)) = self.annotation(&IPS_ANNOTATIONS).map_err(invalid)? {
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let ip: IpAddr = part.parse().map_err(|_| {
                    invalid(format!("annotation {name}: {part:?} is not an IP address"))
                })?;
                if !req.requested_ips.contains(&ip) {
                    req.requested_ips.push(ip);
                }
            }
        }
        if let Some(ip) = self.load_balancer_ip
            && !req.requested_ips.contains(&ip)
        {
            req.requested_ips.push(ip);
        }
        req.requested_pool = self
            .annotation(&POOL_ANNOTATIONS)
            .map_err(invalid)?
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let Some((_, key)) = self.annotation(&SHARING_KEY_ANNOTATIONS).map_err(invalid)? {
            let allowed_namespaces: BTreeSet<String> = self
                .annotation(&SHARING_CROSS_NAMESPACE_ANNOTATIONS)
                .map_err(invalid)?
                .map(|(_, v)| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            req.sharing = Some(Sharing {
                key: key.trim().to_owned(),
                allowed_namespaces,
            });
        }
        for p in &self.ports {
            if p.port == 0 {
                return Err(invalid("port 0 is not a valid service port".into()));
            }
            req.ports.insert(PortProto {
                port: p.port,
                protocol: p.protocol,
            });
        }
        req.family_policy = self.ip_family_policy.unwrap_or_default();
        req.families = self.ip_families.clone();
        Ok(req)
    }

    /// The value of the first present annotation of `names`, with its name; an error if two
    /// present ones disagree.
    fn annotation<'a>(
        &'a self,
        names: &[&'static str],
    ) -> Result<Option<(&'static str, &'a str)>, String> {
        let mut found: Option<(&'static str, &'a str)> = None;
        for name in names {
            if let Some(v) = self.annotations.get(*name) {
                match found {
                    Some((first, fv)) if fv.trim() != v.trim() => {
                        return Err(format!(
                            "annotations {first} and {name} disagree ({fv:?} vs {v:?})"
                        ));
                    }
                    Some(_) => {}
                    None => found = Some((name, v.as_str())),
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> std::result::Result<ServiceSpec, serde_saphyr::Error> {
        serde_saphyr::from_str(yaml)
    }

    #[test]
    fn minimal_service_defaults() {
        let s = parse("name: web\n").expect("parse");
        assert_eq!(s.namespace, "default");
        assert_eq!(s.service_type, ServiceType::LoadBalancer);
        assert!(s.wants_load_balancer_ip());
        let r = s.ipam_request(None).expect("request");
        assert_eq!(r.key, ServiceKey::new("default", "web"));
        assert_eq!(r.labels["io.kubernetes.service.name"], "web");
        assert_eq!(r.namespace_labels["kubernetes.io/metadata.name"], "default");
    }

    #[test]
    fn full_service_parses() {
        let s = parse(
            r#"
name: web
namespace: shop
labels: {tier: web}
annotations:
  herald.io/ips: "10.0.0.5, 2001:db8::5"
  herald.io/pool: public
  lbipam.cilium.io/sharing-key: k
  herald.io/sharing-cross-namespace: "a,b"
type: LoadBalancer
loadBalancerClass: herald.io/lb
ipFamilyPolicy: RequireDualStack
ipFamilies: [IPv4, IPv6]
ports: [{name: http, port: 80}, {port: 53, protocol: UDP}]
externalTrafficPolicy: Local
externalIPs: [192.0.2.1]
clusterIP: 10.96.0.10
endpoints: [{ip: 10.244.1.5, nodeName: n1}, {ip: 10.244.2.5, nodeName: n2, ready: false, port: 8080}]
"#,
        )
        .expect("parse");
        assert_eq!(s.external_traffic_policy, TrafficPolicy::Local);
        assert!(!s.endpoints[1].ready);
        let r = s.ipam_request(None).expect("request");
        assert_eq!(
            r.requested_ips,
            [
                "10.0.0.5".parse::<IpAddr>().expect("ip"),
                "2001:db8::5".parse().expect("ip")
            ]
        );
        assert_eq!(r.requested_pool.as_deref(), Some("public"));
        let sharing = r.sharing.expect("sharing");
        assert_eq!(sharing.key, "k");
        assert_eq!(sharing.allowed_namespaces.len(), 2);
        assert_eq!(r.ports.len(), 2);
        assert_eq!(r.family_policy, FamilyPolicy::RequireDualStack);
    }

    #[test]
    fn unknown_keys_are_rejected_with_location() {
        let err = parse("name: web\nloadBalancerIp: 10.0.0.1\n").expect_err("typo must fail");
        let msg = err.to_string();
        assert!(msg.contains("loadBalancerIp"), "{msg}");
        assert!(msg.contains('2'), "message should carry the line: {msg}");
    }

    #[test]
    fn aliases_are_accepted_and_must_agree() {
        let mut s = ServiceSpec::new("a", "b");
        s.annotations
            .insert("metallb.io/loadBalancerIPs".into(), "10.0.0.9".into());
        let r = s.ipam_request(None).expect("request");
        assert_eq!(r.requested_ips, ["10.0.0.9".parse::<IpAddr>().expect("ip")]);
        s.annotations
            .insert("herald.io/ips".into(), "10.0.0.8".into());
        assert!(s.ipam_request(None).is_err());
    }

    #[test]
    fn bad_address_annotation_names_the_annotation() {
        let mut s = ServiceSpec::new("a", "b");
        s.annotations
            .insert("herald.io/ips".into(), "10.0.0.300".into());
        let err = s.ipam_request(None).expect_err("bad ip").to_string();
        assert!(
            err.contains("herald.io/ips") && err.contains("a/b"),
            "{err}"
        );
    }

    #[test]
    fn foreign_class_and_other_types_are_ignored() {
        let mut s = ServiceSpec::new("a", "b");
        s.load_balancer_class = Some("other.io/lb".into());
        assert!(!s.wants_load_balancer_ip());
        s.load_balancer_class = None;
        s.service_type = ServiceType::ClusterIP;
        assert!(!s.wants_load_balancer_ip());
    }
}
