//! End to end through the real XDP and TC programs in network namespaces (root; skipped with a
//! message otherwise). Nothing is mocked: real veths, real kernel routing, real TCP, real eBPF.
//!
//! ```text
//!                       ┌─ lb1 (XDP Maglev + Geneve DSR on eth0)
//! client ── router ─────┼─ lb2 (same)
//!   172.16.0.2   │      ├─ be1 (TC decap + reverse NAT; HTTP on 10.244.1.10/.11:8080)
//!                │      └─ be2 (same, 10.244.2.10/.11)
//!   VIP 10.96.0.10:80 routed by the router to lb1/lb2 (ECMP, or one of them)
//! ```
//!
//! The router forwards everything; LB and backend nodes hang off it on /24s with MTU 1600
//! (room for the Geneve headers). Backend nodes carry the VIP and their backend addresses on
//! `lo` (arp_ignore=1, arp_announce=2) and run `e2e_server.py`. The LB nodes' XDP programs run in
//! native mode; each router port facing an LB node runs an XDP_PASS program so that native
//! XDP_TX frames from the LB node are received (veth rule). The client sends with checksum
//! offload off so the frames the LB nodes rewrite carry complete checksums.
//!
//! Next-hop MACs for the encapsulation are resolved by the loader helper
//! `datapath::neighbour::next_hop` (route + ARP table of the LB node's namespace), and the
//! uplink MAC by `datapath::neighbour::interface_mac`, both run inside the LB node's namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::maglev::{self, Backend, Proto, Seed};
use datapath::neighbour;
use datapath::reconcile::{BackendSpec, Reconciler, ServiceSpec};
use datapath_common::{Config, Counter, hash};
use herald_tests::{ChildProcess, Netns, TestLab, VethPair, wait_until_ok};
use socket2::{Domain, SockAddr, Socket, Type};

const M: u32 = 1021;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const VIP_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
const UNDERLAY_MTU: u16 = 1600;
const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e_server.py");
const PYTHON: &str = "/usr/bin/python3";

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { geteuid() };
    if euid != 0 {
        eprintln!("skipping: the end-to-end test needs root (namespaces, eBPF)");
    }
    euid == 0
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// Runs `f` on a fresh thread that has entered `ns`'s network namespace. Sockets and BPF links
/// created there stay in that namespace after the thread ends.
fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = ns.path();
    std::thread::scope(|s| {
        s.spawn(move || {
            let fd = File::open(&path).expect("open netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// Underlay address of LB node `i` (1-based) and of its router port.
fn lb_addr(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, 0, i as u8, 2),
        Ipv4Addr::new(10, 0, i as u8, 1),
    )
}

/// Underlay address of backend node `j` (1-based) and of its router port.
fn be_addr(j: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, 0, 10 + j as u8, 2),
        Ipv4Addr::new(10, 0, 10 + j as u8, 1),
    )
}

/// The backends: two per backend node, `(node index, address)`.
fn backends() -> Vec<(usize, SocketAddr)> {
    let mut v = Vec::new();
    for j in 1..=2usize {
        for host in [10u8, 11] {
            let a = Ipv4Addr::new(10, 244, j as u8, host);
            v.push((j, SocketAddr::from((a, BACKEND_PORT))));
        }
    }
    v
}

/// An LB node: its namespace, its loader (maps and attached programs) and its reconciler.
struct LbNode {
    ns: Netns,
    loader: Loader,
    reconciler: Reconciler,
    /// Next-hop MAC towards each backend node (index 0: be1).
    next_hops: Vec<[u8; 6]>,
}

impl LbNode {
    /// Programs the service with the given backends (the full desired state).
    fn program(&mut self, backends: &[(usize, SocketAddr)]) {
        let spec = ServiceSpec {
            vip: VIP.into(),
            port: VIP_PORT,
            proto: Proto::Tcp,
            affinity: false,
            backends: backends
                .iter()
                .map(|(j, addr)| BackendSpec {
                    addr: *addr,
                    weight: maglev::DEFAULT_WEIGHT,
                    node: be_addr(*j).0,
                    next_hop_mac: self.next_hops[j - 1],
                    local: false,
                })
                .collect(),
        };
        self.reconciler
            .apply(&[spec], &mut self.loader)
            .expect("reconcile");
    }

    fn counter(&self, c: Counter) -> u64 {
        self.loader
            .counters()
            .expect("counters")
            .into_iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v)
            .unwrap_or(0)
    }
}

