//! `herald agent --kubernetes`: the running agent in Kubernetes mode. One owner task receives
//! each new desired state from the watcher ([`crate::sources::kube::watch::run`], debounced there) and applies
//! it: the BGP instance is started on the first state that has a BGP instance for this node and
//! later reloaded (only sessions whose peering changed are reset) and handed the services; TCP
//! MD5 keys from Secrets become key files ([`crate::sources::kube::md5`]), so a rotated key resets only its
//! peer; the L2 announcer is started with the Lease membership store ([`crate::sources::kube::lease`], one Lease
//! per node) when an `L2AnnouncementPolicy` asks for it and then handed nodes and services; the
//! `BGPNodeStatus` is refreshed from the instance's peers and written at a bounded rate
//! ([`crate::sources::kube::status`]); translation problems are logged once each ([`ProblemLog`]). A failed
//! step is retried on the next change or after [`RuntimeConfig::retry`], and logged once.
//!
//! The decisions are pure ([`crate::sources::kube::reconcile`]); this module is the I/O boundary around them:
//! the instance, the announcer, key files, the control socket and metrics endpoint (restarted
//! with a new [`Agent`] when the instance or the announcer comes or goes), and the API client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arp_responder::config::L2Config;
use kube::Client;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::advertise::ServiceState;
use crate::api::control::Agent;
use crate::bgp::io::instance::Instance;
use crate::config::{ApiConfig, Config};
use crate::daemon::health::Health;
use crate::daemon::serving::Serving;
use crate::ipam::ServiceStatus;
use crate::l2::L2;
use crate::sources::kube::lease::LeaseStore;
use crate::sources::kube::md5::KeyFiles;
use crate::sources::kube::reconcile::{
    BgpAction, L2Action, ProblemLog, bgp_action, instance_config, l2_action, service_rows,
    service_state,
};
use crate::sources::kube::status::{self, MIN_STATUS_INTERVAL, StatusWriter, node_status};
use crate::sources::kube::translate::{Desired, Identity};
use crate::sources::kube::watch::{self as source, SourceConfig};
use crate::task::AbortOnDrop;

/// How long after a failed step the runtime tries again without a new change (default).
pub const RETRY: Duration = Duration::from_secs(5);

/// Settings of the Kubernetes-mode runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// This node and the speaker's namespace.
    pub identity: Identity,
    /// The watcher batches changes this long before translating.
    pub debounce: Duration,
    /// Directory of the TCP MD5 key files (memory-backed in the DaemonSet).
    pub key_dir: PathBuf,
    /// Directory of the graceful-restart state file (must outlive the container).
    pub state_dir: Option<PathBuf>,
    /// Control socket and metrics endpoint.
    pub api: ApiConfig,
    /// Minimum time between two `BGPNodeStatus` writes.
    pub status_interval: Duration,
    /// How often the peers are sampled for the status.
    pub status_poll: Duration,
    /// How long after a failed step the runtime tries again without a new change.
    pub retry: Duration,
    /// This node's `datapath:` section (`--datapath-config`); none: announce without serving.
    pub datapath: Option<datapath::config::DatapathConfig>,
    /// Overrides the datapath's `pinDir`.
    pub pin_dir: Option<PathBuf>,
    /// L2 heartbeat authentication (a key file mounted from a Secret).
    pub l2_auth: arp_responder::config::AuthConfig,
    /// L2 cluster id: heartbeats of other clusters on the segment are ignored (default
    /// `herald`).
    pub l2_cluster: Option<String>,
}

impl RuntimeConfig {
    /// The defaults of the DaemonSet (`deploy/speaker/daemonset.yaml`): keys in
    /// `/run/herald/md5`, state in `/var/lib/herald`, control socket `/run/herald/speaker.sock`,
    /// 200 ms debounce, status at most every 5 s.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            debounce: Duration::from_millis(200),
            key_dir: PathBuf::from("/run/herald/md5"),
            state_dir: Some(PathBuf::from("/var/lib/herald")),
            api: ApiConfig::default(),
            status_interval: MIN_STATUS_INTERVAL,
            status_poll: Duration::from_secs(2),
            retry: RETRY,
            datapath: None,
            pin_dir: None,
            l2_auth: arp_responder::config::AuthConfig::default(),
            l2_cluster: None,
        }
    }
}

