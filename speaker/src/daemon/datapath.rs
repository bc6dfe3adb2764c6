//! The datapath's driver: one thread owns the loaded eBPF programs and maps
//! ([`datapath::Datapath`]), applies each new service table the daemon hands it, refreshes node
//! identity and next hops on a timer, and publishes what the kernel serves on a watch channel.
//! The daemon gates announcements on that publication ([`super::desired::gate`]).
//!
//! Starting is retried: a missing interface or a kernel that refuses the programs leaves the
//! datapath *not attached* with the reason published, and nothing it would serve is announced,
//! until a later attempt succeeds. I/O boundary: bpf syscalls, netlink and procfs inside
//! `datapath`; this module only owns the thread and the channels.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::datapath::config::DatapathConfig;
use ::datapath::{Datapath, ServiceInput};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::desired::EntryKey;

/// How long after a failed start (or apply) the driver tries again.
pub const RETRY: Duration = Duration::from_secs(2);

/// What the datapath serves now, as the daemon and the ops surface see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatapathState {
    /// The XDP program is attached and the maps are loaded.
    pub attached: bool,
    /// Why the datapath is not attached, or why the last apply failed.
    pub error: Option<String>,
    /// Entries in the kernel with at least one backend.
    #[serde(skip)]
    pub served: BTreeSet<EntryKey>,
    /// The generation of the service table `served` belongs to.
    pub generation: u64,
    /// Backends waiting for a next hop, and the like (the datapath's own report).
    pub problems: Vec<String>,
    /// Wall time of the last apply of a new service table (Maglev rebuilds and map writes), µs.
    pub last_apply_micros: u64,
}

enum Command {
    Apply {
        services: Vec<ServiceInput>,
        generation: u64,
    },
    /// The load-balancer nodes whose Geneve the backend TC program accepts.
    LbNodes(Vec<IpAddr>),
    Status(oneshot::Sender<Result<datapath::status::Status, String>>),
    Stop,
}

/// Handle to the driver thread.
#[derive(Debug)]
pub struct DatapathDriver {
    command_tx: mpsc::Sender<Command>,
    state_rx: watch::Receiver<DatapathState>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Apply { generation, .. } => write!(f, "Apply({generation})"),
            Self::LbNodes(nodes) => write!(f, "LbNodes({})", nodes.len()),
            Self::Status(_) => f.write_str("Status"),
            Self::Stop => f.write_str("Stop"),
        }
    }
}

/// Reads services, backends and counters from the maps (for `herald datapath status`).
#[derive(Debug, Clone)]
pub struct DatapathStatusHandle {
    command_tx: mpsc::Sender<Command>,
}

impl DatapathStatusHandle {
    /// Services, backends and counters from the maps.
    pub async fn status(&self) -> Result<datapath::status::Status, String> {
        let (tx, rx) = oneshot::channel();
        self.command_tx
            .send(Command::Status(tx))
            .map_err(|_| "the datapath driver has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the datapath driver has stopped".to_owned())?
    }
}

/// Where and how the driver starts the datapath.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The `datapath:` section.
    pub config: DatapathConfig,
    /// Overrides its `pinDir` (the lab gives each node its own).
    pub pin_dir: Option<PathBuf>,
    /// This node's underlay address from the node list (else the XDP interface's).
    pub node_addr: Option<IpAddr>,
}

impl DatapathDriver {
    /// Starts the thread; it loads and attaches the programs at once (retrying on failure).
    pub fn start(cfg: DriverConfig) -> std::io::Result<Self> {
        let (command_tx, command_rx) = mpsc::channel();
        let (state_tx, state_rx) = watch::channel(DatapathState::default());
        let thread = std::thread::Builder::new()
            .name("datapath".into())
            .spawn(move || run(cfg, command_rx, state_tx))?;
        Ok(Self {
            command_tx,
            state_rx,
            thread: Some(thread),
        })
    }

    /// Hands the driver a new service table.
    pub fn apply(&self, services: Vec<ServiceInput>, generation: u64) {
        let _ = self.command_tx.send(Command::Apply {
            services,
            generation,
        });
    }

    /// Hands the driver the underlay addresses of the nodes allowed to send this node Geneve.
    pub fn set_lb_nodes(&self, nodes: Vec<IpAddr>) {
        let _ = self.command_tx.send(Command::LbNodes(nodes));
    }

    /// What the datapath serves now; changes whenever an apply or refresh changes it.
    pub fn subscribe(&self) -> watch::Receiver<DatapathState> {
        self.state_rx.clone()
    }

    /// A clonable handle that reads the maps through the driver thread.
    pub fn status_handle(&self) -> DatapathStatusHandle {
        DatapathStatusHandle {
            command_tx: self.command_tx.clone(),
        }
    }