/// The whole topology. Field order is drop order: servers and loaders before namespaces.
struct Lab {
    _servers: Vec<ChildProcess>,
    lbs: Vec<LbNode>,
    _be_loaders: Vec<Loader>,
    _links: Vec<VethPair>,
    client: Netns,
    router: Netns,
    bes: Vec<Netns>,
    lab: TestLab,
}

fn ip(ns: &Netns, args: &[&str]) {
    ns.ip(args)
        .unwrap_or_else(|e| panic!("ip -n {} {args:?}: {e}", ns.name()));
}

fn sysctl(ns: &Netns, key: &str, value: &str) {
    ns.sysctl(key, value)
        .unwrap_or_else(|e| panic!("sysctl {key}={value} in {}: {e}", ns.name()));
}

impl Lab {
    fn new(test: &str) -> Self {
        let lab = TestLab::new(test).expect("test lab");
        let client = lab.netns("client").expect("netns");
        let router = lab.netns("router").expect("netns");
        let lb_ns: Vec<Netns> = (1..=2)
            .map(|i| lab.netns(&format!("lb{i}")).expect("netns"))
            .collect();
        let bes: Vec<Netns> = (1..=2)
            .map(|j| lab.netns(&format!("be{j}")).expect("netns"))
            .collect();
        let mut links = Vec::new();

        sysctl(&router, "net.ipv4.ip_forward", "1");
        // Replies from backend nodes carry the VIP as source, which the router routes towards
        // the LB nodes: strict reverse-path filtering would drop them.
        sysctl(&router, "net.ipv4.conf.all.rp_filter", "0");
        sysctl(&router, "net.ipv4.conf.default.rp_filter", "0");
        // ECMP by 5-tuple, so different flows may take different LB nodes.
        sysctl(&router, "net.ipv4.fib_multipath_hash_policy", "1");

        links.push(VethPair::create(&router, "c0", &client, "eth0").expect("veth"));
        router.addr_add("c0", "172.16.0.1/24").expect("addr");
        client
            .addr_add("eth0", &format!("{CLIENT}/24"))
            .expect("addr");
        client
            .route_add(&["default", "via", "172.16.0.1"])
            .expect("route");
        // Complete checksums on the client's frames (see the module comment).
        client
            .exec("ethtool", &["-K", "eth0", "tx", "off"])
            .expect("ethtool -K eth0 tx off");

        for (i, ns) in lb_ns.iter().enumerate() {
            let i = i + 1;
            let port = format!("lb{i}");
            links.push(VethPair::create(&router, &port, ns, "eth0").expect("veth"));
            let (node, gw) = lb_addr(i);
            router.set_mtu(&port, UNDERLAY_MTU.into()).expect("mtu");
            ns.set_mtu("eth0", UNDERLAY_MTU.into()).expect("mtu");
            router.addr_add(&port, &format!("{gw}/24")).expect("addr");
            ns.addr_add("eth0", &format!("{node}/24")).expect("addr");
            ns.route_add(&["default", "via", &gw.to_string()])
                .expect("route");
            sysctl(&router, &format!("net.ipv4.conf.{port}.rp_filter"), "0");
        }
        for (j, ns) in bes.iter().enumerate() {
            let j = j + 1;
            let port = format!("be{j}");
            links.push(VethPair::create(&router, &port, ns, "eth0").expect("veth"));
            let (node, gw) = be_addr(j);
            router.set_mtu(&port, UNDERLAY_MTU.into()).expect("mtu");
            ns.set_mtu("eth0", UNDERLAY_MTU.into()).expect("mtu");
            router.addr_add(&port, &format!("{gw}/24")).expect("addr");
            ns.addr_add("eth0", &format!("{node}/24")).expect("addr");
            ns.route_add(&["default", "via", &gw.to_string()])
                .expect("route");
            sysctl(&router, &format!("net.ipv4.conf.{port}.rp_filter"), "0");
            // The VIP and the backend addresses live on lo; never answer ARP for them.
            for key in ["all", "eth0"] {
                sysctl(ns, &format!("net.ipv4.conf.{key}.arp_ignore"), "1");
                sysctl(ns, &format!("net.ipv4.conf.{key}.arp_announce"), "2");
            }
            ns.addr_add("lo", &format!("{VIP}/32")).expect("addr");
            for (_, b) in backends().iter().filter(|(n, _)| *n == j) {
                ns.addr_add("lo", &format!("{}/32", b.ip())).expect("addr");
            }
        }

        // Backend nodes: TC decap + reverse NAT on the uplink, and the HTTP servers.
        let mut be_loaders = Vec::new();
        let mut servers = Vec::new();
        for (j, ns) in bes.iter().enumerate() {
            let loader = in_netns(ns, || {
                let mut l = Loader::load(&LoadConfig {
                    maglev_m: 251,
                    pin_dir: None,
                })
                .expect("load eBPF");
                l.attach_tc("eth0").expect("attach TC");
                l
            });
            be_loaders.push(loader);
            let name = format!("be{}", j + 1);
            let port = BACKEND_PORT.to_string();
            servers.push(
                ns.spawn(
                    &format!("http-{name}"),
                    PYTHON,
                    &[SERVER, &name, &port],
                    lab.dir(),
                )
                .expect("spawn server"),
            );
        }

        // LB nodes: XDP LB on the uplink (native), XDP_PASS on the router's port facing it.
        let seed = Seed::default();
        let mut lbs = Vec::new();
        for (i, ns) in lb_ns.into_iter().enumerate() {
            let (node, _) = lb_addr(i + 1);
            let (loader, next_hops) = in_netns(&ns, || {
                let mut l = Loader::load(&LoadConfig {
                    maglev_m: M,
                    pin_dir: None,
                })
                .expect("load eBPF");
                let mac = neighbour::interface_mac("eth0").expect("uplink MAC");
                l.set_config(&Config {
                    node_addr: node.octets(),
                    node_mac: mac,
                    mtu: UNDERLAY_MTU,
                    maglev_m: M,
                    jhash_v4: seed.jhash_v4,
                    jhash_v6: seed.jhash_v6,
                })
                .expect("config");
                let hops: Vec<[u8; 6]> = (1..=2)
                    .map(|j| {
                        neighbour::next_hop(be_addr(j).0, Duration::from_secs(10))
                            .expect("next hop")
                            .mac
                    })
                    .collect();
                let mode = l
                    .attach_xdp(programs::XDP_LB, "eth0", true)
                    .expect("attach XDP");
                assert_eq!(mode, aya::programs::XdpMode::Driver, "native XDP on veth");
                (l, hops)
            });
            let mut loader = loader;
            let port = format!("lb{}", i + 1);
            in_netns(&router, || {
                loader
                    .attach_xdp(programs::XDP_PASS, &port, true)
                    .expect("attach XDP_PASS on the router port")
            });
            let mut lb = LbNode {
                ns,
                loader,
                reconciler: Reconciler::new(M, seed).expect("reconciler"),
                next_hops,
            };
            lb.program(&backends());
            lbs.push(lb);
        }

        let lab = Self {
            _servers: servers,
            lbs,
            _be_loaders: be_loaders,
            _links: links,
            client,
            router,
            bes,
            lab,
        };
        // Servers up: each backend address answers locally.
        for (j, b) in backends() {
            let ns = &lab.bes[j - 1];
            wait_until_ok(
                &format!("HTTP server on {b}"),
                Duration::from_secs(30),
                || {
                    in_netns(ns, || {
                        TcpStream::connect_timeout(&b, Duration::from_secs(1))
                    })
                },
            )
            .expect("server up");
        }
        lab
    }

