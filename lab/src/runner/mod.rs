//! The containerlab runner: `up` builds a validated [`Topology`] out of namespaces, veth pairs and
//! bridges, starts each node's program and runs its `exec` lines; `down` removes everything recorded
//! in the lab's state (and any namespace named after the file's nodes); `status` and `exec` inspect
//! and enter running labs. I/O boundary: the primitives in [`crate::netns`], [`crate::link`],
//! [`crate::process`], [`crate::frr`], and the state directory ([`state`]).

pub mod images;
mod restart;
pub mod state;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::clab::{NodeKind, Topology, netns_name};
use crate::frr::{self, FrrConfig, FrrDaemon, FrrPeer};
use crate::link::{Bridge, VethPair};
use crate::netns::Netns;
use crate::process::{ChildProcess, STOP_GRACE};
use crate::{Error, Result, cmd};
use images::Program;
use state::{LabDir, LabState, NodeRecord, Resource, Unavailable};

/// Where labs keep state, configs and logs unless told otherwise.
pub const DEFAULT_STATE_ROOT: &str = "/run/herald-lab";

/// How long a freshly started Herald program must stay up to count as started.
const SPEAKER_SETTLE: Duration = Duration::from_millis(500);

/// Where a `herald-l2` node's status snapshot is written, relative to its node directory.
pub const L2_STATUS_FILE: &str = "l2-status.json";

/// The program name the agent's process is recorded under.
const AGENT: &str = "herald";

/// `herald agent` for a node: its config copy, its pin directory, its node directory as the
/// working directory (control socket, lb-ipam and graceful-restart state live there).
fn agent_args<'c>(
    c: &'c mut Command,
    conf: &Path,
    pins: &Path,
    node_dir: &Path,
) -> &'c mut Command {
    c.arg("agent")
        .arg("--config")
        .arg(conf)
        .arg("--pin-dir")
        .arg(pins)
        .current_dir(node_dir)
}

/// Spawns `c` as `name` and checks that it is still running after [`SPEAKER_SETTLE`].
fn start_settled(name: &str, c: Command, node_dir: &Path, node: &str) -> Result<ChildProcess> {
    let mut child = ChildProcess::spawn(name, c, node_dir)?;
    std::thread::sleep(SPEAKER_SETTLE);
    if !child.is_running() {
        return Err(node_err(
            node,
            format!("{name} exited at start\n{}", child.log_tail(2000)),
        ));
    }
    Ok(child)
}

/// Unmounts a lab's bpffs (dropping every map pinned in it) and removes the mount point. Not
/// mounted or already gone is fine, so `down` can repeat.
fn unmount_bpffs(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| Error::io(Path::new("/proc/self/mounts"), e))?;
    let target = path.to_string_lossy();
    let mounted = mounts
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(target.as_ref()))
        .count();
    for _ in 0..mounted {
        cmd::output(Command::new("umount").arg(path))?;
    }
    std::fs::remove_dir(path).map_err(|e| Error::io(path, e))
}

/// What `down` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Processes that were still running and were stopped.
    pub processes_stopped: usize,
    /// Namespaces deleted.
    pub netns_removed: usize,
}

/// One node in `status`.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// The node as recorded.
    pub node: NodeRecord,
    /// Whether its namespace exists.
    pub netns_exists: bool,
    /// (program name, running) per recorded process.
    pub processes: Vec<(String, bool)>,
    /// BGP neighbors, for FRR nodes whose daemons answer.
    pub bgp: Vec<FrrPeer>,
}

/// One lab in `status`.
#[derive(Clone, Debug)]
pub struct LabStatus {
    /// The recorded state.
    pub state: LabState,
    /// Per-node status.
    pub nodes: Vec<NodeStatus>,
}

/// Finds one of Herald's binaries, or says why it is not available.
type BinaryLookup = fn() -> Result<PathBuf>;

/// How `up` treats programs that are missing on this machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// Leave out a node's Herald program (herald, herald-l2) that is not available instead of
    /// failing; the node's namespace, links and `exec` lines are still set up, and the omission is
    /// recorded in [`LabState::unavailable`]. FRR missing is always an error.
    pub skip_unavailable: bool,
}

