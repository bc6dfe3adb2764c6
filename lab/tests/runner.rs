//! End-to-end tests of the `lab` binary: a topology of FRR and plain linux nodes (plus a bridge) is
//! brought up in real namespaces with real FRR daemons, inspected with `status` and `exec`, and torn
//! down with nothing left behind — also after a failed `up` and after `up` was killed mid-way.
//! Needs root, iproute2 and FRR. Lab names include the PID so runs do not collide.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use herald_lab::runner::state::{LabState, Resource};
use herald_lab::{Netns, ProcessId, wait_until};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory with a topology in it and a private state root; `down` runs on drop.
struct Scratch {
    dir: tempfile::TempDir,
    name: String,
}

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!(
            "{test}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Self { dir, name }
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("lab.clab.yml")
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn lab(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lab"))
            .arg("--state-dir")
            .arg(self.state_root())
            .args(args)
            .output()
            .expect("run lab")
    }

    fn lab_ok(&self, args: &[&str]) -> String {
        let out = self.lab(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "lab {args:?} failed: {text}");
        text
    }

    fn netns(&self, node: &str) -> String {
        format!("clab-{}-{node}", self.name)
    }

    fn state(&self) -> Option<LabState> {
        let f = self.state_root().join(&self.name).join("state.json");
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let file = self.file();
        if file.exists() {
            let _ = self.lab(&["down", &file.to_string_lossy()]);
        }
    }
}

fn recorded_processes(st: &LabState) -> Vec<ProcessId> {
    st.resources
        .iter()
        .filter_map(|r| match r {
            Resource::Process { id, .. } => Some(*id),
            Resource::Netns { .. } | Resource::BpfFs { .. } => None,
        })
        .collect()
}

fn frr_conf(
    asn: u32,
    rid: &str,
    ifaces: &[(&str, &str)],
    neighbor: &str,
    peer_as: u32,
    network: &str,
) -> String {
    let mut s = String::from("frr defaults datacenter\n");
    for (i, a) in ifaces {
        s.push_str(&format!("interface {i}\n ip address {a}\nexit\n"));
    }
    s.push_str(&format!(
        "router bgp {asn}\n bgp router-id {rid}\n no bgp ebgp-requires-policy\n no bgp network import-check\n \
         neighbor {neighbor} remote-as {peer_as}\n neighbor {neighbor} timers connect 1\n \
         address-family ipv4 unicast\n  network {network}\n exit-address-family\nexit\n"
    ));
    s
}

fn write_frr_and_linux_topology(s: &Scratch) {
    s.write(
        "tor/frr.conf",
        &frr_conf(
            65000,
            "10.9.0.1",
            &[("eth1", "10.9.1.1/30"), ("eth2", "10.9.2.1/24")],
            "10.9.1.2",
            65001,
            "10.9.2.0/24",
        ),
    );
    s.write("tor/daemons", "bgpd=yes\nbfdd=yes\nospfd=no\n");
    s.write(
        "leaf/frr.conf",
        &frr_conf(
            65001,
            "10.9.0.2",
            &[("eth1", "10.9.1.2/30")],
            "10.9.1.1",
            65000,
            "10.9.50.0/24",
        ),
    );
    s.write(
        "lab.clab.yml",
        &format!(
            "name: {}
topology:
  nodes:
    tor:
      kind: linux
      image: quay.io/frrouting/frr:8.4.1
      binds: [tor/frr.conf:/etc/frr/frr.conf, tor/daemons:/etc/frr/daemons]
      exec: [sysctl -qw net.ipv4.ip_forward=1]
    leaf:
      kind: linux
      image: frrouting/frr
      binds: [leaf/frr.conf:/etc/frr/frr.conf:ro]
    sw:
      kind: bridge
    h1:
      kind: linux
      image: alpine:3.20
      env: {{GREETING: hello-from-h1}}
      cmd: exec sleep 600
      exec:
        - ip addr add 10.9.2.10/24 dev eth1
        - ip route add default via 10.9.2.1
    h2:
      kind: linux
      image: alpine
      exec: ['ip addr add 10.9.2.11/24 dev eth1']
  links:
    - endpoints: [tor:eth1, leaf:eth1]
    - endpoints: [tor:eth2, sw:p1]
    - endpoints: [h1:eth1, sw:p2]
    - endpoints: [h2:eth1, sw:p3]
",
            s.name
        ),
    );
}

