//! Leader election for the controller, so that two replicas never hand out the same address: one
//! `coordination.k8s.io/v1` Lease (`herald-lb-ipam` in the controller's namespace) names the
//! replica that may write Service and pool status; the others wait and take over when its
//! renewals stop.
//!
//! Safety rests on two clocks that need not agree, only tick at the same rate (as client-go's
//! election assumes):
//! - A **candidate** takes the Lease over only after it has seen the same Lease record (same
//!   `resourceVersion`) for a whole `leaseDurationSeconds` on its own monotonic clock. Wall-clock
//!   `renewTime`s are never compared across machines.
//! - The **leader** counts its leadership from when it *sent* its last successful renewal and
//!   gives it up after the renew deadline, shorter than the lease: it stops writing before any
//!   candidate may start.
//!
//! Every write of the Lease is an update with the `resourceVersion` last read (or a create), so
//! two candidates racing for it cannot both win: the API server refuses the second with 409.
//! [`decide`] is the pure rule; [`Leadership`] is the I/O.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// Name of the controller's Lease.
pub const LEASE_NAME: &str = "herald-lb-ipam";

/// Timers of the election. The defaults are client-go's: a 15 s lease, a 10 s renew deadline,
/// a try every 2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderTiming {
    /// How long a Lease record stays valid without renewal (`leaseDurationSeconds`).
    pub lease: Duration,
    /// How long after its last successful renewal was sent the leader keeps writing; shorter
    /// than `lease`.
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews.
    pub retry: Duration,
}

impl Default for LeaderTiming {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// Where the Lease is and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease (the controller's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// The timers.
    pub timing: LeaderTiming,
}

/// The part of a Lease the rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity` (`None` or empty: released).
    pub holder: Option<String>,
    /// `metadata.resourceVersion`: changes with every write.
    pub resource_version: String,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
}

/// What a candidate remembers between tries: the record it last saw and since when.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    seen: Option<(String, Instant)>,
}

/// What to do with the Lease now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No Lease exists: create it, holding it.
    Create,
    /// Write it, holding it (renew our own, take a released or expired one).
    Update,
    /// Another replica holds it; try again later.
    Wait,
}

/// Pure: the step for `me`, given the Lease as read at `now` (`None`: it does not exist) and what
/// was observed before (updated here).
pub fn decide(
    lease: Option<&LeaseRecord>,
    me: &str,
    observed: &mut Observation,
    now: Instant,
) -> Step {
    let Some(lease) = lease else {
        observed.seen = None;
        return Step::Create;
    };
    match lease.holder.as_deref() {
        None | Some("") => return Step::Update,
        Some(holder) if holder == me => return Step::Update,
        Some(_) => {}
    }
    match &observed.seen {
        Some((version, since)) if *version == lease.resource_version => {
            if now.saturating_duration_since(*since) >= lease.duration {
                Step::Update
            } else {
                Step::Wait
            }
        }
        _ => {
            observed.seen = Some((lease.resource_version.clone(), now));
            Step::Wait
        }
    }
}

fn record(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        duration: Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        ),
    }
}

