//! `speaker`: Herald's per-node agent. This file only parses the command line, sets up logging
//! and signals, and calls into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::sync::{Arc, Mutex};

use speaker::advertise::ServiceState;
use speaker::api::control::{self, Agent, Request, Response};
use speaker::bgp::io::instance::Instance;
use speaker::bgp::route_rows::RouteQuery;
use speaker::bgp::session::PeerReset;
use speaker::config::Family;
use tokio::signal::unix::{SignalKind, signal};

/// Herald's node agent: BGP sessions, advertisements and L2 announcements.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a standalone configuration file and exit.
    Check {
        /// The node's YAML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the agent. SIGHUP or a change of the file reloads the configuration; SIGTERM/SIGINT
    /// stop it (graceful-restart peers keep our routes until we are back).
    Run {
        /// The node's YAML configuration (standalone mode).
        #[arg(
            long,
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Show the BGP peers of the running agent.
    Peers(ShowArgs),
    /// Show the services and the addresses lb-ipam gave them (satisfied, or why not).
    Services(ShowArgs),
    /// Show the L2 announcements: per VIP the leader, interfaces, replies and GARPs sent.
    L2(ShowArgs),
    /// Show the routes advertised to or received from the BGP peers.
    Routes {
        /// `advertised` (Adj-RIB-Out) or `received` (Adj-RIB-In, with the import verdict).
        direction: RouteDirection,
        /// Only this peer (configured name or address).
        #[arg(long)]
        peer: Option<String>,
        /// Only this family.
        #[arg(long)]
        family: Option<FamilyArg>,
        #[command(flatten)]
        show: ShowArgs,
    },
    /// Reset one BGP peer: by default Cease/Administrative Reset (with graceful restart and the
    /// N bit both sides keep routes until the new session re-sends them).
    Reset {
        /// Configured name or address of the peer.
        peer: String,
        /// An RFC 8538 Hard Reset: both sides flush the other's routes at once.
        #[arg(long, group = "reset_kind")]
        hard: bool,
        /// Keep the session; ask the peer to re-send its routes (ROUTE-REFRESH).
        #[arg(long, group = "reset_kind")]
        soft_in: bool,
        /// Keep the session; send our routes to the peer again.
        #[arg(long, group = "reset_kind")]
        soft_out: bool,
        #[command(flatten)]
        show: ShowArgs,
    },
}

/// Kubernetes mode of `speaker run`.
#[derive(Debug, clap::Args)]
struct KubeArgs {
    /// Take the configuration from the Kubernetes API (CRDs, Services, EndpointSlices, Nodes,
    /// Secrets) instead of a file.
    #[arg(long)]
    kubernetes: bool,
    /// Kubeconfig file (default: in-cluster service account, else $KUBECONFIG).
    #[arg(long, requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,
    /// This node's name.
    #[arg(long, alias = "node-name", env = "NODE_NAME", requires = "kubernetes")]
    node: Option<String>,
    /// The speaker's namespace (Secrets with MD5 keys, L2 Leases).
    #[arg(long, env = "POD_NAMESPACE", default_value = "herald-system")]
    namespace: String,
    /// Prometheus `/metrics` endpoint address (default: none).
    #[arg(long, requires = "kubernetes")]
    metrics_address: Option<std::net::SocketAddr>,
}

/// Which side of the sessions `speaker routes` shows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RouteDirection {
    /// Routes sent to peers.
    Advertised,
    /// Routes received from peers.
    Received,
}

/// A family on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FamilyArg {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

