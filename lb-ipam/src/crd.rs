//! The `LoadBalancerIPPool` custom resource (`herald.io/v1alpha1`, cluster scoped). Its spec
//! follows Cilium's `CiliumLoadBalancerIPPool` (`blocks[].cidr|start|stop`, `serviceSelector`,
//! `allowFirstLastIPs: Yes|No`, `disabled`) plus MetalLB-style `priority`, `namespaceSelector`
//! and `autoAssign`, so a Cilium pool can be copied over by changing only `apiVersion`/`kind`.
//! Pure types; the YAML in `deploy/crds/` is generated from them by `lb-ipam crd`.
#![expect(
    clippy::duplicated_attributes,
    reason = "each kube printcolumn repeats `type_`; the lint reads them as duplicates"
)]

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::{Block, Pool, PoolSpec};
use crate::selector::LabelSelector;

/// Spec of a `LoadBalancerIPPool`.
#[derive(
    CustomResource, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "herald.io",
    version = "v1alpha1",
    kind = "LoadBalancerIPPool",
    plural = "loadbalancerippools",
    shortname = "lbippool",
    status = "LoadBalancerIPPoolStatus",
    printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Used", type_ = "string", json_path = ".status.used"),
    printcolumn(name = "Available", type_ = "string", json_path = ".status.available"),
    printcolumn(
        name = "Conflicting",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"herald.io/PoolConflict\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIPPoolSpec {
    /// Address blocks: each either `cidr` or `start` and `stop`.
    pub blocks: Vec<IpBlock>,
    /// Services allowed to use the pool (all when omitted). May test the pseudo-labels
    /// `io.kubernetes.service.name` and `io.kubernetes.service.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    /// Namespaces allowed to use the pool (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// `Yes` hands out the first and last address of each CIDR too. Default `No`.
    #[serde(
        default,
        rename = "allowFirstLastIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_first_last_ips: Option<YesNo>,
    /// Keep existing allocations but make no new ones.
    #[serde(default)]
    pub disabled: bool,
    /// Serve services that do not name this pool (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Lower values are preferred; pools without priority come last; ties go by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// One block of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// A prefix such as `192.0.2.0/24` or `2001:db8::/64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// First address of a range (with `stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Last address of a range (with `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

/// Cilium's spelling of a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum YesNo {
    /// True.
    Yes,
    /// False.
    No,
}

/// Status of a `LoadBalancerIPPool`, written by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIPPoolStatus {
    /// `herald.io/PoolConflict` (True when the pool overlaps an older one or is invalid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PoolCondition>,
    /// Allocatable addresses, as a decimal string (may exceed 64 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
    /// Addresses in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    /// Free addresses, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
}

/// A `metav1.Condition`-shaped condition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last status change.
    pub last_transition_time: String,
    /// `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The condition type reporting conflicts (and invalid specs) on pools.
pub const POOL_CONFLICT_CONDITION: &str = "herald.io/PoolConflict";

impl LoadBalancerIPPoolSpec {
    /// Validates the spec into a pool named `name`.
    pub fn to_pool(&self, name: &str) -> Result<Pool> {
        let invalid = |reason: String| Error::InvalidPool {
            pool: name.to_owned(),
            reason,
        };
        let parse_ip = |s: &str| {
            s.trim()
                .parse()
                .map_err(|_| invalid(format!("{s:?} is not an IP address")))
        };
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let block = match (&b.cidr, &b.start, &b.stop) {
                (Some(cidr), None, None) => Block::Cidr {
                    cidr: cidr
                        .trim()
                        .parse()
                        .map_err(|_| invalid(format!("{cidr:?} is not a CIDR")))?,
                },
                (None, Some(start), Some(stop)) => Block::Range {
                    start: parse_ip(start)?,
                    stop: parse_ip(stop)?,
                },
                _ => {
                    return Err(invalid(
                        "a block needs either `cidr` or both `start` and `stop`".into(),
                    ));
                }
            };
            blocks.push(block);
        }
        Pool::new(
            name,
            PoolSpec {
                blocks,
                service_selector: self.service_selector.clone(),
                namespace_selector: self.namespace_selector.clone(),
                allow_first_last_ips: self.allow_first_last_ips == Some(YesNo::Yes),
                disabled: self.disabled,
                auto_assign: self.auto_assign.unwrap_or(true),
                priority: self.priority,
            },
        )
    }
}

/// Header of the generated CRD file.
const CRD_HEADER: &str =
    "# Generated by `lb-ipam crd` from lb-ipam/src/crd.rs; do not edit by hand.\n";

/// The CRD as YAML, exactly as checked in under `deploy/crds/loadbalancerippool.yaml`.
pub fn crd_yaml() -> Result<String> {
    let body =
        serde_saphyr::to_string(&LoadBalancerIPPool::crd()).map_err(|e| Error::InvalidPool {
            pool: "<crd>".into(),
            reason: format!("cannot render the CRD: {e}"),
        })?;
    Ok(format!("{CRD_HEADER}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_crd_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crds/loadbalancerippool.yaml"
        );
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        let generated = crd_yaml().expect("render");
        assert!(
            on_disk == generated,
            "{path} is stale: run `cargo run -p lb-ipam -- crd > deploy/crds/loadbalancerippool.yaml`"
        );
    }

    #[test]
    fn crd_names_and_fields_follow_cilium() {
        let crd = LoadBalancerIPPool::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("loadbalancerippools.herald.io")
        );
        assert_eq!(crd.spec.scope, "Cluster");
        let yaml = crd_yaml().expect("render");
        for field in [
            "allowFirstLastIPs",
            "serviceSelector",
            "namespaceSelector",
            "matchExpressions",
            "priority",
            "cidr",
            "start",
            "stop",
        ] {
            assert!(yaml.contains(field), "CRD lacks {field}");
        }
    }

    #[test]
    fn cilium_pool_spec_converts() {
        let spec: LoadBalancerIPPoolSpec = serde_json::from_str(
            r#"{"blocks":[{"cidr":"10.0.0.0/30"},{"start":"10.0.1.1","stop":"10.0.1.3"}],
                "allowFirstLastIPs":"Yes","disabled":true,
                "serviceSelector":{"matchLabels":{"a":"b"}}}"#,
        )
        .expect("json");
        let pool = spec.to_pool("p").expect("pool");
        assert_eq!(pool.total(), 4 + 3);
        assert!(pool.spec().disabled && pool.spec().auto_assign);
        let bad = LoadBalancerIPPoolSpec {
            blocks: vec![IpBlock {
                cidr: Some("10.0.0.0/30".into()),
                start: Some("10.0.0.1".into()),
                stop: None,
            }],
            ..Default::default()
        };
        assert!(bad.to_pool("p").is_err());
    }
}