    /// Stops the thread. With `keepPinnedMaps` (the default) programs and maps stay in the
    /// kernel and keep forwarding until the next agent takes them over.
    pub async fn stop(mut self) {
        let _ = self.command_tx.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn run(
    cfg: DriverConfig,
    command_rx: mpsc::Receiver<Command>,
    state_tx: watch::Sender<DatapathState>,
) {
    let mut datapath: Option<Datapath> = None;
    let mut wanted: Vec<ServiceInput> = Vec::new();
    // `None` until the daemon names them: a restarted agent keeps the pinned set meanwhile.
    let mut lb_nodes: Option<Vec<IpAddr>> = None;
    let mut lb_nodes_dirty = false;
    let mut generation = 0;
    let mut dirty = false;
    let mut next_attempt = Instant::now();
    let mut next_refresh = Instant::now() + refresh_interval(&cfg.config);
    loop {
        let now = Instant::now();
        if datapath.is_none() && now >= next_attempt {
            match Datapath::start(&cfg.config, cfg.pin_dir.as_deref(), cfg.node_addr) {
                Ok(d) => {
                    tracing::info!("datapath attached");
                    datapath = Some(d);
                    dirty = true;
                    lb_nodes_dirty = true;
                }
                Err(error) => {
                    let error = format!("datapath not attached: {error}");
                    state_tx.send_if_modified(|s| {
                        let changed = s.error.as_deref() != Some(error.as_str()) || s.attached;
                        if changed {
                            tracing::error!("{error}; its services are not announced");
                        }
                        *s = DatapathState {
                            error: Some(error.clone()),
                            generation,
                            ..DatapathState::default()
                        };
                        changed
                    });
                    next_attempt = now + RETRY;
                }
            }
        }
        if let Some(d) = datapath.as_mut()
            && lb_nodes_dirty
            && let Some(nodes) = &lb_nodes
        {
            match d.set_lb_nodes(nodes) {
                Ok(()) => lb_nodes_dirty = false,
                Err(error) => {
                    tracing::error!(%error, "load-balancer nodes not programmed (retrying)");
                    next_refresh = next_refresh.min(Instant::now() + RETRY);
                }
            }
        }
        if let Some(d) = datapath.as_mut() {
            let due = now >= next_refresh;
            if dirty || due {
                let started = Instant::now();
                let result = if dirty { d.apply(&wanted) } else { d.refresh() };
                // Refreshes keep the last apply's time, so a quiet datapath publishes nothing.
                let last_apply_micros = if dirty {
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
                } else {
                    state_tx.borrow().last_apply_micros
                };
                let state = match result {
                    Ok(report) => {
                        dirty = false;
                        next_refresh = Instant::now()
                            + if report.retry_soon {
                                RETRY
                            } else {
                                refresh_interval(&cfg.config)
                            };
                        DatapathState {
                            attached: true,
                            error: None,
                            served: report.served,
                            generation,
                            problems: report.problems,
                            last_apply_micros,
                        }
                    }
                    Err(error) => {
                        next_refresh = Instant::now() + RETRY;
                        DatapathState {
                            attached: true,
                            error: Some(format!("datapath apply failed (retrying): {error}")),
                            served: state_tx.borrow().served.clone(),
                            generation: state_tx.borrow().generation,
                            problems: Vec::new(),
                            last_apply_micros,
                        }
                    }
                };
                state_tx.send_if_modified(|s| {
                    let changed = *s != state;
                    *s = state;
                    changed
                });
            }
        }
        let wake = if datapath.is_some() {
            next_refresh
        } else {
            next_attempt
        };
        let timeout = wake.saturating_duration_since(Instant::now());
        match command_rx.recv_timeout(timeout) {
            Ok(Command::Apply {
                services,
                generation: g,
            }) => {
                wanted = services;
                generation = g;
                dirty = true;
                // Take every queued table at once: only the newest one matters.
                while let Ok(next) = command_rx.try_recv() {
                    match next {
                        Command::Apply {
                            services,
                            generation: g,
                        } => {
                            wanted = services;
                            generation = g;
                        }
                        Command::LbNodes(nodes) => {
                            lb_nodes_dirty |= lb_nodes.as_ref() != Some(&nodes);
                            lb_nodes = Some(nodes);
                        }
                        Command::Status(reply) => answer_status(datapath.as_ref(), reply),
                        Command::Stop => return stop(datapath),
                    }
                }
            }
            Ok(Command::LbNodes(nodes)) => {
                lb_nodes_dirty |= lb_nodes.as_ref() != Some(&nodes);
                lb_nodes = Some(nodes);
            }
            Ok(Command::Status(reply)) => answer_status(datapath.as_ref(), reply),
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return stop(datapath),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

fn refresh_interval(cfg: &DatapathConfig) -> Duration {
    cfg.neighbour_refresh().max(Duration::from_secs(1))
}

fn answer_status(
    datapath: Option<&Datapath>,
    reply: oneshot::Sender<Result<datapath::status::Status, String>>,
) {
    let answer = match datapath {
        Some(d) => d.status().map_err(|e| e.to_string()),
        None => Err("the datapath is not attached".to_owned()),
    };
    let _ = reply.send(answer);
}

fn stop(datapath: Option<Datapath>) {
    if let Some(d) = datapath
        && let Err(error) = d.shutdown()
    {
        tracing::error!(%error, "datapath shutdown");
    }
}
