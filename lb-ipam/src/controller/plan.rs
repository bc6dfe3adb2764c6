//! The pure half of the controller: from the observed Services, pools and namespaces (plus what
//! the controller itself wrote last), compute the status each Service and pool should have and
//! the server-side-apply patches that get them there. No API calls; time is a parameter.
//!
//! Allocations are rebuilt on every pass from Service status (the single source of truth in
//! Kubernetes mode), so a restarted controller reproduces the same allocations and never
//! reshuffles. Services the controller patched recently are taken from its own record of what
//! it wrote, because the watch cache may lag behind its own writes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

use crate::allocator::{Allocator, Held, Outcome};
use crate::crd::{
    LoadBalancerIPPool, LoadBalancerIPPoolStatus, POOL_CONFLICT_CONDITION, PoolCondition,
};
use crate::error::Result;
use crate::pool::{IpFamily, Pool};
use crate::request::{FamilyPolicy, Protocol, Request, ServiceKey};
use crate::service::{ServicePort, ServiceSpec, ServiceType, TrafficPolicy};

/// Field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "herald-lb-ipam";
/// Condition type the controller sets on Services it serves.
pub const SERVICE_CONDITION: &str = "herald.io/lb-ipam-request-satisfied";

/// A status patch for one Service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOp {
    /// The service.
    pub key: ServiceKey,
    /// Server-side apply body for the `status` subresource.
    pub patch: Value,
    /// What the service holds once the patch is applied (`None`: released, no longer ours).
    pub held: Option<Held>,
}

/// A status patch for one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOp {
    /// Pool name.
    pub name: String,
    /// Server-side apply body for the `status` subresource.
    pub patch: Value,
}

/// The patches one pass must apply, services in key order then pools by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Service status patches.
    pub services: Vec<ServiceOp>,
    /// Pool status patches.
    pub pools: Vec<PoolOp>,
    /// Services served by Herald that exist now (to forget the others).
    pub live: Vec<ServiceKey>,
}

/// Converts a Kubernetes Service to Herald's [`ServiceSpec`] (endpoints stay empty: they come
/// from EndpointSlices, which IPAM does not need).
pub fn service_spec_from_k8s(svc: &Service) -> std::result::Result<ServiceSpec, String> {
    let name = svc.metadata.name.clone().ok_or("service without a name")?;
    let namespace = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let mut out = ServiceSpec::new(namespace, name);
    out.labels = svc.metadata.labels.clone().unwrap_or_default();
    out.annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let Some(spec) = &svc.spec else {
        out.service_type = ServiceType::ClusterIP;
        return Ok(out);
    };
    out.service_type = match spec.type_.as_deref() {
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("NodePort") => ServiceType::NodePort,
        Some("ExternalName") => ServiceType::ExternalName,
        _ => ServiceType::ClusterIP,
    };
    out.load_balancer_class = spec.load_balancer_class.clone();
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        out.load_balancer_ip = Some(
            ip.parse()
                .map_err(|_| format!("spec.loadBalancerIP {ip:?} is not an IP address"))?,
        );
    }
    out.ip_family_policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => Some(FamilyPolicy::PreferDualStack),
        Some("RequireDualStack") => Some(FamilyPolicy::RequireDualStack),
        Some("SingleStack") => Some(FamilyPolicy::SingleStack),
        _ => None,
    };
    out.ip_families = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(IpFamily::IPv4),
            "IPv6" => Some(IpFamily::IPv6),
            _ => None,
        })
        .collect();
    for p in spec.ports.iter().flatten() {
        let port = u16::try_from(p.port).map_err(|_| format!("port {} out of range", p.port))?;
        let protocol = match p.protocol.as_deref() {
            Some("UDP") => Protocol::UDP,
            Some("SCTP") => Protocol::SCTP,
            _ => Protocol::TCP,
        };
        out.ports.push(ServicePort {
            name: p.name.clone(),
            port,
            protocol,
        });
    }
    out.external_traffic_policy = match spec.external_traffic_policy.as_deref() {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    out.external_ips = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect();
    out.cluster_ip = spec.cluster_ip.as_deref().and_then(|s| s.parse().ok());
    Ok(out)
}