#[test]
fn up_status_exec_down_with_frr_bridge_and_linux_nodes_leaves_nothing() {
    let s = Scratch::new("lab-e2e");
    write_frr_and_linux_topology(&s);
    let file = s.file();
    let file = file.to_string_lossy();

    let up = s.lab_ok(&["up", &file]);
    assert!(up.contains(&s.netns("tor")), "{up}");
    for node in ["tor", "leaf", "sw", "h1", "h2"] {
        assert!(Netns::exists(&s.netns(node)), "no namespace for {node}");
    }
    let st = s.state().expect("state recorded");
    assert!(st.complete);
    let pids = recorded_processes(&st);
    // tor: zebra bgpd bfdd; leaf: zebra bgpd; h1: cmd.
    assert_eq!(pids.len(), 6, "{:?}", st.resources);
    assert!(pids.iter().all(ProcessId::is_alive));

    // The bound frr.conf configured BGP: the session comes up and routes reach the kernel FIB.
    wait_until(
        "tor ↔ leaf Established in `lab status`",
        Duration::from_secs(40),
        || {
            s.lab_ok(&["status", &file])
                .contains("10.9.1.2 AS65001 Established")
                .then_some(())
        },
    )
    .expect("session up");
    wait_until(
        "leaf's network in tor's FIB",
        Duration::from_secs(20),
        || {
            s.lab_ok(&[
                "exec",
                "-t",
                &file,
                "tor",
                "--",
                "ip",
                "route",
                "show",
                "10.9.50.0/24",
            ])
            .contains("via 10.9.1.2")
            .then_some(())
        },
    )
    .expect("route installed");

    // exec lines ran, the bridge forwards, `exec` gets the node's env, exit codes pass through.
    assert!(
        s.lab(&[
            "exec",
            "-t",
            &file,
            "h1",
            "--",
            "ping",
            "-c1",
            "-W2",
            "10.9.2.11"
        ])
        .status
        .success()
    );
    assert!(
        s.lab(&[
            "exec", "-t", &file, "h2", "--", "ping", "-c1", "-W2", "10.9.1.2"
        ])
        .status
        .code()
            != Some(0)
    );
    let env = s.lab_ok(&[
        "exec",
        "-t",
        &file,
        "h1",
        "--",
        "sh",
        "-c",
        "echo $GREETING",
    ]);
    assert!(env.contains("hello-from-h1"), "{env}");

    // A second `up` of a running lab is refused.
    let again = s.lab(&["up", &file]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    let down = s.lab_ok(&["down", &file]);
    assert!(down.contains("removed 5 namespace(s)"), "{down}");
    for node in ["tor", "leaf", "sw", "h1", "h2"] {
        assert!(!Netns::exists(&s.netns(node)), "namespace for {node} left");
    }
    assert!(pids.iter().all(|p| !p.is_alive()), "process left running");
    assert!(!s.state_root().join(&s.name).exists(), "state left behind");
    let status = s.lab_ok(&["status"]);
    assert!(status.contains("no lab is up"), "{status}");
}

#[test]
fn failed_up_removes_what_it_created_and_keeps_logs() {
    let s = Scratch::new("lab-fail");
    s.write(
        "lab.clab.yml",
        &format!(
            "name: {}\ntopology:\n  nodes:\n    a: {{kind: linux, image: alpine, cmd: exec sleep 600}}\n    \
             b: {{kind: linux, image: alpine, exec: ['ip addr add 10.9.9.2/24 dev eth1', 'false']}}\n  \
             links:\n    - endpoints: [a:eth1, b:eth1]\n",
            s.name
        ),
    );
    let out = s.lab(&["up", &s.file().to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node b") && err.contains("exec `false`"),
        "{err}"
    );
    assert!(!Netns::exists(&s.netns("a")) && !Netns::exists(&s.netns("b")));
    assert!(s.state().is_none(), "state left after failed up");
    assert!(
        s.state_root()
            .join(&s.name)
            .join("nodes/a/cmd.stdout.log")
            .exists(),
        "logs not kept"
    );
}

#[test]
fn down_after_up_was_killed_midway_leaves_nothing() {
    let s = Scratch::new("lab-crash");
    write_frr_and_linux_topology(&s);
    let file = s.file();
    let mut up = Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("--state-dir")
        .arg(s.state_root())
        .args(["up", &file.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn lab up");
    // Kill it as soon as it has created something (FRR start keeps it busy for a while after).
    let _ = wait_until("first namespace", Duration::from_secs(20), || {
        Netns::exists(&s.netns("h1")).then_some(())
    });
    let _ = up.kill();
    let _ = up.wait();
    let pids = s
        .state()
        .map(|st| recorded_processes(&st))
        .unwrap_or_default();

    s.lab_ok(&["down", &file.to_string_lossy()]);
    for node in ["tor", "leaf", "sw", "h1", "h2"] {
        assert!(
            !Netns::exists(&s.netns(node)),
            "namespace for {node} left after crash + down"
        );
    }
    assert!(pids.iter().all(|p| !p.is_alive()), "process left running");
    assert!(!s.state_root().join(&s.name).exists());
}

#[test]
fn unsupported_features_are_refused_before_anything_is_created() {
    let s = Scratch::new("lab-unsup");
    s.write(
        "lab.clab.yml",
        &format!(
            "name: {}\nmgmt: {{network: custom}}\ntopology:\n  nodes:\n    r: {{kind: ceos, image: ceos:4.30}}\n    \
             a: {{kind: linux, image: alpine, ports: ['8080:80']}}\n",
            s.name
        ),
    );
    let out = s.lab(&["up", &s.file().to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for needle in [
        "unsupported containerlab feature",
        "`mgmt`",
        "kind `ceos`",
        "topology.nodes.a.ports",
    ] {
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    assert!(!Netns::exists(&s.netns("a")));
    assert!(!Path::new(&s.state_root()).join(&s.name).exists());
}

#[test]
fn agent_binary_without_the_agent_command_fails_up_unless_skipped_and_is_reported() {
    let s = Scratch::new("lab-skip");
    s.write("n1/herald.yaml", "node: {name: n1, routerId: 10.9.0.1}\n");
    s.write(
        "lab.clab.yml",
        &format!(
            "name: {}\ntopology:\n  nodes:\n    n1:\n      kind: linux\n      image: herald/speaker\n      \
             binds: [n1/herald.yaml:/etc/herald/herald.yaml]\n      exec: ['ip addr add 10.9.8.1/24 dev eth1']\n    \
             h: {{kind: linux, image: alpine, exec: ['ip addr add 10.9.8.2/24 dev eth1']}}\n  \
             links:\n    - endpoints: [n1:eth1, h:eth1]\n",
            s.name
        ),
    );
    let file = s.file();
    let file = file.to_string_lossy();
    // `false agent --help` fails: a binary without the `agent` command.
    let lab = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lab"))
            .env("HERALD_BIN", "/bin/false")
            .arg("--state-dir")
            .arg(s.state_root())
            .args(args)
            .output()
            .expect("run lab")
    };
    let out = lab(&["up", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node n1") && err.contains("no `agent` command"),
        "{err}"
    );
    assert!(!Netns::exists(&s.netns("n1")));

    let out = lab(&["up", "--skip-unavailable", &file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("not started on n1: herald"), "{text}");
    let st = s.state().expect("state");
    assert_eq!(st.unavailable.len(), 1);
    assert!(recorded_processes(&st).is_empty());
    // The rest of the node was built: its exec lines ran and the link works.
    let ping = s.lab(&[
        "exec", "-t", &file, "h", "--", "ping", "-c1", "-W2", "10.9.8.1",
    ]);
    assert!(ping.status.success());
    s.lab_ok(&["down", &file]);
    assert!(!Netns::exists(&s.netns("n1")) && !Netns::exists(&s.netns("h")));
}