/// The runner, rooted at a state directory.
#[derive(Clone, Debug)]
pub struct Runner {
    root: PathBuf,
}

fn make_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
    // Daemons drop privileges (frr) and must reach their directories.
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(p, e))
}

fn node_err(node: &str, reason: impl Into<String>) -> Error {
    Error::Node {
        node: node.to_owned(),
        reason: reason.into(),
    }
}

impl Runner {
    /// A runner keeping lab state under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The state directory of lab `name`.
    pub fn lab_dir(&self, name: &str) -> LabDir {
        LabDir::new(&self.root, name)
    }

    /// Brings `topo` up. On failure everything created so far is removed again (logs stay in the
    /// lab directory) and the error is returned.
    pub fn up(&self, topo: &Topology) -> Result<LabState> {
        self.up_with(topo, UpOptions::default())
    }

    /// [`Runner::up`] with options.
    pub fn up_with(&self, topo: &Topology, opts: UpOptions) -> Result<LabState> {
        let dir = self.lab_dir(&topo.name);
        if let Some(st) = dir.load()? {
            return Err(Error::State(format!(
                "lab {} is already up (from {}); run `lab down` first",
                st.name,
                st.file.display()
            )));
        }
        for node in topo.nodes.keys() {
            let ns = topo.netns_of(node);
            if Netns::exists(&ns) {
                return Err(Error::State(format!(
                    "namespace {ns} already exists; run `lab down {}`",
                    topo.file.display()
                )));
            }
        }
        let unavailable = self.preflight(topo, opts)?;
        make_dir(&self.root)?;
        make_dir(dir.path())?;
        let mut state = LabState {
            name: topo.name.clone(),
            file: topo.file.clone(),
            nodes: topo
                .nodes
                .values()
                .map(|n| NodeRecord {
                    name: n.name.clone(),
                    program: n.program.name().to_owned(),
                    netns: topo.netns_of(&n.name),
                    env: n.env.clone(),
                })
                .collect(),
            unavailable,
            ..LabState::default()
        };
        dir.save(&state)?;
        match self.build(topo, &dir, &mut state) {
            Ok(()) => {
                state.complete = true;
                dir.save(&state)?;
                Ok(state)
            }
            Err(e) => {
                let names: Vec<String> = topo.nodes.keys().map(|n| topo.netns_of(n)).collect();
                if let Err(e2) = self.teardown(&topo.name, &names, false) {
                    eprintln!("lab: cleaning up after a failed up: {e2}");
                }
                Err(e)
            }
        }
    }

    /// Checks what can be checked before anything is created: programs present, required binds
    /// bound. Returns the Herald programs left out under `opts.skip_unavailable`.
    fn preflight(&self, topo: &Topology, opts: UpOptions) -> Result<Vec<Unavailable>> {
        let mut skipped = Vec::new();
        for node in topo.nodes.values() {
            match node.program {
                Program::Frr => {
                    if node.bind_for(images::FRR_CONF).is_none() {
                        return Err(node_err(
                            &node.name,
                            format!("an FRR node needs a bind to {}", images::FRR_CONF),
                        ));
                    }
                    if let Some(d) = node.bind_for(images::FRR_DAEMONS) {
                        let text = std::fs::read_to_string(d).map_err(|e| Error::io(d, e))?;
                        FrrConfig::daemons_from_file(&text)?;
                    }
                    let zebra = Path::new(frr::FRR_BIN_DIR).join("zebra");
                    if !zebra.exists() {
                        return Err(Error::NotAvailable {
                            what: "FRR".to_owned(),
                            reason: format!("{} missing; run scripts/setup.sh", zebra.display()),
                        });
                    }
                }
                Program::Speaker => {
                    let wants_agent = node.bind_for(images::AGENT_CONF).is_some();
                    let wants_l2 = node.bind_for(images::L2_CONF).is_some();
                    if !wants_agent && !wants_l2 {
                        return Err(node_err(
                            &node.name,
                            format!(
                                "a herald-image node needs a bind to {} or {}",
                                images::AGENT_CONF,
                                images::L2_CONF,
                            ),
                        ));
                    }
                    let checks: [(bool, &str, BinaryLookup); 2] = [
                        (wants_agent, "herald", images::agent_binary),
                        (wants_l2, "herald-l2", images::l2_binary),
                    ];
                    for (wanted, program, find) in checks {
                        if !wanted {
                            continue;
                        }
                        match find() {
                            Ok(_) => {}
                            Err(e @ Error::NotAvailable { .. }) if opts.skip_unavailable => {
                                skipped.push(Unavailable {
                                    node: node.name.clone(),
                                    program: program.to_owned(),
                                    reason: e.to_string(),
                                });
                            }
                            Err(e) => return Err(node_err(&node.name, e.to_string())),
                        }
                    }
                }
                Program::Plain | Program::None => {}
            }
        }
        Ok(skipped)
    }

