//! The controller's liveness and readiness as the kubelet sees them through `/healthz` and
//! `/readyz` on [`crate::endpoint`]. [`run_with_health`](super::run_with_health) moves the phase
//! forward; nothing else writes it. No data is exposed: the endpoint has no `/metrics` here, so it
//! may listen on the pod IP.

use std::sync::{Arc, Mutex};

use crate::endpoint::{Endpoints, Readiness};

/// Where the controller is in its start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    /// Another replica holds the leader Lease; this one waits to take over. Ready: a standby is
    /// healthy, and a rollout must not wait for it to lead.
    Standby,
    /// Listing Services, pools and Namespaces (the reflector caches are not ready yet).
    #[default]
    WaitingForCaches,
    /// Caches ready; the first sync pass (which rebuilds allocations from Service status) runs.
    FirstSync,
    /// A full pass has completed; later passes keep running (failed patches are retried).
    Synced,
}

/// A shared handle on the controller's [`Phase`].
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<Phase>>);

impl Health {
    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        // A poisoned lock only means a panicking writer; the value is a plain enum.
        let mut current = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *current = phase;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Endpoints for Health {
    fn readiness(&self) -> Readiness {
        let (ready, reason) = match self.phase() {
            Phase::Standby => (true, "standby: another replica holds the leader lease"),
            Phase::WaitingForCaches => (
                false,
                "waiting for the Service, LoadBalancerIPPool and Namespace caches",
            ),
            Phase::FirstSync => (false, "caches ready; the first sync pass is running"),
            Phase::Synced => (true, "ok"),
        };
        Readiness {
            ready,
            reason: reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_the_first_sync_pass() {
        let health = Health::default();
        let seen = |h: &Health| h.readiness().ready;
        assert!(!seen(&health));
        assert!(health.readiness().reason.contains("caches"));
        health.set(Phase::FirstSync);
        assert!(!seen(&health));
        health.clone().set(Phase::Synced);
        assert!(seen(&health));
        assert_eq!(health.readiness().reason, "ok");
    }
}
