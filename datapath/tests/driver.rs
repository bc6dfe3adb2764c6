//! The `Datapath` library end to end (root; skipped with a message otherwise), on the shared
//! netns topology (`support`): lb1 with the XDP load balancer (generic mode, as in the lab),
//! be1/be2 with only the TC programs, every node driven through `Datapath::start/apply`.
//!
//! - `datapath_serves_the_vip_via_dsr_applies_changes_and_cleans_up`: a request through the VIP
//!   is answered via DSR (replies leave the backend nodes from VIP:80, never from a backend
//!   address, and never pass the LB node); an `apply` without be2's backends moves new flows to
//!   be1; `shutdown` with `keepPinnedMaps: false` detaches and unpins everything.
//! - `killed_agent_keeps_forwarding_and_the_next_one_takes_over_unchanged`: an agent in a child
//!   process is killed with SIGKILL; the VIP keeps answering (pinned links and maps), an open
//!   connection keeps its backend, and a new agent takes the links over and, applying the same
//!   services, changes no map entry: same service ids and tables, same backend ids.
//!
//! Nothing is mocked.

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{Array, Map, MapData};
use datapath::{BackendInput, Datapath, DatapathConfig, Proto, ServiceInput};
use datapath_common::{BackendValue, MAP_MAGLEV, MaglevPair, ServiceKey, ServiceValue};
use herald_tests::{ChildProcess, Netns, in_netns, wait_until, wait_until_ok};
use nix::sys::signal::Signal;
use support::*;

/// A bpf filesystem mounted for the test (pins must be visible to the child agent's own
/// `ip netns exec` mount namespace); unmounted on drop, which drops anything left pinned.
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

const M: u32 = 1021;

fn lb_yaml(pin_dir: &Path, keep: bool) -> String {
    format!(
        "pinDir: {}\nkeepPinnedMaps: {keep}\ninterfaces:\n  - name: eth0\n    xdp: generic\n\
         maglev:\n  tableSize: {M}\nmaxServices: 64\nmaxBackends: 256\nneighbourRefreshSeconds: 2\n",
        pin_dir.display()
    )
}

fn be_config(pin_dir: &Path) -> DatapathConfig {
    let text = format!(
        "pinDir: {}\nkeepPinnedMaps: false\ninterfaces:\n  - name: eth0\n    xdp: none\n    tc: true\n\
         maxServices: 16\nmaxBackends: 16\n",
        pin_dir.display()
    );
    DatapathConfig::parse(&text, "be.yaml").expect("backend config")
}

/// The web service on VIP:80 with the given backends.
fn web(backends: &[(usize, SocketAddr)]) -> ServiceInput {
    web_over(VIP.into(), backends, Underlay::V4)
}

/// A web service on `vip`:80 with the given backends, whose nodes have addresses of
/// `underlay`'s family.
fn web_over(vip: IpAddr, backends: &[(usize, SocketAddr)], underlay: Underlay) -> ServiceInput {
    ServiceInput {
        name: format!("default/web:{vip}"),
        vip,
        port: VIP_PORT,
        proto: Proto::Tcp,
        affinity: false,
        backends: backends
            .iter()
            .map(|(j, addr)| BackendInput {
                addr: *addr,
                node: be_node(*j, underlay).0,
                weight: 100,
            })
            .collect(),
    }
}

/// The services of `net`: VIP:80, and over an IPv6 underlay VIP6:80 too.
fn services(net: &Net) -> Vec<ServiceInput> {
    match net.underlay {
        Underlay::V4 => vec![web(&backends())],
        Underlay::V6 => vec![
            web_over(VIP.into(), &backends(), Underlay::V6),
            web_over(VIP6.into(), &backends6(), Underlay::V6),
        ],
    }
}

/// Starts the backend nodes' datapaths (TC only), as the agent does: the node list's nodes
/// are the LB nodes Geneve may come from, and the service table names the VIP. Over an IPv6
/// underlay the node address is given (as the agent takes it from `nodes:`); over IPv4 it is
/// the interface's.
fn start_backends(net: &Net, pins: &Path) -> Vec<Datapath> {
    let u = net.underlay;
    let svcs = services(net);
    net.bes
        .iter()
        .enumerate()
        .map(|(j, ns)| {
            let cfg = be_config(&pins.join(format!("be{}", j + 1)));
            let node = (u == Underlay::V6).then(|| be_node(j + 1, u).0);
            in_netns(ns, || {
                let mut dp = Datapath::start(&cfg, None, node)?;
                let nodes: Vec<IpAddr> = (1..=2)
                    .map(|i| lb_node(i, u).0)
                    .chain((1..=2).map(|j| be_node(j, u).0))
                    .collect();
                dp.set_lb_nodes(&nodes)?;
                dp.apply(&svcs)?;
                Ok::<_, datapath::Error>(dp)
            })
            .expect("start backend datapath")
        })
        .collect()
}