    fn build(&self, topo: &Topology, dir: &LabDir, state: &mut LabState) -> Result<()> {
        let mut namespaces: BTreeMap<&str, Netns> = BTreeMap::new();
        for node in topo.nodes.values() {
            let name = topo.netns_of(&node.name);
            // Recorded before creation: a crash right after `ip netns add` still leaves a record.
            dir.record(
                state,
                Resource::Netns {
                    node: node.name.clone(),
                    name: name.clone(),
                },
            )?;
            namespaces.insert(&node.name, Netns::create(&name)?);
        }
        let ns = |node: &str| {
            namespaces
                .get(node)
                .ok_or_else(|| node_err(node, "no namespace"))
        };
        let mut bridges: BTreeMap<&str, Bridge> = BTreeMap::new();
        for node in topo.nodes.values().filter(|n| n.kind == NodeKind::Bridge) {
            bridges.insert(&node.name, Bridge::create(ns(&node.name)?, &node.name)?);
        }
        let mut veths = Vec::new();
        for link in &topo.links {
            veths.push(VethPair::create(
                ns(&link.a.node)?,
                &link.a.iface,
                ns(&link.b.node)?,
                &link.b.iface,
            )?);
            for end in [&link.a, &link.b] {
                if let Some(br) = bridges.get(end.node.as_str()) {
                    br.attach(&end.iface)?;
                }
            }
        }
        for node in topo.nodes.values() {
            let netns = ns(&node.name)?;
            let node_dir = dir.node_dir(&node.name);
            make_dir(&node_dir)?;
            let mut bind_copies = Vec::new();
            for bind in &node.binds {
                let dest = node_dir
                    .join("binds")
                    .join(bind.container.trim_start_matches('/'));
                bind_copies.push((bind.container.clone(), dest.clone()));
                if let Some(parent) = dest.parent() {
                    make_dir(parent)?;
                }
                cmd::output(Command::new("cp").arg("-a").arg(&bind.host).arg(&dest))?;
            }
            let mut started: Vec<ChildProcess> = Vec::new();
            match node.program {
                Program::Frr => {
                    let conf_path = node
                        .bind_for(images::FRR_CONF)
                        .ok_or_else(|| node_err(&node.name, "no frr.conf"))?;
                    let config =
                        std::fs::read_to_string(conf_path).map_err(|e| Error::io(conf_path, e))?;
                    let daemons = match node.bind_for(images::FRR_DAEMONS) {
                        Some(p) => FrrConfig::daemons_from_file(
                            &std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
                        )?,
                        None => vec![FrrDaemon::Bgpd],
                    };
                    let frr = frr::Frr::start(
                        netns,
                        &node_dir.join("frr"),
                        &FrrConfig { config, daemons },
                    )
                    .map_err(|e| node_err(&node.name, e.to_string()))?;
                    for (name, id) in frr.detach() {
                        dir.record(
                            state,
                            Resource::Process {
                                node: node.name.clone(),
                                name,
                                id,
                            },
                        )?;
                    }
                }
                Program::Speaker => {
                    let unavailable = state.unavailable.clone();
                    let skipped = |program: &str| {
                        unavailable
                            .iter()
                            .any(|u| u.node == node.name && u.program == program)
                    };
                    let bound = |container: &str| {
                        node.bind_for(container).map(|_| {
                            node_dir
                                .join("binds")
                                .join(container.trim_start_matches('/'))
                        })
                    };
                    if let Some(conf) = bound(images::L2_CONF)
                        && !skipped("herald-l2")
                    {
                        let bin = images::l2_binary()?;
                        let mut c = netns.command(&bin);
                        c.arg("run")
                            .arg("--config")
                            .arg(&conf)
                            .arg("--status-file")
                            .arg(node_dir.join(L2_STATUS_FILE))
                            .envs(&node.env)
                            .current_dir(&node_dir);
                        started.push(start_settled("herald-l2", c, &node_dir, &node.name)?);
                    }
                    if let Some(conf) = bound(images::AGENT_CONF)
                        && !skipped("herald")
                    {
                        let bin = images::agent_binary()?;
                        // Each node pins its maps and program links in its own directory.
                        let pins = self.lab_bpffs(dir, state)?.join(&node.name);
                        let mut c = netns.command(&bin);
                        agent_args(&mut c, &conf, &pins, &node_dir).envs(&node.env);
                        started.push(start_settled(AGENT, c, &node_dir, &node.name)?);
                    }
                }
                Program::Plain => {
                    if let Some(line) = &node.cmd {
                        let line = images::rewrite_bind_paths(line, &bind_copies);
                        let mut c = netns.command("sh");
                        c.args(["-c", &line]).envs(&node.env).current_dir(&node_dir);
                        started.push(ChildProcess::spawn("cmd", c, &node_dir)?);
                    }
                }
                Program::None => {}
            }
            for child in started {
                let name = child.name().to_owned();
                let id = child.detach();
                dir.record(
                    state,
                    Resource::Process {
                        node: node.name.clone(),
                        name,
                        id,
                    },
                )?;
            }
            for line in &node.exec {
                let rewritten = images::rewrite_bind_paths(line, &bind_copies);
                let mut c = netns.command("sh");
                c.args(["-c", &rewritten])
                    .envs(&node.env)
                    .current_dir(&node_dir);
                cmd::output(&mut c)
                    .map_err(|e| node_err(&node.name, format!("exec `{line}`: {e}")))?;
            }
        }
        // Everything is up and recorded: the guards must not undo it.
        for v in veths {
            v.keep();
        }
        for (_, b) in bridges {
            b.keep();
        }
        for (_, n) in namespaces {
            n.keep();
        }
        Ok(())
    }

