//! One collector's task: connects (with backoff) to the collector, hands the owner a fresh
//! queue bounded in bytes for each connection ([`Request::Connected`]; the owner answers by
//! queueing Initiation, Peer Up and a full dump), writes what the queue holds, asks for
//! Statistics Reports on the configured interval, and reconnects when the connection ends.
//!
//! A collector that stops reading fills its queue; the owner then drops the connection (this
//! task is aborted and started again), so nothing here ever waits on the BGP sessions.
//!
//! I/O boundary: the TCP connection to the collector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::bgp::io::codec::{Outbound, OutboundRx, outbound};
use crate::config::bmp::CollectorConfig;

/// Identifies one collector's task within a hub (a new id for every restart).
pub type CollectorId = u64;

/// What a collector task asks of the instance's owner.
#[derive(Debug)]
pub enum Request {
    /// A connection is up: queue Initiation, Peer Up for every established peer and the
    /// Adj-RIB-In dumps into `sink`, then stream events into it.
    Connected {
        /// The task.
        collector: CollectorId,
        /// The connection's queue.
        sink: Outbound,
    },
    /// Time for a Statistics Report of every established peer.
    Statistics {
        /// The task.
        collector: CollectorId,
    },
}

/// Counters one collector's task and the hub share (read by metrics and `herald bgp bmp`).
#[derive(Debug, Default)]
pub struct CollectorCounters {
    /// A connection is up.
    pub connected: AtomicBool,
    /// Connections established.
    pub connects: AtomicU64,
    /// BMP messages queued for the collector.
    pub messages: AtomicU64,
    /// Bytes written to the collector.
    pub bytes: AtomicU64,
    /// Connections dropped because the collector did not keep up (its queue was full).
    pub drops: AtomicU64,
}

/// First wait before reconnecting; doubled while connecting fails, up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes gathered from the queue before one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Runs one collector until aborted. `delay` is waited before the first attempt (a restart
/// after a dropped connection does not hammer the collector). Ends when the owner is gone.
pub async fn run<T: From<Request> + Send + 'static>(
    collector: CollectorId,
    config: CollectorConfig,
    requests: mpsc::WeakSender<T>,
    counters: Arc<CollectorCounters>,
    delay: Duration,
) {
    let target = config.socket_addr();
    let name = config.display_name();
    let mut backoff = MIN_BACKOFF;
    tokio::time::sleep(delay).await;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                backoff = MIN_BACKOFF;
                let _ = stream.set_nodelay(true);
                let limit = usize::try_from(config.queue_limit_bytes).unwrap_or(usize::MAX);
                let (sink, rx) = outbound(limit);
                let Some(owner) = requests.upgrade() else {
                    return;
                };
                if owner
                    .send(T::from(Request::Connected { collector, sink }))
                    .await
                    .is_err()
                {
                    return;
                }
                drop(owner);
                tracing::info!(collector = %name, %target, "BMP collector connected");
                counters.connects.fetch_add(1, Ordering::Relaxed);
                counters.connected.store(true, Ordering::Relaxed);
                let ended = serve(collector, stream, rx, &config, &requests, &counters).await;
                counters.connected.store(false, Ordering::Relaxed);
                match ended {
                    Ended::ByAgent => {
                        tracing::info!(collector = %name, %target, "BMP collector connection closed");
                        return;
                    }
                    Ended::Lost(why) => {
                        tracing::warn!(collector = %name, %target, %why, "BMP collector connection lost");
                    }
                }
                if requests.upgrade().is_none() {
                    return;
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(collector = %name, %target, %error, "BMP collector connect failed");
            }
            Err(_) => {
                tracing::debug!(collector = %name, %target, "BMP collector connect timed out")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How a connection ended.
enum Ended {
    /// The agent closed the queue (collector removed, agent stopping): the task ends.
    ByAgent,
    /// The connection failed or the collector closed it: the task reconnects.
    Lost(String),
}

/// Writes the queue to the collector and asks for statistics until the connection ends.
async fn serve<T: From<Request> + Send + 'static>(
    collector: CollectorId,
    stream: TcpStream,
    mut rx: OutboundRx,
    config: &CollectorConfig,
    requests: &mpsc::WeakSender<T>,
    counters: &CollectorCounters,
) -> Ended {
    let (mut read, mut write) = stream.into_split();
    let period = Duration::from_secs(u64::from(config.statistics_interval_seconds.max(1)));
    let mut stats = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut discard = [0u8; 512];
    let mut batch: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some(first) = next else {
                    let _ = write.shutdown().await;
                    return Ended::ByAgent;
                };
                batch.clear();
                batch.extend_from_slice(&first);
                while batch.len() < WRITE_BATCH_BYTES && let Some(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                }
                if let Err(error) = write.write_all(&batch).await {
                    return Ended::Lost(format!("write failed: {error}"));
                }
                counters.bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            _ = stats.tick(), if config.statistics_interval_seconds > 0 => {
                let Some(owner) = requests.upgrade() else {
                    return Ended::ByAgent;
                };
                // Never wait on the owner here: a busy owner skips a report.
                let _ = owner.try_send(T::from(Request::Statistics { collector }));
            }
            // RFC 7854 §3.2: the monitoring station sends nothing; anything read is ignored and
            // the end of the stream means the collector closed the session.
            read_result = read.read(&mut discard) => match read_result {
                Ok(0) => return Ended::Lost("closed by the collector".into()),
                Ok(_) => {}
                Err(error) => return Ended::Lost(format!("read failed: {error}")),
            }
        }
    }
}