/// Applies `services` on `ns` until they are all served (next hops resolve within seconds).
fn apply_until_served(ns: &Netns, dp: &mut Datapath, services: &[ServiceInput]) {
    let mut report = in_netns(ns, || dp.apply(services)).expect("apply");
    for _ in 0..20 {
        let all = services
            .iter()
            .all(|s| report.served.contains(&(s.vip, s.port, s.proto)));
        if all && report.unresolved.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
        report = in_netns(ns, || dp.refresh()).expect("refresh");
    }
    panic!("VIP not served: {report:?}");
}

#[test]
fn datapath_serves_the_vip_via_dsr_applies_changes_and_cleans_up() {
    if !root() {
        return;
    }
    let net = Net::new("dp_drv", false);
    let pins = BpfFs::mount(net.lab.dir().join("bpffs"));
    let bes = start_backends(&net, &pins.path);
    let lb_pins = pins.path.join("lb1");
    let cfg = DatapathConfig::parse(&lb_yaml(&lb_pins, false), "lb1.yaml").expect("config");
    let lb_ns = &net.lbs[0];
    let mut lb = in_netns(lb_ns, || Datapath::start(&cfg, None, None)).expect("start lb1");
    assert!(!lb.taken_over(), "nothing to take over on a fresh bpffs");
    apply_until_served(lb_ns, &mut lb, &[web(&backends())]);
    net.route_vip_via(&[1]);

    let who = wait_until_ok("HTTP through the VIP", Duration::from_secs(30), || {
        let mut s = net.connect(None)?;
        whoami(&mut s)
    })
    .expect("VIP answers");
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
    let on = |prefix: &str| {
        served
            .iter()
            .any(|b| b.ip().to_string().starts_with(prefix))
    };
    assert!(
        on("10.244.1.") && on("10.244.2."),
        "flows spread over both backend nodes: {served:?}"
    );

    // The status the CLI renders, from the pins; the backend nodes decapsulated.
    let st = lb.status().expect("status").to_json();
    assert_eq!(st["services"][0]["vip"], vip.as_str(), "{st}");
    assert_eq!(st["services"][0]["backends"], 4, "{st}");
    assert!(st["counters"]["encap"].as_u64() >= Some(32), "{st}");
    // The interface's MTU (1600) leaves room for the encapsulation: nothing to warn about.
    assert_eq!(st["mtu"], 1600, "{st}");
    assert_eq!(st["warnings"].as_array().map(Vec::len), Some(0), "{st}");
    for be in &bes {
        let st = be.status().expect("backend status").to_json();
        assert!(st["counters"]["decap"].as_u64() > Some(0), "{st}");
    }

    // A changed service list applies at once: only be1's backends remain.
    let be1_only: Vec<_> = backends().into_iter().filter(|(j, _)| *j == 1).collect();
    let report = in_netns(lb_ns, || lb.apply(&[web(&be1_only)])).expect("apply");
    assert_eq!(report.stats.tables_written, 1, "{report:?}");
    assert_eq!(report.stats.backends_deleted, 2, "{report:?}");
    assert_eq!(
        lb.status().expect("status").to_json()["services"][0]["backends"],
        2
    );
    // Fresh source ports: flows lb1 has seen keep their (still existing) backend.
    for p in 42100..42116 {
        let mut s = net.connect(Some(p)).expect("connect");
        let b = served_by(&whoami(&mut s).expect("whoami"));
        assert!(
            b.ip().to_string().starts_with("10.244.1."),
            "flow from :{p} went to {b} after be2 was removed"
        );
    }
    // No services: nothing served, the VIP is left to the kernel.
    let report = in_netns(lb_ns, || lb.apply(&[])).expect("apply");
    assert!(report.served.is_empty(), "{report:?}");

    // keepPinnedMaps: false: programs detached, pins removed.
    in_netns(lb_ns, || lb.shutdown()).expect("shutdown");
    assert!(!lb_pins.exists(), "pin directory left behind");
    let link = lb_ns.ip(&["-d", "link", "show", "eth0"]).expect("ip link");
    assert!(!link.contains("xdp"), "XDP still attached: {link}");
    for (be, ns) in bes.into_iter().zip(&net.bes) {
        in_netns(ns, || be.shutdown()).expect("backend shutdown");
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

/// Environment variable naming the child agent's spec directory.
const CHILD_ENV: &str = "HERALD_DATAPATH_TEST_CHILD";

/// The agent the restart test kills: started by the parent test in lb1 (through `ip netns
/// exec` and `env`), it reads `datapath.yaml` and `backends` from the directory in
/// [`CHILD_ENV`], starts the datapath, applies the web service until it is served, writes
/// `ready` and waits to be killed. Ignored (and a no-op) in a normal test run.
#[test]
#[ignore = "run by killed_agent_keeps_forwarding_and_the_next_one_takes_over_unchanged"]
fn child_agent() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("datapath.yaml")).expect("config");
    let cfg = DatapathConfig::parse(&text, "datapath.yaml").expect("valid config");
    let backends: Vec<(usize, SocketAddr)> = std::fs::read_to_string(dir.join("backends"))
        .expect("backends")
        .lines()
        .map(|l| {
            let (j, a) = l.split_once(' ').expect("`node addr` line");
            (j.parse().expect("node"), a.parse().expect("addr"))
        })
        .collect();
    let mut dp = Datapath::start(&cfg, None, None).expect("start");
    let services = [web(&backends)];
    let mut report = dp.apply(&services).expect("apply");
    while !report.unresolved.is_empty() || report.served.is_empty() {
        std::thread::sleep(Duration::from_millis(200));
        report = dp.refresh().expect("refresh");
    }
    std::fs::write(dir.join("ready"), format!("{report:?}")).expect("ready file");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Everything the LB node's maps hold for its services: entries, backends and active tables.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    services: BTreeMap<ServiceKey, ServiceValue>,
    backends: BTreeMap<u32, BackendValue>,
    tables: BTreeMap<ServiceKey, Vec<u32>>,
}

