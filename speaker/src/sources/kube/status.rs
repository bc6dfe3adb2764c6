//! The per-node `BGPNodeStatus`: built from the BGP instance's peer snapshots ([`node_status`],
//! pure) and written by server-side apply at a bounded rate ([`StatusWriter`]): at most one
//! write per `min_interval` (5 s by default), and none while nothing but the write time changed.
//! The writer is the I/O boundary (one `PATCH .../bgpnodestatuses/<node>/status`; the object is
//! created by an apply on the main resource the first time the status patch finds none).
//! A speaker that stops deletes its node's object ([`remove`]): no status means no speaker runs
//! there, rather than a last snapshot that still says Established.

use std::time::{Duration, SystemTime};

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::crd::{BGPNodeStatus, BGPNodeStatusStatus, PeerStatusEntry};
use crate::bgp::io::instance::PeerStatus;
use crate::error::{Error, Result};

/// Field manager of the speaker's server-side applies.
pub const FIELD_MANAGER: &str = "herald-speaker";
/// Default minimum time between two status writes.
pub const MIN_STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// Two `establishedSince` values closer than this are the same session (uptime is reported in
/// whole seconds, so `now - uptime` wobbles by one).
const SINCE_TOLERANCE_SECONDS: i64 = 2;

/// An RFC 3339 timestamp in whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    Timestamp::from_second(ts.as_second())
        .unwrap_or(ts)
        .to_string()
}

/// Pure: the status of this node at `now` from the instance's peer snapshots.
pub fn node_status(
    local_asn: Option<u32>,
    peers: &[PeerStatus],
    problems: &[String],
    now: SystemTime,
) -> BGPNodeStatusStatus {
    let mut entries: Vec<PeerStatusEntry> = peers
        .iter()
        .map(|p| PeerStatusEntry {
            name: p.name.clone(),
            peer_address: p.address.to_string(),
            peer_asn: p.remote_asn.or_else(|| p.configured_asn.parse().ok()),
            session_state: p.state.clone(),
            established_since: p
                .uptime_seconds
                .and_then(|up| now.checked_sub(Duration::from_secs(up)))
                .map(rfc3339),
            hold_time_seconds: p.hold_time.and_then(|h| u16::try_from(h).ok()),
            keep_alive_time_seconds: p.keepalive_time.and_then(|k| u16::try_from(k).ok()),
            routes_advertised: p.prefixes_sent as u64,
            routes_received: p.prefixes_received as u64,
            bfd_state: p.bfd_state.clone(),
            last_error: p.last_error.clone(),
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    BGPNodeStatusStatus {
        local_asn,
        established_peers: entries
            .iter()
            .filter(|e| e.session_state == "Established")
            .count() as u32,
        total_peers: entries.len() as u32,
        peers: entries,
        problems: problems.to_vec(),
        update_time: rfc3339(now),
    }
}

fn seconds(text: &str) -> Option<i64> {
    text.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// Pure: whether two statuses say the same thing (ignoring the write time and the one-second
/// wobble of `establishedSince`).
pub fn same_content(a: &BGPNodeStatusStatus, b: &BGPNodeStatusStatus) -> bool {
    let strip = |s: &BGPNodeStatusStatus| {
        let mut s = s.clone();
        s.update_time.clear();
        for p in &mut s.peers {
            p.established_since = None;
        }
        s
    };
    strip(a) == strip(b)
        && a.peers.iter().zip(&b.peers).all(|(x, y)| {
            match (
                x.established_since.as_deref().and_then(seconds),
                y.established_since.as_deref().and_then(seconds),
            ) {
                (Some(p), Some(q)) => (p - q).abs() <= SINCE_TOLERANCE_SECONDS,
                (None, None) => true,
                _ => false,
            }
        })
}

/// What [`StatusWriter::offer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The status was written.
    Written,
    /// Nothing changed since the last write.
    Unchanged,
    /// Too soon after the last write; offer again after this long.
    TooSoon(Duration),
}

/// Writes one node's `BGPNodeStatus` by server-side apply, at most once per interval.
pub struct StatusWriter {
    api: Api<BGPNodeStatus>,
    node: String,
    min_interval: Duration,
    last: Option<BGPNodeStatusStatus>,
    last_write: Option<Instant>,
}

impl StatusWriter {
    /// A writer for `node`'s status.
    pub fn new(client: Client, node: impl Into<String>, min_interval: Duration) -> Self {
        Self {
            api: Api::all(client),
            node: node.into(),
            min_interval,
            last: None,
            last_write: None,
        }
    }

    /// Writes `status` unless it says what the last write said or the last write was less than
    /// the interval ago. A failed write is not remembered, so the next offer retries it.
    pub async fn offer(&mut self, status: &BGPNodeStatusStatus) -> Result<Offer> {
        if self.last.as_ref().is_some_and(|l| same_content(l, status)) {
            return Ok(Offer::Unchanged);
        }
        let now = Instant::now();
        if let Some(at) = self.last_write {
            let next = at + self.min_interval;
            if now < next {
                return Ok(Offer::TooSoon(next - now));
            }
        }
        self.write(status).await?;
        self.last = Some(status.clone());
        self.last_write = Some(now);
        Ok(Offer::Written)
    }

    async fn write(&self, status: &BGPNodeStatusStatus) -> Result<()> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let body = json!({
            "apiVersion": "herald.io/v1alpha1",
            "kind": "BGPNodeStatus",
            "metadata": { "name": self.node },
            "status": status,
        });
        match self
            .api
            .patch_status(&self.node, &params, &Patch::Apply(&body))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let object = json!({
                    "apiVersion": "herald.io/v1alpha1",
                    "kind": "BGPNodeStatus",
                    "metadata": { "name": self.node },
                    "spec": { "nodeName": self.node },
                });
                self.api
                    .patch(&self.node, &params, &Patch::Apply(&object))
                    .await
                    .map_err(|e| self.error("creating", &e))?;
                self.api
                    .patch_status(&self.node, &params, &Patch::Apply(&body))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.error("writing", &e))
            }
            Err(e) => Err(self.error("writing", &e)),
        }
    }

    fn error(&self, what: &str, e: &kube::Error) -> Error {
        Error::Kube(format!("{what} BGPNodeStatus {}: {e}", self.node))
    }
}

