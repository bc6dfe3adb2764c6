//! The control socket: one JSON request per line in, one JSON response per line out, over a unix
//! stream socket only root, its owner (or the socket's group) can open; see [`control_access`]
//! for the mode, the credential check and the bounds on lines and connections.
//!
//! I/O boundary: the unix socket (server side in [`serve`], client side in [`request`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::control_access::{self, Line};

use crate::bgp::io::instance::{InstanceHandle, PeerStatus, ReloadReport};
use crate::bgp::route_rows::{RouteQuery, RouteRow};
use crate::bgp::session::PeerReset;
use crate::daemon::ServingView;
use crate::daemon::datapath::DatapathStatusHandle;
use crate::daemon::health::Health;
use crate::error::{Error, Result};
use crate::ipam::{Ipam, ServiceStatus};
use crate::l2::{L2, L2Report};

/// A request to the running speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Status of every BGP peer.
    Peers,
    /// BMP collectors: connection state and counters.
    Bmp,
    /// Re-read the configuration file.
    Reload,
    /// Services and the addresses lb-ipam gave them.
    Services,
    /// L2 announcements: per VIP the leader, interfaces and counters.
    L2,
    /// Routes advertised to or received from peers.
    Routes {
        /// Which ones.
        query: RouteQuery,
    },
    /// The datapath: attachment, served entries, counters.
    Datapath,
    /// Reset or soft-reset one peer.
    Reset {
        /// Configured name or address.
        peer: String,
        /// How.
        kind: PeerReset,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    /// Peer snapshots.
    Peers {
        /// One per configured peer.
        peers: Vec<PeerStatus>,
    },
    /// BMP collector snapshots.
    Bmp {
        /// One per configured collector.
        collectors: Vec<crate::bmp::hub::CollectorStatus>,
    },
    /// Service snapshots.
    Services {
        /// One per service, in `namespace/name` order.
        services: Vec<ServiceStatus>,
    },
    /// The L2 announcer's view.
    L2 {
        /// The report.
        report: L2Report,
    },
    /// Routes, in peer and prefix order.
    Routes {
        /// One per route.
        routes: Vec<RouteRow>,
    },
    /// The peer was reset (or soft-reset).
    Reset {
        /// Its address.
        peer: IpAddr,
        /// How.
        kind: PeerReset,
    },
    /// The datapath's status.
    Datapath {
        /// The report.
        report: Box<DatapathReport>,
    },
    /// What a reload did.
    Reloaded {
        /// The report.
        report: ReloadReport,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// A reload asked of the daemon, answered when it is done.
pub type ReloadRequest = oneshot::Sender<Result<ReloadReport>>;

/// `herald datapath status`: the driver's state and, when attached, the maps' contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatapathReport {
    /// Attached, served addresses and why others are not served.
    pub serving: ServingView,
    /// Services, backends and counters read from the maps (absent when not attached).
    pub maps: Option<serde_json::Value>,
    /// The maps rendered as text (absent when not attached).
    pub text: Option<String>,
}

/// Everything a running speaker exposes to the control socket, metrics and the reload loop.
/// Parts a configuration does not enable are `None`.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The file re-read on reload; `None` in Kubernetes mode, where the cluster objects are
    /// the configuration.
    pub config_path: Option<PathBuf>,
    /// The BGP instance (absent without a `bgp` section).
    pub instance: Option<InstanceHandle>,
    /// lb-ipam's allocation state (never held across an `await`).
    pub ipam: Option<Arc<Mutex<Ipam>>>,
    /// The L2 announcer (absent without an `l2` section).
    pub l2: Option<L2>,
    /// Kubernetes mode: the services with the addresses the cluster reports for them (lb-ipam
    /// runs as its own controller there, so there is no `ipam`).
    pub cluster_services: Option<watch::Receiver<Vec<ServiceStatus>>>,
    /// Where `reload` requests go (the daemon applies them one at a time).
    pub reload_tx: Option<mpsc::Sender<ReloadRequest>>,
    /// What the datapath serves and why not (absent without a datapath).
    pub serving: Option<watch::Receiver<ServingView>>,
    /// The datapath driver's map reader (absent without a datapath).
    pub datapath: Option<DatapathStatusHandle>,
    /// Liveness and readiness.
    pub health: Health,
}