fn snapshot(pin_dir: &Path) -> Snapshot {
    let st = datapath::status::Status::read_pinned(pin_dir).expect("status");
    let maglev: Array<MapData, MaglevPair> = Array::try_from(Map::Array(
        MapData::from_pin(pin_dir.join(MAP_MAGLEV)).expect("Maglev pin"),
    ))
    .expect("array");
    let services: BTreeMap<_, _> = st.services.iter().map(|(k, v, _)| (*k, *v)).collect();
    let tables = services
        .iter()
        .map(|(k, v)| {
            // Two slots per element: slot g is half g % 2 of element g / 2.
            let slots = (0..M)
                .map(|i| {
                    let g = v.table * M + i;
                    maglev.get(&(g / 2), 0).expect("slot")[(g % 2) as usize]
                })
                .collect();
            (*k, slots)
        })
        .collect();
    Snapshot {
        services,
        backends: st.backends.into_iter().collect(),
        tables,
    }
}

#[test]
fn killed_agent_keeps_forwarding_and_the_next_one_takes_over_unchanged() {
    if !root() {
        return;
    }
    let net = Net::new("dp_kill", true);
    let pins = BpfFs::mount(net.lab.dir().join("bpffs"));
    let lb_ns = &net.lbs[0];
    let lb_pins = pins.path.join("lb1");
    let spec = net.lab.dir().join("child");
    std::fs::create_dir_all(&spec).expect("spec dir");
    std::fs::write(spec.join("datapath.yaml"), lb_yaml(&lb_pins, true)).expect("config");
    let mut lines = std::fs::File::create(spec.join("backends")).expect("backends");
    for (j, a) in backends() {
        writeln!(lines, "{j} {a}").expect("backends");
    }
    drop(lines);
    let exe = std::env::current_exe().expect("test binary");
    let env_arg = format!("{CHILD_ENV}={}", spec.display());
    let mut child: ChildProcess = lb_ns
        .spawn(
            "agent-lb1",
            "env",
            &[
                &env_arg,
                &exe.to_string_lossy(),
                "--exact",
                "child_agent",
                "--ignored",
                "--nocapture",
            ],
            net.lab.dir(),
        )
        .expect("spawn the child agent");
    wait_until("the child agent serves", Duration::from_secs(60), || {
        spec.join("ready").exists().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", child.log_tail(3000)));
    net.route_vip_via(&[1]);
    let mut open = wait_until_ok("HTTP through the VIP", Duration::from_secs(30), || {
        net.connect(None)
    })
    .expect("connect");
    let first = whoami(&mut open).expect("whoami");
    let before = snapshot(&lb_pins);
    assert_eq!(before.services.len(), 1, "{before:?}");

    // kill -9: no shutdown, no drop. The kernel keeps forwarding.
    child.signal(Signal::SIGKILL).expect("SIGKILL");
    child
        .wait_exit(Duration::from_secs(10))
        .expect("child gone");
    let link = lb_ns.ip(&["-d", "link", "show", "eth0"]).expect("ip link");
    assert!(
        link.contains("xdp"),
        "XDP detached with the process: {link}"
    );
    assert_eq!(whoami(&mut open).expect("open connection"), first);
    let mut s = net
        .connect(None)
        .expect("new connection while no agent runs");
    assert!(whoami(&mut s).expect("whoami").starts_with("be"));
    drop(s);

    // The next agent takes the links over and finds every entry as it wants it.
    let cfg = DatapathConfig::parse(&lb_yaml(&lb_pins, true), "lb1.yaml").expect("config");
    let mut lb = in_netns(lb_ns, || Datapath::start(&cfg, None, None)).expect("restart");
    assert!(lb.taken_over(), "pinned links were not taken over");
    let report = in_netns(lb_ns, || lb.apply(&[web(&backends())])).expect("apply");
    assert!(report.unresolved.is_empty(), "{report:?}");
    assert_eq!(report.served.len(), 1, "{report:?}");
    assert_eq!(
        (
            report.stats.services_written,
            report.stats.tables_written,
            report.stats.backends_written,
            report.stats.backends_deleted,
            report.stats.services_deleted
        ),
        (0, 0, 0, 0, 0),
        "an unchanged service was rewritten: {report:?}"
    );
    let after = snapshot(&lb_pins);
    assert_eq!(before, after, "map entries changed across the restart");
    for (_, b) in backends() {
        let id = lb.backend_id(b, Proto::Tcp).expect("backend id");
        assert!(before.backends.contains_key(&id), "{b} got a new id {id}");
    }
    assert_eq!(whoami(&mut open).expect("open connection"), first);
    let link = lb_ns.ip(&["-d", "link", "show", "eth0"]).expect("ip link");
    assert!(link.contains("xdp"), "XDP detached by the takeover: {link}");

    // keepPinnedMaps: true: a clean stop leaves the kernel forwarding too.
    in_netns(lb_ns, || lb.shutdown()).expect("shutdown");
    assert_eq!(whoami(&mut open).expect("open connection"), first);
    let link = lb_ns.ip(&["-d", "link", "show", "eth0"]).expect("ip link");
    assert!(
        link.contains("xdp"),
        "XDP detached by a keep-pins shutdown: {link}"
    );
}

/// An interface recreated under the same name while no agent ran: the pinned links point at the
/// dead interface (the kernel detached them), so `start` cannot take them over and attaches
/// afresh; a capacity change in the config recreates the service-sized maps, reported as a
/// problem, and the new capacity is in force.
#[test]
fn dead_pinned_links_are_replaced_and_a_capacity_change_recreates_the_service_maps() {
    if !root() {
        return;
    }
    let lab = herald_tests::TestLab::new("dp_relink").expect("test lab");
    let a = lab.netns("a").expect("netns");
    let b = lab.netns("b").expect("netns");
    let pins = BpfFs::mount(lab.dir().join("bpffs"));
    let pin_dir = pins.path.join("node");
    let yaml = |max: u32| {
        format!(
            "pinDir: {}\ninterfaces:\n  - name: eth0\n    xdp: generic\n    tc: true\n\
             maglev: {{ tableSize: 251 }}\nmaxServices: {max}\nmaxBackends: 64\nmtu: 1500\n",
            pin_dir.display()
        )
    };
    let service = ServiceInput {
        name: "svc".into(),
        vip: "10.96.0.99".parse().expect("vip"),
        port: 443,
        proto: Proto::Tcp,
        affinity: true,
        // A backend on this node: no next hop to resolve.
        backends: vec![BackendInput {
            addr: "10.244.9.9:8443".parse().expect("addr"),
            node: "192.168.77.1".parse().expect("node"),
            weight: 100,
        }],
    };
    let link = herald_tests::VethPair::create(&a, "eth0", &b, "eth0").expect("veth");
    a.addr_add("eth0", "192.168.77.1/24").expect("addr");
    let cfg = DatapathConfig::parse(&yaml(8), "a.yaml").expect("config");
    let mut dp = in_netns(&a, || Datapath::start(&cfg, None, None)).expect("start");
    let report = in_netns(&a, || dp.apply(std::slice::from_ref(&service))).expect("apply");
    assert_eq!(report.served.len(), 1, "{report:?}");
    assert_eq!(dp.identity().map(|i| i.mtu), Some(1500));
    in_netns(&a, || dp.shutdown()).expect("shutdown, pins kept");
    assert!(pin_dir.join("link_xdp_eth0").exists());

    drop(link);
    let _link = herald_tests::VethPair::create(&a, "eth0", &b, "eth0").expect("veth again");
    a.addr_add("eth0", "192.168.77.1/24").expect("addr");
    let shown = a.ip(&["-d", "link", "show", "eth0"]).expect("ip link");
    assert!(
        !shown.contains("xdp"),
        "a new interface has no program: {shown}"
    );

    let cfg = DatapathConfig::parse(&yaml(16), "a.yaml").expect("config");
    let mut dp = in_netns(&a, || Datapath::start(&cfg, None, None)).expect("restart");
    assert!(
        !dp.taken_over(),
        "links of a deleted interface cannot be taken over"
    );
    let shown = a.ip(&["-d", "link", "show", "eth0"]).expect("ip link");
    assert!(shown.contains("xdp"), "XDP attached afresh: {shown}");
    let report = in_netns(&a, || dp.apply(std::slice::from_ref(&service))).expect("apply");
    assert_eq!(report.served.len(), 1, "{report:?}");
    assert_eq!(
        report.stats.tables_written, 1,
        "recreated maps are rewritten: {report:?}"
    );
    assert!(
        report.problems.iter().any(|p| p.contains("HERALD_MAGLEV")),
        "{report:?}"
    );
    let services: Vec<_> = (0..16u16)
        .map(|p| ServiceInput {
            port: 1000 + p,
            ..service.clone()
        })
        .collect();
    let report = in_netns(&a, || dp.apply(&services)).expect("16 services fit now");
    assert_eq!(report.served.len(), 16);
    in_netns(&a, || dp.shutdown()).expect("shutdown");
}

/// Issue 16: the agent's path (`Datapath::start/apply`) over an IPv6-only underlay: the LB
/// node's identity is its IPv6 node address, next hops towards the backend nodes' IPv6
/// addresses are resolved by neighbour discovery, the backend nodes accept Geneve from the LB
/// nodes' IPv6 addresses, and both VIP (IPv4 in IPv6) and VIP6 (IPv6 in IPv6) answer.
#[test]
fn datapath_serves_both_families_over_an_ipv6_underlay() {
    if !root() {
        return;
    }
    let net = Net::build("dp_drv6", false, UNDERLAY_MTU, Underlay::V6);
    let pins = BpfFs::mount(net.lab.dir().join("bpffs"));
    let bes = start_backends(&net, &pins.path);
    let cfg =
        DatapathConfig::parse(&lb_yaml(&pins.path.join("lb1"), false), "lb1.yaml").expect("config");
    let lb_ns = &net.lbs[0];
    let me = lb_node(1, Underlay::V6).0;
    let mut lb = in_netns(lb_ns, || Datapath::start(&cfg, None, Some(me))).expect("start lb1");
    assert_eq!(lb.identity().map(|i| i.addr), Some(me));
    apply_until_served(lb_ns, &mut lb, &services(&net));
    for vip in [IpAddr::from(VIP), IpAddr::from(VIP6)] {
        net.route_via(vip, &[1]);
        let who = wait_until_ok(
            &format!("HTTP through {vip}"),
            Duration::from_secs(30),
            || {
                let mut s = net.connect_to(vip, None)?;
                whoami(&mut s)
            },
        )
        .expect("VIP answers");
        assert!(who.starts_with("be"), "answered by a backend: {who:?}");
    }
    let st = lb.status().expect("status").to_json();
    let nodes: std::collections::BTreeSet<String> = st["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .filter_map(|b| b["node"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        nodes,
        ["fd00:0:11::2".to_owned(), "fd00:0:12::2".to_owned()].into(),
        "{st}"
    );
    assert!(st["counters"]["encap"].as_u64() >= Some(2), "{st}");
    // MTU 1600 leaves room for outer IPv6 (1500 + 94): nothing to warn about.
    assert_eq!(st["warnings"].as_array().map(Vec::len), Some(0), "{st}");
    let decap: u64 = bes
        .iter()
        .map(|be| {
            let st = be.status().expect("backend status").to_json();
            st["counters"]["decap"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(decap >= 2, "the backend nodes decapsulated");
    in_netns(lb_ns, || lb.shutdown()).expect("shutdown");
    for (be, ns) in bes.into_iter().zip(&net.bes) {
        in_netns(ns, || be.shutdown()).expect("backend shutdown");
    }
}
