//! `herald`: Herald's one node binary. This file only parses the command line, sets up logging
//! and prints answers; the agent itself is `speaker::daemon`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use datapath::maglev;

use speaker::api::control::{self, Request, Response};
use speaker::bgp::route_rows::RouteQuery;
use speaker::bgp::session::PeerReset;
use speaker::config::Family;

/// Herald's node agent and its operator commands: BGP, L2 announcements, lb-ipam and the eBPF
/// datapath (XDP Maglev + Geneve DSR) in one process.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node agent. SIGHUP or an edit of the file reloads the configuration; SIGTERM or
    /// SIGINT stop it (graceful-restart peers keep our routes, the datapath keeps forwarding).
    Agent {
        /// The node's YAML configuration (standalone mode).
        #[arg(
            long,
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        config: Option<PathBuf>,
        /// Overrides `datapath.pinDir` (bpffs directory of the pinned maps and links).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Validate a standalone configuration file (and the password and key files it names) and
    /// exit.
    Check {
        /// The node's YAML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// BGP: peers, routes, resets.
    #[command(subcommand)]
    Bgp(BgpCommand),
    /// Show the services, the addresses lb-ipam gave them, and any not announced from here.
    Services(ShowArgs),
    /// Show the L2 announcements: per VIP the leader, interfaces, replies and GARPs sent.
    L2(ShowArgs),
    /// Re-read the running agent's configuration file.
    Reload(ShowArgs),
    /// The eBPF datapath.
    #[command(subcommand)]
    Datapath(DatapathCommand),
}

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// Show the BGP peers of the running agent.
    Peers(ShowArgs),
    /// Show the BMP collectors (RFC 7854) the running agent reports to.
    Bmp(ShowArgs),
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

#[derive(Debug, Subcommand)]
enum DatapathCommand {
    /// Attachment, served addresses, and the services, backends and counters in the maps.
    Status(ShowArgs),
    /// Print a Maglev table, one backend index (position on the command line) per slot.
    Maglev {
        /// Table size M (one of Cilium's primes).
        #[arg(long, default_value_t = maglev::DEFAULT_TABLE_SIZE)]
        table_size: u32,
        /// Cluster seed: base64 of 12 bytes.
        #[arg(long, default_value = maglev::DEFAULT_SEED)]
        seed: String,
        /// Backend as IP:PORT/PROTO[@WEIGHT] ([IPv6]:PORT/PROTO for IPv6); repeat for each.
        #[arg(long = "backend", required = true)]
        backends: Vec<maglev::Backend>,
        /// Print JSON (an array of backend indexes).
        #[arg(long)]
        json: bool,
    },
}

/// Kubernetes mode of `herald agent`.
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
    /// This node's `datapath:` section as a YAML file (a ConfigMap); without it the node
    /// announces without serving.
    #[arg(long, requires = "kubernetes")]
    datapath_config: Option<PathBuf>,
    /// L2 heartbeat key file (a mounted Secret, at least 16 bytes): heartbeats are
    /// authenticated with HMAC-SHA256 and replays refused. Without it any host on the segment
    /// can forge them.
    #[arg(long, requires = "kubernetes")]
    l2_key_file: Option<PathBuf>,
    /// L2 cluster id: heartbeats of other clusters on the same segment are ignored.
    #[arg(long, requires = "kubernetes")]
    l2_cluster: Option<String>,
    /// Comma-separated CIDRs a Service's `spec.externalIPs` must lie in to be announced or
    /// served (default: none; each refused address is reported).
    #[arg(long, requires = "kubernetes", value_parser = parse_external_ip_policy, default_value = "")]
    allowed_external_ip_cidrs: speaker::sources::external_ips::ExternalIpPolicy,
}

fn parse_external_ip_policy(
    text: &str,
) -> Result<speaker::sources::external_ips::ExternalIpPolicy, String> {
    speaker::sources::external_ips::ExternalIpPolicy::parse_list(text)
}

/// Which side of the sessions `herald bgp routes` shows.
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

