//! `lab demo`: Herald's main job. Brings up the `bgp-ecmp` topology, waits for the ToR's BGP
//! sessions, and checks each link of the chain a user cares about — service IP, the ToR's ECMP
//! route to it, HTTP requests from the client answered by the backend pods through the nodes'
//! datapath (XDP Maglev + Geneve DSR), and the DSR proof from packet captures on the nodes'
//! uplinks — printing one row per step, plus one row per node (flows that entered there, who
//! answered them, replies that left there). A step whose component has not landed yet says "not
//! yet available: `<what>`" instead of failing; a step that should work and does not makes
//! [`Report::failed`] true.
//!
//! The table and the parsers are pure (the capture analysis is in [`crate::dsr_proof`]); the
//! steps do I/O through the [`Runner`], `vtysh` ([`crate::frr`]), and `ip`/`curl`/`tcpdump` run
//! inside the lab's namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::clab::Topology;
use crate::dsr_proof::{self, DemoService, FlowPath, Seen};
use crate::frr;
use crate::paced_get;
use crate::process::ChildProcess;
use crate::runner::images;
use crate::runner::state::LabState;
use crate::runner::{Runner, UpOptions};
use crate::{Error, Result, wait_until};

/// How long the ToR's sessions may take to reach Established (FRR connect timer 1 s; the
/// speakers retry every second).
const SESSIONS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the ECMP route may take to reach the ToR's FIB after the sessions are up.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first HTTP answer may take once the route is installed (the datapath agents
/// program the service once their node has its address and next hops).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a packet capture may take to start listening.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the demo expects of the topology: node names and the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoPlan {
    /// The FRR top-of-rack node.
    pub tor: &'static str,
    /// The node that sends the HTTP requests.
    pub client: &'static str,
    /// The Kubernetes nodes running the agent. The service (port, endpoints) is the first one in
    /// the agent config bound into the first of them (`/etc/herald/herald.yaml`); its address is
    /// in no file: lb-ipam allocates it and the demo asks the running agents.
    pub nodes: &'static [&'static str],
    /// How the speakers announce the service IP, for the summary.
    pub service_ip_source: &'static str,
    /// HTTP requests sent (each from a new source port, so ECMP hashing spreads them).
    pub requests: usize,
}

/// The plan for `lab/containerlab/bgp-ecmp.clab.yml`.
pub const BGP_ECMP: DemoPlan = DemoPlan {
    tor: "tor",
    client: "client",
    nodes: &["node1", "node2", "node3"],
    service_ip_source: "pool lab-vips in nodeN/herald.yaml, the same on every node",
    requests: 12,
};

/// The addresses `speaker services --json` reports for the service named `name` (any
/// namespace); `None` when it is not there or has none yet.
pub fn allocated_addresses(json: &str, name: &str) -> Option<Vec<String>> {
    let rows: serde_json::Value = serde_json::from_str(json).ok()?;
    let row = rows.as_array()?.iter().find(|r| {
        r.get("service")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.rsplit('/').next() == Some(name))
    })?;
    let addresses: Vec<String> = row
        .get("addresses")?
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    (!addresses.is_empty()).then_some(addresses)
}

/// The shipped `bgp-ecmp` topology file (in the source tree this binary was built from).
pub fn default_topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("containerlab/bgp-ecmp.clab.yml")
}

/// How one step went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Worked; the detail says what was observed.
    Done(String),
    /// A component this step needs has not landed yet.
    NotYet(String),
    /// Not attempted because an earlier step failed.
    Skipped(String),
    /// Should have worked and did not.
    Failed(String),
}

/// One row of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Step name.
    pub step: &'static str,
    /// Result.
    pub outcome: Outcome,
}

/// The demo's result: one row per step, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The rows.
    pub rows: Vec<Row>,
}

impl Report {
    /// True when a step that should have worked failed.
    pub fn failed(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    /// The outcome of `step`, if it ran.
    pub fn outcome(&self, step: &str) -> Option<&Outcome> {
        self.rows
            .iter()
            .find(|r| r.step == step)
            .map(|r| &r.outcome)
    }

    /// The summary table a person reads.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.step.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("{:<width$}  {:<5}  DETAIL\n", "STEP", "");
        for r in &self.rows {
            let (mark, detail) = match &r.outcome {
                Outcome::Done(d) => ("ok", d.clone()),
                Outcome::NotYet(d) => ("--", format!("not yet available: {d}")),
                Outcome::Skipped(d) => ("skip", d.clone()),
                Outcome::Failed(d) => ("FAIL", d.clone()),
            };
            out.push_str(&format!("{:<width$}  {mark:<5}  {detail}\n", r.step));
        }
        out
    }
}