/// The running Kubernetes-mode speaker.
#[derive(Debug)]
pub struct KubeRuntime {
    agent_rx: watch::Receiver<Agent>,
    stop_tx: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl KubeRuntime {
    /// Starts the watcher and the owner task on the current runtime.
    pub fn start(client: Client, cfg: RuntimeConfig) -> Self {
        let (desired_tx, desired_rx) = watch::channel(None);
        let watcher = tokio::spawn(source::run(
            client.clone(),
            SourceConfig {
                identity: cfg.identity.clone(),
                debounce: cfg.debounce,
            },
            desired_tx,
        ));
        let (status_tx, status_rx) = watch::channel(node_status(None, &[], &[], SystemTime::now()));
        let writer = StatusWriter::new(
            client.clone(),
            cfg.identity.node_name.clone(),
            cfg.status_interval,
        );
        let status_task = tokio::spawn(status::run(writer, status_rx));
        let (services_tx, services_rx) = watch::channel(Vec::new());
        let agent = empty_agent(services_rx);
        let (agent_tx, agent_rx) = watch::channel(agent);
        let (stop_tx, stop_rx) = oneshot::channel();
        let serving = Serving::start_with(cfg.datapath.as_ref(), cfg.pin_dir.clone(), None)
            .unwrap_or_else(|error| {
                tracing::error!(%error, "datapath driver not started; nothing it would serve is announced");
                Serving::default()
            });
        let (serving_tx, _) = watch::channel(crate::daemon::ServingView::new(&serving));
        let owner = Owner {
            latest_services: None,
            serving_tx,
            health: Health::default(),
            serving,
            key_files: KeyFiles::new(cfg.key_dir.clone()),
            cfg,
            client,
            instance: None,
            applied_config: None,
            applied_services: None,
            l2: None,
            applied_l2: None,
            problems: ProblemLog::default(),
            latest_problems: Vec::new(),
            status_tx,
            services_tx,
            agent_tx,
            servers: Vec::new(),
            _watcher: AbortOnDrop(watcher),
            status_task: AbortOnDrop(status_task),
            discovery: crate::unnumbered::io::Discovery::default(),
            discovered: crate::unnumbered::Discovered::new(),
        };
        let task = tokio::spawn(owner.run(desired_rx, stop_rx));
        Self {
            agent_rx,
            stop_tx: Some(stop_tx),
            task,
        }
    }

    /// The ops view of what runs now (the BGP instance and the L2 announcer, when running).
    pub fn agent(&self) -> Agent {
        self.agent_rx.borrow().clone()
    }

    /// Stops the watcher, the announcer (releasing its Lease) and the instance (graceful-restart
    /// peers keep our routes), and removes the control socket.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for KubeRuntime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The agent before anything runs: no configuration file (the cluster objects are the
/// configuration) and the services as the cluster reports them.
fn empty_agent(services: watch::Receiver<Vec<ServiceStatus>>) -> Agent {
    Agent {
        config_path: None,
        instance: None,
        ipam: None,
        l2: None,
        cluster_services: Some(services),
        reload_tx: None,
        serving: None,
        datapath: None,
        health: Health::default(),
    }
}

struct Owner {
    /// The datapath and the announcement gate (shared with standalone mode).
    serving: Serving,
    /// The last desired state taken (re-gated when the datapath's state changes).
    latest_services: Option<Desired>,
    /// What `herald datapath status` shows.
    serving_tx: watch::Sender<crate::daemon::ServingView>,
    /// Readiness for `/readyz`.
    health: Health,
    cfg: RuntimeConfig,
    client: Client,
    key_files: KeyFiles,
    instance: Option<Instance>,
    /// The configuration the instance runs.
    applied_config: Option<Config>,
    applied_services: Option<ServiceState>,
    l2: Option<L2>,
    /// The announcer's configuration with the nodes and services last handed to it.
    applied_l2: Option<L2Config>,
    problems: ProblemLog,
    latest_problems: Vec<String>,
    status_tx: watch::Sender<crate::sources::kube::crd::BGPNodeStatusStatus>,
    /// What `speaker services` shows.
    services_tx: watch::Sender<Vec<ServiceStatus>>,
    agent_tx: watch::Sender<Agent>,
    servers: Vec<AbortOnDrop>,
    _watcher: AbortOnDrop,
    status_task: AbortOnDrop,
    /// BGP unnumbered: discovery on the unnumbered peers' interfaces, and what it found.
    discovery: crate::unnumbered::io::Discovery,
    discovered: crate::unnumbered::Discovered,
}

impl Owner {
    async fn run(
        mut self,
        mut desired_rx: watch::Receiver<Option<Desired>>,
        mut stop_rx: oneshot::Receiver<()>,
    ) {
        let mut poll = tokio::time::interval(self.cfg.status_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_at: Option<Instant> = None;
        let mut failing: Option<String> = None;
        self.restart_servers().await;
        tracing::info!(
            node = %self.cfg.identity.node_name,
            namespace = %self.cfg.identity.namespace,
            "speaker running in Kubernetes mode"
        );
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop_rx => break,
                changed = desired_rx.changed() => {
                    if changed.is_err() {
                        tracing::error!("the Kubernetes watcher stopped");
                        break;
                    }
                }
                () = retry => {}
                () = self.serving.changed() => {
                    // The kernel serves more (or less): re-gate what BGP and L2 announce.
                    let desired = desired_rx.borrow().clone();
                    if let Some(desired) = desired
                        && let Err(error) = self.announce(&desired, false).await
                    {
                        tracing::error!(%error, "announcement after a datapath change failed");
                    }
                    self.cfg_health_applied();
                    continue;
                }
                _ = poll.tick() => {
                    self.publish_status().await;
                    continue;
                }
                Some((interface, address)) = self.discovery.found() => {
                    // A BGP unnumbered neighbour was found or replaced: the instance gets it.
                    let desired = desired_rx.borrow().clone();
                    if self.discovered.insert(interface, address) != Some(address)
                        && let Some(desired) = desired
                        && let Err(error) = self.announce(&desired, false).await
                    {
                        tracing::error!(%error, "BGP unnumbered peer not applied");
                    }
                    continue;
                }
            }
            let desired = desired_rx.borrow_and_update().clone();
            let Some(desired) = desired else { continue };
            retry_at = match self.apply(&desired).await {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!("desired state applied");
                    }
                    None
                }
                Err(error) => {
                    // Logged once per distinct error, not on every retry.
                    let error = error.to_string();
                    if failing.as_ref() != Some(&error) {
                        tracing::error!(%error, "desired state not fully applied; retrying");
                        failing = Some(error);
                    }
                    Some(Instant::now() + self.cfg.retry)
                }
            };
            self.publish_status().await;
        }
        self.stop().await;
    }

    /// Applies one desired state; every part is attempted, the first error is returned.
    async fn apply(&mut self, desired: &Desired) -> crate::error::Result<()> {
        let changes = self.problems.update(&desired.problems);
        for p in &changes.new {
            tracing::warn!(problem = %p, "configuration problem");
        }
        for p in &changes.resolved {
            tracing::info!(problem = %p, "configuration problem resolved");
        }
        self.latest_problems = desired.problems.clone();
        let result = self.announce(desired, true).await;
        self.cfg_health_applied();
        result
    }

    fn cfg_health_applied(&self) {
        self.health.set_applied(self.serving.state());
        let mut rows = self
            .latest_services
            .as_ref()
            .map(service_rows)
            .unwrap_or_default();
        crate::daemon::ServingView::new(&self.serving).annotate(&mut rows);
        self.services_tx.send_replace(rows);
        self.serving_tx
            .send_replace(crate::daemon::ServingView::new(&self.serving));
    }

    /// Derives the datapath table, hands BGP and L2 the services gated by what the kernel serves
    /// (withdrawals first), then, when `commit`, the table to the datapath.
    async fn announce(&mut self, desired: &Desired, commit: bool) -> crate::error::Result<()> {
        let paths = self.key_files.write(&desired.md5_keys)?;
        let config = instance_config(desired, &self.cfg.api, self.cfg.state_dir.as_ref(), &paths);
        let interfaces = crate::unnumbered::interfaces(&config);
        self.discovered.retain(|name, _| interfaces.contains(name));
        self.discovery.watch(&interfaces);
        let config = crate::unnumbered::resolve(&config, &self.discovered);
        let state = service_state(desired);
        let mut committed = false;
        let gated = if commit {
            self.latest_services = Some(desired.clone());
            let gated = self.serving.update(&config, &state);
            if self.instance.is_none() && self.l2.is_none() {
                // Nothing is announced yet: the datapath goes first, and BGP starts with what
                // it serves (after a restart, the pinned maps at once: no withdrawal at the
                // graceful-restart peers).
                self.serving.commit();
                committed = true;
                self.serving.settled(crate::daemon::FIRST_APPLY).await;
                self.serving.regate(&state)
            } else {
                gated
            }
        } else {
            self.serving.regate(&state)
        };
        let had = (self.instance.is_some(), self.l2.is_some());
        let bgp = self.apply_bgp(config, gated).await;
        let l2 = self.apply_l2(desired).await;
        if had != (self.instance.is_some(), self.l2.is_some()) {
            self.restart_servers().await;
        }
        if commit && !committed {
            self.serving.commit();
        }
        bgp.and(l2)
    }

    async fn apply_bgp(
        &mut self,
        config: Config,
        services: ServiceState,
    ) -> crate::error::Result<()> {
        match bgp_action(self.applied_config.as_ref(), &config) {
            BgpAction::Nothing => {}
            BgpAction::Start => self.start_instance(config, services).await?,
            BgpAction::Restart => {
                tracing::info!(
                    "BGP listen, route-server or FIB import changed: restarting the instance"
                );
                self.stop_instance().await;
                self.start_instance(config, services).await?;
            }
            BgpAction::Stop => {
                tracing::info!("no BGPClusterConfig selects this node any more: stopping BGP");
                self.stop_instance().await;
            }
            BgpAction::Reload => {
                let Some(handle) = self.instance.as_ref().map(Instance::handle) else {
                    return Ok(());
                };
                let services_changed = self.applied_services.as_ref() != Some(&services);
                if self.applied_config.as_ref() != Some(&config) {
                    // Config and services in one step: the peers see one set of differences.
                    let report = handle
                        .reload(config.clone(), services_changed.then(|| services.clone()))
                        .await?;
                    tracing::info!(
                        added = ?report.added,
                        removed = ?report.removed,
                        reset = ?report.reset,
                        updated = ?report.updated,
                        "BGP configuration applied"
                    );
                    self.applied_config = Some(config);
                } else if services_changed {
                    handle.set_services(services.clone()).await?;
                }
                if services_changed {
                    self.applied_services = Some(services);
                }
            }
        }
        Ok(())
    }

    async fn start_instance(
        &mut self,
        config: Config,
        services: ServiceState,
    ) -> crate::error::Result<()> {
        let peers = config.bgp.as_ref().map_or(0, |b| b.peers.len());
        let instance = Instance::start(config.clone(), services.clone()).await?;
        tracing::info!(peers, "BGP instance started");
        self.instance = Some(instance);
        self.applied_config = Some(config);
        self.applied_services = Some(services);
        Ok(())
    }

    async fn stop_instance(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.shutdown().await;
        }
        self.applied_config = None;
        self.applied_services = None;
    }

    async fn apply_l2(&mut self, desired: &Desired) -> crate::error::Result<()> {
        let gated = desired.l2.as_ref().map(|l2| L2Config {
            services: self.serving.gate_l2(l2.services.clone()),
            cluster: self
                .cfg
                .l2_cluster
                .clone()
                .unwrap_or_else(|| l2.cluster.clone()),
            ..l2.clone()
        });
        let want = gated.as_ref();
        match l2_action(self.applied_l2.as_ref(), want) {
            L2Action::Nothing => {}
            L2Action::Stop => {
                tracing::info!("no L2AnnouncementPolicy applies: L2 announcements stopped");
                self.stop_l2().await;
            }
            L2Action::Restart => {
                tracing::info!("L2 interfaces or timers changed: restarting the announcer");
                self.stop_l2().await;
                self.start_l2(want).await?;
            }
            L2Action::Start => self.start_l2(want).await?,
            L2Action::Update { nodes, services } => {
                let (Some(l2), Some(want), Some(applied)) =
                    (self.l2.as_ref(), want, self.applied_l2.as_mut())
                else {
                    return Ok(());
                };
                if nodes {
                    l2.set_nodes(want.nodes.clone()).await?;
                    applied.nodes = want.nodes.clone();
                }
                if services {
                    l2.set_services(want.services.clone()).await?;
                    applied.services = want.services.clone();
                }
            }
        }
        Ok(())
    }

    async fn start_l2(&mut self, want: Option<&L2Config>) -> crate::error::Result<()> {
        let Some(want) = want else { return Ok(()) };
        let store = Arc::new(LeaseStore::new(
            self.client.clone(),
            &self.cfg.identity.namespace,
        ));
        let l2 = L2::start_with(want.clone(), store, &self.cfg.l2_auth)?;
        tracing::info!(
            services = want.services.len(),
            "L2 announcer started (membership: one Lease per node)"
        );
        self.l2 = Some(l2);
        self.applied_l2 = Some(want.clone());
        Ok(())
    }

    async fn stop_l2(&mut self) {
        if let Some(l2) = self.l2.take() {
            l2.shutdown().await;
        }
        self.applied_l2 = None;
    }

    /// Stops the control socket and metrics servers and waits until they are gone, so their
    /// listening sockets are closed before new ones bind the same address.
    async fn stop_servers(&mut self) {
        for mut server in self.servers.drain(..) {
            server.0.abort();
            let _ = (&mut server.0).await;
        }
    }

    /// (Re)starts the control socket and the metrics endpoint for what runs now.
    async fn restart_servers(&mut self) {
        self.stop_servers().await;
        let agent = Agent {
            instance: self.instance.as_ref().map(Instance::handle),
            l2: self.l2.clone(),
            serving: self.serving.enabled().then(|| self.serving_tx.subscribe()),
            datapath: self.serving.driver().map(|d| d.status_handle()),
            health: self.health.clone(),
            ..empty_agent(self.services_tx.subscribe())
        };
        self.agent_tx.send_replace(agent.clone());
        self.servers = crate::daemon::servers::start(&self.cfg.api, &agent);
    }

    /// Samples the peers and hands the status to the rate-bounded writer.
    async fn publish_status(&mut self) {
        let (local_asn, peers) = match (&self.instance, &self.applied_config) {
            (Some(instance), Some(config)) => {
                let peers = instance.handle().peers().await.unwrap_or_default();
                (config.bgp.as_ref().map(|b| b.local_asn), peers)
            }
            _ => (None, Vec::new()),
        };
        // The node's status object says why an address is not announced from here (datapath
        // not attached, no ready local backend) next to the translation's problems.
        let mut problems = self.latest_problems.clone();
        problems.extend(crate::daemon::ServingView::new(&self.serving).problem_lines());
        let status = node_status(local_asn, &peers, &problems, SystemTime::now());
        self.status_tx.send_if_modified(|current| {
            if status::same_content(current, &status) {
                false
            } else {
                *current = status;
                true
            }
        });
    }

    async fn stop(&mut self) {
        tracing::info!("stopping");
        self.stop_servers().await;
        self.stop_instance().await;
        self.stop_l2().await;
        self.serving.stop().await;
        let _ = std::fs::remove_file(&self.cfg.api.control_socket);
        // The writer goes first, so it cannot re-create the status after the delete.
        self.status_task.stop().await;
        let node = &self.cfg.identity.node_name;
        match status::remove(self.client.clone(), node).await {
            Ok(()) => tracing::info!(%node, "BGPNodeStatus deleted"),
            Err(error) => tracing::warn!(%error, "BGPNodeStatus left behind"),
        }
    }
}

/// `herald agent --kubernetes`: runs the agent until SIGTERM or SIGINT, then stops it (BGP
/// first, so graceful-restart peers keep our routes; the datapath keeps forwarding).
pub async fn run(client: Client, cfg: RuntimeConfig) -> crate::error::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| crate::error::Error::io("SIGTERM handler", e))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| crate::error::Error::io("SIGINT handler", e))?;
    let runtime = KubeRuntime::start(client, cfg);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    runtime.shutdown().await;
    Ok(())
}