/// Options of the commands that ask the running agent.
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
        Command::Agent {
            config,
            pin_dir,
            log_json,
            kube,
        } => {
            init_logging(log_json);
            match config {
                Some(config) => run(config, pin_dir),
                None => run_kubernetes(kube, pin_dir),
            }
        }
        Command::Bgp(BgpCommand::Peers(args)) => show(&args, &Request::Peers),
        Command::Bgp(BgpCommand::Bmp(args)) => show(&args, &Request::Bmp),
        Command::Services(args) => show(&args, &Request::Services),
        Command::L2(args) => show(&args, &Request::L2),
        Command::Reload(args) => show(&args, &Request::Reload),
        Command::Datapath(DatapathCommand::Status(args)) => show(&args, &Request::Datapath),
        Command::Datapath(DatapathCommand::Maglev {
            table_size,
            seed,
            backends,
            json,
        }) => print_maglev(table_size, &seed, &backends, json),
        Command::Bgp(BgpCommand::Routes {
            direction,
            peer,
            family,
            show: args,
        }) => {
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
        Command::Bgp(BgpCommand::Reset {
            peer,
            hard,
            soft_in,
            soft_out,
            show: args,
        }) => {
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
            eprintln!("error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a cause whose text the message before it already
/// contains (thiserror messages that embed their source) is left out.
fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn print_maglev(
    table_size: u32,
    seed: &str,
    backends: &[maglev::Backend],
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let seed = maglev::Seed::from_base64(seed)?;
    let table = maglev::build(table_size, &seed, backends)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer(&mut out, table.slots())?;
        writeln!(out)?;
    } else {
        for slot in table.slots() {
            writeln!(out, "{slot}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn check(config: &Path) -> anyhow::Result<()> {
    let parsed = speaker::config::load(config)?;
    speaker::daemon::preflight::check(&parsed, &config.display().to_string())?;
    let peers = parsed.bgp.as_ref().map_or(0, |bgp| bgp.peers.len());
    let pools = parsed
        .ipam
        .as_ref()
        .map_or(0, |ipam| ipam.value.pools.len());
    let datapath = match &parsed.datapath {
        Some(d) => format!(
            "datapath on ({} interface(s), Maglev M={})",
            d.value.interfaces.value.len(),
            d.value.maglev.table_size.value
        ),
        None => "datapath off: announcement only (no `datapath:` section; service addresses \
                 are announced without this node serving them)"
            .to_owned(),
    };
    println!(
        "{}: valid ({peers} BGP peers, {pools} IP pools, {} services, {} nodes, L2 {}, {datapath})",
        config.display(),
        parsed.services.len(),
        parsed.nodes.len(),
        if parsed.l2.is_some() { "on" } else { "off" }
    );
    // The configured MTU, or the interfaces' as this host has them (skipped where absent). An
    // IPv6 node address in `nodes:` means Geneve may travel in outer IPv6 (20 bytes more).
    if let Some(d) = &parsed.datapath {
        let outer6 = parsed.nodes.iter().any(|n| n.value.address.is_ipv6());
        for w in d
            .value
            .mtu_warnings(|name| datapath::neighbour::interface_mtu(name).ok(), outer6)
        {
            println!("warning: {w}");
        }
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs to stderr; colour only when stderr is a terminal (a log file gets no escape codes).
fn init_logging(log_json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter);
    if log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

#[cfg(not(feature = "kubernetes"))]
fn run_kubernetes(_args: KubeArgs, _pin_dir: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::bail!("not implemented: this speaker was built without the `kubernetes` feature")
}

/// `agent --kubernetes`: the flags become the runtime's settings; `speaker::daemon::kube` runs
/// the agent until SIGTERM/SIGINT.
#[cfg(feature = "kubernetes")]
fn run_kubernetes(args: KubeArgs, pin_dir: Option<PathBuf>) -> anyhow::Result<()> {
    use speaker::daemon::kube::RuntimeConfig;
    use speaker::sources::kube::Identity;
    let node = args
        .node
        .filter(|n| !n.is_empty())
        .context("--kubernetes needs --node NAME (or NODE_NAME in the environment)")?;
    runtime()?.block_on(async move {
        let client = speaker::sources::kube::client(args.kubeconfig.as_deref(), None).await?;
        let mut cfg = RuntimeConfig::new(Identity {
            node_name: node,
            namespace: args.namespace,
            external_ips: args.allowed_external_ip_cidrs,
        });
        cfg.api.metrics_address = args.metrics_address;
        cfg.datapath = args
            .datapath_config
            .as_deref()
            .map(speaker::config::load_datapath_section)
            .transpose()?;
        cfg.pin_dir = pin_dir;
        cfg.l2_auth.key_file = args.l2_key_file;
        cfg.l2_cluster = args.l2_cluster;
        speaker::daemon::kube::run(client, cfg).await?;
        anyhow::Ok(())
    })
}

fn run(config_path: PathBuf, pin_dir: Option<PathBuf>) -> anyhow::Result<()> {
    runtime()?.block_on(speaker::daemon::standalone::run(
        speaker::daemon::standalone::Options {
            config_path,
            pin_dir,
        },
    ))?;
    Ok(())
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
        Response::Bmp { collectors } if json => {
            println!("{}", serde_json::to_string_pretty(&collectors)?);
        }
        Response::Bmp { collectors } => {
            print!("{}", speaker::api::cli::render_bmp(&collectors));
        }
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
        Response::Datapath { report } if json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Response::Datapath { report } => print!("{}", speaker::api::cli::render_datapath(&report)),
        Response::Reloaded { report } if json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Response::Reloaded { report } => println!("reloaded: {report:?}"),
        Response::Error { message } => anyhow::bail!("the speaker refused: {message}"),
    }
    Ok(())
}