/// Options of the `peers`, `services` and `l2` commands.
#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The control socket (default: the one in --config, else /run/herald/speaker.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Read the control socket path from this configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Run {
            config,
            log_json,
            kube,
        } => {
            init_logging(log_json);
            match config {
                Some(config) => run(config),
                None => run_kubernetes(kube),
            }
        }
        Command::Peers(args) => show(&args, &Request::Peers),
        Command::Services(args) => show(&args, &Request::Services),
        Command::L2(args) => show(&args, &Request::L2),
        Command::Routes {
            direction,
            peer,
            family,
            show: args,
        } => {
            let query = RouteQuery {
                received: matches!(direction, RouteDirection::Received),
                peer,
                family: family.map(|f| match f {
                    FamilyArg::Ipv4 => Family::Ipv4Unicast,
                    FamilyArg::Ipv6 => Family::Ipv6Unicast,
                }),
            };
            show(&args, &Request::Routes { query })
        }
        Command::Reset {
            peer,
            hard,
            soft_in,
            soft_out,
            show: args,
        } => {
            let kind = match (hard, soft_in, soft_out) {
                (true, _, _) => PeerReset::Hard,
                (_, true, _) => PeerReset::SoftIn,
                (_, _, true) => PeerReset::SoftOut,
                _ => PeerReset::Session,
            };
            show(&args, &Request::Reset { peer, kind })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(config: &Path) -> anyhow::Result<()> {
    let parsed = speaker::config::load(config)?;
    let peers = parsed.bgp.as_ref().map_or(0, |bgp| bgp.peers.len());
    let pools = parsed
        .ipam
        .as_ref()
        .map_or(0, |ipam| ipam.value.pools.len());
    println!(
        "{}: valid ({peers} BGP peers, {pools} IP pools, {} services, L2 {})",
        config.display(),
        parsed.services.len(),
        if parsed.l2.is_some() { "on" } else { "off" }
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn init_logging(log_json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

#[cfg(not(feature = "kubernetes"))]
fn run_kubernetes(_args: KubeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented: this speaker was built without the `kubernetes` feature")
}

/// `run --kubernetes`: everything happens in `speaker::sources::kube::runtime`; this waits for
/// SIGTERM/SIGINT and stops it.
#[cfg(feature = "kubernetes")]
fn run_kubernetes(args: KubeArgs) -> anyhow::Result<()> {
    use speaker::sources::kube::{Identity, KubeRuntime, RuntimeConfig};
    let node = args
        .node
        .filter(|n| !n.is_empty())
        .context("--kubernetes needs --node NAME (or NODE_NAME in the environment)")?;
    runtime()?.block_on(async move {
        let client = speaker::sources::kube::client(args.kubeconfig.as_deref(), None).await?;
        let mut cfg = RuntimeConfig::new(Identity {
            node_name: node,
            namespace: args.namespace,
        });
        cfg.api.metrics_address = args.metrics_address;
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let speaker = KubeRuntime::start(client, cfg);
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        speaker.shutdown().await;
        anyhow::Ok(())
    })
}

fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let config = speaker::config::load(&config_path)?;
    let api = config.api.clone();
    // The state file is opened before anything is announced: a foreign or corrupt one stops
    // start-up here, with the file named.
    let ipam = speaker::ipam::Ipam::open(&config)?;
    runtime()?.block_on(async move {
        let l2 = speaker::l2::L2::start(&config, &ipam.allocations())?;
        let services = ServiceState::from_config(&config, ipam.allocations());
        let instance = match config.bgp {
            Some(_) => Some(Instance::start(config, services).await?),
            None => None,
        };
        let agent = Agent {
            config_path: Some(config_path.clone()),
            instance: instance.as_ref().map(Instance::handle),
            ipam: Some(Arc::new(Mutex::new(ipam))),
            l2: l2.clone(),
            cluster_services: None,
        };
        let control_task = tokio::spawn(control::serve_agent(
            api.control_socket.clone(),
            agent.clone(),
        ));
        let metrics_task = api
            .metrics_address
            .map(|addr| tokio::spawn(speaker::api::metrics::serve_agent(addr, agent.clone())));
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut poll = tokio::time::interval(Duration::from_secs(2));
        let mut last_modified = modified(&config_path);
        tracing::info!(config = %config_path.display(), "speaker running");
        loop {
            let reload = tokio::select! {
                _ = hangup.recv() => true,
                _ = poll.tick() => {
                    let now = modified(&config_path);
                    let changed = now != last_modified;
                    last_modified = now;
                    changed
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            };
            if reload {
                match agent.reload().await {
                    Ok(report) => tracing::info!(?report, "configuration reloaded"),
                    Err(error) => tracing::error!(%error, "configuration not reloaded"),
                }
            }
        }
        tracing::info!("stopping");
        control_task.abort();
        if let Some(task) = metrics_task {
            task.abort();
        }
        if let Some(l2) = &l2 {
            l2.shutdown().await;
        }
        if let Some(instance) = instance {
            instance.shutdown().await;
        }
        let _ = std::fs::remove_file(&api.control_socket);
        anyhow::Ok(())
    })
}

fn show(args: &ShowArgs, request: &Request) -> anyhow::Result<()> {
    let socket = match (&args.socket, &args.config) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => speaker::config::load(c)?.api.control_socket,
        (None, None) => speaker::config::ApiConfig::default_control_socket(),
    };
    let response = runtime()?.block_on(async { control::request(&socket, request).await })?;
    let json = args.json;
    match response {
        Response::Peers { peers } if json => println!("{}", serde_json::to_string_pretty(&peers)?),
        Response::Peers { peers } => print!("{}", speaker::api::cli::render_peers(&peers)),
        Response::Services { services } if json => {
            println!("{}", serde_json::to_string_pretty(&services)?);
        }
        Response::Services { services } => {
            print!("{}", speaker::api::cli::render_services(&services));
        }
        Response::L2 { report } if json => println!("{}", serde_json::to_string_pretty(&report)?),
        Response::L2 { report } => print!("{}", speaker::l2::render_table(&report)),
        Response::Routes { routes } if json => {
            println!("{}", serde_json::to_string_pretty(&routes)?)
        }
        Response::Routes { routes } => print!("{}", speaker::bgp::route_rows::render(&routes)),
        Response::Reset { peer, kind } if json => {
            println!("{}", serde_json::json!({"peer": peer, "reset": kind}));
        }
        Response::Reset { peer, kind } => println!("{peer}: {}", kind.describe()),
        Response::Error { message } => anyhow::bail!("the speaker refused: {message}"),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
    Ok(())
}