impl Agent {
    /// An agent that only has a BGP instance.
    pub fn bgp_only(instance: InstanceHandle, config_path: PathBuf) -> Self {
        Self {
            config_path: Some(config_path),
            instance: Some(instance),
            ipam: None,
            l2: None,
            cluster_services: None,
            reload_tx: None,
            serving: None,
            datapath: None,
            health: Health::default(),
        }
    }

    /// Status of every BGP peer.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>> {
        match &self.instance {
            Some(instance) => instance.peers().await,
            None => Err(Error::Control("this speaker has no bgp section".into())),
        }
    }

    /// The BMP collectors of the BGP instance.
    pub async fn bmp_collectors(&self) -> Result<Vec<crate::bmp::hub::CollectorStatus>> {
        match &self.instance {
            Some(instance) => instance.bmp_collectors().await,
            None => Err(Error::Control("this speaker has no bgp section".into())),
        }
    }

    /// Routes advertised to or received from peers.
    pub async fn routes(&self, query: RouteQuery) -> Result<Vec<RouteRow>> {
        match &self.instance {
            Some(instance) => instance.routes(query).await,
            None => Err(Error::Control("this speaker has no bgp section".into())),
        }
    }

    /// `speaker reset`: see [`PeerReset`].
    pub async fn reset(&self, peer: String, kind: PeerReset) -> Result<IpAddr> {
        match &self.instance {
            Some(instance) => instance.reset_peer(peer, kind).await,
            None => Err(Error::Control("this speaker has no bgp section".into())),
        }
    }

    /// Services and their addresses.
    pub fn services(&self) -> Result<Vec<ServiceStatus>> {
        if let Some(services) = &self.cluster_services {
            return Ok(services.borrow().clone());
        }
        let ipam = self
            .ipam
            .as_ref()
            .ok_or_else(|| Error::Control("this speaker does not run lb-ipam".into()))?;
        let ipam = ipam
            .lock()
            .map_err(|_| Error::Control("lb-ipam state poisoned".into()))?;
        let mut rows = crate::ipam::status_rows(&ipam.report());
        drop(ipam);
        if let Some(serving) = &self.serving {
            serving.borrow().annotate(&mut rows);
        }
        Ok(rows)
    }

    /// `herald datapath status`.
    pub async fn datapath(&self) -> Result<DatapathReport> {
        let (Some(serving), Some(handle)) = (&self.serving, &self.datapath) else {
            return Err(Error::Control(
                "this agent runs no datapath (no `datapath:` section): announcement only".into(),
            ));
        };
        let serving = serving.borrow().clone();
        let (maps, text) = match handle.status().await {
            Ok(status) => (Some(status.to_json()), Some(status.to_text())),
            Err(_) => (None, None),
        };
        Ok(DatapathReport {
            serving,
            maps,
            text,
        })
    }

    /// The L2 announcer's report.
    pub fn l2(&self) -> Result<L2Report> {
        match &self.l2 {
            Some(l2) => Ok(crate::l2::report(&l2.status())),
            None => Err(Error::Control("this speaker has no l2 section".into())),
        }
    }

    /// Asks the daemon to re-read its configuration file and apply it.
    pub async fn reload(&self) -> Result<ReloadReport> {
        let Some(reload_tx) = &self.reload_tx else {
            return Err(Error::Control(
                "Kubernetes mode has no configuration file to re-read: the cluster objects \
                 (BGPClusterConfig, BGPPeerConfig, BGPAdvertisement, ...) are the configuration \
                 and apply as they change"
                    .into(),
            ));
        };
        let (tx, rx) = oneshot::channel();
        reload_tx
            .send(tx)
            .await
            .map_err(|_| Error::Control("the agent is stopping".into()))?;
        rx.await
            .map_err(|_| Error::Control("the agent stopped before answering".into()))?
    }
}

/// Serves the control socket at `path` (replacing a stale socket file) until the task is
/// dropped. `config_path` is re-read on `reload`.
pub async fn serve(path: PathBuf, instance: InstanceHandle, config_path: PathBuf) -> Result<()> {
    serve_agent(path, None, Agent::bgp_only(instance, config_path)).await
}