/// Step names, as they appear in the table.
pub mod step {
    /// `lab up` of the topology.
    pub const TOPOLOGY: &str = "topology";
    /// The ToR's BGP sessions with the speakers.
    pub const SESSIONS: &str = "BGP sessions";
    /// The service IP and where it comes from.
    pub const SERVICE_IP: &str = "service IP";
    /// Each node's datapath serving the service IP lb-ipam gave it.
    pub const SERVED: &str = "datapath serves VIP";
    /// The ToR's route to the service IP.
    pub const ROUTE: &str = "ToR ECMP route";
    /// HTTP from the client to the service IP.
    pub const HTTP: &str = "HTTP via VIP";
    /// Reply observed leaving a backend node with the service IP as source after DSR.
    pub const DSR: &str = "DSR proof";
    /// One node's agent killed with SIGKILL and restarted while the client keeps requesting.
    pub const RESTART: &str = "agent kill -9";
    /// `lab down` (or kept).
    pub const TEARDOWN: &str = "teardown";
}

/// The node whose agent the restart row kills.
const RESTARTED_NODE: &str = "node2";
/// Requests the client sends during the restart row (one every [`RESTART_GAP`]).
const RESTART_REQUESTS: usize = 100;
/// Pause between two of those requests.
const RESTART_GAP: Duration = Duration::from_millis(40);
/// Long downloads running across the restart (at 1 MB/s each, so they span it).
const RESTART_DOWNLOADS: usize = 6;
/// Size of the file they fetch, written into each pod's web root for the row.
const RESTART_DOWNLOAD_BYTES: usize = 4 << 20;

/// `(answered, failed)` from the client loop's output: one HTTP status per line (`000`: no
/// answer within the request's timeout); the downloads' `DL` lines are not requests.
pub fn http_outcomes(text: &str) -> (usize, usize) {
    let codes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("DL "))
        .collect();
    let ok = codes.iter().filter(|c| **c == "200").count();
    (ok, codes.len() - ok)
}

/// `(complete, started)` downloads from the client's `DL <bytes> <status>` lines: complete when
/// all `bytes` arrived with status 200.
pub fn download_outcomes(text: &str, bytes: usize) -> (usize, usize) {
    let results: Vec<(usize, u16)> = text.lines().filter_map(paced_get::parse_line).collect();
    let complete = results.iter().filter(|r| **r == (bytes, 200)).count();
    (complete, results.len())
}

/// Next hops of a route as `ip route show PREFIX` prints it: `via X` on the route line or one
/// `nexthop via X` line per ECMP member.
pub fn fib_next_hops(text: &str) -> Vec<String> {
    let mut hops = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "via"
                && let Some(addr) = words.next()
            {
                // `via inet6 fe80::1` (IPv4 over IPv6 next hop) names the family first.
                let addr = if matches!(addr, "inet" | "inet6") {
                    words.next().unwrap_or(addr)
                } else {
                    addr
                };
                hops.push(addr.to_owned());
            }
        }
    }
    hops
}

/// Counts HTTP answers by body (the node name each node's server returns).
pub fn tally(bodies: &[String]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for b in bodies {
        *t.entry(b.clone()).or_insert(0) += 1;
    }
    t
}

/// Runs the demo on the topology in `file`: up, the steps, then down unless `keep`. `progress` is
/// told each row as it completes (for a live view). Errors are only returned for problems outside
/// the steps (unreadable topology, a lab of that name already up); everything else is a row.
pub fn run(
    runner: &Runner,
    file: &Path,
    plan: &DemoPlan,
    keep: bool,
    mut progress: impl FnMut(&Row),
) -> Result<Report> {
    let topo = Topology::load(file)?;
    for node in [plan.tor, plan.client].iter().chain(plan.nodes) {
        if !topo.nodes.contains_key(*node) {
            return Err(Error::Topology {
                file: file.display().to_string(),
                message: format!("the demo needs a node `{node}`"),
            });
        }
    }
    let first = plan.nodes.first().copied().unwrap_or_default();
    let conf = topo
        .nodes
        .get(first)
        .and_then(|n| n.bind_for(images::AGENT_CONF))
        .ok_or_else(|| Error::Topology {
            file: file.display().to_string(),
            message: format!(
                "the demo needs `{first}` to bind the agent config {}",
                images::AGENT_CONF
            ),
        })?;
    let service = DemoService::load(conf)?;
    let mut report = Report::default();
    let mut emit = |step: &'static str, outcome: Outcome| {
        let row = Row { step, outcome };
        progress(&row);
        report.rows.push(row);
    };
    let up = runner.up_with(
        &topo,
        UpOptions {
            skip_unavailable: true,
        },
    );
    let state = match up {
        Ok(st) => st,
        Err(e @ Error::State(_)) => return Err(e),
        Err(e) => {
            emit(step::TOPOLOGY, Outcome::Failed(e.to_string()));
            return Ok(report);
        }
    };
    emit(
        step::TOPOLOGY,
        Outcome::Done(format!(
            "{} up: {} nodes in namespaces clab-{}-*, {} links",
            topo.name,
            topo.nodes.len(),
            topo.name,
            topo.links.len()
        )),
    );
    Steps {
        runner,
        topo: &topo,
        state: &state,
        plan,
        service,
    }
    .run_all(&mut emit);
    let teardown = if keep {
        Outcome::Done(format!(
            "kept up; remove with `lab down {}`",
            file.display()
        ))
    } else {
        match runner.down(file) {
            Ok(r) => Outcome::Done(format!(
                "lab down: removed {} namespaces, stopped {} processes",
                r.netns_removed, r.processes_stopped
            )),
            Err(e) => Outcome::Failed(format!("lab down: {e}")),
        }
    };
    emit(step::TEARDOWN, teardown);
    Ok(report)
}

