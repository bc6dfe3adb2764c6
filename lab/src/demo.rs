//! `lab demo`: Herald's main job. Brings up the `bgp-ecmp` topology, waits for the ToR's BGP
//! sessions, and checks each link of the chain a user cares about — service IP, the ToR's ECMP
//! route to it, an HTTP request from the client answered by a node, the DSR proof — printing one
//! row per step. A step whose component has not landed yet says "not yet available: <what>"
//! instead of failing; a step that should work and does not makes [`Report::failed`] true.
//!
//! The table and the parsers are pure; the steps do I/O through the [`Runner`], `vtysh`
//! ([`crate::frr`]), and `ip`/`curl` run inside the lab's namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::clab::Topology;
use crate::frr;
use crate::runner::state::LabState;
use crate::runner::{Runner, UpOptions};
use crate::{Error, Result, wait_until};

/// How long the ToR's sessions may take to reach Established (FRR connect timer 1 s; the
/// speakers retry every second).
const SESSIONS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the ECMP route may take to reach the ToR's FIB after the sessions are up.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first HTTP answer may take once the route is installed.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// What the demo expects of the topology: node names and the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoPlan {
    /// The FRR top-of-rack node.
    pub tor: &'static str,
    /// The node that sends the HTTP requests.
    pub client: &'static str,
    /// The Kubernetes nodes running the speaker.
    pub nodes: &'static [&'static str],
    /// The service IP (fixed in the speakers' configs until lb-ipam is wired in).
    pub service_ip: &'static str,
    /// The service port.
    pub service_port: u16,
    /// Where the service IP is configured, for the summary.
    pub service_ip_source: &'static str,
    /// HTTP requests sent (each from a new source port, so ECMP hashing spreads them).
    pub requests: usize,
}

/// The plan for `lab/containerlab/bgp-ecmp.clab.yml`.
pub const BGP_ECMP: DemoPlan = DemoPlan {
    tor: "tor",
    client: "client",
    nodes: &["node1", "node2", "node3"],
    service_ip: "10.200.0.10",
    service_port: 80,
    service_ip_source: "fixed in nodeN/speaker.yaml (bgp.staticRoutes)",
    requests: 12,
};

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
    /// The ToR's route to the service IP.
    pub const ROUTE: &str = "ToR ECMP route";
    /// HTTP from the client to the service IP.
    pub const HTTP: &str = "HTTP via VIP";
    /// Reply observed leaving a backend node with the service IP as source after DSR.
    pub const DSR: &str = "DSR proof";
    /// `lab down` (or kept).
    pub const TEARDOWN: &str = "teardown";
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
}

impl Steps<'_> {
    fn run_all(&self, emit: &mut dyn FnMut(&'static str, Outcome)) {
        let sessions = self.sessions();
        emit(step::SESSIONS, sessions.clone());
        emit(
            step::SERVICE_IP,
            Outcome::Done(format!(
                "{}:{} — {}; lb-ipam allocation not yet available (the speaker has no ipam/services \
                 sections yet)",
                self.plan.service_ip, self.plan.service_port, self.plan.service_ip_source
            )),
        );
        let route = match &sessions {
            Outcome::Done(_) => self.route(),
            Outcome::NotYet(_) => Outcome::NotYet("the speakers' BGP sessions".to_owned()),
            _ => Outcome::Skipped("no BGP sessions".to_owned()),
        };
        emit(step::ROUTE, route.clone());
        let http = match &route {
            Outcome::Done(_) => self.http(),
            Outcome::NotYet(_) => Outcome::NotYet("a route from the ToR to the service IP".into()),
            _ => Outcome::Skipped("no route to the service IP".to_owned()),
        };
        emit(step::HTTP, http);
        emit(
            step::DSR,
            Outcome::NotYet(
                "the datapath (XDP Maglev + Geneve DSR) has no entry point the speaker or the lab \
                 drives yet; until then each node serves the service IP itself"
                    .to_owned(),
            ),
        );
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
        let vip = self.plan.service_ip;
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

    fn http(&self) -> Outcome {
        let url = format!(
            "http://{}:{}/",
            self.plan.service_ip, self.plan.service_port
        );
        let get = || -> Option<String> {
            let (ok, body) = self
                .node_output(self.plan.client, &["curl", "-s", "-m", "2", &url])
                .ok()?;
            let body = body.trim();
            (ok && !body.is_empty()).then(|| body.to_owned())
        };
        // The nodes' servers are started in the background by `exec` lines: wait until each one
        // answers on the node itself, so the spread below measures ECMP, not start-up races.
        for node in self.plan.nodes {
            let local = wait_until(
                &format!("{node}'s HTTP server on the service IP"),
                HTTP_TIMEOUT,
                || {
                    let (ok, body) = self
                        .node_output(node, &["curl", "-s", "-m", "1", &url])
                        .ok()?;
                    (ok && !body.trim().is_empty()).then_some(())
                },
            );
            if let Err(e) = local {
                return Outcome::Failed(format!("{node} does not serve {url} locally: {e}"));
            }
        }
        let first = match wait_until("the first HTTP answer", HTTP_TIMEOUT, get) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(format!("GET {url} from {}: {e}", self.plan.client)),
        };
        let mut bodies = vec![first.clone()];
        let mut failures = 0;
        for _ in 1..self.plan.requests {
            match get() {
                Some(b) => bodies.push(b),
                None => failures += 1,
            }
        }
        let spread: Vec<String> = tally(&bodies)
            .into_iter()
            .map(|(node, n)| format!("{node}×{n}"))
            .collect();
        let detail = format!(
            "GET {url} from {} answered by {first}; {} requests over ECMP: {}",
            self.plan.client,
            self.plan.requests,
            spread.join(" ")
        );
        if failures > 0 {
            Outcome::Failed(format!("{detail}; {failures} unanswered"))
        } else {
            Outcome::Done(detail)
        }
    }
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
    fn tally_counts_answers_per_node() {
        let t = tally(&["node1".into(), "node2".into(), "node1".into()]);
        assert_eq!(t.get("node1"), Some(&2));
        assert_eq!(t.get("node2"), Some(&1));
    }
}
