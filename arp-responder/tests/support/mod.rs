//! Test fixture: network namespaces on one Linux bridge, each node running `herald-l2`. Every
//! namespace name carries the test name and the PID; everything is removed on drop, also when the
//! test fails, and only processes started here are killed (by PID, through their `Child`).

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the fixture"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether we can create namespaces (root).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs a command, panicking with its output if it fails.
pub(crate) fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bridge namespace plus host namespaces attached to it.
pub(crate) struct Lab {
    pub(crate) tag: String,
    pub(crate) dir: tempfile::TempDir,
    namespaces: Vec<String>,
    procs: BTreeMap<String, Child>,
    pub(crate) configs: BTreeMap<String, String>,
}

impl Lab {
    /// A lab whose names contain `test` (keep it short) and this process's PID.
    pub(crate) fn new(test: &str) -> Lab {
        let tag = format!("arp{}{}", test, std::process::id());
        let mut lab = Lab {
            tag,
            dir: tempfile::tempdir().expect("tempdir"),
            namespaces: Vec::new(),
            procs: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        let br = lab.ns("br");
        lab.add_ns(&br);
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        lab
    }

    /// Full namespace name of host `h`.
    pub(crate) fn ns(&self, h: &str) -> String {
        format!("{}-{}", self.tag, h)
    }

    fn add_ns(&mut self, ns: &str) {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
        run(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_owned());
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// Adds host `h` with `eth0` on the bridge (and, with `bridges`, more ethN on more bridges).
    pub(crate) fn add_host(&mut self, h: &str) {
        let ns = self.ns(h);
        self.add_ns(&ns);
        self.attach(h, "eth0", "br0");
        self.sh(
            h,
            "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2",
        );
    }

    /// Connects `iface` of host `h` to bridge `bridge` (created if missing) in the bridge namespace.
    pub(crate) fn attach(&mut self, h: &str, iface: &str, bridge: &str) {
        let ns = self.ns(h);
        let br = self.ns("br");
        if run(&["ip", "-n", &br, "-o", "link", "show"])
            .lines()
            .all(|l| !l.contains(&format!(" {bridge}:")))
        {
            run(&["ip", "-n", &br, "link", "add", bridge, "type", "bridge"]);
            run(&["ip", "-n", &br, "link", "set", bridge, "up"]);
        }
        let port = format!("{h}{iface}");
        run(&[
            "ip", "link", "add", iface, "netns", &ns, "type", "veth", "peer", "name", &port,
            "netns", &br,
        ]);
        run(&[
            "ip", "-n", &br, "link", "set", &port, "master", bridge, "up",
        ]);
        run(&["ip", "-n", &ns, "link", "set", iface, "up"]);
    }

    /// Runs a shell command in host `h`'s namespace.
    pub(crate) fn sh(&self, h: &str, cmd: &str) -> String {
        run(&["ip", "netns", "exec", &self.ns(h), "sh", "-c", cmd])
    }

    /// MAC of `iface` in host `h`.
    pub(crate) fn mac(&self, h: &str, iface: &str) -> String {
        self.sh(h, &format!("cat /sys/class/net/{iface}/address"))
            .trim()
            .to_owned()
    }

    fn status_path(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.status.json"))
    }

    /// Writes `yaml` as node `node`'s config and starts `herald-l2` in its namespace.
    pub(crate) fn start_node(&mut self, node: &str, yaml: &str) {
        let cfg = self.dir.path().join(format!("{node}.yaml"));
        std::fs::write(&cfg, yaml).expect("write config");
        self.configs.insert(node.to_owned(), yaml.to_owned());
        self.restart_node(node);
    }

    /// Starts `herald-l2` again with the config written before.
    pub(crate) fn restart_node(&mut self, node: &str) {
        let cfg = self.dir.path().join(format!("{node}.yaml"));
        let _ = std::fs::remove_file(self.status_path(node));
        let log =
            std::fs::File::create(self.dir.path().join(format!("{node}.log"))).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(node),
                env!("CARGO_BIN_EXE_herald-l2"),
                "run",
                "--config",
            ])
            .arg(&cfg)
            .arg("--status-file")
            .arg(self.status_path(node))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn herald-l2");
        self.procs.insert(node.to_owned(), child);
    }

