//! arp-responder's [`MembershipStore`] on Kubernetes: one `coordination.k8s.io/v1` Lease per
//! *node* (`herald-l2-<node>`, labelled [`MEMBERSHIP_LABEL`]) in the speaker's namespace. A
//! renewal is one server-side apply of the node's own Lease plus one list of the labelled Leases
//! served from the API server's watch cache (`resourceVersion=0`): API traffic is two requests per
//! node per renew period, whatever the number of services (Cilium holds one Lease per Service).
//!
//! Membership is the set of holders whose `renewTime + leaseDurationSeconds` is still ahead of
//! the local wall clock ([`members`], pure). The lease duration is rounded *up* to whole
//! seconds, so other nodes never drop a node before its own lease (which it enforces locally
//! with the exact duration) has run out. Wall clocks must be in sync, as for any Lease.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arp_responder::election::store::StoreFuture;
use arp_responder::election::{Membership, MembershipStore};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::status::FIELD_MANAGER;

/// Label (key, value) on every membership Lease; the list selects on it.
pub const MEMBERSHIP_LABEL: (&str, &str) = ("app.kubernetes.io/component", "herald-l2-membership");
/// Prefix of the Lease names.
pub const LEASE_PREFIX: &str = "herald-l2-";

/// A wall clock (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The Lease-backed membership store.
#[derive(Clone)]
pub struct LeaseStore {
    api: Api<Lease>,
    clock: Clock,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore").finish_non_exhaustive()
    }
}

impl LeaseStore {
    /// A store of Leases in `namespace`, using the system clock.
    pub fn new(client: Client, namespace: &str) -> Self {
        Self::with_clock(client, namespace, Arc::new(SystemTime::now))
    }

    /// A store with an explicit clock.
    pub fn with_clock(client: Client, namespace: &str, clock: Clock) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            clock,
        }
    }
}

/// The Lease name of `node`.
pub fn lease_name(node: &str) -> String {
    format!("{LEASE_PREFIX}{node}")
}

fn micro(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Pure: holders of the Leases still valid at `now`.
pub fn members(leases: &[Lease], now: SystemTime) -> BTreeSet<String> {
    let now = micro(now);
    leases
        .iter()
        .filter_map(|l| {
            let spec = l.spec.as_ref()?;
            let holder = spec.holder_identity.clone()?;
            let renewed = spec.renew_time.as_ref()?.0;
            let duration = i64::from(spec.lease_duration_seconds?.max(0));
            let expiry = renewed.as_second().checked_add(duration)?;
            let still = expiry > now.as_second()
                || (expiry == now.as_second()
                    && renewed.subsec_nanosecond() > now.subsec_nanosecond());
            still.then_some(holder)
        })
        .collect()
}

fn store_error(what: &str, e: kube::Error) -> arp_responder::Error {
    arp_responder::Error::Store(format!("{what}: {e}"))
}

impl MembershipStore for LeaseStore {
    fn renew<'a>(&'a self, node: &'a str, lease: Duration) -> StoreFuture<'a, Membership> {
        Box::pin(async move {
            let now = (self.clock)();
            let seconds = i32::try_from(lease.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
            let name = lease_name(node);
            let body = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "labels": { MEMBERSHIP_LABEL.0: MEMBERSHIP_LABEL.1 },
                },
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": seconds.max(1),
                    "renewTime": micro(now),
                },
            });
            self.api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|e| store_error(&format!("renewing Lease {name}"), e))?;
            let selector = format!("{}={}", MEMBERSHIP_LABEL.0, MEMBERSHIP_LABEL.1);
            let list = self
                .api
                .list(&ListParams::default().labels(&selector).match_any())
                .await
                .map_err(|e| store_error("listing membership Leases", e))?;
            let mut members = members(&list.items, (self.clock)());
            // Our own renewal just succeeded, even if the cached list lags behind it.
            members.insert(node.to_owned());
            Ok(Membership { members })
        })
    }

    fn release<'a>(&'a self, node: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let name = lease_name(node);
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(store_error(&format!("deleting Lease {name}"), e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed_secs: i64, duration: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_secs).expect("ts"))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn members_are_holders_of_unexpired_leases() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let leases = [
            lease("a", 999, 3),
            lease("b", 990, 3),
            lease("c", 997, 3),
            Lease::default(),
        ];
        let m = members(&leases, now);
        assert_eq!(m, BTreeSet::from(["a".to_owned()]));
    }
}