    /// The lab's own bpf filesystem (`<lab dir>/bpffs`), mounted on first use: datapath agents
    /// pin their maps in a directory per node under it, visible to `lab exec NODE -- datapath
    /// status --pin-dir ...` (`ip netns exec` hides the host's `/sys/fs/bpf`), and `down` removes
    /// every pin at once by unmounting it.
    fn lab_bpffs(&self, dir: &LabDir, state: &mut LabState) -> Result<PathBuf> {
        let path = dir.bpffs();
        if state
            .resources
            .iter()
            .any(|r| matches!(r, Resource::BpfFs { .. }))
        {
            return Ok(path);
        }
        dir.record(state, Resource::BpfFs { path: path.clone() })?;
        make_dir(&path)?;
        cmd::output(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&path))?;
        Ok(path)
    }

    /// Tears down the lab defined in `file`: everything recorded in its state, and any namespace
    /// named after its nodes (in case the state was lost). Safe to repeat.
    pub fn down(&self, file: &Path) -> Result<DownReport> {
        let (name, nodes) = crate::clab::names_of(file)?;
        let names: Vec<String> = nodes.iter().map(|n| netns_name(&name, n)).collect();
        self.teardown(&name, &names, true)
    }

    fn teardown(&self, lab: &str, extra_netns: &[String], remove_dir: bool) -> Result<DownReport> {
        let dir = self.lab_dir(lab);
        let state = dir.load()?;
        let mut report = DownReport::default();
        let mut first_error = None;
        let resources = state
            .as_ref()
            .map(|s| s.resources.as_slice())
            .unwrap_or_default();
        for r in resources.iter().rev() {
            if let Resource::Process { id, .. } = r
                && id.is_alive()
            {
                match id.terminate(STOP_GRACE) {
                    Ok(()) => report.processes_stopped += 1,
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
        }
        // Pinned maps go with their bpffs; programs they were attached to died with the agents.
        for r in resources.iter().rev() {
            if let Resource::BpfFs { path } = r
                && let Err(e) = unmount_bpffs(path)
            {
                first_error = first_error.or(Some(e));
            }
        }
        let recorded = resources.iter().rev().filter_map(|r| match r {
            Resource::Netns { name, .. } => Some(name.as_str()),
            Resource::Process { .. } | Resource::BpfFs { .. } => None,
        });
        for ns in recorded.chain(extra_netns.iter().map(String::as_str)) {
            if Netns::exists(ns) {
                match Netns::destroy(ns) {
                    Ok(()) => report.netns_removed += 1,
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if remove_dir {
            dir.remove()?;
        } else if state.is_some() {
            // Keep configs and logs of a failed `up` for inspection, but not the state.
            let f = dir.path().join("state.json");
            std::fs::remove_file(&f).map_err(|e| Error::io(&f, e))?;
        }
        Ok(report)
    }

    /// Status of one lab, or of every lab with state.
    pub fn status(&self, lab: Option<&str>) -> Result<Vec<LabStatus>> {
        let labs = match lab {
            Some(l) => vec![l.to_owned()],
            None => LabDir::list(&self.root)?,
        };
        let mut out = Vec::new();
        for name in labs {
            let dir = self.lab_dir(&name);
            let Some(state) = dir.load()? else {
                return Err(Error::State(format!("lab {name} is not up")));
            };
            let nodes = state
                .nodes
                .iter()
                .map(|n| {
                    let processes: Vec<(String, bool)> = state
                        .resources
                        .iter()
                        .filter_map(|r| match r {
                            Resource::Process { node, name, id } if node == &n.name => {
                                Some((name.clone(), id.is_alive()))
                            }
                            _ => None,
                        })
                        .collect();
                    let bgp = if n.program == Program::Frr.name()
                        && processes.iter().any(|(p, up)| p == "bgpd" && *up)
                    {
                        frr::summary_at(&dir.node_dir(&n.name).join("frr").join("run"))
                            .unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    NodeStatus {
                        node: n.clone(),
                        netns_exists: Netns::exists(&n.netns),
                        processes,
                        bgp,
                    }
                })
                .collect();
            out.push(LabStatus { state, nodes });
        }
        Ok(out)
    }

    /// A command that runs `argv` inside `node` of `lab` (or of the only lab that is up), with the
    /// node's environment. The caller runs it with inherited stdio.
    pub fn exec_command(&self, lab: Option<&str>, node: &str, argv: &[String]) -> Result<Command> {
        let lab = match lab {
            Some(l) => l.to_owned(),
            None => {
                let labs = LabDir::list(&self.root)?;
                match labs.as_slice() {
                    [one] => one.clone(),
                    [] => return Err(Error::State("no lab is up".to_owned())),
                    many => {
                        return Err(Error::State(format!(
                            "several labs are up ({}); pass --topo FILE",
                            many.join(", ")
                        )));
                    }
                }
            }
        };
        let state = self
            .lab_dir(&lab)
            .load()?
            .ok_or_else(|| Error::State(format!("lab {lab} is not up")))?;
        let rec = state
            .nodes
            .iter()
            .find(|n| n.name == node || n.netns == node)
            .ok_or_else(|| Error::State(format!("lab {lab} has no node {node}")))?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::State("no command given".to_owned()))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", rec.netns.as_str()])
            .arg(program)
            .args(args)
            .envs(&rec.env);
        Ok(c)
    }
}