fn our_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == SERVICE_CONDITION)
}

fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// What a Service holds according to its status: ingress addresses, and addresses it lost
/// (named in the message of an `AddressLost` condition).
pub fn held_from_status(svc: &Service) -> Held {
    let lost = our_condition(svc)
        .filter(|c| c.reason == "AddressLost")
        .map(|c| {
            c.message
                .split_whitespace()
                .filter_map(|w| {
                    w.trim_matches(|ch: char| ch == ',' || ch == ';')
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    Held {
        addresses: ingress_ips(svc),
        lost,
    }
}

fn service_key(svc: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        svc.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        svc.metadata.name.clone()?,
    ))
}

/// Computes the patches of one pass. `written` holds what the controller last applied per
/// service; `now` stamps conditions whose status changes.
pub fn plan(
    services: &[Service],
    pools: &[LoadBalancerIPPool],
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    written: &BTreeMap<ServiceKey, Held>,
    now: &Time,
) -> Result<Plan> {
    // Pools, oldest first: the older of two overlapping pools keeps its addresses.
    let mut pool_objs: Vec<&LoadBalancerIPPool> = pools.iter().collect();
    pool_objs.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    });
    let mut valid_pools: Vec<Pool> = Vec::new();
    let mut invalid_pools: BTreeMap<String, String> = BTreeMap::new();
    for p in &pool_objs {
        let Some(name) = p.metadata.name.as_deref() else {
            continue;
        };
        match p.spec.to_pool(name) {
            Ok(pool) => valid_pools.push(pool),
            Err(e) => {
                invalid_pools.insert(name.to_owned(), e.to_string());
            }
        }
    }

    let mut ours: BTreeMap<ServiceKey, &Service> = BTreeMap::new();
    let mut releases: Vec<ServiceOp> = Vec::new();
    let mut valid: Vec<(Request, Held)> = Vec::new();
    let mut invalid: Vec<(ServiceKey, String, Held)> = Vec::new();
    for svc in services {
        let Some(key) = service_key(svc) else {
            continue;
        };
        if svc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let held = written
            .get(&key)
            .cloned()
            .unwrap_or_else(|| held_from_status(svc));
        let spec = match service_spec_from_k8s(svc) {
            Ok(spec) => spec,
            Err(reason) => {
                ours.insert(key.clone(), svc);
                invalid.push((key, reason, held));
                continue;
            }
        };
        if !spec.wants_load_balancer_ip() {
            // No longer ours (type or class changed): give our status fields up.
            if our_condition(svc).is_some() || written.contains_key(&key) {
                releases.push(ServiceOp {
                    patch: service_patch(&key, None, None)?,
                    key,
                    held: None,
                });
            }
            continue;
        }
        ours.insert(key.clone(), svc);
        match spec.ipam_request(namespaces.get(&key.namespace)) {
            Ok(r) => valid.push((r, held)),
            Err(e) => invalid.push((key, e.to_string(), held)),
        }
    }

    let alloc = Allocator::rebuild_with_invalid(valid_pools, valid, invalid)?;
    let mut plan = Plan {
        live: ours.keys().cloned().collect(),
        ..Default::default()
    };
    for view in alloc.services() {
        let Some(svc) = ours.get(view.key) else {
            continue;
        };
        let (status, reason, message) = match view.outcome {
            Outcome::Satisfied => ("True", "Satisfied".to_owned(), String::new()),
            Outcome::Unsatisfied(u) => ("False", u.reason().to_owned(), u.to_string()),
        };
        let current = our_condition(svc);
        let unchanged = ingress_ips(svc) == view.addresses
            && current
                .is_some_and(|c| c.status == status && c.reason == reason && c.message == message);
        if unchanged {
            continue;
        }
        let since = current
            .filter(|c| c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        let condition = Condition {
            type_: SERVICE_CONDITION.to_owned(),
            status: status.to_owned(),
            reason,
            message,
            last_transition_time: since,
            observed_generation: svc.metadata.generation,
        };
        plan.services.push(ServiceOp {
            key: view.key.clone(),
            patch: service_patch(view.key, Some(&view.addresses), Some(&condition))?,
            held: Some(Held {
                addresses: view.addresses.clone(),
                lost: view.lost.clone(),
            }),
        });
    }
    plan.services.extend(releases);
    plan.services.sort_by(|a, b| a.key.cmp(&b.key));

    let statuses: BTreeMap<String, _> = alloc
        .pool_statuses()
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut pool_ops: Vec<PoolOp> = Vec::new();
    for p in &pool_objs {
        let Some(name) = p.metadata.name.as_deref() else {
            continue;
        };
        let (cond_status, reason, message, counts) = if let Some(err) = invalid_pools.get(name) {
            ("True", "InvalidSpec", err.clone(), None)
        } else if let Some(st) = statuses.get(name) {
            match &st.conflicts_with {
                Some(other) => (
                    "True",
                    "Overlap",
                    format!("overlaps older pool {other}; this pool allocates nothing"),
                    Some(st),
                ),
                None => ("False", "NoConflict", String::new(), Some(st)),
            }
        } else {
            continue;
        };
        let current = p.status.clone().unwrap_or_default();
        let old = current
            .conditions
            .iter()
            .find(|c| c.type_ == POOL_CONFLICT_CONDITION);
        let since = old
            .filter(|c| c.status == cond_status)
            .map_or_else(|| time_string(now), |c| c.last_transition_time.clone());
        let desired = LoadBalancerIPPoolStatus {
            conditions: vec![PoolCondition {
                type_: POOL_CONFLICT_CONDITION.to_owned(),
                status: cond_status.to_owned(),
                reason: reason.to_owned(),
                message,
                last_transition_time: since,
                observed_generation: p.metadata.generation,
            }],
            total: counts.map(|s| s.total.to_string()),
            used: counts.map(|s| s.used.to_string()),
            available: counts.map(|s| s.available.to_string()),
        };
        let same_condition = old.zip(desired.conditions.first()).is_some_and(|(c, d)| {
            c.status == d.status && c.reason == d.reason && c.message == d.message
        });
        let same_counts = (&current.total, &current.used, &current.available)
            == (&desired.total, &desired.used, &desired.available);
        if !(same_condition && same_counts) {
            pool_ops.push(PoolOp {
                name: name.to_owned(),
                patch: json!({
                    "apiVersion": "herald.io/v1alpha1",
                    "kind": "LoadBalancerIPPool",
                    "metadata": {"name": name},
                    "status": serde_json::to_value(&desired)?,
                }),
            });
        }
    }
    pool_ops.sort_by(|a, b| a.name.cmp(&b.name));
    plan.pools = pool_ops;
    Ok(plan)
}

fn time_string(t: &Time) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A server-side apply body for a Service's status. With no addresses and no condition, the
/// body owns nothing, which hands every status field back.
fn service_patch(
    key: &ServiceKey,
    addresses: Option<&[IpAddr]>,
    condition: Option<&Condition>,
) -> Result<Value> {
    let mut status = serde_json::Map::new();
    if let Some(addrs) = addresses {
        let ingress: Vec<Value> = addrs
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect();
        status.insert("loadBalancer".into(), json!({"ingress": ingress}));
    }
    if let Some(c) = condition {
        status.insert(
            "conditions".into(),
            Value::Array(vec![serde_json::to_value(c)?]),
        );
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": key.name, "namespace": key.namespace},
        "status": status,
    }))
}
