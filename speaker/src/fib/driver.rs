//! The FIB import task: receives per-prefix next-hop changes from the BGP instance, keeps the
//! desired kernel table, and reconciles it through [`super::Fib`] after each batch (changes that
//! arrive while a reconcile runs are batched into the next one). Failed kernel operations are
//! retried on the next batch and at most every [`RETRY_EVERY`]. At shutdown the routes are
//! removed unless the configuration keeps them for a graceful restart.
//!
//! I/O boundary: the [`super::NetlinkFib`] the task owns.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use super::{Fib, FibNextHop, FibRoutes, NetlinkFib};
use crate::config::FibImportConfig;
use crate::error::Result;

/// How often failed kernel operations are retried when nothing else changes.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// A prefix's new next hops (empty: remove the route).
pub type FibChange = (IpNet, BTreeSet<FibNextHop>);

enum Command {
    Changes(Vec<FibChange>),
    Installed(oneshot::Sender<FibRoutes>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the FIB task.
#[derive(Debug, Clone)]
pub struct FibHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Changes(_) => "Changes",
            Command::Installed(_) => "Installed",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}

impl FibHandle {
    /// Opens the kernel table of `config` (in the calling thread's network namespace), adopts
    /// routes a previous run left there, and starts the task.
    pub async fn start(config: FibImportConfig) -> Result<Self> {
        let writer = NetlinkFib::connect(config.table, config.protocol, config.metric)?;
        let mut fib = Fib::new(writer);
        fib.resync().await?;
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(fib, rx, config.keep_on_shutdown));
        Ok(Self { commands })
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
            },
        };
        let mut batch = match command {
            Command::Changes(changes) => changes,
            Command::Installed(reply) => {
                let _ = reply.send(fib.applied().clone());
                continue;
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
        let report = fib.reconcile(&desired).await;
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