    /// Routes the VIP through the given LB nodes (1-based); several means ECMP.
    fn route_vip_via(&self, lbs: &[usize]) {
        let vip = format!("{VIP}/32");
        let mut args = vec!["route", "replace", vip.as_str()];
        let hops: Vec<String> = lbs.iter().map(|i| lb_addr(*i).0.to_string()).collect();
        for h in &hops {
            args.extend_from_slice(&["nexthop", "via", h.as_str()]);
        }
        ip(&self.router, &args);
    }

    /// A TCP connection from the client to VIP:80, from `sport` when given. Closing it sends a
    /// RST (linger 0) so the same 4-tuple can be reused at once, without TIME_WAIT anywhere.
    fn connect(&self, sport: Option<u16>) -> std::io::Result<TcpStream> {
        in_netns(&self.client, || {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.set_linger(Some(Duration::ZERO))?;
            if let Some(p) = sport {
                s.bind(&SockAddr::from(SocketAddrV4::new(CLIENT, p)))?;
            }
            let vip = SockAddr::from(SocketAddrV4::new(VIP, VIP_PORT));
            s.connect_timeout(&vip, Duration::from_secs(10))?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.set_write_timeout(Some(Duration::from_secs(30)))?;
            Ok(s.into())
        })
    }

    /// Starts tcpdump on `dev` in `ns` and waits until it listens.
    fn capture(&self, ns: &Netns, dev: &str, filter: &str) -> Capture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("tcpdump-{dev}-{}", N.fetch_add(1, Ordering::Relaxed));
        let p = ns
            .spawn(
                &name,
                "tcpdump",
                &["-i", dev, "-nn", "-l", "-p", filter],
                self.lab.dir(),
            )
            .expect("spawn tcpdump");
        wait_until_ok(
            &format!("{name} listening"),
            Duration::from_secs(20),
            || {
                let err = std::fs::read_to_string(p.stderr_log()).unwrap_or_default();
                if err.contains("listening on") {
                    Ok(())
                } else {
                    Err(err)
                }
            },
        )
        .expect("tcpdump up");
        Capture { p }
    }
}

