//! `herald agent --config FILE`: the agent fed by one YAML file. Read top to bottom:
//!
//! 1. **start** — load the file and check the files it names; open lb-ipam's state file (a
//!    foreign, corrupt or unreadable one stops start-up here, before anything is announced; one
//!    that cannot be written does not: see [`crate::ipam`]); start the datapath driver
//!    ([`Serving`]); derive the one desired state (allocations → services → datapath table), hand the table to
//!    the datapath and wait (bounded) for its first apply; start L2 and BGP with the services
//!    gated by what the kernel serves, so pod CIDRs go out at once, served addresses with them
//!    (after a restart the pinned maps serve at once, so graceful-restart peers see no
//!    withdrawal), and addresses not served yet only once they are.
//! 2. **run** — on SIGHUP, an edit of the file, or `herald reload`: load and validate the whole
//!    file first, including the files it names (password and key files, [`preflight`]): a
//!    broken file changes nothing. Then lb-ipam (computed on a copy, kept only once saved, so a
//!    failed save also changes nothing), then the same derive → gate →
//!    announce (withdrawals first) → commit to the datapath. When the datapath reports new
//!    entries served, re-gate and announce them. Reloads are handled one at a time here.
//! 3. **stop** — on SIGTERM/SIGINT: BGP first (graceful-restart peers keep our routes), then L2,
//!    then the datapath driver, which leaves programs and pinned maps forwarding
//!    (`keepPinnedMaps`) for the next agent to take over.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::health::Health;
use super::preflight;
use super::serving::Serving;
use crate::advertise::ServiceState;
use crate::api::control::{Agent, ReloadRequest};
use crate::bgp::io::instance::{Instance, ReloadReport};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::l2::{self, L2};
use crate::unnumbered::{self, Discovered, io::Discovery};

/// How often the file's modification time is looked at.
const POLL: Duration = Duration::from_secs(2);
/// How often an lb-ipam state that could not be saved is saved again.
const SAVE_RETRY: Duration = Duration::from_secs(10);

/// Options of `herald agent --config`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The node's YAML configuration.
    pub config_path: PathBuf,
    /// Overrides `datapath.pinDir` (the lab gives each node its own).
    pub pin_dir: Option<PathBuf>,
}

struct Running {
    config: Config,
    ipam: Arc<Mutex<Ipam>>,
    serving: Serving,
    instance: Option<Instance>,
    l2: Option<L2>,
    /// The services as the file and lb-ipam give them, before the gate.
    services: ServiceState,
    health: Health,
    /// BGP unnumbered: discovery on the unnumbered peers' interfaces, and what it found.
    discovery: Discovery,
    discovered: Discovered,
}

