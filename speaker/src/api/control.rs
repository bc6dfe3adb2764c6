//! The control socket: one JSON request per line in, one JSON response per line out, over a unix
//! stream socket only root (or the socket's group) can open.
//!
//! I/O boundary: the unix socket (server side in [`serve`], client side in [`request`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::bgp::io::instance::{InstanceHandle, PeerStatus, ReloadReport};
use crate::error::{Error, Result};

/// A request to the running speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Status of every BGP peer.
    Peers,
    /// Re-read the configuration file.
    Reload,
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

/// Serves the control socket at `path` (replacing a stale socket file) until the task is
/// dropped. `config_path` is re-read on `reload`.
pub async fn serve(path: PathBuf, instance: InstanceHandle, config_path: PathBuf) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("remove stale {}", path.display()), e)),
    }
    let listener =
        UnixListener::bind(&path).map_err(|e| Error::io(format!("bind {}", path.display()), e))?;
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| Error::io("accept on control socket", e))?;
        let instance = instance.clone();
        let config_path = config_path.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_one(stream, instance, config_path).await {
                tracing::debug!(%error, "control connection ended");
            }
        });
    }
}

async fn serve_one(
    stream: UnixStream,
    instance: InstanceHandle,
    config_path: PathBuf,
) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| Error::io("read control request", e))?
    {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Peers) => match instance.peers().await {
                Ok(peers) => Response::Peers { peers },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            },
            Ok(Request::Reload) => match reload(&instance, &config_path).await {
                Ok(report) => Response::Reloaded { report },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            },
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        };
        let mut text = serde_json::to_string(&response)
            .map_err(|e| Error::Control(format!("encode response: {e}")))?;
        text.push('\n');
        write
            .write_all(text.as_bytes())
            .await
            .map_err(|e| Error::io("write control response", e))?;
    }
    Ok(())
}

/// Re-reads `config_path` and applies it; a broken file changes nothing.
pub async fn reload(instance: &InstanceHandle, config_path: &Path) -> Result<ReloadReport> {
    let config = crate::config::load(config_path)?;
    instance.reload(config).await
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
    write
        .write_all(text.as_bytes())
        .await
        .map_err(|e| Error::io("write control request", e))?;
    let line = BufReader::new(read)
        .lines()
        .next_line()
        .await
        .map_err(|e| Error::io("read control response", e))?
        .ok_or_else(|| Error::Control("the speaker closed the socket without answering".into()))?;
    serde_json::from_str(&line).map_err(|e| Error::Control(format!("bad response: {e}")))
}
