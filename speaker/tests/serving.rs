//! End to end: a service address is announced only while this node's datapath serves it. A real
//! `herald agent` with a `datapath:` section in a namespace, a real ExaBGP peer logging every
//! UPDATE, the real XDP program in the kernel. The datapath's interface is missing at first: the
//! address is never announced (the pod CIDR is, so routes do flow), `herald services`,
//! `herald datapath status` and `/readyz` say why. When the interface appears the driver attaches,
//! programs the table and only then is the address announced; when the last endpoint goes, the
//! address is withdrawn and its entry leaves the kernel. Needs root, ExaBGP and bpffs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Speaker, Topology};
use herald_tests::{ExaBgp, wait_until_ok};

const UP: Duration = Duration::from_secs(30);
const VIP: &str = "10.200.0.10/32";
const POD_CIDR: &str = "10.244.1.0/24";

/// A bpf filesystem mounted for the test, unmounted on drop.
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount(path: PathBuf) -> Self {
        std::fs::create_dir_all(&path).expect("bpffs dir");
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&path)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount -t bpf failed");
        Self(path)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn agent_yaml(pin_dir: &Path, endpoints: bool) -> String {
    let endpoints = if endpoints {
        "    endpoints:\n      - { ip: 10.244.1.10, nodeName: node, port: 8080 }\n"
    } else {
        ""
    };
    format!(
        "node: {{ name: node, routerId: 10.77.0.1, podCIDRs: [{POD_CIDR}] }}\n\
         bgp:\n  localASN: 65001\n  peers:\n    - {{ name: exa, address: 10.77.0.2, asn: 65000, \
         timers: {{ holdTimeSeconds: 9, connectRetryTimeSeconds: 1 }} }}\n\
         \x20 advertisements:\n    - {{ kind: PodCIDR }}\n    - {{ kind: LoadBalancerIP }}\n\
         ipam:\n  pools:\n    - {{ name: vip, blocks: [{{ start: 10.200.0.10, stop: 10.200.0.19 }}] }}\n\
         services:\n  - name: web\n    ports: [{{ port: 80 }}]\n{endpoints}\
         nodes:\n  - {{ name: node, address: 10.77.0.1 }}\n\
         datapath:\n  pinDir: {pin}\n  keepPinnedMaps: false\n  interfaces:\n    - {{ name: eth9, xdp: generic }}\n\
         api:\n  controlSocket: {{socket}}\n  metricsAddress: 127.0.0.1:9963\n",
        pin = pin_dir.display()
    )
}

fn herald_json(speaker: &Speaker, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .args(["--json", "--socket"])
        .arg(&speaker.socket)
        .output()
        .expect("run herald");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `GET path` on the agent's metrics address inside `topo.node`.
fn http_get(topo: &Topology, path: &str) -> String {
    let url = format!("http://127.0.0.1:9963{path}");
    topo.node
        .exec("curl", &["-s", "-w", "\n%{http_code}", &url])
        .unwrap_or_default()
}

#[test]
fn a_service_address_is_announced_only_while_the_datapath_serves_it() {
    let topo = Topology::new("serving");
    let pins = Bpffs::mount(topo.dir("bpffs"));
    let pin_dir = pins.0.join("node");
    let exa =
        ExaBgp::start(&topo.peer, &topo.dir("exabgp"), &[topo.exabgp_neighbor()]).expect("exabgp");
    let speaker = Speaker::start(&topo.node, &topo.dir("node"), &agent_yaml(&pin_dir, true));
    exa.wait_up(topo.node_v4, UP).expect("session up");
    wait_until_ok("the pod CIDR at ExaBGP", UP, || {
        let got = exa.received_prefixes().map_err(|e| e.to_string())?;
        got.contains(POD_CIDR)
            .then_some(())
            .ok_or_else(|| format!("{got:?}"))
    })
    .expect("routes flow");

    // Not attached: the address lb-ipam gave the service is not announced, and each view says why.
    std::thread::sleep(Duration::from_secs(3));
    let got = exa.received_prefixes().expect("prefixes");
    assert!(
        !got.contains(VIP),
        "announced without a datapath: {got:?}\n{}",
        speaker.log()
    );
    let services = herald_json(&speaker, &["services"]);
    let reason = services[0]["notServed"]["10.200.0.10"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("eth9"), "{services}");
    let status = herald_json(&speaker, &["datapath", "status"]);
    assert_eq!(status["serving"]["attached"], false, "{status}");
    let ready = http_get(&topo, "/readyz");
    assert!(ready.ends_with("503") && ready.contains("eth9"), "{ready}");
    let metrics = http_get(&topo, "/metrics");
    assert!(
        metrics.contains("herald_datapath_attached 0")
            && metrics.contains("herald_datapath_unserved_addresses 1"),
        "{metrics}"
    );

    // The interface appears: the driver attaches, programs the entry, and only then announces.
    topo.node
        .ip(&[
            "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p",
        ])
        .expect("eth9");
    topo.node.link_up("eth9").expect("eth9 up");
    topo.node.link_up("eth9p").expect("eth9p up");
    wait_until_ok("the service address at ExaBGP", UP, || {
        let got = exa.received_prefixes().map_err(|e| e.to_string())?;
        got.contains(VIP)
            .then_some(())
            .ok_or_else(|| format!("{got:?}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    let status = herald_json(&speaker, &["datapath", "status"]);
    assert_eq!(status["serving"]["attached"], true, "{status}");
    assert_eq!(
        status["serving"]["served"],
        serde_json::json!(["10.200.0.10"])
    );
    let entry = &status["maps"]["services"][0];
    assert_eq!(
        (entry["vip"].as_str(), entry["port"].as_u64()),
        (Some("10.200.0.10"), Some(80)),
        "{status}"
    );
    assert_eq!(entry["backends"], 1, "{status}");
    assert!(http_get(&topo, "/readyz").ends_with("200"));

    // The last endpoint goes: the address is withdrawn, and the entry leaves the kernel.
    speaker.reconfigure(&agent_yaml(&pin_dir, false));
    wait_until_ok("the service address withdrawn", UP, || {
        let messages = exa.messages().map_err(|e| e.to_string())?;
        let current = herald_tests::exabgp::current_prefixes(&messages);
        (!current.contains(VIP))
            .then_some(())
            .ok_or_else(|| format!("{current:?}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    wait_until_ok("the entry removed from the maps", UP, || {
        let status = herald_json(&speaker, &["datapath", "status"]);
        status["maps"]["services"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
            .ok_or_else(|| status.to_string())
    })
    .expect("entry removed");
    // Removing the endpoint moved the `datapath:` and `nodes:` sections two lines up, which
    // changes neither.
    let log = speaker.log();
    assert!(
        !log.contains("datapath: applied on restart") && !log.contains("node list changed"),
        "{log}"
    );
    drop(speaker);
    drop(exa);
}
