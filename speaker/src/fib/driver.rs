//! The FIB import task: receives per-prefix next-hop changes from the BGP instance, keeps the
//! desired kernel table, and reconciles it through [`super::Fib`] after each batch (changes that
//! arrive while a reconcile runs are batched into the next one). Failed kernel operations are
//! retried on the next batch and at most every [`RETRY_EVERY`]. Routes of our protocol found at
//! start (left by a previous run) keep forwarding until [`FibHandle::end_of_rib`] says every peer
//! has sent its initial update, or [`SELECTION_DEFERRAL`] runs out; then those not learned again
//! are swept. At shutdown the routes are removed unless the configuration keeps them for a
//! graceful restart.
//!
//! I/O boundary: the [`super::NetlinkFib`] the task owns.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use super::{Fib, FibNextHop, FibRoutes, NetlinkFib, Retained};
use crate::config::FibImportConfig;
use crate::error::Result;

/// How often failed kernel operations are retried when nothing else changes.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// How long routes left by a previous run are kept when not every peer sends End-of-RIB
/// (RFC 4724 §4.1's Selection_Deferral_Timer; its suggested default is not given, FRR uses 120 s).
pub const SELECTION_DEFERRAL: Duration = Duration::from_secs(120);

/// A prefix's new next hops (empty: remove the route).
pub type FibChange = (IpNet, BTreeSet<FibNextHop>);

enum Command {
    Changes(Vec<FibChange>),
    Installed(oneshot::Sender<FibRoutes>),
    EndOfRib,
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the FIB task.
#[derive(Debug, Clone)]
pub struct FibHandle {
    commands: mpsc::UnboundedSender<Command>,
    kept_routes: bool,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Changes(_) => "Changes",
            Command::Installed(_) => "Installed",
            Command::EndOfRib => "EndOfRib",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}

impl FibHandle {
    /// Opens the kernel table of `config` (in the calling thread's network namespace), adopts
    /// routes a previous run left there (kept until [`FibHandle::end_of_rib`] or
    /// [`SELECTION_DEFERRAL`]), and starts the task.
    pub async fn start(config: FibImportConfig) -> Result<Self> {
        Self::start_with_deferral(config, SELECTION_DEFERRAL).await
    }

    /// [`FibHandle::start`] with another deferral (tests).
    pub async fn start_with_deferral(config: FibImportConfig, deferral: Duration) -> Result<Self> {
        let writer = NetlinkFib::connect(config.table, config.protocol, config.metric)?;
        let mut fib = Fib::new(writer);
        fib.resync().await?;
        let retained = Retained::new(fib.applied().clone(), Instant::now(), deferral);
        if let Some(kept) = &retained {
            tracing::info!(
                routes = kept.routes().len(),
                table = config.table,
                protocol = config.protocol,
                "keeping the previous run's FIB routes until End-of-RIB"
            );
        }
        let kept_routes = retained.is_some();
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(fib, rx, config.keep_on_shutdown, retained));
        Ok(Self {
            commands,
            kept_routes,
        })
    }

    /// Whether routes of a previous run were found at start and are kept forwarding: the
    /// forwarding state a restarting speaker may announce (RFC 4724 §3, F bit).
    pub fn kept_routes(&self) -> bool {
        self.kept_routes
    }

    /// Every peer has sent End-of-RIB: routes of the previous run not learned again are removed
    /// (after the changes queued before this call).
    pub fn end_of_rib(&self) {
        let _ = self.commands.send(Command::EndOfRib);
    }

    /// Queues changes (never blocks; the task batches them).
    pub fn update(&self, changes: Vec<FibChange>) {
        if !changes.is_empty() {
            let _ = self.commands.send(Command::Changes(changes));
        }
    }

    /// The routes installed so far.
    pub async fn installed(&self) -> FibRoutes {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Installed(tx));
        rx.await.unwrap_or_default()
    }

    /// Removes our routes (unless kept for graceful restart) and stops the task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(
    mut fib: Fib<NetlinkFib>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    keep_on_shutdown: bool,
    mut retained: Option<Retained>,
) {
    let mut desired = FibRoutes::new();
    let mut retry = tokio::time::interval(RETRY_EVERY);
    let mut failing = false;
    let mut deferred: Option<Command> = None;
    loop {
        let command = match deferred.take() {
            Some(command) => command,
            None => tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => command,
                    None => return,
                },
                _ = retry.tick(), if failing => Command::Changes(Vec::new()),
                () = deferral(retained.as_ref().map(Retained::deadline)) => {
                    tracing::info!("selection deferral over without End-of-RIB from every peer");
                    Command::EndOfRib
                }
            },
        };
        let mut batch = match command {
            Command::Changes(changes) => changes,
            Command::Installed(reply) => {
                let _ = reply.send(fib.applied().clone());
                continue;
            }
            Command::EndOfRib => {
                if let Some(kept) = retained.take() {
                    tracing::info!(
                        stale = kept.routes().len(),
                        "sweeping the previous run's FIB routes not learned again"
                    );
                }
                Vec::new()
            }
            Command::Shutdown(done) => {
                if !keep_on_shutdown && let Err(error) = fib.shutdown().await {
                    tracing::warn!(%error, "FIB routes not all removed at shutdown");
                }
                let _ = done.send(());
                return;
            }
        };
        // Batch whatever else is queued; anything else waits for the next turn.
        while deferred.is_none() {
            match commands.try_recv() {
                Ok(Command::Changes(more)) => batch.extend(more),
                Ok(Command::EndOfRib) => {
                    // Applies after the changes before it, which are in the batch already.
                    retained = None;
                }
                Ok(other) => deferred = Some(other),
                Err(_) => break,
            }
        }
        for (prefix, hops) in batch {
            if hops.is_empty() {
                desired.remove(&prefix);
            } else {
                desired.insert(prefix, hops);
            }
        }
        let target = match retained.as_mut() {
            Some(kept) if !kept.expired(Instant::now()) => kept.overlay(&desired),
            _ => {
                retained = None;
                desired.clone()
            }
        };
        let report = fib.reconcile(&target).await;
        failing = !report.failed.is_empty();
        if failing {
            tracing::warn!(failed = ?report.failed, "kernel refused FIB routes; retrying");
        } else if report.replaced + report.removed > 0 {
            tracing::debug!(
                replaced = report.replaced,
                removed = report.removed,
                "FIB updated"
            );
        }
    }
}

/// Sleeps until the deferral deadline; never, without one.
async fn deferral(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