/// Serves the control socket at `path` for `agent` (see [`serve`]); `group` (a name or gid)
/// makes it 0660 for that group instead of 0600. See [`control_access`] for who may connect.
pub async fn serve_agent(path: PathBuf, group: Option<String>, agent: Agent) -> Result<()> {
    let (listener, access) = control_access::bind(&path, group.as_deref())?;
    let slots = Arc::new(Semaphore::new(control_access::MAX_CONNECTIONS));
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| Error::io("accept on control socket", e))?;
        if let Err(message) = control_access::check_peer(&stream, access) {
            tracing::warn!("control socket: {message}");
            tokio::spawn(refuse(stream, message));
            continue;
        }
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            let message = format!(
                "too many control connections (at most {}); try again",
                control_access::MAX_CONNECTIONS
            );
            tracing::warn!("control socket: {message}");
            tokio::spawn(refuse(stream, message));
            continue;
        };
        let agent = agent.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_one(stream, agent).await {
                tracing::debug!(%error, "control connection ended");
            }
            drop(permit);
        });
    }
}

/// Answers one error and closes the connection (bounded: gives up after a second).
async fn refuse(mut stream: UnixStream, message: String) {
    let Ok(mut text) = serde_json::to_string(&Response::Error { message }) else {
        return;
    };
    text.push('\n');
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.write_all(text.as_bytes()),
    )
    .await;
}

async fn serve_one(stream: UnixStream, agent: Agent) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match control_access::read_line(&mut reader).await? {
            Line::Request(line) => line,
            Line::End => return Ok(()),
            Line::TooLong => {
                let response = Response::Error {
                    message: format!(
                        "request line longer than {} bytes; connection closed",
                        control_access::MAX_REQUEST_LINE
                    ),
                };
                let mut text = serde_json::to_string(&response)
                    .map_err(|e| Error::Control(format!("encode response: {e}")))?;
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
                return Err(Error::Control("request line too long".into()));
            }
        };
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Peers) => agent.peers().await.map(|peers| Response::Peers { peers }),
            Ok(Request::Bmp) => agent
                .bmp_collectors()
                .await
                .map(|collectors| Response::Bmp { collectors }),
            Ok(Request::Reload) => agent
                .reload()
                .await
                .map(|report| Response::Reloaded { report }),
            Ok(Request::Services) => agent
                .services()
                .map(|services| Response::Services { services }),
            Ok(Request::L2) => agent.l2().map(|report| Response::L2 { report }),
            Ok(Request::Datapath) => agent.datapath().await.map(|report| Response::Datapath {
                report: Box::new(report),
            }),
            Ok(Request::Routes { query }) => agent
                .routes(query)
                .await
                .map(|routes| Response::Routes { routes }),
            Ok(Request::Reset { peer, kind }) => agent
                .reset(peer, kind)
                .await
                .map(|peer| Response::Reset { peer, kind }),
            Err(e) => Err(Error::Control(format!("bad request: {e}"))),
        };
        let response = answer.unwrap_or_else(|e| Response::Error {
            message: e.to_string(),
        });
        let mut text = serde_json::to_string(&response)
            .map_err(|e| Error::Control(format!("encode response: {e}")))?;
        text.push('\n');
        write
            .write_all(text.as_bytes())
            .await
            .map_err(|e| Error::io("write control response", e))?;
    }
}

/// Sends one request to the speaker listening at `path` and returns its answer.
pub async fn request(path: &Path, request: &Request) -> Result<Response> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(request)
        .map_err(|e| Error::Control(format!("encode request: {e}")))?;
    text.push('\n');
    // A refused client (credentials, connection cap) is answered and closed at once, possibly
    // before our request is written: a failed write still reads the agent's explanation.
    let written = write.write_all(text.as_bytes()).await;
    let line = BufReader::new(read).lines().next_line().await;
    let line = match (written, line) {
        (_, Ok(Some(line))) => line,
        (Err(e), _) => return Err(Error::io("write control request", e)),
        (Ok(()), Err(e)) => return Err(Error::io("read control response", e)),
        (Ok(()), Ok(None)) => {
            return Err(Error::Control(
                "the agent closed the socket without answering".into(),
            ));
        }
    };
    serde_json::from_str(&line).map_err(|e| Error::Control(format!("bad response: {e}")))
}
