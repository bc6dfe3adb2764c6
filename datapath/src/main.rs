//! The `datapath` command: the long-running agent (`run`), Maglev table printing and datapath
//! status. Argument parsing and output only; the work is in the library.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use datapath::maglev::{self, Backend, Seed};

/// Herald's eBPF datapath tool.
#[derive(Parser)]
#[command(name = "datapath", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the datapath agent: load and attach the programs, program the configured services,
    /// reload on SIGHUP or file change, detach and clean up on SIGTERM.
    Run {
        /// The YAML config file.
        #[arg(long)]
        config: std::path::PathBuf,
        /// bpffs directory for the pinned maps (overrides the file's `pinDir`).
        #[arg(long)]
        pin_dir: Option<std::path::PathBuf>,
    },
    /// Check a `datapath run` config file and exit.
    Check {
        /// The YAML config file.
        #[arg(long)]
        config: std::path::PathBuf,
    },
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
        backends: Vec<Backend>,
    },
    /// Print services, backends and counters from the pinned maps of a running datapath.
    Status {
        /// bpffs directory the maps are pinned in.
        #[arg(long, default_value = "/sys/fs/bpf/herald")]
        pin_dir: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, pin_dir } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            datapath::agent::run(&datapath::agent::RunOptions { config, pin_dir })?;
        }
        Command::Check { config } => {
            let c = datapath::config::load(&config)?;
            println!(
                "{}: ok ({} interface(s), {} service(s))",
                config.display(),
                c.interfaces.value.len(),
                c.services.len()
            );
        }
        Command::Maglev {
            table_size,
            seed,
            backends,
        } => {
            let seed = Seed::from_base64(&seed)?;
            let table = maglev::build(table_size, &seed, &backends)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for slot in table.slots() {
                writeln!(out, "{slot}").context("writing the table")?;
            }
            out.flush().context("writing the table")?;
        }
        Command::Status { pin_dir, json } => {
            let status = datapath::status::Status::read_pinned(&pin_dir)
                .with_context(|| format!("reading maps pinned in {}", pin_dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status.to_json())?);
            } else {
                print!("{}", status.to_text());
            }
        }
    }
    Ok(())
}
