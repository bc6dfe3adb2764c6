//! `speaker`: Herald's per-node agent. This file only parses the command line, sets up logging
//! and signals, and calls into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use speaker::api::control::{self, Request, Response};
use speaker::bgp::io::instance::Instance;
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
        /// The node's YAML configuration.
        #[arg(long)]
        config: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Show the BGP peers of the running agent.
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The control socket (default: the one in --config, else /run/herald/speaker.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Read the control socket path from this configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config, log_json } => run(config, log_json),
        Command::Peers {
            json,
            socket,
            config,
        } => peers(json, socket, config),
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
    let peers = parsed.bgp.map_or(0, |bgp| bgp.peers.len());
    println!("{}: valid ({peers} BGP peers)", config.display());
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

fn run(config_path: PathBuf, log_json: bool) -> anyhow::Result<()> {
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
    let config = speaker::config::load(&config_path)?;
    let api = config.api.clone();
    runtime()?.block_on(async move {
        let instance = Instance::start(config).await?;
        let handle = instance.handle();
        let control_task = tokio::spawn(control::serve(
            api.control_socket.clone(),
            handle.clone(),
            config_path.clone(),
        ));
        let metrics_task = api
            .metrics_address
            .map(|addr| tokio::spawn(speaker::api::metrics::serve(addr, handle.clone())));
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
                match control::reload(&handle, &config_path).await {
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
        instance.shutdown().await;
        let _ = std::fs::remove_file(&api.control_socket);
        anyhow::Ok(())
    })
}

fn peers(json: bool, socket: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let socket = match (socket, config) {
        (Some(s), _) => s,
        (None, Some(c)) => speaker::config::load(&c)?.api.control_socket,
        (None, None) => speaker::config::ApiConfig::default_control_socket(),
    };
    let response =
        runtime()?.block_on(async { control::request(&socket, &Request::Peers).await })?;
    match response {
        Response::Peers { peers } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&peers)?);
            } else {
                print!("{}", speaker::api::cli::render_peers(&peers));
            }
            Ok(())
        }
        Response::Error { message } => anyhow::bail!("the speaker refused: {message}"),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}
