//! The Kubernetes source's I/O: kube-rs reflectors over the speaker's CRDs, Nodes, Services,
//! EndpointSlices and the Secrets of its namespace, feeding [`super::translate::translate`] after
//! every change (debounced) and publishing the result on a `watch` channel when it differs.
//!
//! A resource the speaker cannot read — its CRD is not installed (404) or RBAC forbids it (403) —
//! is reported once, as an error log and as an entry of `Desired::problems`; the other resources
//! keep working, and the watch keeps retrying with back-off, so installing the CRD or fixing the
//! Role later heals it without a restart (logged once too). A resource never listed is treated as
//! empty; one that turns unreadable after a good listing fails static: its last listed objects
//! stay in use (the reflector swaps its cache only when a new listing completes), so an RBAC edit
//! or a deleted CRD does not withdraw every route it fed. Such a watch restarts from a fresh
//! listing, whose completion is what says the resource is readable again.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

use super::crd::{
    BGPAdvertisement, BGPClusterConfig, BGPNodeConfigOverride, BGPPeerConfig, L2AnnouncementPolicy,
};
use super::translate::{Desired, Identity, Snapshot, translate};

/// The resources the source watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Watched {
    /// `BGPClusterConfig`.
    ClusterConfigs,
    /// `BGPPeerConfig`.
    PeerConfigs,
    /// `BGPAdvertisement`.
    Advertisements,
    /// `BGPNodeConfigOverride`.
    Overrides,
    /// `L2AnnouncementPolicy`.
    L2Policies,
    /// Nodes.
    Nodes,
    /// Services.
    Services,
    /// EndpointSlices.
    EndpointSlices,
    /// Secrets of the speaker's namespace.
    Secrets,
}

impl Watched {
    /// Every watched resource.
    pub const ALL: [Watched; 9] = [
        Watched::ClusterConfigs,
        Watched::PeerConfigs,
        Watched::Advertisements,
        Watched::Overrides,
        Watched::L2Policies,
        Watched::Nodes,
        Watched::Services,
        Watched::EndpointSlices,
        Watched::Secrets,
    ];

    fn is_crd(self) -> bool {
        matches!(
            self,
            Watched::ClusterConfigs
                | Watched::PeerConfigs
                | Watched::Advertisements
                | Watched::Overrides
                | Watched::L2Policies
        )
    }

    /// The API resource name (`plural.group`).
    pub fn resource(self) -> &'static str {
        match self {
            Watched::ClusterConfigs => "bgpclusterconfigs.herald.io",
            Watched::PeerConfigs => "bgppeerconfigs.herald.io",
            Watched::Advertisements => "bgpadvertisements.herald.io",
            Watched::Overrides => "bgpnodeconfigoverrides.herald.io",
            Watched::L2Policies => "l2announcementpolicies.herald.io",
            Watched::Nodes => "nodes",
            Watched::Services => "services",
            Watched::EndpointSlices => "endpointslices.discovery.k8s.io",
            Watched::Secrets => "secrets",
        }
    }
}

impl fmt::Display for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.resource())
    }
}

/// Whether a watched resource is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Availability {
    /// No complete listing yet.
    Pending,
    /// Listed (and watched).
    Ready,
    /// Not readable and never listed; the message says why and what to do. Treated as empty.
    Unavailable(String),
    /// Listed before, not readable now; the message says why. The last listed objects stay in
    /// use (fail static).
    Stale(String),
}

impl Availability {
    /// Whether the reflector's cache holds a complete listing to use.
    fn usable(&self) -> bool {
        matches!(self, Availability::Ready | Availability::Stale(_))
    }
}

enum Outcome {
    Changed,
    Ready,
    Failed(watcher::Error),
}

/// Pure: the HTTP status of a watch error that will not heal by retrying (404: a missing CRD,
/// 403: a missing permission), or `None` for transient errors.
fn permanent_status(error: &watcher::Error) -> Option<u16> {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.as_ref(),
        watcher::Error::WatchError(s) => s.as_ref(),
        _ => return None,
    };
    matches!(status.code, 403 | 404).then_some(status.code)
}

