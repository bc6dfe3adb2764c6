//! Liveness and readiness of the agent, for `/healthz` and `/readyz`. The agent is *live* while
//! its loop runs (the endpoint answering is the proof) and *ready* once the first desired state
//! has been applied and, on a node with a datapath, its programs are attached. Pure state behind
//! a shared handle; the HTTP side is in `api::metrics`.

use std::sync::{Arc, Mutex};

use super::datapath::DatapathState;

/// Shared readiness state.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<Readiness>>,
}

/// Whether the agent is ready, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Ready to serve.
    pub ready: bool,
    /// Why not (or "ok").
    pub reason: String,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            ready: false,
            reason: "starting: the first desired state is not applied yet".to_owned(),
        }
    }
}

impl Health {
    /// Records that a desired state was applied; `datapath` is the driver's state (`None`
    /// without a datapath).
    pub fn set_applied(&self, datapath: Option<DatapathState>) {
        let readiness = match datapath {
            None => Readiness {
                ready: true,
                reason: "ok".to_owned(),
            },
            Some(state) if state.attached => Readiness {
                ready: true,
                reason: "ok".to_owned(),
            },
            Some(state) => Readiness {
                ready: false,
                reason: state
                    .error
                    .unwrap_or_else(|| "datapath not attached yet".to_owned()),
            },
        };
        if let Ok(mut inner) = self.inner.lock() {
            *inner = readiness;
        }
    }

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        self.inner
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|_| Readiness {
                ready: false,
                reason: "health state poisoned".to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_the_first_apply_and_with_the_datapath_attached() {
        let health = Health::default();
        assert!(!health.readiness().ready);
        health.set_applied(Some(DatapathState {
            error: Some("datapath not attached: no interface eth9".into()),
            ..DatapathState::default()
        }));
        let r = health.readiness();
        assert!(!r.ready && r.reason.contains("eth9"), "{r:?}");
        health.set_applied(Some(DatapathState {
            attached: true,
            ..DatapathState::default()
        }));
        assert!(health.readiness().ready);
        health.set_applied(None);
        assert!(
            health.readiness().ready,
            "announcement-only agents are ready once applied"
        );
    }
}
