//! `herald-l2`: the L2 announcer as a standalone process, for end-to-end tests and sites that want
//! ARP/NDP failover without the full agent. `run` reads a `StandaloneConfig` YAML file (the L2
//! config plus `auth:`), announces until SIGTERM/SIGINT, and can write its status as JSON to a
//! file and serve `/metrics`, `/healthz` and `/readyz` on a loopback address (the agent's
//! endpoint and L2 collector, reused);
//! `show` prints a status file as the table `speaker l2` shows, as JSON, or as metrics.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arp_responder::config::StandaloneConfig;
use arp_responder::runtime::{L2Responder, store_from_config};
use arp_responder::status::{L2Collector, Status, render_prometheus, render_table};
use clap::{Parser, Subcommand};
use lb_ipam::endpoint::{self, EndpointConfig, Endpoints, Readiness};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

#[derive(Parser)]
#[command(about = "Herald L2 announcer (ARP/NDP with leader election)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the announcer.
    Run {
        /// L2 configuration (YAML).
        #[arg(long)]
        config: PathBuf,
        /// Write the status snapshot as JSON here every 100 ms (atomically).
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// Serve `/metrics`, `/healthz` and `/readyz` on this loopback address.
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// Print a status file written by `run`.
    Show {
        /// The status file.
        #[arg(long)]
        status_file: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Prometheus text instead of a table.
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Show {
            status_file,
            json,
            prometheus,
        } => {
            let text = std::fs::read_to_string(&status_file)
                .with_context(|| format!("reading {}", status_file.display()))?;
            let status: serde_json::Value =
                serde_json::from_str(&text).context("parsing status")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            let status: Status = status_from_json(&status)?;
            if prometheus {
                print!("{}", render_prometheus(&status)?);
            } else {
                print!("{}", render_table(&status));
            }
            Ok(())
        }
        Cmd::Run {
            config,
            status_file,
            metrics,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(run(config, status_file, metrics))
        }
    }
}

fn status_from_json(v: &serde_json::Value) -> Result<Status> {
    // Status only derives Serialize (it is an output type); rebuild the fields the renderers use.
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let b = |x: &serde_json::Value, k: &str| x.get(k).and_then(|y| y.as_bool()).unwrap_or(false);
    let n = |x: &serde_json::Value, k: &str| x.get(k).and_then(|y| y.as_u64()).unwrap_or(0);
    let strs = |x: &serde_json::Value, k: &str| -> Vec<String> {
        x.get(k)
            .and_then(|y| y.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Status {
        node: s("node"),
        quorum: b(v, "quorum"),
        lease_valid: b(v, "lease_valid"),
        ..Status::default()
    };
    out.alive_peers = strs(v, "alive_peers");
    out.members = strs(v, "members");
    out.heartbeats_sent = n(v, "heartbeats_sent");
    out.heartbeats_received = n(v, "heartbeats_received");
    out.heartbeat_auth = s("heartbeat_auth");
    out.peers_tracked = n(v, "peers_tracked");
    if let Some(d) = v.get("heartbeats_rejected").and_then(|d| d.as_object()) {
        out.heartbeats_rejected = d
            .iter()
            .map(|(k, x)| (k.clone(), x.as_u64().unwrap_or(0)))
            .collect();
    }
    if let Some(d) = v.get("drops").and_then(|d| d.as_object()) {
        out.drops = d
            .iter()
            .map(|(k, x)| (k.clone(), x.as_u64().unwrap_or(0)))
            .collect();
    }
    for x in v
        .get("vips")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        let vip = x
            .get("vip")
            .and_then(|y| y.as_str())
            .unwrap_or_default()
            .parse()
            .context("vip in status")?;
        out.vips.push(arp_responder::status::VipStatus {
            vip,
            services: strs(x, "services"),
            eligible: strs(x, "eligible"),
            leader: x.get("leader").and_then(|y| y.as_str()).map(str::to_owned),
            led_by_me: b(x, "led_by_me"),
            interfaces: strs(x, "interfaces"),
            replies_sent: n(x, "replies_sent"),
            garps_sent: n(x, "garps_sent"),
        });
    }
    Ok(out)
}

/// `herald-l2`'s endpoint: the announcer's latest snapshot through the shared L2 collector.
struct L2Endpoints {
    status_rx: watch::Receiver<Status>,
}

impl Endpoints for L2Endpoints {
    fn readiness(&self) -> Readiness {
        // The announcer runs from start-up on; leadership is per VIP and shown by the metrics.
        Readiness {
            ready: true,
            reason: "ok".into(),
        }
    }

    async fn metrics(&self) -> Option<Result<String, String>> {
        let status = self.status_rx.borrow().clone();
        Some(endpoint::render(L2Collector(status)).map_err(|e| e.to_string()))
    }
}

async fn run(
    config: PathBuf,
    status_file: Option<PathBuf>,
    metrics: Option<SocketAddr>,
) -> Result<()> {
    let cfg = StandaloneConfig::from_yaml_file(&config)?;
    let auth = cfg.auth.load()?;
    // The agent's configuration enforces a loopback metrics address; so does this flag.
    let listener = match metrics {
        Some(addr) if !addr.ip().is_loopback() => {
            anyhow::bail!("--metrics {addr}: the metrics endpoint binds loopback addresses only")
        }
        Some(addr) => Some(
            endpoint::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?,
        ),
        None => None,
    };
    let store = store_from_config(&cfg.l2)?;
    let handle = L2Responder::start_with_auth(cfg.l2, store, auth)?;
    let status_rx = handle.watch_status();
    let server = async move {
        match listener {
            Some(listener) => {
                let endpoints = Arc::new(L2Endpoints { status_rx });
                endpoint::serve(listener, endpoints, EndpointConfig::default()).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(server);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            result = &mut server => {
                result.context("metrics endpoint")?;
                break;
            }
            _ = tick.tick() => {
                if let Some(path) = &status_file {
                    let json = serde_json::to_vec_pretty(&handle.status())?;
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
                    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
                }
            }
        }
    }
    handle.shutdown().await;
    Ok(())
}
