//! The `lb-ipam` binary: `run` is the Kubernetes controller, `crd` prints the
//! `LoadBalancerIPPool` CRD, `standalone` allocates for a Herald standalone file once and prints
//! the result (persisting to the file's `ipam.stateFile`).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// LoadBalancer IP address management for Herald.
#[derive(Parser)]
#[command(name = "lb-ipam", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kubernetes controller.
    Run {
        /// Kubeconfig file; in-cluster config or $KUBECONFIG when omitted.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Context of the kubeconfig to use.
        #[arg(long)]
        context: Option<String>,
        /// Wait this long after a change before syncing, to batch bursts.
        #[arg(long, default_value_t = 200)]
        debounce_ms: u64,
        /// Serve `/healthz` and `/readyz` (no data) here; the Deployment, which is not
        /// host-networked, passes 0.0.0.0:9964 so the kubelet can probe the pod IP.
        #[arg(long, default_value = "127.0.0.1:9964")]
        health_address: SocketAddr,
        /// Allocate only while holding the `herald-lb-ipam` Lease, so several replicas can run
        /// (one allocates, the others stand by). `false`: exactly one replica must run.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        leader_elect: bool,
        /// This replica's name in the Lease (the Deployment passes the pod name).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Namespace of the Lease (the Deployment passes the pod's namespace).
        #[arg(long, env = "POD_NAMESPACE", default_value = "herald-system")]
        lease_namespace: String,
    },
    /// Print the LoadBalancerIPPool CRD as YAML.
    Crd,
    /// Allocate for a standalone Herald file and print the allocations as JSON.
    Standalone {
        /// Herald's standalone YAML file.
        #[arg(long)]
        config: PathBuf,
        /// Owner identity recorded in the state file (default: hostname and config path).
        #[arg(long)]
        owner: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", lb_ipam::crd::crd_yaml()?);
        }
        Command::Standalone { config, owner } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let cfg = lb_ipam::standalone::parse_config(&text, &config.display().to_string())?;
            let owner = match owner {
                Some(o) => o,
                None => {
                    let path = std::fs::canonicalize(&config).unwrap_or(config.clone());
                    format!("{}:{}", hostname(), path.display())
                }
            };
            let state = lb_ipam::standalone::Standalone::open(&cfg.ipam, &cfg.services, &owner)?;
            println!("{}", serde_json::to_string_pretty(&state.report())?);
            if let Some(error) = state.save_error() {
                anyhow::bail!("allocations not saved: {error}");
            }
        }
        Command::Run {
            kubeconfig,
            context,
            debounce_ms,
            health_address,
            leader_elect,
            identity,
            lease_namespace,
        } => {
            let health = lb_ipam::controller::Health::default();
            let listener = lb_ipam::endpoint::bind(health_address)
                .await
                .with_context(|| format!("binding the health endpoint {health_address}"))?;
            let endpoint = lb_ipam::endpoint::serve(
                listener,
                Arc::new(health.clone()),
                lb_ipam::endpoint::EndpointConfig::default(),
            );
            let options = KubeConfigOptions {
                context,
                ..Default::default()
            };
            let config = match kubeconfig {
                Some(path) => {
                    let kc = Kubeconfig::read_from(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    kube::Config::from_custom_kubeconfig(kc, &options).await?
                }
                None => kube::Config::infer().await?,
            };
            let client = kube::Client::try_from(config)?;
            let debounce = Duration::from_millis(debounce_ms);
            let controller = async {
                if !leader_elect {
                    return lb_ipam::controller::run_with_health(client, debounce, &health).await;
                }
                let identity = match identity {
                    Some(i) if !i.is_empty() => i,
                    _ => hostname(),
                };
                let leader = lb_ipam::controller::LeaderConfig {
                    namespace: lease_namespace,
                    identity,
                    timing: lb_ipam::controller::LeaderTiming::default(),
                };
                lb_ipam::controller::run_elected(client, debounce, &health, leader).await
            };
            tokio::select! {
                result = controller => result?,
                result = endpoint => result.context("health endpoint")?,
            }
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