    /// SIGKILLs node `node`'s `herald-l2` (the one this lab started) and reaps it.
    pub(crate) fn kill_node(&mut self, node: &str) {
        if let Some(mut c) = self.procs.remove(node) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts `tests/support/hb_tool.py ARGS` (the heartbeat attacker and ARP observer) in host
    /// `h` in the background as process `name`; killed on drop like the nodes.
    pub(crate) fn hb_tool(&mut self, name: &str, h: &str, args: &[&str]) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/hb_tool.py");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(h), "/usr/bin/python3", script])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn hb_tool.py");
        self.procs.insert(name.to_owned(), child);
    }

    /// Waits for background process `name` to end and returns its standard output.
    pub(crate) fn output(&mut self, name: &str) -> String {
        let child = self.procs.remove(name).expect("no such process");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{name} failed: {:?}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The node's log so far.
    pub(crate) fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{node}.log"))).unwrap_or_default()
    }

    /// The node's latest status snapshot, if written yet.
    pub(crate) fn status(&self, node: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.status_path(node)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until, among `nodes`, each of `vips` is led by exactly one node and all agree on who.
    /// Returns VIP -> leader.
    pub(crate) fn wait_converged(
        &self,
        nodes: &[&str],
        vips: &[&str],
        timeout: Duration,
    ) -> BTreeMap<String, String> {
        let start = Instant::now();
        loop {
            if let Some(m) = self.converged(nodes, vips) {
                return m;
            }
            if start.elapsed() > timeout {
                let dump: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("{n}: {:?}\n{}", self.status(n), self.log(n)))
                    .collect();
                panic!("no convergence within {timeout:?}:\n{}", dump.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn converged(&self, nodes: &[&str], vips: &[&str]) -> Option<BTreeMap<String, String>> {
        let statuses: Vec<(&str, serde_json::Value)> = nodes
            .iter()
            .map(|n| Some((*n, self.status(n)?)))
            .collect::<Option<_>>()?;
        let mut out = BTreeMap::new();
        for vip in vips {
            let mut holders = Vec::new();
            let mut views = Vec::new();
            for (n, s) in &statuses {
                let v = s["vips"].as_array()?.iter().find(|v| v["vip"] == *vip)?;
                if v["led_by_me"].as_bool()? {
                    holders.push(*n);
                }
                views.push(v["leader"].as_str()?.to_owned());
            }
            if holders.len() != 1 || views.iter().any(|l| l != holders[0]) {
                return None;
            }
            out.insert((*vip).to_owned(), holders[0].to_owned());
        }
        Some(out)
    }

    /// Runs the scapy probe in host `h`: returns the replying MACs (one entry per reply) and VLANs.
    pub(crate) fn probe(
        &self,
        h: &str,
        mode: &str,
        vip: &str,
        iface: &str,
        count: u32,
        src6: &str,
    ) -> Vec<(String, Option<u64>)> {
        let src6 = if src6.is_empty() { "-" } else { src6 };
        self.run_probe(h, &[mode, vip, iface, &count.to_string(), src6])
    }

    /// ARP probe whose requests carry an 802.1Q tag with id `vlan`.
    pub(crate) fn probe_vlan(
        &self,
        h: &str,
        vip: &str,
        iface: &str,
        count: u32,
        vlan: u16,
    ) -> Vec<(String, Option<u64>)> {
        self.run_probe(
            h,
            &[
                "arp",
                vip,
                iface,
                &count.to_string(),
                "-",
                &vlan.to_string(),
            ],
        )
    }

    fn run_probe(&self, h: &str, probe_args: &[&str]) -> Vec<(String, Option<u64>)> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/probe.py");
        let ns = self.ns(h);
        let mut args = vec!["ip", "netns", "exec", &ns, "/usr/bin/python3", script];
        args.extend_from_slice(probe_args);
        let out = run(&args);
        let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("probe output {out:?}: {e}"));
        v["replies"]
            .as_array()
            .expect("replies")
            .iter()
            .map(|r| (r[1].as_str().expect("mac").to_lowercase(), r[2].as_u64()))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A node config: three nodes n1..n3, the given services YAML, interface rules and extra keys.
pub(crate) fn node_config(node: &str, services: &str, interfaces: &str, extra: &str) -> String {
    format!(
        "node: {node}\ncluster: test\nnodes: [{{name: n1}}, {{name: n2}}, {{name: n3}}]\n{interfaces}\n{extra}\nservices:\n{services}"
    )
}