/// Logs each `services[].externalIPs` entry outside `externalIPs.allowedCIDRs` (never announced
/// or served).
fn log_refused_external_ips(config: &Config) {
    for problem in config.refused_external_ips() {
        tracing::warn!("{problem}");
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<()> {
    // Taken before the file is read, so an edit made while the agent starts is not missed.
    let mut last_modified = modified(&options.config_path);
    let config = crate::config::load(&options.config_path)?;
    preflight::check(&config, &options.config_path.display().to_string())?;
    log_refused_external_ips(&config);
    let ipam = Ipam::open(&config)?;
    let serving = Serving::start(&config, options.pin_dir.clone())
        .map_err(|e| Error::io("start the datapath driver", e))?;
    let services = ServiceState::from_config(&config, ipam.allocations());
    let mut running = Running {
        ipam: Arc::new(Mutex::new(ipam)),
        serving,
        instance: None,
        l2: None,
        services,
        health: Health::default(),
        discovery: Discovery::default(),
        discovered: Discovered::new(),
        config,
    };
    running
        .discovery
        .watch(&unnumbered::interfaces(&running.config));
    // Nothing is announced yet, so the table goes to the datapath first; BGP and L2 start with
    // what it serves once it has applied it (or said why it cannot).
    running.serving.update(&running.config, &running.services);
    running.serving.commit();
    running.serving.settled(super::FIRST_APPLY).await;
    let gated = running.serving.regate(&running.services);
    let l2_services = running.l2_services(&gated);
    running.l2 = L2::start(&running.config, l2_services)?;
    if running.config.bgp.is_some() {
        running.instance = Some(Instance::start(running.bgp_config(), gated).await?);
    }
    running.health.set_applied(running.serving.state());

    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let (serving_tx, serving_rx) = watch::channel(running.serving_view());
    let agent = Agent {
        config_path: Some(options.config_path.clone()),
        instance: running.instance.as_ref().map(Instance::handle),
        ipam: Some(running.ipam.clone()),
        l2: running.l2.clone(),
        cluster_services: None,
        reload_tx: Some(reload_tx),
        serving: Some(serving_rx),
        datapath: running.serving.driver().map(|d| d.status_handle()),
        health: running.health.clone(),
    };
    let api = running.config.api.clone();
    let _servers = super::servers::start(&api, &agent);

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP handler", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let mut poll = tokio::time::interval(POLL);
    let mut save_retry = tokio::time::interval(SAVE_RETRY);
    tracing::info!(config = %options.config_path.display(), "agent running");
    loop {
        tokio::select! {
            _ = hangup.recv() => log_reload(running.reload(&options.config_path).await),
            _ = poll.tick() => {
                let now = modified(&options.config_path);
                if now != last_modified {
                    last_modified = now;
                    log_reload(running.reload(&options.config_path).await);
                }
            }
            Some(request) = reload_rx.recv() => {
                let result = running.reload(&options.config_path).await;
                let _ = request.send(result);
            }
            _ = save_retry.tick() => running.retry_ipam_save(),
            Some((interface, address)) = running.discovery.found() => {
                if running.discovered.insert(interface, address) != Some(address)
                    && let Err(error) = running.rediscovered().await
                {
                    tracing::error!(%error, "BGP unnumbered peer not applied");
                }
            }
            () = running.serving.changed() => {
                if let Err(error) = running.announce().await {
                    tracing::error!(%error, "announcement after a datapath change failed");
                }
                running.health.set_applied(running.serving.state());
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
        serving_tx.send_replace(running.serving_view());
    }
    tracing::info!("stopping");
    drop(_servers);
    if let Some(instance) = running.instance.take() {
        instance.shutdown().await;
    }
    if let Some(l2) = &running.l2 {
        l2.shutdown().await;
    }
    running.serving.stop().await;
    let _ = std::fs::remove_file(&api.control_socket);
    Ok(())
}

fn log_reload(result: Result<ReloadReport>) {
    match result {
        Ok(report) => tracing::info!(?report, "configuration reloaded"),
        Err(error) => tracing::error!(%error, "configuration not reloaded"),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Running {
    fn l2_services(&self, gated: &ServiceState) -> Vec<arp_responder::config::ServiceSpec> {
        self.serving
            .gate_l2(l2::desired_services(&self.config, &gated.allocations))
    }

    /// Saves lb-ipam's state again if an earlier save failed; logs when that succeeds, and
    /// when it fails for a new reason (not every time).
    fn retry_ipam_save(&self) {
        let Ok(mut ipam) = self.ipam.lock() else {
            return;
        };
        let Some(before) = ipam.save_error().map(str::to_owned) else {
            return;
        };
        match ipam.retry_save() {
            Ok(()) => tracing::info!("lb-ipam state saved (an earlier save had failed)"),
            Err(error) if ipam.save_error() != Some(before.as_str()) => {
                tracing::error!(%error, "lb-ipam state still not saved; retrying");
            }
            Err(_) => {}
        }
    }

    /// What `herald services` shows about serving.
    fn serving_view(&self) -> super::ServingView {
        super::ServingView::new(&self.serving)
    }

    /// Re-reads the file and applies it (see the module header, step 2).
    async fn reload(&mut self, path: &Path) -> Result<ReloadReport> {
        let config = crate::config::load(path)?;
        preflight::check(&config, &path.display().to_string())?;
        if self.instance.is_some() && config.bgp.is_none() {
            return Err(Error::NotImplemented(
                "removing the bgp section at run time",
            ));
        }
        log_refused_external_ips(&config);
        let mut ignored = Vec::new();
        // Compared without their spans: an edit elsewhere in the file moves lines, not settings.
        let same_datapath = match (&config.datapath, &self.config.datapath) {
            (Some(new), Some(old)) => new.value.same_settings(&old.value),
            (new, old) => new.is_none() && old.is_none(),
        };
        if !same_datapath {
            ignored.push("datapath: applied on restart".to_owned());
        }
        if self.nodes_or_node_changed(&config) && self.serving.enabled() {
            tracing::info!("node list changed: backends re-resolved");
        }
        let allocations = {
            let mut ipam = self
                .ipam
                .lock()
                .map_err(|_| Error::Control("lb-ipam state poisoned".into()))?;
            ipam.apply(&config)?;
            ipam.allocations()
        };
        match &self.l2 {
            Some(l2) if l2.needs_restart_for(&config) => {
                ignored.push("l2 (other than its services): applied on restart".to_owned());
            }
            None if config.l2.is_some() => {
                ignored.push("l2 added: the announcer starts on restart".to_owned());
            }
            _ => {}
        }
        if self.instance.is_none() && config.bgp.is_some() {
            ignored.push("bgp added: the BGP instance starts on restart".to_owned());
        }
        self.services = ServiceState::from_config(&config, allocations);
        let datapath = self.config.datapath.clone();
        self.config = Config { datapath, ..config };
        let interfaces = unnumbered::interfaces(&self.config);
        self.discovered.retain(|name, _| interfaces.contains(name));
        self.discovery.watch(&interfaces);
        let gated = self.serving.update(&self.config, &self.services);
        let mut report = self.push(gated, true).await?;
        self.serving.commit();
        report.ignored.extend(ignored);
        Ok(report)
    }

    fn nodes_or_node_changed(&self, config: &Config) -> bool {
        !config
            .nodes
            .iter()
            .map(|n| &n.value)
            .eq(self.config.nodes.iter().map(|n| &n.value))
            || config.node != self.config.node
    }

    /// The configuration the BGP instance runs: unnumbered peers at their discovered addresses.
    fn bgp_config(&self) -> Config {
        unnumbered::resolve(&self.config, &self.discovered)
    }

    /// A BGP unnumbered neighbour was found or replaced: the instance gets its peer.
    async fn rediscovered(&mut self) -> Result<()> {
        let gated = self.serving.regate(&self.services);
        self.push(gated, true).await.map(|_| ())
    }

    /// Re-gates the current services by what the datapath serves now and announces.
    async fn announce(&mut self) -> Result<()> {
        let gated = self.serving.regate(&self.services);
        self.push(gated, false).await.map(|_| ())
    }

    /// Hands gated services to L2 and BGP (with the configuration when `with_config`).
    async fn push(&mut self, gated: ServiceState, with_config: bool) -> Result<ReloadReport> {
        if let Some(l2) = &self.l2 {
            l2.set_services(self.l2_services(&gated)).await?;
        }
        match &self.instance {
            Some(instance) if with_config => {
                instance
                    .handle()
                    .reload(self.bgp_config(), Some(gated))
                    .await
            }
            Some(instance) => {
                instance.handle().set_services(gated).await?;
                Ok(ReloadReport::default())
            }
            None => Ok(ReloadReport::default()),
        }
    }
}