/// The steps between `up` and `down`, over a running lab.
struct Steps<'a> {
    runner: &'a Runner,
    topo: &'a Topology,
    state: &'a LabState,
    plan: &'a DemoPlan,
    /// The service; its address is filled in from the agents' lb-ipam allocations.
    service: DemoService,
}

impl Steps<'_> {
    fn run_all(&mut self, emit: &mut dyn FnMut(&'static str, Outcome)) {
        let sessions = self.sessions();
        emit(step::SESSIONS, sessions.clone());
        let (outcome, vip) = self.service_ip();
        emit(step::SERVICE_IP, outcome);
        if let Some(vip) = vip {
            self.service.vip = vip;
            emit(step::SERVED, self.served());
        } else {
            emit(step::SERVED, Outcome::Skipped("no service IP".into()));
        }
        let route = match &sessions {
            Outcome::Done(_) => self.route(),
            Outcome::NotYet(_) => Outcome::NotYet("the speakers' BGP sessions".to_owned()),
            _ => Outcome::Skipped("no BGP sessions".to_owned()),
        };
        emit(step::ROUTE, route.clone());
        let no_datapath = self
            .state
            .unavailable
            .iter()
            .find(|u| u.program == "herald");
        match &route {
            Outcome::Done(_) if no_datapath.is_some() => {
                let why = no_datapath
                    .map(|u| format!("herald on {}: {}", u.node, u.reason))
                    .unwrap_or_default();
                emit(step::HTTP, Outcome::NotYet(why.clone()));
                emit(step::DSR, Outcome::NotYet(why));
            }
            Outcome::Done(_) => {
                self.http_and_dsr(emit);
                emit(step::RESTART, self.agent_restart());
            }
            Outcome::NotYet(_) => {
                let why = "a route from the ToR to the service IP";
                emit(step::HTTP, Outcome::NotYet(why.into()));
                emit(step::DSR, Outcome::NotYet(why.into()));
            }
            _ => {
                emit(
                    step::HTTP,
                    Outcome::Skipped("no route to the service IP".into()),
                );
                emit(
                    step::DSR,
                    Outcome::Skipped("no route to the service IP".into()),
                );
            }
        }
    }

    /// Kills one node's agent with SIGKILL and starts it again while the client requests the VIP
    /// without pause; counts failed requests and watches the ToR's paths to the VIP. The pinned
    /// programs and maps keep forwarding while the agent is gone; graceful restart keeps the
    /// ToR's path; the restarted agent adopts the maps and announces at once.
    fn agent_restart(&self) -> Outcome {
        let vip = self.service.vip.to_string();
        // Every pod serves a large file for the downloads that span the restart.
        let lab_dir = self.runner.lab_dir(&self.topo.name);
        for node in self.topo.nodes.values() {
            if node.bind_for("/srv/www").is_some() {
                let file = lab_dir.node_dir(&node.name).join("binds/srv/www/big.bin");
                if let Err(e) = std::fs::write(&file, vec![b'x'; RESTART_DOWNLOAD_BYTES]) {
                    return Outcome::Failed(format!("writing {}: {e}", file.display()));
                }
            }
        }
        let paced = match paced_get::install(lab_dir.path()) {
            Ok(p) => paced_get::argv(&p, &format!("{}big.bin", self.url()), 1 << 20, "-", 0),
            Err(e) => return Outcome::Failed(format!("writing the download client: {e}")),
        };
        let script = format!(
            "for p in $(seq 1 {RESTART_DOWNLOADS}); do ({paced} || echo 'DL 0 000') & done; \
             i=0; while [ $i -lt {RESTART_REQUESTS} ]; do \
             curl -s -o /dev/null -m 1 -w '%{{http_code}}\\n' {url} || true; \
             i=$((i+1)); sleep {gap}; done; wait",
            paced = paced.join(" "),
            url = self.url(),
            gap = RESTART_GAP.as_secs_f64(),
        );
        let argv = ["sh".to_owned(), "-c".to_owned(), script];
        let client = match self
            .runner
            .exec_command(Some(&self.topo.name), self.plan.client, &argv)
        {
            Ok(mut c) => c
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn(),
            Err(e) => return Outcome::Failed(format!("client loop: {e}")),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("client loop: {e}")),
        };
        let tor = format!("clab-{}-{}", self.topo.name, self.plan.tor);
        let route_vip = vip.clone();
        let paths_now = move || -> usize {
            std::process::Command::new("ip")
                .args(["-n", &tor, "route", "show", &route_vip])
                .output()
                .map(|o| {
                    let text = String::from_utf8_lossy(&o.stdout).into_owned();
                    fib_next_hops(&text).len()
                })
                .unwrap_or(0)
        };
        let watch_for = RESTART_GAP * RESTART_REQUESTS as u32;
        let watcher = std::thread::spawn(move || {
            let started = Instant::now();
            let mut min = usize::MAX;
            let mut samples = 0;
            while started.elapsed() < watch_for {
                min = min.min(paths_now());
                samples += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (min, samples)
        });
        std::thread::sleep(Duration::from_secs(1));
        let restarted = self.runner.crash_and_restart_agent(
            &self.topo.name,
            RESTARTED_NODE,
            Duration::from_secs(1),
        );
        let output = client.wait_with_output();
        let (min_paths, samples) = watcher.join().unwrap_or((0, 0));
        if let Err(e) = restarted {
            return Outcome::Failed(format!("restart of {RESTARTED_NODE}'s agent: {e}"));
        }
        let stdout = match output {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => return Outcome::Failed(format!("client loop: {e}")),
        };
        let (answered, failed) = http_outcomes(&stdout);
        let (downloaded, downloads) = download_outcomes(&stdout, RESTART_DOWNLOAD_BYTES);
        let paths = self.plan.nodes.len();
        let text = format!(
            "{RESTARTED_NODE}'s agent killed (SIGKILL) and restarted 1 s later while the client \
             sent {} requests to {vip}: {failed} failed; {downloaded} of {downloads} {} MiB \
             downloads running across the restart completed; the ToR kept {min_paths} of {paths} \
             paths throughout ({samples} samples; graceful restart, pinned maps and links kept \
             forwarding)",
            answered + failed,
            RESTART_DOWNLOAD_BYTES >> 20,
        );
        if failed == 0
            && min_paths == paths
            && answered > 0
            && downloads == RESTART_DOWNLOADS
            && downloaded == downloads
        {
            Outcome::Done(text)
        } else {
            Outcome::Failed(text)
        }
    }

    fn tor_run_dir(&self) -> PathBuf {
        self.runner
            .lab_dir(&self.topo.name)
            .node_dir(self.plan.tor)
            .join("frr")
            .join("run")
    }

    fn node_output(&self, node: &str, argv: &[&str]) -> Result<(bool, String)> {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        let out = self
            .runner
            .exec_command(Some(&self.topo.name), node, &argv)?
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Spawn {
                command: argv.join(" "),
                source: e,
            })?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    /// Runs `herald ARGS --json --socket <node's control socket>` and parses the answer.
    fn ask_agent(&self, herald: &Path, node: &str, args: &[&str]) -> Option<serde_json::Value> {
        let socket = self
            .runner
            .lab_dir(&self.topo.name)
            .node_dir(node)
            .join("speaker.sock");
        let out = std::process::Command::new(herald)
            .args(args)
            .args(["--json", "--socket"])
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The address lb-ipam allocated on every node (asked over each agent's control socket): the
    /// same on every node, and written in no config file.
    fn service_ip(&self) -> (Outcome, Option<IpAddr>) {
        let herald = match images::herald_binary_path() {
            Ok(bin) => bin,
            Err(e) => return (Outcome::NotYet(e.to_string()), None),
        };
        let allocated = |node: &str| -> Option<Vec<String>> {
            let answer = self.ask_agent(&herald, node, &["services"])?;
            allocated_addresses(&answer.to_string(), &self.service.name)
        };
        let found = wait_until("the agents' lb-ipam allocations", HTTP_TIMEOUT, || {
            self.plan
                .nodes
                .iter()
                .map(|node| Some(((*node).to_owned(), allocated(node)?)))
                .collect::<Option<BTreeMap<String, Vec<String>>>>()
        });
        let Ok(per_node) = found else {
            return (
                Outcome::Failed(format!(
                    "no allocation for service `{}` reported by the agents",
                    self.service.name
                )),
                None,
            );
        };
        let distinct: BTreeSet<&Vec<String>> = per_node.values().collect();
        let vip = match distinct.into_iter().next() {
            Some(first) if per_node.values().all(|a| a == first) && first.len() == 1 => {
                first[0].parse::<IpAddr>().ok()
            }
            _ => None,
        };
        let Some(vip) = vip else {
            return (
                Outcome::Failed(format!(
                    "lb-ipam allocations differ between the nodes: {per_node:?}"
                )),
                None,
            );
        };
        (
            Outcome::Done(format!(
                "{vip} allocated by lb-ipam to service `{}` on {} ({}; no file names the \
                 address), announced as LoadBalancerIP",
                self.service.name,
                self.plan.nodes.join(", "),
                self.plan.service_ip_source,
            )),
            Some(vip),
        )
    }

    /// Each node's datapath (asked with `herald datapath status`) serves the VIP on the
    /// service's port with every backend of the service.
    fn served(&self) -> Outcome {
        let herald = match images::herald_binary_path() {
            Ok(bin) => bin,
            Err(e) => return Outcome::NotYet(e.to_string()),
        };
        let vip = self.service.vip.to_string();
        let want_backends = self.service.backends.len();
        let per_node = wait_until(
            "every node's datapath serving the VIP",
            HTTP_TIMEOUT,
            || {
                self.plan
                    .nodes
                    .iter()
                    .map(|node| {
                        let answer = self.ask_agent(&herald, node, &["datapath", "status"])?;
                        let serving = &answer["serving"];
                        let served = serving["served"]
                            .as_array()?
                            .iter()
                            .any(|a| a.as_str() == Some(vip.as_str()));
                        let entry = answer["maps"]["services"]
                            .as_array()?
                            .iter()
                            .find(|s| {
                                s["vip"].as_str() == Some(vip.as_str())
                                    && s["port"].as_u64() == Some(u64::from(self.service.port))
                            })?
                            .clone();
                        let backends = entry["backends"].as_u64().unwrap_or(0);
                        (served && backends as usize == want_backends).then(|| {
                            format!("{node}: {vip}:{} → {backends} backends", self.service.port)
                        })
                    })
                    .collect::<Option<Vec<String>>>()
            },
        );
        match per_node {
            Ok(rows) => Outcome::Done(format!(
                "{} (XDP attached, Maglev table in the kernel before the route was announced)",
                rows.join("; ")
            )),
            Err(e) => Outcome::Failed(format!("{e}")),
        }
    }

    fn sessions(&self) -> Outcome {
        if let Some(u) = self
            .state
            .unavailable
            .iter()
            .find(|u| u.program == "speaker")
        {
            return Outcome::NotYet(format!("speaker on {}: {}", u.node, u.reason));
        }
        let want = self.plan.nodes.len();
        let run_dir = self.tor_run_dir();
        let started = Instant::now();
        let waited = wait_until("the ToR's sessions Established", SESSIONS_TIMEOUT, || {
            let peers = frr::summary_at(&run_dir).ok()?;
            let up: BTreeSet<(String, u64)> = peers
                .iter()
                .filter(|p| p.state == "Established")
                .map(|p| (p.address.clone(), p.remote_as))
                .collect();
            (up.len() >= want).then_some(up)
        });
        match waited {
            Ok(up) => {
                let asns: BTreeSet<String> = up.iter().map(|(_, a)| format!("AS{a}")).collect();
                let addrs: Vec<&str> = up.iter().map(|(a, _)| a.as_str()).collect();
                Outcome::Done(format!(
                    "{} ↔ {} Established ({}) after {:.1} s",
                    self.plan.tor,
                    addrs.join(", "),
                    asns.into_iter().collect::<Vec<_>>().join(", "),
                    started.elapsed().as_secs_f64()
                ))
            }
            Err(e) => {
                let now = frr::summary_at(&run_dir)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| format!("{} {}", p.address, p.state))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|e| e.to_string());
                Outcome::Failed(format!("{e}; sessions: {now}"))
            }
        }
    }

    fn route(&self) -> Outcome {
        let want = self.plan.nodes.len();
        let vip = self.service.vip.to_string();
        let vip = vip.as_str();
        let fib = wait_until("the ECMP route in the ToR's FIB", ROUTE_TIMEOUT, || {
            let (_, text) = self
                .node_output(self.plan.tor, &["ip", "route", "show", vip])
                .ok()?;
            let hops = fib_next_hops(&text);
            (hops.len() >= want).then_some(hops)
        });
        let prefix = format!("{vip}/32");
        let bgp = frr::routes_at(&self.tor_run_dir(), "ipv4")
            .ok()
            .and_then(|r| r.get(&prefix).cloned())
            .unwrap_or_default();
        let multipath = bgp.iter().filter(|p| p.multipath || p.best).count();
        match fib {
            Ok(hops) => Outcome::Done(format!(
                "{prefix} via {} ({}-way ECMP in the kernel FIB; BGP: {} paths, {} in the multipath set)",
                hops.join(", "),
                hops.len(),
                bgp.len(),
                multipath
            )),
            Err(_) => {
                let (_, text) = self
                    .node_output(self.plan.tor, &["ip", "route", "show", vip])
                    .unwrap_or_default();
                Outcome::Failed(format!(
                    "want {want} next hops for {prefix} in the ToR's FIB, have {:?} (BGP paths: {})",
                    fib_next_hops(&text),
                    bgp.len()
                ))
            }
        }
    }

    fn url(&self) -> String {
        let host = match self.service.vip {
            std::net::IpAddr::V6(a) => format!("[{a}]"),
            std::net::IpAddr::V4(a) => a.to_string(),
        };
        format!("http://{host}:{}/", self.service.port)
    }

    /// Underlay (uplink) addresses, IPv4 and IPv6 → node name, read from the nodes.
    fn node_addresses(&self) -> BTreeMap<IpAddr, String> {
        let mut out = BTreeMap::new();
        for node in self.plan.nodes {
            let argv = ["ip", "-o", "addr", "show", "dev", &self.service.uplink];
            if let Ok((_, text)) = self.node_output(node, &argv) {
                for a in uplink_addresses(&text) {
                    out.insert(a, (*node).to_owned());
                }
            }
        }
        out
    }

    /// HTTP through the service IP, then the DSR proof from captures taken while the requests
    /// ran; one row each, then one row per node.
    fn http_and_dsr(&self, emit: &mut dyn FnMut(&'static str, Outcome)) {
        let fail_both = |emit: &mut dyn FnMut(&'static str, Outcome), why: String| {
            emit(step::HTTP, Outcome::Failed(why));
            emit(
                step::DSR,
                Outcome::Skipped("HTTP through the service IP failed".into()),
            );
        };
        let addrs = self.node_addresses();
        // The pods' servers start in the background: wait until each answers on its own node, so
        // the spread below measures ECMP and Maglev, not start-up races.
        for (backend, node_addr) in &self.service.backends {
            let Some(node) = addrs.get(node_addr) else {
                return fail_both(
                    emit,
                    format!("no node has the backend {backend}'s node address {node_addr}"),
                );
            };
            let url = format!("http://{backend}/");
            let up = wait_until(
                &format!("backend {backend} on {node}"),
                HTTP_TIMEOUT,
                || {
                    let (ok, body) = self
                        .node_output(node, &["curl", "-s", "-m", "1", &url])
                        .ok()?;
                    (ok && !body.trim().is_empty()).then_some(())
                },
            );
            if let Err(e) = up {
                return fail_both(
                    emit,
                    format!("backend {backend} does not answer on {node}: {e}"),
                );
            }
        }
        let url = self.url();
        let get = |port: Option<u16>| -> Option<String> {
            let port = port.map(|p| p.to_string());
            let mut argv = vec!["curl", "-s", "-m", "5"];
            if let Some(p) = &port {
                argv.extend(["--local-port", p.as_str()]);
            }
            argv.push(&url);
            let (ok, body) = self.node_output(self.plan.client, &argv).ok()?;
            let body = body.trim();
            (ok && !body.is_empty()).then(|| body.to_owned())
        };
        // The datapath agents program the service once their node has its address and next hops.
        let first = match wait_until("the first HTTP answer", HTTP_TIMEOUT, || get(None)) {
            Ok(b) => b,
            Err(e) => {
                return fail_both(emit, format!("GET {url} from {}: {e}", self.plan.client));
            }
        };
        let captures = match self.start_captures() {
            Ok(c) => c,
            Err(e) => {
                emit(
                    step::HTTP,
                    Outcome::Done(format!("GET {url} answered by {first}")),
                );
                emit(step::DSR, Outcome::Failed(format!("packet capture: {e}")));
                return;
            }
        };
        // Distinct, fresh client ports, so each request is its own flow in the captures.
        let base = 20000 + (std::process::id() % 100) as u16 * 100;
        let mut answers = BTreeMap::new();
        let mut failures = 0;
        let mut retried = 0;
        for i in 0..self.plan.requests {
            // A request lost to a loaded machine is tried again from another port (a new flow),
            // up to twice; the retries are reported.
            let answered = (0..3u16).find_map(|attempt| {
                let port = base + i as u16 + attempt * 10_000;
                get(Some(port)).map(|b| (port, b, attempt))
            });
            match answered {
                Some((port, b, attempt)) => {
                    retried += usize::from(attempt);
                    answers.insert(port, b);
                }
                None => failures += 1,
            }
        }
        let seen = self.stop_captures(captures);
        let bodies: Vec<String> = answers.values().cloned().collect();
        let spread: Vec<String> = tally(&bodies)
            .into_iter()
            .map(|(who, n)| format!("{who} ×{n}"))
            .collect();
        let mut detail = format!(
            "GET {url} from {} answered by {first}; {} requests over ECMP + Maglev: {}",
            self.plan.client,
            self.plan.requests,
            spread.join(", ")
        );
        if retried > 0 {
            detail += &format!(" ({retried} retried after a timeout)");
        }
        emit(
            step::HTTP,
            if failures > 0 {
                Outcome::Failed(format!("{detail}; {failures} unanswered"))
            } else {
                Outcome::Done(detail)
            },
        );
        let seen = match seen {
            Ok(s) => s,
            Err(e) => {
                emit(step::DSR, Outcome::Failed(format!("packet capture: {e}")));
                return;
            }
        };
        let paths = dsr_proof::flow_paths(&answers, &seen, &addrs);
        emit(step::DSR, self.dsr_outcome(&paths));
        for (node, (entered, replies)) in dsr_proof::per_node(&paths, self.plan.nodes) {
            let Some(step) = self.plan.nodes.iter().find(|n| **n == node) else {
                continue;
            };
            let answered: Vec<String> = entered
                .iter()
                .map(|(who, n)| format!("{who} ×{n}"))
                .collect();
            let flows: usize = entered.values().sum();
            emit(
                step,
                Outcome::Done(format!(
                    "{flows} flows entered here → {}; {replies} replies left here from {}:{}",
                    if answered.is_empty() {
                        "-".to_owned()
                    } else {
                        answered.join(", ")
                    },
                    self.service.vip,
                    self.service.port
                )),
            );
        }
    }

    /// The DSR row: every answered flow's replies left exactly one node with the service address
    /// as source, and at least one flow entered at another node than the one that answered.
    fn dsr_outcome(&self, paths: &[FlowPath]) -> Outcome {
        let vip = format!("{}:{}", self.service.vip, self.service.port);
        let unseen: Vec<u16> = paths
            .iter()
            .filter(|p| p.reply_node.is_none())
            .map(|p| p.client_port)
            .collect();
        if paths.is_empty() {
            return Outcome::Failed("no answered request to examine".into());
        }
        if !unseen.is_empty() {
            return Outcome::Failed(format!(
                "no reply from {vip} seen leaving exactly one node for client ports {unseen:?}"
            ));
        }
        let crossed: Vec<&FlowPath> = paths.iter().filter(|p| p.crossed()).collect();
        let Some(p) = crossed.first() else {
            return Outcome::Failed(format!(
                "all {} flows were answered on the node they entered at; none crossed nodes",
                paths.len()
            ));
        };
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let (src, dst) = p.geneve.unwrap_or((unspecified, unspecified));
        Outcome::Done(format!(
            "client port {} entered at {}, Geneve {src} → {dst}{} to {}, answered by {} and the \
             reply left {} from {vip}; {} of {} flows crossed nodes, every reply left its \
             backend's node from {vip}",
            p.client_port,
            p.entry_node.as_deref().unwrap_or("?"),
            if p.geneve_option {
                " (with the DSR option)"
            } else {
                ""
            },
            p.reply_node.as_deref().unwrap_or("?"),
            p.answer,
            p.reply_node.as_deref().unwrap_or("?"),
            crossed.len(),
            paths.len()
        ))
    }

    /// Starts tcpdump on every node's uplink and waits until each listens.
    fn start_captures(&self) -> Result<Vec<(String, ChildProcess)>> {
        let filter = dsr_proof::capture_filter(&self.service);
        let mut out = Vec::new();
        for node in self.plan.nodes {
            let argv: Vec<String> = ["tcpdump", "-nn", "-l", "-i", &self.service.uplink, &filter]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            let c = self
                .runner
                .exec_command(Some(&self.topo.name), node, &argv)?;
            let dir = self.runner.lab_dir(&self.topo.name).node_dir(node);
            let p = ChildProcess::spawn("dsr-capture", c, &dir)?;
            wait_until(&format!("tcpdump on {node}"), CAPTURE_TIMEOUT, || {
                std::fs::read_to_string(p.stderr_log())
                    .ok()
                    .filter(|e| e.contains("listening on"))
            })?;
            out.push(((*node).to_owned(), p));
        }
        Ok(out)
    }

    /// Stops the captures and parses what each saw.
    fn stop_captures(
        &self,
        captures: Vec<(String, ChildProcess)>,
    ) -> Result<BTreeMap<String, Vec<Seen>>> {
        // Let the last replies reach the captures.
        std::thread::sleep(Duration::from_millis(500));
        let mut out = BTreeMap::new();
        for (node, mut p) in captures {
            p.stop()?;
            let text = std::fs::read_to_string(p.stdout_log())
                .map_err(|e| Error::io(p.stdout_log(), e))?;
            let seen = text
                .lines()
                .filter_map(|l| {
                    dsr_proof::parse_capture_line(l, self.service.vip, self.service.port)
                })
                .collect();
            out.insert(node, seen);
        }
        Ok(out)
    }
}

/// IPv4 and IPv6 addresses in `ip -o addr show` output.
pub fn uplink_addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet" || *x == "inet6")?;
            w.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_parse_single_and_multipath_routes() {
        let ecmp = "10.200.0.10 nhid 23 proto bgp metric 20 \n\tnexthop via 10.0.1.2 dev eth1 weight 1 \n\tnexthop via 10.0.2.2 dev eth2 weight 1 \n\tnexthop via 10.0.3.2 dev eth3 weight 1 \n";
        assert_eq!(
            fib_next_hops(ecmp),
            vec!["10.0.1.2", "10.0.2.2", "10.0.3.2"]
        );
        assert_eq!(
            fib_next_hops("10.200.0.10 nhid 9 via 10.0.1.2 dev eth1 proto bgp metric 20\n"),
            vec!["10.0.1.2"]
        );
        assert_eq!(
            fib_next_hops("10.200.0.10 via inet6 fe80::1 dev eth1\n"),
            vec!["fe80::1"]
        );
        assert!(fib_next_hops("").is_empty());
    }

    #[test]
    fn allocated_addresses_come_from_the_speakers_services_json() {
        let json = r#"[{"service":"default/db","addresses":["10.200.0.11"],"satisfied":true},
                       {"service":"default/web","addresses":["10.200.0.10"],"satisfied":true},
                       {"service":"other/none","addresses":[],"satisfied":false}]"#;
        assert_eq!(
            allocated_addresses(json, "web"),
            Some(vec!["10.200.0.10".to_owned()])
        );
        assert_eq!(allocated_addresses(json, "none"), None);
        assert_eq!(allocated_addresses(json, "missing"), None);
        assert_eq!(allocated_addresses("not json", "web"), None);
    }

    #[test]
    fn report_fails_only_on_failed_rows_and_renders_each_kind() {
        let mut r = Report {
            rows: vec![
                Row {
                    step: step::TOPOLOGY,
                    outcome: Outcome::Done("up".into()),
                },
                Row {
                    step: step::DSR,
                    outcome: Outcome::NotYet("datapath".into()),
                },
            ],
        };
        assert!(!r.failed());
        let text = r.render();
        assert!(text.contains("topology") && text.contains("ok"), "{text}");
        assert!(text.contains("not yet available: datapath"), "{text}");
        r.rows.push(Row {
            step: step::HTTP,
            outcome: Outcome::Failed("no answer".into()),
        });
        assert!(r.failed());
        assert!(r.render().contains("FAIL"));
        assert_eq!(
            r.outcome(step::HTTP),
            Some(&Outcome::Failed("no answer".into()))
        );
    }

    #[test]
    fn uplink_addresses_come_from_ip_o_addr() {
        let text = "9: eth1    inet 10.0.1.2/30 scope global eth1\\       valid_lft forever preferred_lft forever\n\
                    9: eth1    inet6 fd00:1:1::2/64 scope global \\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            uplink_addresses(text),
            vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2)),
                "fd00:1:1::2".parse::<IpAddr>().expect("addr")
            ]
        );
        assert!(uplink_addresses("").is_empty());
    }

    #[test]
    fn http_outcomes_count_every_non_200_as_failed() {
        assert_eq!(
            http_outcomes("200\n200\n000\n503\n\n200\nDL 10 200\n"),
            (3, 2)
        );
        assert_eq!(http_outcomes(""), (0, 0));
    }

    #[test]
    fn downloads_count_only_when_every_byte_arrived_with_200() {
        let text = "200\nDL 4194304 200\nDL 1000 200\nDL 4194304 000\nDL 0 000\n";
        assert_eq!(download_outcomes(text, 4 << 20), (1, 4));
    }

    #[test]
    fn tally_counts_answers_per_node() {
        let t = tally(&["node1".into(), "node2".into(), "node1".into()]);
        assert_eq!(t.get("node1"), Some(&2));
        assert_eq!(t.get("node2"), Some(&1));
    }
}
