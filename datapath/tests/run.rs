//! `datapath run` end to end (root; skipped with a message otherwise): the real binary on the
//! shared netns topology (`support`): on lb1 with the XDP load balancer (generic mode, as in the
//! lab) and the service, on be1/be2 with only the TC programs. Checks that a request through the
//! VIP is answered via DSR (replies leave the backend nodes from VIP:80, never from a backend
//! address, and never pass the LB node), that `datapath status` reads the pinned maps, that an
//! edit of the file is applied (a removed backend node gets no more flows) while a broken edit
//! is refused, and that SIGTERM detaches the programs and removes the pins. Nothing is mocked.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_tests::{ChildProcess, Netns, wait_until, wait_until_ok};
use nix::sys::signal::Signal;
use support::*;

const DATAPATH: &str = env!("CARGO_BIN_EXE_datapath");

/// A bpf filesystem mounted for the test (pins must be visible outside the agents' private
/// `ip netns exec` mount namespaces); unmounted on drop, which drops anything left pinned.
struct BpfFs {
    path: PathBuf,
}

impl BpfFs {
    fn mount(path: PathBuf) -> Self {
        std::fs::create_dir_all(&path).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&path)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount -t bpf bpf {}", path.display());
        Self { path }
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The LB node's config: the service with the given backends.
fn lb_config(pin_dir: &Path, backends: &[(usize, std::net::SocketAddr)]) -> String {
    let mut text = format!(
        "pinDir: {}\ninterfaces:\n  - name: eth0\n    xdp: generic\nmaglev:\n  tableSize: 1021\n\
         neighbourRefreshSeconds: 2\nservices:\n  - name: web\n    vip: {VIP}\n    port: {VIP_PORT}\n    \
         backends:\n",
        pin_dir.display()
    );
    for (j, addr) in backends {
        text += &format!("      - {{ address: {addr}, node: {} }}\n", be_addr(*j).0);
    }
    text
}

fn be_config(pin_dir: &Path) -> String {
    format!(
        "pinDir: {}\ninterfaces:\n  - name: eth0\n    xdp: none\n    tc: true\n",
        pin_dir.display()
    )
}

fn start(ns: &Netns, name: &str, config: &Path, dir: &Path) -> ChildProcess {
    let config = config.to_string_lossy().into_owned();
    ns.spawn(name, DATAPATH, &["run", "--config", &config], dir)
        .expect("spawn datapath run")
}

fn status_json(pin_dir: &Path) -> Option<serde_json::Value> {
    let out = std::process::Command::new(DATAPATH)
        .args(["status", "--json", "--pin-dir"])
        .arg(pin_dir)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn counter(pin_dir: &Path, name: &str) -> u64 {
    status_json(pin_dir)
        .and_then(|v| v["counters"][name].as_u64())
        .unwrap_or(0)
}

#[test]
fn datapath_run_serves_the_vip_via_dsr_reloads_and_cleans_up() {
    if !root() {
        return;
    }
    let net = Net::new("dp_run", false);
    let pins = BpfFs::mount(net.lab.dir().join("bpffs"));
    let dir = net.lab.dir().to_path_buf();
    let mut agents = Vec::new();
    for (j, ns) in net.bes.iter().enumerate() {
        let pin = pins.path.join(format!("be{}", j + 1));
        let conf = dir.join(format!("be{}.yaml", j + 1));
        std::fs::write(&conf, be_config(&pin)).expect("write config");
        agents.push(start(ns, &format!("datapath-be{}", j + 1), &conf, &dir));
    }
    let lb_pins = pins.path.join("lb1");
    let lb_conf = dir.join("lb1.yaml");
    std::fs::write(&lb_conf, lb_config(&lb_pins, &backends())).expect("write config");
    let mut lb = start(&net.lbs[0], "datapath-lb1", &lb_conf, &dir);
    net.route_vip_via(&[1]);

    // Programmed once lb1 has resolved its next hops.
    let who = wait_until_ok("HTTP through the VIP", Duration::from_secs(60), || {
        let mut s = net.connect(None)?;
        whoami(&mut s)
    })
    .unwrap_or_else(|e| panic!("{e}\nlb1 log:\n{}", lb.log_tail(3000)));
    assert!(who.starts_with("be"), "answered by a backend: {who:?}");

    let vip = VIP.to_string();
    let be_vip: Vec<Capture> = net
        .bes
        .iter()
        .map(|ns| {
            net.capture(
                ns,
                "eth0",
                &format!("tcp and src host {vip} and src port {VIP_PORT}"),
            )
        })
        .collect();
    let be_raw: Vec<Capture> = net
        .bes
        .iter()
        .map(|ns| net.capture(ns, "eth0", "tcp and src net 10.244.0.0/16"))
        .collect();
    let lb_from_vip = net.capture(&net.router, "lb1", &format!("src host {vip}"));
    let served = whoami_flows(&net);
    let be_vip: Vec<usize> = be_vip.into_iter().map(|c| c.lines().len()).collect();
    let be_raw: Vec<Vec<String>> = be_raw.into_iter().map(Capture::lines).collect();
    let lb_from_vip = lb_from_vip.lines();
    assert!(
        be_vip.iter().all(|n| *n > 0),
        "both backend nodes replied from VIP:{VIP_PORT}: {be_vip:?}"
    );
    assert!(
        be_raw.iter().all(Vec::is_empty),
        "replies from a backend address: {be_raw:?}"
    );
    assert!(
        lb_from_vip.is_empty(),
        "replies passed the LB node: {lb_from_vip:?}"
    );
    assert!(
        served
            .iter()
            .any(|b| b.ip().to_string().starts_with("10.244.1."))
            && served
                .iter()
                .any(|b| b.ip().to_string().starts_with("10.244.2.")),
        "flows spread over both backend nodes: {served:?}"
    );

    // `datapath status` reads lb1's pinned maps; the backends' agents decapsulated.
    let st = status_json(&lb_pins).expect("datapath status --json");
    assert_eq!(st["services"][0]["vip"], vip.as_str(), "{st}");
    assert_eq!(st["services"][0]["backends"], 4, "{st}");
    assert!(counter(&lb_pins, "encap") >= 32, "{st}");
    assert!(counter(&lb_pins, "dsr_option") >= 32, "{st}");
    for j in 1..=2 {
        assert!(counter(&pins.path.join(format!("be{j}")), "decap") > 0);
    }

    // An edit of the file is applied without a restart: only be1's backends remain.
    let be1_only: Vec<_> = backends().into_iter().filter(|(j, _)| *j == 1).collect();
    std::fs::write(&lb_conf, lb_config(&lb_pins, &be1_only)).expect("edit config");
    wait_until(
        "lb1 programs the edited service",
        Duration::from_secs(30),
        || {
            let st = status_json(&lb_pins)?;
            (st["services"][0]["backends"] == 2).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nlb1 log:\n{}", lb.log_tail(3000)));
    // Fresh source ports: flows lb1 has seen keep their (still existing) backend.
    for p in 42100..42116 {
        let mut s = net.connect(Some(p)).expect("connect");
        let b = served_by(&whoami(&mut s).expect("whoami"));
        assert!(
            b.ip().to_string().starts_with("10.244.1."),
            "flow from :{p} went to {b} after be2 was removed"
        );
    }
    // A broken edit is refused; the running config stays and SIGHUP does not change that.
    std::fs::write(&lb_conf, "interfaces: [ { name: eth0, xdp: sideways } ]\n").expect("edit");
    wait_until("the broken edit reported", Duration::from_secs(10), || {
        std::fs::read_to_string(lb.stderr_log())
            .ok()
            .filter(|l| l.contains("sideways"))
    })
    .expect("reload error logged");
    lb.signal(Signal::SIGHUP).expect("SIGHUP");
    assert!(lb.is_running(), "agent survived a broken config");
    let mut s = net.connect(None).expect("connect after a broken edit");
    assert!(whoami(&mut s).expect("whoami").starts_with("be1"));
    drop(s);

    // SIGTERM: programs detached, pins removed, clean exit.
    lb.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = lb.wait_exit(Duration::from_secs(20)).expect("agent exits");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        lb.log_tail(3000)
    );
    assert!(!lb_pins.exists(), "pin directory left behind");
    let link = net.lbs[0].ip(&["link", "show", "eth0"]).expect("ip link");
    assert!(!link.contains("xdp"), "XDP still attached: {link}");
    for a in &mut agents {
        a.signal(Signal::SIGTERM).expect("SIGTERM");
        assert!(
            a.wait_exit(Duration::from_secs(20))
                .expect("exit")
                .success()
        );
    }
    // A fresh bpffs holds the kernel's own `maps.debug`/`progs.debug` iterators; nothing else
    // may be left.
    let left: Vec<_> = std::fs::read_dir(&pins.path)
        .expect("bpffs")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !n.ends_with(".debug"))
        .collect();
    assert!(left.is_empty(), "pins left in the bpffs: {left:?}");
}
