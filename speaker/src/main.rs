//! `speaker`: Herald's per-node agent. This file only parses the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match speaker::config::load(&config) {
            Ok(parsed) => {
                let peers = parsed.bgp.map_or(0, |bgp| bgp.peers.len());
                println!("{}: valid ({peers} BGP peers)", config.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
