//! `lab`: bring containerlab topologies up on one Linux host with network namespaces instead of
//! containers. `lab up FILE`, `lab down FILE`, `lab status [FILE]`, `lab exec NODE -- CMD`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use herald_lab::clab::{Topology, names_of};
use herald_lab::demo;
use herald_lab::runner::{DEFAULT_STATE_ROOT, LabStatus, Runner, UpOptions};

/// Run containerlab topologies with network namespaces (no Docker).
#[derive(Debug, Parser)]
#[command(name = "lab", version)]
struct Cli {
    /// Directory for lab state, node configs and logs.
    #[arg(long, env = "HERALD_LAB_STATE_DIR", default_value = DEFAULT_STATE_ROOT, global = true)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create the namespaces, links and programs of a topology.
    Up {
        /// The `.clab.yml` file.
        file: PathBuf,
        /// Leave out Herald programs (speaker, herald-l2) that are not available yet instead of
        /// failing; the rest of the topology comes up.
        #[arg(long)]
        skip_unavailable: bool,
    },
    /// Remove everything a topology created (also after a crash).
    Down {
        /// The `.clab.yml` file.
        file: PathBuf,
    },
    /// Show running labs: nodes, processes, BGP sessions of FRR nodes.
    Status {
        /// Only this topology.
        file: Option<PathBuf>,
    },
    /// The main job: bring up bgp-ecmp, check sessions, the ToR's ECMP route to the service IP,
    /// HTTP from the client to it and the DSR proof, print a summary table, then tear down.
    Demo {
        /// Leave the lab up afterwards (`lab down FILE` removes it).
        #[arg(long)]
        keep: bool,
        /// The topology (default: the shipped bgp-ecmp.clab.yml); it needs nodes tor, client and
        /// node1..node3.
        #[arg(long)]
        topology: Option<PathBuf>,
    },
    /// Run a command inside a node.
    Exec {
        /// Topology of the node (needed when several labs are up).
        #[arg(short, long = "topo")]
        topo: Option<PathBuf>,
        /// Node name (or its namespace name).
        node: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

fn print_status(labs: &[LabStatus]) {
    if labs.is_empty() {
        println!("no lab is up");
    }
    for lab in labs {
        let st = &lab.state;
        let done = if st.complete {
            ""
        } else {
            "  (incomplete: `up` did not finish)"
        };
        println!("lab {}  ({}){done}", st.name, st.file.display());
        println!(
            "  {:<12} {:<8} {:<28} {:<22} BGP",
            "NODE", "PROGRAM", "NETNS", "PROCESSES"
        );
        for n in &lab.nodes {
            let ns = format!(
                "{}{}",
                n.node.netns,
                if n.netns_exists { "" } else { " (gone)" }
            );
            let up = n.processes.iter().filter(|(_, alive)| *alive).count();
            let procs = if n.processes.is_empty() {
                "-".to_owned()
            } else {
                let names: Vec<&str> = n.processes.iter().map(|(p, _)| p.as_str()).collect();
                format!("{up}/{} {}", n.processes.len(), names.join(","))
            };
            let bgp: Vec<String> = n
                .bgp
                .iter()
                .map(|p| {
                    format!(
                        "{} AS{} {} rx={}",
                        p.address, p.remote_as, p.state, p.prefixes_received
                    )
                })
                .collect();
            let bgp = if bgp.is_empty() {
                "-".to_owned()
            } else {
                bgp.join("; ")
            };
            println!(
                "  {:<12} {:<8} {:<28} {:<22} {bgp}",
                n.node.name, n.node.program, ns, procs
            );
        }
        for u in &st.unavailable {
            println!("  not started on {}: {} ({})", u.node, u.program, u.reason);
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let runner = Runner::new(&cli.state_dir);
    match cli.command {
        Cmd::Up {
            file,
            skip_unavailable,
        } => {
            let topo = Topology::load(&file)?;
            let lab_dir = runner.lab_dir(&topo.name);
            let st = runner
                .up_with(&topo, UpOptions { skip_unavailable })
                .with_context(|| {
                    let logs = lab_dir.path().join("nodes");
                    if logs.exists() {
                        format!(
                            "lab up {} (node logs kept under {})",
                            file.display(),
                            logs.display()
                        )
                    } else {
                        format!("lab up {}", file.display())
                    }
                })?;
            print_status(&runner.status(Some(&st.name))?);
        }
        Cmd::Down { file } => {
            let r = runner.down(&file)?;
            println!(
                "removed {} namespace(s), stopped {} process(es)",
                r.netns_removed, r.processes_stopped
            );
        }
        Cmd::Status { file } => {
            let lab = file
                .map(|f| names_of(&f).map(|(name, _)| name))
                .transpose()?;
            print_status(&runner.status(lab.as_deref())?);
        }
        Cmd::Demo { keep, topology } => {
            let file = topology.unwrap_or_else(demo::default_topology);
            println!("Herald main job: {}", file.display());
            let report = demo::run(&runner, &file, &demo::BGP_ECMP, keep, |row| {
                let mark = match row.outcome {
                    demo::Outcome::Done(_) => "ok",
                    demo::Outcome::NotYet(_) => "not yet available",
                    demo::Outcome::Skipped(_) => "skipped",
                    demo::Outcome::Failed(_) => "FAILED",
                };
                eprintln!("  .. {}: {mark}", row.step);
            })?;
            println!();
            print!("{}", report.render());
            if report.failed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Exec { topo, node, argv } => {
            let lab = topo
                .map(|f| names_of(&f).map(|(name, _)| name))
                .transpose()?;
            let status = runner
                .exec_command(lab.as_deref(), &node, &argv)?
                .status()
                .context("running the command")?;
            return Ok(ExitCode::from(
                status
                    .code()
                    .and_then(|c| u8::try_from(c).ok())
                    .unwrap_or(1),
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