/// Pure: the operator-facing message for a watch error that will not heal by retrying (a
/// missing CRD or a missing permission), or `None` for transient errors. `listed` says whether
/// the resource was listed before: then its last listed objects are kept, else it is empty.
pub fn permanent_problem(
    which: Watched,
    namespace: &str,
    error: &watcher::Error,
    listed: bool,
) -> Option<String> {
    let code = permanent_status(error)?;
    let treated = if listed {
        "keeping the last listed objects"
    } else {
        "treated as empty"
    };
    Some(match code {
        404 if which.is_crd() => format!(
            "{which}: CustomResourceDefinition not installed (404); {treated} until it is \
             (kubectl apply -k deploy/crds)"
        ),
        404 => format!("{which}: not served by the API server (404); {treated}"),
        _ => format!(
            "{which}: forbidden (403) for the speaker's service account{}; {treated} \
             until RBAC allows list/watch (deploy/speaker/rbac.yaml)",
            if which == Watched::Secrets {
                format!(" in namespace {namespace}")
            } else {
                String::new()
            }
        ),
    })
}

/// Pure: whether `problem` is one of [`permanent_problem`]'s messages (an unreadable resource),
/// which the watcher logs itself.
pub fn is_availability_problem(problem: &str) -> bool {
    Watched::ALL.iter().any(|w| {
        problem
            .strip_prefix(w.resource())
            .is_some_and(|rest| rest.starts_with(": "))
            && (problem.contains(" (404)") || problem.contains(" (403)"))
    })
}

/// One resource's events, applied to its reflector cache. A permanent error on the watch (after
/// a listing) restarts the watcher, so the resource is listed afresh: the cache keeps the last
/// listing until the new one completes ([`watcher::Event::InitDone`]), which is what marks the
/// resource readable again. A failing listing is retried by the watcher itself, with back-off.
fn stream<K>(
    which: Watched,
    api: Api<K>,
    writer: reflector::store::Writer<K>,
) -> BoxStream<'static, (Watched, Outcome)>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let fresh = move || {
        watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed()
    };
    let events = fresh();
    futures::stream::unfold(
        (writer, events, fresh),
        move |(mut writer, mut events, fresh)| async move {
            let outcome = match events.next().await? {
                Ok(event) => {
                    writer.apply_watcher_event(&event);
                    match event {
                        watcher::Event::InitDone => Outcome::Ready,
                        _ => Outcome::Changed,
                    }
                }
                Err(error) => {
                    let listing = matches!(error, watcher::Error::InitialListFailed(_));
                    if !listing && permanent_status(&error).is_some() {
                        events = fresh();
                    }
                    Outcome::Failed(error)
                }
            };
            Some(((which, outcome), (writer, events, fresh)))
        },
    )
    .boxed()
}

/// The reflector caches, readable at any time.
#[derive(Clone)]
struct Stores {
    cluster_configs: Store<BGPClusterConfig>,
    peer_configs: Store<BGPPeerConfig>,
    advertisements: Store<BGPAdvertisement>,
    overrides: Store<BGPNodeConfigOverride>,
    l2_policies: Store<L2AnnouncementPolicy>,
    nodes: Store<Node>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

fn items<K>(store: &Store<K>, usable: bool) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    if !usable {
        return Vec::new();
    }
    store
        .state()
        .iter()
        .map(|k| Arc::unwrap_or_clone(k.clone()))
        .collect()
}