/// A running packet capture; [`Capture::lines`] stops it and returns one line per packet.
struct Capture {
    p: ChildProcess,
}

impl Capture {
    fn lines(mut self) -> Vec<String> {
        // Let frames in flight reach the capture before stopping it.
        std::thread::sleep(Duration::from_millis(300));
        self.p.stop().expect("stop tcpdump");
        read_lines(self.p.stdout_log())
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sends one request and reads one response (`Content-Length` framed); returns the body.
fn request(s: &mut TcpStream, req: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    read_response(s, |_| {})
}

/// Reads a response; `progress` is called with the body bytes read so far after each read.
fn read_response(s: &mut TcpStream, mut progress: impl FnMut(usize)) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("bad response: {head}")));
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no Content-Length: {head}")))?;
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = s.read(&mut body[got..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
        progress(got);
    }
    Ok(body)
}

fn whoami(s: &mut TcpStream) -> std::io::Result<String> {
    let body = request(s, "GET /whoami HTTP/1.1\r\nHost: vip\r\n\r\n", &[])?;
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

fn blob_ok(body: &[u8]) -> bool {
    body.iter()
        .enumerate()
        .all(|(k, &b)| usize::from(b) == k % 251)
}

/// The backend (index into [`backends`]) the Maglev table over `set` gives the client's flow
/// from `sport`, computed in user space with the Cilium-compatible hash.
fn predict(set: &[(usize, SocketAddr)], sport: u16) -> SocketAddr {
    let seed = Seed::default();
    let list: Vec<Backend> = set
        .iter()
        .map(|(_, a)| Backend::new(*a, Proto::Tcp))
        .collect();
    let table = maglev::build(M, &seed, &list).expect("maglev");
    let h = hash::packet_hash_v4(
        CLIENT.octets(),
        sport.to_be_bytes(),
        VIP_PORT.to_be_bytes(),
        6,
        seed.jhash_v4,
    );
    set[table.slots()[(h % M) as usize] as usize].1
}

/// `"be1 10.244.1.10"` → the backend address that answered.
fn served_by(answer: &str) -> SocketAddr {
    let ip: Ipv4Addr = answer
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected whoami answer {answer:?}"));
    SocketAddr::from((ip, BACKEND_PORT))
}

const SPORTS: std::ops::Range<u16> = 41000..41032;

/// One whoami per source port on a fresh connection each; returns who answered.
fn whoami_flows(lab: &Lab) -> Vec<SocketAddr> {
    SPORTS
        .map(|p| {
            let mut s = lab
                .connect(Some(p))
                .unwrap_or_else(|e| panic!("connect from :{p}: {e}"));
            served_by(&whoami(&mut s).unwrap_or_else(|e| panic!("whoami from :{p}: {e}")))
        })
        .collect()
}

#[test]
fn tcp_to_the_vip_completes_and_replies_bypass_the_lb_nodes_with_vip_source() {
    if !root() {
        return;
    }
    let lab = Lab::new("dp_e2e_tcp");
    lab.route_vip_via(&[1, 2]);
    let vip = VIP.to_string();
    // On the backend nodes' uplinks: replies leave with source VIP:80, never with the backend
    // address. On the router's ports towards the LB nodes: nothing with source VIP ever goes
    // there (the positive control: requests to the VIP do).
    let be_vip: Vec<Capture> = lab
        .bes
        .iter()
        .map(|ns| {
            lab.capture(
                ns,
                "eth0",
                &format!("tcp and src host {vip} and src port 80"),
            )
        })
        .collect();
    let be_raw: Vec<Capture> = lab
        .bes
        .iter()
        .map(|ns| lab.capture(ns, "eth0", "tcp and src net 10.244.0.0/16"))
        .collect();
    let lb_from_vip: Vec<Capture> = (1..=2)
        .map(|i| lab.capture(&lab.router, &format!("lb{i}"), &format!("src host {vip}")))
        .collect();
    let lb_to_vip: Vec<Capture> = (1..=2)
        .map(|i| {
            lab.capture(
                &lab.router,
                &format!("lb{i}"),
                &format!("tcp and dst host {vip}"),
            )
        })
        .collect();

    let mut s = lab.connect(None).expect("connect to the VIP");
    let who = whoami(&mut s).expect("whoami");
    assert!(who.starts_with("be"), "answered by a backend: {who:?}");
    const DOWN: usize = 8 << 20;
    let body = request(
        &mut s,
        &format!("GET /blob/{DOWN} HTTP/1.1\r\nHost: vip\r\n\r\n"),
        &[],
    )
    .expect("download");
    assert_eq!(body.len(), DOWN);
    assert!(blob_ok(&body), "downloaded bytes follow the pattern");
    const UP: usize = 4 << 20;
    let upload: Vec<u8> = (0..UP).map(|k| (k * 7 % 256) as u8).collect();
    let answer = request(
        &mut s,
        &format!("POST /upload HTTP/1.1\r\nHost: vip\r\nContent-Length: {UP}\r\n\r\n"),
        &upload,
    )
    .expect("upload");
    assert_eq!(
        String::from_utf8_lossy(&answer).trim(),
        format!("{UP} {}", adler32(&upload)),
        "the backend received the upload intact"
    );
    drop(s);
    // More flows, so ECMP spreads them over both LB nodes.
    let served = whoami_flows(&lab);

    let be_vip: Vec<usize> = be_vip.into_iter().map(|c| c.lines().len()).collect();
    let be_raw: Vec<Vec<String>> = be_raw.into_iter().map(Capture::lines).collect();
    let lb_from_vip: Vec<Vec<String>> = lb_from_vip.into_iter().map(Capture::lines).collect();
    let lb_to_vip: Vec<usize> = lb_to_vip.into_iter().map(|c| c.lines().len()).collect();
    assert!(
        be_vip.iter().sum::<usize>() > 10,
        "replies with source VIP:80 leave the backend nodes: {be_vip:?}"
    );
    for (j, lines) in be_raw.iter().enumerate() {
        assert!(
            lines.is_empty(),
            "be{} sent replies from a backend address: {:?}",
            j + 1,
            &lines[..lines.len().min(5)]
        );
    }
    for (i, lines) in lb_from_vip.iter().enumerate() {
        assert!(
            lines.is_empty(),
            "traffic from the VIP went to lb{}: {:?}",
            i + 1,
            &lines[..lines.len().min(5)]
        );
    }
    assert!(
        lb_to_vip.iter().all(|n| *n > 0),
        "ECMP sent client traffic to both LB nodes: {lb_to_vip:?}"
    );
    for lb in &lab.lbs {
        assert!(
            lb.counter(Counter::Encap) > 0,
            "{} encapsulated",
            lb.ns.name()
        );
        assert_eq!(lb.counter(Counter::DropInternal), 0);
    }
    assert!(
        served
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "flows spread over several backends: {served:?}"
    );
}

#[test]
fn both_lb_nodes_send_a_flow_to_the_same_backend_even_mid_flow() {
    if !root() {
        return;
    }
    let lab = Lab::new("dp_e2e_same");
    let all = backends();
    let expected: Vec<SocketAddr> = SPORTS.map(|p| predict(&all, p)).collect();
    assert!(
        expected
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == all.len(),
        "the chosen ports exercise every backend: {expected:?}"
    );
    lab.route_vip_via(&[1]);
    let via1 = whoami_flows(&lab);
    lab.route_vip_via(&[2]);
    let via2 = whoami_flows(&lab);
    assert_eq!(via1, expected, "lb1 follows the Maglev table");
    assert_eq!(via2, expected, "lb2 picks the same backends as lb1");

    // A connection established through lb1 keeps working when the router moves it to lb2,
    // which has never seen it: lb2 picks the same backend and adds the DSR option to the first
    // packet it forwards (cilium/cilium#32091).
    lab.route_vip_via(&[1]);
    let mut s = lab.connect(Some(42000)).expect("connect");
    let first = whoami(&mut s).expect("whoami via lb1");
    let dsr_before = lab.lbs[1].counter(Counter::DsrOption);
    const DOWN: usize = 6 << 20;
    s.write_all(format!("GET /blob/{DOWN} HTTP/1.1\r\nHost: vip\r\n\r\n").as_bytes())
        .expect("request");
    let mut switched = false;
    let body = read_response(&mut s, |got| {
        if !switched && got >= DOWN / 4 {
            lab.route_vip_via(&[2]);
            switched = true;
        }
    })
    .expect("download across the LB switch");
    assert!(switched);
    assert_eq!(body.len(), DOWN);
    assert!(blob_ok(&body), "downloaded bytes follow the pattern");
    let second = whoami(&mut s).expect("whoami via lb2");
    assert_eq!(first, second, "same backend after the switch");
    assert!(
        lab.lbs[1].counter(Counter::DsrOption) > dsr_before,
        "lb2 put the DSR option on the first packet it saw of the moved flow"
    );
}

#[test]
fn removing_a_backend_moves_only_its_flows() {
    if !root() {
        return;
    }
    let mut lab = Lab::new("dp_e2e_remove");
    lab.route_vip_via(&[1]);
    // Long-lived connections, one per source port, each asked once who serves it.
    let mut conns: Vec<(TcpStream, SocketAddr)> = SPORTS
        .map(|p| {
            let mut s = lab.connect(Some(p)).expect("connect");
            let who = served_by(&whoami(&mut s).expect("whoami"));
            (s, who)
        })
        .collect();
    let all = backends();
    // Remove the backend that serves the most of them.
    let victim = all
        .iter()
        .map(|(_, b)| *b)
        .max_by_key(|b| conns.iter().filter(|(_, w)| w == b).count())
        .expect("backends");
    let moved = conns.iter().filter(|(_, w)| *w == victim).count();
    assert!(
        moved > 0 && moved < conns.len(),
        "victim {victim} serves some flows"
    );
    let rest: Vec<(usize, SocketAddr)> =
        all.iter().copied().filter(|(_, b)| *b != victim).collect();
    for lb in &mut lab.lbs {
        lb.program(&rest);
    }

    for (s, who) in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let again = whoami(s);
        if *who == victim {
            // Its packets now reach another backend, which has no such connection and resets
            // it (the reset comes back through reverse NAT, from the VIP).
            assert!(
                again.is_err(),
                "flow on the removed backend broke: {again:?}"
            );
        } else {
            let again = again.expect("surviving flow still answers");
            assert_eq!(served_by(&again), *who, "flow on a kept backend stays");
        }
    }
    let whos: Vec<SocketAddr> = conns.iter().map(|(_, w)| *w).collect();
    drop(conns);
    // The same 4-tuples again (the LB node remembers them): kept flows keep their backend,
    // the removed backend's flows go where the new table says.
    let after = whoami_flows(&lab);
    for ((p, b), a) in SPORTS.zip(whos).zip(after) {
        if b == victim {
            assert_eq!(
                a,
                predict(&rest, p),
                "moved flow from :{p} follows the new table"
            );
        } else {
            assert_eq!(a, b, "flow from :{p} stays on its backend");
        }
    }
}
