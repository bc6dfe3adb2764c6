//! Kubernetes mode: the controller that gives `type: LoadBalancer` Services (class
//! `herald.io/lb` or unset) addresses from `LoadBalancerIPPool`s.
//!
//! [`plan()`] is pure (observed objects in, status patches out). This module is the I/O boundary:
//! [`Controller::sync`] applies a plan by server-side apply on the `status` subresources, and
//! [`run`] keeps reflector caches of Services, pools and Namespaces and runs a sync after every
//! change (debounced), retrying failed passes with a back-off. [`run_elected`] runs it only while
//! this replica holds the leader Lease ([`leader`]), so several replicas can run.

pub mod health;
pub mod leader;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::allocator::Held;
use crate::crd::LoadBalancerIPPool;
use crate::error::Result;
use crate::request::ServiceKey;

pub use health::{Health, Phase};
pub use leader::{LeaderConfig, LeaderTiming, Leadership};
pub use plan::{FIELD_MANAGER, Plan, SERVICE_CONDITION, plan};

/// What one sync pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Services whose status was patched, in order.
    pub services: Vec<ServiceKey>,
    /// Pools whose status was patched, in order.
    pub pools: Vec<String>,
    /// Patches that failed, with the error (retried on the next pass).
    pub failed: Vec<String>,
}

/// Applies plans through the API and remembers what it wrote.
pub struct Controller {
    client: Client,
    written: BTreeMap<ServiceKey, Held>,
}

impl Controller {
    /// A controller with no memory of earlier writes: its first pass rebuilds everything from
    /// Service status, as after a restart.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            written: BTreeMap::new(),
        }
    }

    /// One pass: plan from the given objects and apply the patches, services in key order then
    /// pools by name. A failed patch does not stop the others; it is reported.
    pub async fn sync(
        &mut self,
        services: &[Service],
        pools: &[LoadBalancerIPPool],
        namespaces: &BTreeMap<String, BTreeMap<String, String>>,
        now: &Time,
    ) -> Result<SyncReport> {
        let plan = plan::plan(services, pools, namespaces, &self.written, now)?;
        self.written
            .retain(|k, _| plan.live.binary_search(k).is_ok());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut report = SyncReport::default();
        for op in plan.services {
            let api: Api<Service> = Api::namespaced(self.client.clone(), &op.key.namespace);
            match api
                .patch_status(&op.key.name, &params, &Patch::Apply(&op.patch))
                .await
            {
                Ok(_) => {
                    let status = op.patch.get("status").map(ToString::to_string);
                    tracing::info!(service = %op.key, status = status.unwrap_or_default(), "service status applied");
                    match op.held {
                        Some(h) => {
                            self.written.insert(op.key.clone(), h);
                        }
                        None => {
                            self.written.remove(&op.key);
                        }
                    }
                    report.services.push(op.key);
                }
                Err(e) => {
                    tracing::warn!(service = %op.key, error = %e, "service status patch failed");
                    report.failed.push(format!("service {}: {e}", op.key));
                }
            }
        }
        let pools_api: Api<LoadBalancerIPPool> = Api::all(self.client.clone());
        for op in plan.pools {
            match pools_api
                .patch_status(&op.name, &params, &Patch::Apply(&op.patch))
                .await
            {
                Ok(_) => report.pools.push(op.name),
                Err(e) => {
                    tracing::warn!(pool = %op.name, error = %e, "pool status patch failed");
                    report.failed.push(format!("pool {}: {e}", op.name));
                }
            }
        }
        Ok(report)
    }
}

/// The current time as a Kubernetes timestamp (whole seconds, as the API server stores them).
pub fn now() -> Time {
    let ts = Timestamp::now();
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn cloned<K: Clone>(items: Vec<Arc<K>>) -> Vec<K> {
    items.into_iter().map(|k| (*k).clone()).collect()
}

/// Runs the controller until the watches end: caches Services, pools and Namespaces, waits for
/// the first full listing of each, then syncs after every change (debounced by `debounce`).
pub async fn run(client: Client, debounce: Duration) -> Result<()> {
    run_with_health(client, debounce, &Health::default()).await
}

/// [`run_with_health`] behind the leader Lease: waits (in [`Phase::Standby`]) until this replica
/// holds it, runs the controller with fresh caches while it does, and stops writing — drops the
/// caches and stands by again — when the renewals stop before the renew deadline. Two replicas
/// never write status at once, so they never hand out the same address.
pub async fn run_elected(
    client: Client,
    debounce: Duration,
    health: &Health,
    leader: LeaderConfig,
) -> Result<()> {
    loop {
        health.set(Phase::Standby);
        let mut leadership = Leadership::acquire(client.clone(), leader.clone()).await;
        health.set(Phase::WaitingForCaches);
        // Biased: once the deadline has passed, the controller is not polled again, so it sends
        // nothing more.
        tokio::select! {
            biased;
            () = leadership.lost() => {
                tracing::warn!("leadership lost: caches dropped, standing by");
            }
            result = run_with_health(client.clone(), debounce, health) => return result,
        }
    }
}

/// [`run`], reporting its start-up [`Phase`] to `health` (for `/readyz`).
pub async fn run_with_health(client: Client, debounce: Duration, health: &Health) -> Result<()> {
    let changed = Arc::new(Notify::new());

    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (pool_store, pool_writer) = reflector::store::<LoadBalancerIPPool>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let cfg = watcher::Config::default();
    let svc_stream = reflector(
        svc_writer,
        watcher(Api::<Service>::all(client.clone()), cfg.clone()),
    )
    .default_backoff()
    .map(|r| r.map(|_| ()))
    .boxed();
    let pool_stream = reflector(
        pool_writer,
        watcher(Api::<LoadBalancerIPPool>::all(client.clone()), cfg.clone()),
    )
    .default_backoff()
    .map(|r| r.map(|_| ()))
    .boxed();
    let ns_stream = reflector(
        ns_writer,
        watcher(Api::<Namespace>::all(client.clone()), cfg),
    )
    .default_backoff()
    .map(|r| r.map(|_| ()))
    .boxed();
    let mut events = futures::stream::select_all([svc_stream, pool_stream, ns_stream]);
    let notify = changed.clone();
    let pump = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "watch error (retrying with back-off)");
            }
            notify.notify_one();
        }
    });

    for ready in [
        svc_store.wait_until_ready().await,
        pool_store.wait_until_ready().await,
        ns_store.wait_until_ready().await,
    ] {
        if ready.is_err() {
            pump.abort();
            return Ok(());
        }
    }
    tracing::info!("caches ready; rebuilding allocations from Service status");
    health.set(Phase::FirstSync);

    let mut controller = Controller::new(client);
    let mut backoff = Duration::from_millis(500);
    loop {
        let namespaces: BTreeMap<String, BTreeMap<String, String>> = ns_store
            .state()
            .iter()
            .filter_map(|ns| {
                Some((
                    ns.metadata.name.clone()?,
                    ns.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        let report = controller
            .sync(
                &cloned(svc_store.state()),
                &cloned(pool_store.state()),
                &namespaces,
                &now(),
            )
            .await?;
        health.set(Phase::Synced);
        if report.failed.is_empty() {
            backoff = Duration::from_millis(500);
            changed.notified().await;
            tokio::time::sleep(debounce).await;
        } else {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = changed.notified() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        if pump.is_finished() {
            return Ok(());
        }
    }
}