impl Stores {
    fn snapshot(&self, availability: &BTreeMap<Watched, Availability>) -> Snapshot {
        let ok = |w: Watched| availability.get(&w).is_some_and(Availability::usable);
        Snapshot {
            cluster_configs: items(&self.cluster_configs, ok(Watched::ClusterConfigs)),
            peer_configs: items(&self.peer_configs, ok(Watched::PeerConfigs)),
            advertisements: items(&self.advertisements, ok(Watched::Advertisements)),
            overrides: items(&self.overrides, ok(Watched::Overrides)),
            l2_policies: items(&self.l2_policies, ok(Watched::L2Policies)),
            nodes: items(&self.nodes, ok(Watched::Nodes)),
            services: items(&self.services, ok(Watched::Services)),
            endpoint_slices: items(&self.endpoint_slices, ok(Watched::EndpointSlices)),
            secrets: items(&self.secrets, ok(Watched::Secrets)),
            problems: availability
                .values()
                .filter_map(|a| match a {
                    Availability::Unavailable(why) | Availability::Stale(why) => Some(why.clone()),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// Settings of the Kubernetes source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// This node and the speaker's namespace.
    pub identity: Identity,
    /// Wait this long after a change before translating, to batch bursts.
    pub debounce: Duration,
}

/// Watches the cluster and publishes this node's desired state on `desired_tx` whenever it
/// changes, once every resource has been listed or found unavailable. Returns when every watch
/// has ended or nobody listens any more.
pub async fn run(client: Client, cfg: SourceConfig, desired_tx: watch::Sender<Option<Desired>>) {
    let ns = cfg.identity.namespace.clone();
    let (cluster_configs, w1) = reflector::store();
    let (peer_configs, w2) = reflector::store();
    let (advertisements, w3) = reflector::store();
    let (overrides, w4) = reflector::store();
    let (l2_policies, w5) = reflector::store();
    let (nodes, w6) = reflector::store();
    let (services, w7) = reflector::store();
    let (endpoint_slices, w8) = reflector::store();
    let (secrets, w9) = reflector::store();
    let stores = Stores {
        cluster_configs,
        peer_configs,
        advertisements,
        overrides,
        l2_policies,
        nodes,
        services,
        endpoint_slices,
        secrets,
    };
    let mut events = futures::stream::select_all([
        stream(Watched::ClusterConfigs, Api::all(client.clone()), w1),
        stream(Watched::PeerConfigs, Api::all(client.clone()), w2),
        stream(Watched::Advertisements, Api::all(client.clone()), w3),
        stream(Watched::Overrides, Api::all(client.clone()), w4),
        stream(Watched::L2Policies, Api::all(client.clone()), w5),
        stream(Watched::Nodes, Api::all(client.clone()), w6),
        stream(Watched::Services, Api::all(client.clone()), w7),
        stream(Watched::EndpointSlices, Api::all(client.clone()), w8),
        stream(Watched::Secrets, Api::namespaced(client, &ns), w9),
    ]);
    let mut availability: BTreeMap<Watched, Availability> = Watched::ALL
        .iter()
        .map(|w| (*w, Availability::Pending))
        .collect();
    let mut deadline: Option<Instant> = None;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next() => {
                let Some((which, outcome)) = event else { return };
                let slot = availability.entry(which).or_insert(Availability::Pending);
                match outcome {
                    Outcome::Ready => {
                        if matches!(slot, Availability::Unavailable(_) | Availability::Stale(_)) {
                            tracing::info!(resource = %which, "resource readable again");
                        }
                        *slot = Availability::Ready;
                    }
                    Outcome::Changed => {}
                    Outcome::Failed(error) => match permanent_problem(which, &ns, &error, slot.usable()) {
                        Some(why) => {
                            let next = if slot.usable() {
                                Availability::Stale(why.clone())
                            } else {
                                Availability::Unavailable(why.clone())
                            };
                            if *slot != next {
                                tracing::error!(resource = %which, "{why}");
                                *slot = next;
                            } else {
                                tracing::debug!(resource = %which, %error, "still unavailable");
                            }
                        }
                        None => tracing::warn!(resource = %which, %error, "watch error; retrying with back-off"),
                    },
                }
                if deadline.is_none() {
                    deadline = Some(Instant::now() + cfg.debounce);
                }
            }
            () = sleep => {
                deadline = None;
                if availability.values().any(|a| *a == Availability::Pending) {
                    continue;
                }
                let desired = translate(&cfg.identity, &stores.snapshot(&availability));
                let changed = desired_tx.send_if_modified(|current| {
                    if current.as_ref() == Some(&desired) {
                        false
                    } else {
                        *current = Some(desired);
                        true
                    }
                });
                if changed {
                    tracing::debug!("desired state changed");
                }
                if desired_tx.is_closed() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> watcher::Error {
        watcher::Error::InitialListFailed(kube::Error::Api(
            kube::core::Status {
                code,
                message: "mock".into(),
                reason: "mock".into(),
                ..Default::default()
            }
            .boxed(),
        ))
    }

    #[test]
    fn missing_crd_and_forbidden_are_permanent_and_recognised() {
        let crd =
            permanent_problem(Watched::Advertisements, "ns", &api_error(404), false).expect("404");
        assert!(
            crd.contains("CustomResourceDefinition not installed"),
            "{crd}"
        );
        let rbac = permanent_problem(Watched::Secrets, "ns", &api_error(403), false).expect("403");
        assert!(rbac.contains("in namespace ns"), "{rbac}");
        assert!(is_availability_problem(&crd) && is_availability_problem(&rbac));
        assert!(crd.contains("treated as empty"), "{crd}");
        let stale = permanent_problem(Watched::Services, "ns", &api_error(403), true).expect("403");
        assert!(
            stale.starts_with("services: forbidden (403)")
                && stale.contains("keeping the last listed objects"),
            "{stale}"
        );
        assert!(is_availability_problem(&stale));
        assert_eq!(
            permanent_problem(Watched::Nodes, "ns", &api_error(500), false),
            None,
            "a server error is transient"
        );
        assert!(!is_availability_problem(
            "BGPClusterConfig all instance main peer tor1: BGPPeerConfig x not found (404)"
        ));
    }
}