/// One try at holding the Lease; `Ok(Some(version))` when we hold it now.
async fn try_hold(
    api: &Api<Lease>,
    cfg: &LeaderConfig,
    observed: &mut Observation,
) -> kube::Result<Option<Lease>> {
    let current = api.get_opt(LEASE_NAME).await?;
    let step = decide(
        current.as_ref().map(record).as_ref(),
        &cfg.identity,
        observed,
        Instant::now(),
    );
    let now = MicroTime(Timestamp::now());
    let seconds = i32::try_from(cfg.timing.lease.as_secs().max(1)).unwrap_or(i32::MAX);
    match (step, current) {
        (Step::Wait, _) => Ok(None),
        (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(Some)
        }
        (_, Some(mut lease)) => {
            let mut spec = lease.spec.take().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
                spec.holder_identity = Some(cfg.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = Some(now);
            lease.spec = Some(spec);
            // Carries the resourceVersion we read: a concurrent write makes this a 409.
            api.replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
                .map(Some)
        }
    }
}

/// This replica's leadership: held from [`Leadership::acquire`] until [`Leadership::lost`]
/// returns. Dropping it stops renewing (the Lease then expires; nothing is released early, so a
/// crash and a clean stop look alike to the others).
pub struct Leadership {
    deadline: watch::Receiver<Instant>,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("deadline", &*self.deadline.borrow())
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Waits until this replica holds the Lease, then keeps renewing it in the background.
    pub async fn acquire(client: Client, cfg: LeaderConfig) -> Self {
        let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
        let mut observed = Observation::default();
        let mut waiting_logged = false;
        loop {
            let sent = Instant::now();
            match try_hold(&api, &cfg, &mut observed).await {
                Ok(Some(_)) => {
                    tracing::info!(identity = %cfg.identity, lease = LEASE_NAME, "leading: this replica allocates");
                    let (tx, rx) = watch::channel(sent + cfg.timing.renew_deadline);
                    let renewer = tokio::spawn(renew(api, cfg, observed, tx));
                    return Self {
                        deadline: rx,
                        renewer,
                    };
                }
                Ok(None) => {
                    if !waiting_logged {
                        tracing::info!(identity = %cfg.identity, "standby: another replica holds the lease");
                        waiting_logged = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "trying for the leader lease");
                }
            }
            tokio::time::sleep(cfg.timing.retry).await;
        }
    }

    /// Whether this replica may write now.
    pub fn is_leading(&self) -> bool {
        Instant::now() < *self.deadline.borrow()
    }

    /// Returns when leadership has run out (renewals failed until the renew deadline, or another
    /// replica holds the Lease).
    pub async fn lost(&mut self) {
        loop {
            let deadline = *self.deadline.borrow_and_update();
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                changed = self.deadline.changed() => {
                    if changed.is_err() {
                        // The renewer ended: its last deadline stands.
                        tokio::time::sleep_until(deadline).await;
                        return;
                    }
                }
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews every `retry` while leading; moves the deadline forward after each success and ends
/// once the deadline has passed (leadership is never resumed by a late renewal).
async fn renew(
    api: Api<Lease>,
    cfg: LeaderConfig,
    mut observed: Observation,
    deadline: watch::Sender<Instant>,
) {
    loop {
        tokio::time::sleep(cfg.timing.retry).await;
        let sent = Instant::now();
        if sent >= *deadline.borrow() {
            break;
        }
        match try_hold(&api, &cfg, &mut observed).await {
            Ok(Some(_)) if Instant::now() < *deadline.borrow() => {
                deadline.send_replace(sent + cfg.timing.renew_deadline);
            }
            Ok(Some(_)) => break,
            Ok(None) => {
                tracing::warn!(identity = %cfg.identity, "another replica holds the leader lease; stopping");
                deadline.send_replace(sent);
                break;
            }
            Err(error) => tracing::warn!(%error, "renewing the leader lease (retrying)"),
        }
    }
    tracing::warn!(identity = %cfg.identity, "leadership lost: no more writes from this replica");
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn held(by: &str, version: &str) -> LeaseRecord {
        LeaseRecord {
            holder: Some(by.into()),
            resource_version: version.into(),
            duration: 15 * S,
        }
    }

    #[test]
    fn no_lease_is_created_and_our_own_or_a_released_one_is_written() {
        let now = Instant::now();
        let mut o = Observation::default();
        assert_eq!(decide(None, "a", &mut o, now), Step::Create);
        assert_eq!(
            decide(Some(&held("a", "7")), "a", &mut o, now),
            Step::Update
        );
        let released = LeaseRecord {
            holder: Some(String::new()),
            ..held("x", "8")
        };
        assert_eq!(decide(Some(&released), "a", &mut o, now), Step::Update);
    }

    #[test]
    fn another_holder_is_taken_over_only_after_a_whole_lease_without_change() {
        let t0 = Instant::now();
        let mut o = Observation::default();
        assert_eq!(decide(Some(&held("b", "1")), "a", &mut o, t0), Step::Wait);
        assert_eq!(
            decide(Some(&held("b", "1")), "a", &mut o, t0 + 14 * S),
            Step::Wait
        );
        // b renewed at 14 s: the count starts again from when the new record was seen.
        assert_eq!(
            decide(Some(&held("b", "2")), "a", &mut o, t0 + 15 * S),
            Step::Wait
        );
        assert_eq!(
            decide(Some(&held("b", "2")), "a", &mut o, t0 + 29 * S),
            Step::Wait
        );
        assert_eq!(
            decide(Some(&held("b", "2")), "a", &mut o, t0 + 30 * S),
            Step::Update
        );
    }

    #[test]
    fn the_leader_stops_before_any_candidate_may_start() {
        let t = LeaderTiming::default();
        assert!(t.renew_deadline + t.retry < t.lease);
    }
}