/// Deletes `node`'s `BGPNodeStatus` (one that does not exist is not an error).
pub async fn remove(client: Client, node: &str) -> Result<()> {
    match Api::<BGPNodeStatus>::all(client)
        .delete(node, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(format!("deleting BGPNodeStatus {node}: {e}"))),
    }
}

/// Runs the writer over a stream of statuses until the sender is dropped: each new value is
/// offered, and one that came too soon is written when the interval is over (the latest value
/// at that time, so bursts collapse into one write). A failing write (CRD missing, RBAC) is
/// retried every interval but logged once, and its recovery once.
pub async fn run(mut writer: StatusWriter, mut status_rx: watch::Receiver<BGPNodeStatusStatus>) {
    let mut failing: Option<String> = None;
    loop {
        let status = status_rx.borrow_and_update().clone();
        match writer.offer(&status).await {
            Ok(Offer::TooSoon(wait)) => {
                tokio::time::sleep(wait).await;
                continue;
            }
            Ok(_) => {
                if failing.take().is_some() {
                    tracing::info!(node = %writer.node, "BGPNodeStatus written again");
                }
            }
            Err(e) => {
                let error = e.to_string();
                if failing.as_ref() != Some(&error) {
                    tracing::warn!(%error, "BGPNodeStatus not written; retrying");
                    failing = Some(error);
                } else {
                    tracing::debug!(%error, "BGPNodeStatus still not written");
                }
                tokio::time::sleep(writer.min_interval).await;
                continue;
            }
        }
        if status_rx.changed().await.is_err() {
            return;
        }
    }
}
