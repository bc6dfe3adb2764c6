//! What a service asks of the allocator: the [`Request`] type and its parts. Built from a
//! [`crate::service::ServiceSpec`] (standalone) or a Kubernetes Service (controller). Pure data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::pool::{IpFamily, default_namespace_labels};
use crate::selector::service_labels;

/// Identity of a service: namespace and name. Orders by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    /// Namespace of the service.
    pub namespace: String,
    /// Name of the service.
    pub name: String,
}

impl ServiceKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.ipFamilyPolicy` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FamilyPolicy {
    /// One address, of the first family in `ipFamilies` (IPv4 when none is given).
    #[default]
    SingleStack,
    /// One address per family when pools allow; satisfied with at least one.
    PreferDualStack,
    /// One address per family, or none at all.
    RequireDualStack,
}

/// Transport protocol of a service port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    #[default]
    TCP,
    /// UDP.
    UDP,
    /// SCTP.
    SCTP,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::SCTP => "SCTP",
        })
    }
}

/// A port and protocol a service listens on; two services sharing an address must not repeat one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortProto {
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// Address sharing: services with the same key may share an address when their ports differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharing {
    /// The sharing key.
    pub key: String,
    /// Other namespaces whose services may share with this one; `"*"` allows every namespace.
    /// Both sides must allow each other. Services of one namespace may always share.
    pub allowed_namespaces: BTreeSet<String>,
}

impl Sharing {
    fn allows(&self, namespace: &str) -> bool {
        self.allowed_namespaces.contains("*") || self.allowed_namespaces.contains(namespace)
    }
}

/// An ordered list of distinct IP families (at most two), without heap allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Families {
    items: [Option<IpFamily>; 2],
    len: usize,
}

impl Families {
    fn push(&mut self, f: IpFamily) {
        if !self.contains(&f)
            && let Some(slot) = self.items.iter_mut().find(|s| s.is_none())
        {
            *slot = Some(f);
            self.len += 1;
        }
    }

    /// Keeps the first `n` families.
    fn truncate(&mut self, n: usize) {
        for slot in self.items.iter_mut().skip(n) {
            *slot = None;
        }
        self.len = self.len.min(n);
    }

    /// The families, in order.
    pub fn iter(&self) -> impl Iterator<Item = IpFamily> + '_ {
        // Slots fill in order, so the filled ones are the first `len`.
        self.items.iter().flatten().copied()
    }

    /// Whether `f` is one of them.
    pub fn contains(&self, f: &IpFamily) -> bool {
        self.items.contains(&Some(*f))
    }

    /// The families as a vector.
    pub fn to_vec(&self) -> Vec<IpFamily> {
        self.iter().collect()
    }

    /// Position of `f` in the list.
    pub fn position(&self, f: IpFamily) -> Option<usize> {
        self.iter().position(|x| x == f)
    }
}

/// Everything the allocator needs to know about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The service.
    pub key: ServiceKey,
    /// The service's labels plus the name/namespace pseudo-labels.
    pub labels: BTreeMap<String, String>,
    /// Labels of the service's namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// Specific addresses asked for (annotation or `spec.loadBalancerIP`); auto-assignment is
    /// off when non-empty.
    pub requested_ips: Vec<IpAddr>,
    /// Allocate only from this pool (which may have `autoAssign: false`).
    pub requested_pool: Option<String>,
    /// Address sharing, if the service opts in.
    pub sharing: Option<Sharing>,
    /// Ports of the service, for the sharing conflict check.
    pub ports: BTreeSet<PortProto>,
    /// `spec.ipFamilyPolicy`.
    pub family_policy: FamilyPolicy,
    /// `spec.ipFamilies`, in order; empty means "derive from policy and requested IPs".
    pub families: Vec<IpFamily>,
}

impl Request {
    /// A request with no labels, no constraints, single-stack IPv4, in a namespace whose only
    /// label is `kubernetes.io/metadata.name`.
    pub fn new(key: ServiceKey) -> Self {
        let labels = service_labels(&key.namespace, &key.name, &BTreeMap::new());
        let namespace_labels = default_namespace_labels(&key.namespace);
        Self {
            key,
            labels,
            namespace_labels,
            requested_ips: Vec::new(),
            requested_pool: None,
            sharing: None,
            ports: BTreeSet::new(),
            family_policy: FamilyPolicy::SingleStack,
            families: Vec::new(),
        }
    }

    /// Replaces the service labels (pseudo-labels are added).
    pub fn with_labels(mut self, labels: &BTreeMap<String, String>) -> Self {
        self.labels = service_labels(&self.key.namespace, &self.key.name, labels);
        self
    }

    /// The families to allocate, in order: `families` if given, else those of the requested
    /// IPs, else IPv4 (single stack) or IPv4 and IPv6 (dual stack). Single stack keeps one.
    pub fn wanted_families(&self) -> Families {
        let mut out = Families::default();
        if !self.families.is_empty() {
            self.families.iter().for_each(|f| out.push(*f));
        } else if !self.requested_ips.is_empty() {
            self.requested_ips
                .iter()
                .for_each(|ip| out.push(IpFamily::of(*ip)));
        } else {
            out.push(IpFamily::IPv4);
            if self.family_policy != FamilyPolicy::SingleStack {
                out.push(IpFamily::IPv6);
            }
        }
        if self.family_policy == FamilyPolicy::SingleStack {
            out.truncate(1);
        }
        out
    }

    /// Whether this service and `other` may share one address: same sharing key, each allowing
    /// the other's namespace, and no port/protocol in common.
    pub fn can_share_with(&self, other: &Request) -> bool {
        let (Some(a), Some(b)) = (&self.sharing, &other.sharing) else {
            return false;
        };
        if a.key != b.key {
            return false;
        }
        if self.key.namespace != other.key.namespace
            && !(a.allows(&other.key.namespace) && b.allows(&self.key.namespace))
        {
            return false;
        }
        self.ports.is_disjoint(&other.ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(ns: &str, key: &str, allowed: &[&str], ports: &[u16]) -> Request {
        let mut r = Request::new(ServiceKey::new(
            ns,
            format!("svc{}", ports.first().copied().unwrap_or(0)),
        ));
        r.sharing = Some(Sharing {
            key: key.into(),
            allowed_namespaces: allowed.iter().map(|s| (*s).to_owned()).collect(),
        });
        r.ports = ports
            .iter()
            .map(|&port| PortProto {
                port,
                protocol: Protocol::TCP,
            })
            .collect();
        r
    }

    #[test]
    fn sharing_needs_same_key_and_distinct_ports() {
        assert!(shared("a", "k", &[], &[80]).can_share_with(&shared("a", "k", &[], &[443])));
        assert!(!shared("a", "k", &[], &[80]).can_share_with(&shared("a", "k", &[], &[80])));
        assert!(!shared("a", "k", &[], &[80]).can_share_with(&shared("a", "j", &[], &[443])));
        let mut udp = shared("a", "k", &[], &[80]);
        udp.ports = BTreeSet::from([PortProto {
            port: 80,
            protocol: Protocol::UDP,
        }]);
        assert!(shared("a", "k", &[], &[80]).can_share_with(&udp));
    }

    #[test]
    fn cross_namespace_sharing_needs_both_sides_to_opt_in() {
        let a = shared("a", "k", &["b"], &[80]);
        let b_closed = shared("b", "k", &[], &[443]);
        let b_open = shared("b", "k", &["a"], &[443]);
        let b_star = shared("b", "k", &["*"], &[443]);
        assert!(!a.can_share_with(&b_closed));
        assert!(a.can_share_with(&b_open));
        assert!(a.can_share_with(&b_star));
        assert!(b_star.can_share_with(&a));
    }

    #[test]
    fn wanted_families_follow_policy_families_and_requests() {
        let mut r = Request::new(ServiceKey::new("a", "b"));
        assert_eq!(r.wanted_families().to_vec(), [IpFamily::IPv4]);
        r.family_policy = FamilyPolicy::RequireDualStack;
        assert_eq!(
            r.wanted_families().to_vec(),
            [IpFamily::IPv4, IpFamily::IPv6]
        );
        r.families = vec![IpFamily::IPv6, IpFamily::IPv4];
        assert_eq!(
            r.wanted_families().to_vec(),
            [IpFamily::IPv6, IpFamily::IPv4]
        );
        r.family_policy = FamilyPolicy::SingleStack;
        assert_eq!(r.wanted_families().to_vec(), [IpFamily::IPv6]);
        r.families.clear();
        r.requested_ips = vec!["2001:db8::5".parse().expect("ip")];
        assert_eq!(r.wanted_families().to_vec(), [IpFamily::IPv6]);
    }
}
