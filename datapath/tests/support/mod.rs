//! The end-to-end topology the datapath's netns tests share (`e2e.rs` drives the programs
//! through the loader, `driver.rs` through the `Datapath` library): client, router, two LB nodes
//! and two backend nodes in network namespaces, the backends' HTTP servers, packet captures and
//! the HTTP client helpers. Everything is an RAII guard; namespaces and processes go on drop, also on failure.
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
//! (room for the Geneve headers; [`Net::with_mtu`] builds it with another underlay MTU). With
//! [`Underlay::V6`] ([`Net::build`]) those links carry IPv6 addresses only (fd00:0:N::/64): the
//! node addresses are IPv6, Geneve travels in outer IPv6, and the nodes' IPv4 routes (replies
//! to the client from an IPv4 VIP) point at the router's IPv6 address (`via inet6`). The client
//! and the backends are dual-stack: VIP6 (fd00:96::10) is served by backends on fd00:244:N::. Backend nodes carry the VIP and their backend addresses on
//! `lo` (arp_ignore=1, arp_announce=2) and run `e2e_server.py`. The client sends with checksum
//! offload off so the frames the LB nodes rewrite carry complete checksums.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datapath::loader::{LoadConfig, Loader};
use datapath_common::{Config, FAMILY_V4, FAMILY_V6, IPPROTO_TCP, ServiceKey, ServiceValue};
use herald_tests::{ChildProcess, Netns, TestLab, VethPair, in_netns, wait_until_ok};
use socket2::{Domain, SockAddr, Socket, Type};

pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub(crate) const VIP_PORT: u16 = 80;
pub(crate) const BACKEND_PORT: u16 = 8080;
pub(crate) const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
pub(crate) const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10);
pub(crate) const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 2);

/// The address family of the nodes' underlay links (and so of the outer Geneve headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Underlay {
    /// IPv4 /24s (10.0.N.0/24).
    V4,
    /// IPv6 /64s only (fd00:0:N::/64).
    V6,
}
/// The underlay MTU of [`Net::new`]: room for the Geneve headers on top of 1500.
pub(crate) const UNDERLAY_MTU: u16 = 1600;
pub(crate) const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e_server.py");
pub(crate) const PYTHON: &str = "/usr/bin/python3";

pub(crate) fn root() -> bool {
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

/// Joins `ns`'s `eth0` to the router's `port` with the underlay MTU `mtu` (`addrs`: the node's
/// address and the router port's, its default gateway: a /24 or a /64), with reverse-path
/// filtering off on the router port. Over an IPv6 underlay the node's IPv4 default route (for
/// replies from an IPv4 VIP) goes via the router's IPv6 address.
fn attach_to_router(
    router: &Netns,
    port: &str,
    ns: &Netns,
    (node, gw): (IpAddr, IpAddr),
    mtu: u16,
) -> VethPair {
    let link = VethPair::create(router, port, ns, "eth0").expect("veth");
    router.set_mtu(port, mtu.into()).expect("mtu");
    ns.set_mtu("eth0", mtu.into()).expect("mtu");
    let len = if node.is_ipv6() { 64 } else { 24 };
    router.addr_add(port, &format!("{gw}/{len}")).expect("addr");
    ns.addr_add("eth0", &format!("{node}/{len}")).expect("addr");
    let gw = gw.to_string();
    ns.route_add(&["default", "via", &gw]).expect("route");
    if node.is_ipv6() {
        ip(ns, &["-4", "route", "add", "default", "via", "inet6", &gw]);
    }
    sysctl(router, &format!("net.ipv4.conf.{port}.rp_filter"), "0");
    link
}

/// Underlay address of LB node `i` (1-based) and of its router port, over `underlay`.
pub(crate) fn lb_node(i: usize, underlay: Underlay) -> (IpAddr, IpAddr) {
    match underlay {
        Underlay::V4 => {
            let (n, g) = lb_addr(i);
            (n.into(), g.into())
        }
        Underlay::V6 => (v6_node(i as u16, 2), v6_node(i as u16, 1)),
    }
}

/// Underlay address of backend node `j` (1-based) and of its router port, over `underlay`.
pub(crate) fn be_node(j: usize, underlay: Underlay) -> (IpAddr, IpAddr) {
    match underlay {
        Underlay::V4 => {
            let (n, g) = be_addr(j);
            (n.into(), g.into())
        }
        Underlay::V6 => (v6_node(0x10 + j as u16, 2), v6_node(0x10 + j as u16, 1)),
    }
}

/// fd00:0:NET::HOST.
fn v6_node(net: u16, host: u16) -> IpAddr {
    Ipv6Addr::new(0xfd00, 0, net, 0, 0, 0, 0, host).into()
}

/// Underlay IPv4 address of LB node `i` (1-based) and of its router port.
pub(crate) fn lb_addr(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, 0, i as u8, 2),
        Ipv4Addr::new(10, 0, i as u8, 1),
    )
}

/// The service key of (VIP, port) for TCP.
fn tcp_key(vip: IpAddr, port: u16) -> ServiceKey {
    let (addr, family) = match vip {
        IpAddr::V4(a) => {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&a.octets());
            (k, FAMILY_V4)
        }
        IpAddr::V6(a) => (a.octets(), FAMILY_V6),
    };
    ServiceKey {
        addr,
        port,
        proto: IPPROTO_TCP,
        family,
    }
}

/// What a backend node's identity is in the config map: its underlay address of either family.
pub(crate) fn identity(node: IpAddr, mtu: u16, maglev_m: u32) -> Config {
    let mut c = Config {
        mtu,
        maglev_m,
        ..Config::default()
    };
    match node {
        IpAddr::V4(a) => c.node_addr = a.octets(),
        IpAddr::V6(a) => c.node_addr6 = a.octets(),
    }
    c
}

/// Underlay address of backend node `j` (1-based) and of its router port.
pub(crate) fn be_addr(j: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, 0, 10 + j as u8, 2),
        Ipv4Addr::new(10, 0, 10 + j as u8, 1),
    )
}

/// The backends: two per backend node, `(node index, address)`.
pub(crate) fn backends() -> Vec<(usize, SocketAddr)> {
    let mut v = Vec::new();
    for j in 1..=2usize {
        for host in [10u8, 11] {
            let a = Ipv4Addr::new(10, 244, j as u8, host);
            v.push((j, SocketAddr::from((a, BACKEND_PORT))));
        }
    }
    v
}

/// The IPv6 backends of VIP6: two per backend node (fd00:244:N::10 and ::11).
pub(crate) fn backends6() -> Vec<(usize, SocketAddr)> {
    let mut v = Vec::new();
    for j in 1..=2usize {
        for host in [0x10u16, 0x11] {
            let a = Ipv6Addr::new(0xfd00, 0x244, j as u16, 0, 0, 0, 0, host);
            v.push((j, SocketAddr::from((a, BACKEND_PORT))));
        }
    }
    v
}

/// The topology without the LB nodes' programs. Field order is drop order: servers and loaders
/// before namespaces.
pub(crate) struct Net {
    _servers: Vec<ChildProcess>,
    /// The backend nodes' loaders when [`Net::new`] attached their TC programs (index 0: be1).
    pub(crate) be_loaders: Vec<Loader>,
    _links: Vec<VethPair>,
    /// The client.
    pub(crate) client: Netns,
    /// The router.
    pub(crate) router: Netns,
    /// LB node namespaces (index 0: lb1).
    pub(crate) lbs: Vec<Netns>,
    /// Backend node namespaces (index 0: be1).
    pub(crate) bes: Vec<Netns>,
    /// The test's namespace prefix and scratch directory.
    pub(crate) lab: TestLab,
    /// The underlay MTU (LB and backend nodes' links to the router).
    pub(crate) mtu: u16,
    /// The underlay's address family.
    pub(crate) underlay: Underlay,
}

pub(crate) fn ip(ns: &Netns, args: &[&str]) {
    ns.ip(args)
        .unwrap_or_else(|e| panic!("ip -n {} {args:?}: {e}", ns.name()));
}

pub(crate) fn sysctl(ns: &Netns, key: &str, value: &str) {
    ns.sysctl(key, value)
        .unwrap_or_else(|e| panic!("sysctl {key}={value} in {}: {e}", ns.name()));
}

impl Net {
    /// Builds the topology. With `backend_tc`, the backend nodes' TC programs are loaded and
    /// attached here (in-process); without, the caller attaches them (e.g. with `Datapath`).
    pub(crate) fn new(test: &str, backend_tc: bool) -> Self {
        Self::with_mtu(test, backend_tc, UNDERLAY_MTU)
    }

    /// [`Net::new`] with an underlay MTU of `mtu` (the client's link stays at 1500).
    pub(crate) fn with_mtu(test: &str, backend_tc: bool, mtu: u16) -> Self {
        Self::build(test, backend_tc, mtu, Underlay::V4)
    }

    /// [`Net::with_mtu`] over an underlay of the given family.
    pub(crate) fn build(test: &str, backend_tc: bool, mtu: u16, underlay: Underlay) -> Self {
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
        sysctl(&router, "net.ipv6.conf.all.forwarding", "1");
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
        router.addr_add("c0", "fd00:c::1/64").expect("addr");
        client
            .addr_add("eth0", &format!("{CLIENT6}/64"))
            .expect("addr");
        client
            .route_add(&["default", "via", "fd00:c::1"])
            .expect("route");
        // Complete checksums on the client's frames (see the module comment).
        client
            .exec("ethtool", &["-K", "eth0", "tx", "off"])
            .expect("ethtool -K eth0 tx off");

        for (i, ns) in lb_ns.iter().enumerate() {
            let i = i + 1;
            links.push(attach_to_router(
                &router,
                &format!("lb{i}"),
                ns,
                lb_node(i, underlay),
                mtu,
            ));
        }
        for (j, ns) in bes.iter().enumerate() {
            let j = j + 1;
            links.push(attach_to_router(
                &router,
                &format!("be{j}"),
                ns,
                be_node(j, underlay),
                mtu,
            ));
            // The VIP and the backend addresses live on lo; never answer ARP for them.
            for key in ["all", "eth0"] {
                sysctl(ns, &format!("net.ipv4.conf.{key}.arp_ignore"), "1");
                sysctl(ns, &format!("net.ipv4.conf.{key}.arp_announce"), "2");
            }
            ns.addr_add("lo", &format!("{VIP}/32")).expect("addr");
            ns.addr_add("lo", &format!("{VIP6}/128")).expect("addr");
            for (_, b) in backends()
                .iter()
                .chain(&backends6())
                .filter(|(n, _)| *n == j)
            {
                let len = if b.is_ipv6() { 128 } else { 32 };
                ns.addr_add("lo", &format!("{}/{len}", b.ip()))
                    .expect("addr");
            }
        }

        // Backend nodes: TC decap + reverse NAT on the uplink, and the HTTP servers.
        let mut be_loaders = Vec::new();
        let mut servers = Vec::new();
        for (j, ns) in bes.iter().enumerate() {
            if backend_tc {
                let loader = in_netns(ns, || {
                    let mut l = Loader::load(&LoadConfig {
                        maglev_m: 251,
                        pin_dir: None,
                        ..LoadConfig::default()
                    })
                    .expect("load eBPF");
                    // What the agent programs on a backend node: its identity (Geneve must be
                    // addressed to it; the MTU sizes the MSS of its SYN-ACKs), the LB nodes
                    // allowed to send it Geneve, and the service the DSR option must name.
                    l.set_config(&identity(be_node(j + 1, underlay).0, mtu, 251))
                        .expect("config");
                    let lbs: Vec<IpAddr> = (1..=2).map(|i| lb_node(i, underlay).0).collect();
                    l.set_lb_nodes(&lbs).expect("LB nodes");
                    for vip in [IpAddr::from(VIP), IpAddr::from(VIP6)] {
                        l.put_service(&tcp_key(vip, VIP_PORT), &ServiceValue::default())
                            .expect("service");
                    }
                    l.attach_tc("eth0").expect("attach TC");
                    l
                });
                be_loaders.push(loader);
            }
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

        let lab = Self {
            _servers: servers,
            be_loaders,
            _links: links,
            client,
            router,
            lbs: lb_ns,
            bes,
            lab,
            mtu,
            underlay,
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
    pub(crate) fn route_vip_via(&self, lbs: &[usize]) {
        self.route_via(VIP.into(), lbs);
    }

    /// Routes `vip` (either family) through the given LB nodes' underlay addresses (an IPv4
    /// VIP over an IPv6 underlay: `via inet6`).
    pub(crate) fn route_via(&self, vip: IpAddr, lbs: &[usize]) {
        let prefix = format!("{vip}/{}", if vip.is_ipv6() { 128 } else { 32 });
        let family = if vip.is_ipv6() { "-6" } else { "-4" };
        let mut args = vec![family, "route", "replace", prefix.as_str()];
        let hops: Vec<IpAddr> = lbs.iter().map(|i| lb_node(*i, self.underlay).0).collect();
        let hops: Vec<String> = hops.iter().map(ToString::to_string).collect();
        for h in &hops {
            args.extend_from_slice(&["nexthop", "via"]);
            if vip.is_ipv4() && self.underlay == Underlay::V6 {
                args.push("inet6");
            }
            args.push(h.as_str());
        }
        ip(&self.router, &args);
    }

    /// A TCP connection from the client to VIP:80, from `sport` when given. Closing it sends a
    /// RST (linger 0) so the same 4-tuple can be reused at once, without TIME_WAIT anywhere.
    pub(crate) fn connect(&self, sport: Option<u16>) -> std::io::Result<TcpStream> {
        self.connect_to(VIP.into(), sport)
    }

    /// [`Net::connect`] to `vip`:80 (either family; from [`CLIENT6`] for an IPv6 VIP).
    pub(crate) fn connect_to(&self, vip: IpAddr, sport: Option<u16>) -> std::io::Result<TcpStream> {
        in_netns(&self.client, || {
            let (domain, client) = match vip {
                IpAddr::V4(_) => (Domain::IPV4, IpAddr::from(CLIENT)),
                IpAddr::V6(_) => (Domain::IPV6, IpAddr::from(CLIENT6)),
            };
            let s = Socket::new(domain, Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.set_linger(Some(Duration::ZERO))?;
            if let Some(p) = sport {
                s.bind(&SockAddr::from(SocketAddr::new(client, p)))?;
            }
            let vip = SockAddr::from(SocketAddr::new(vip, VIP_PORT));
            s.connect_timeout(&vip, Duration::from_secs(10))?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.set_write_timeout(Some(Duration::from_secs(30)))?;
            Ok(s.into())
        })
    }

    /// Starts tcpdump on `dev` in `ns` and waits until it listens.
    pub(crate) fn capture(&self, ns: &Netns, dev: &str, filter: &str) -> Capture {
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
pub(crate) struct Capture {
    p: ChildProcess,
}

impl Capture {
    pub(crate) fn lines(mut self) -> Vec<String> {
        // Let frames in flight reach the capture before stopping it.
        std::thread::sleep(Duration::from_millis(300));
        self.p.stop().expect("stop tcpdump");
        read_lines(self.p.stdout_log())
    }
}

pub(crate) fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sends one request and reads one response (`Content-Length` framed); returns the body.
pub(crate) fn request(s: &mut TcpStream, req: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    read_response(s, |_| {})
}

/// Reads a response; `progress` is called with the body bytes read so far after each read.
pub(crate) fn read_response(
    s: &mut TcpStream,
    mut progress: impl FnMut(usize),
) -> std::io::Result<Vec<u8>> {
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

pub(crate) fn whoami(s: &mut TcpStream) -> std::io::Result<String> {
    let body = request(s, "GET /whoami HTTP/1.1\r\nHost: vip\r\n\r\n", &[])?;
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

pub(crate) fn adler32(data: &[u8]) -> u32 {
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

pub(crate) fn blob_ok(body: &[u8]) -> bool {
    body.iter()
        .enumerate()
        .all(|(k, &b)| usize::from(b) == k % 251)
}

/// `"be1 10.244.1.10"` → the backend address that answered.
pub(crate) fn served_by(answer: &str) -> SocketAddr {
    let ip: Ipv4Addr = answer
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected whoami answer {answer:?}"));
    SocketAddr::from((ip, BACKEND_PORT))
}

pub(crate) const SPORTS: std::ops::Range<u16> = 41000..41032;

/// One whoami per source port on a fresh connection each; returns who answered.
pub(crate) fn whoami_flows(lab: &Net) -> Vec<SocketAddr> {
    SPORTS
        .map(|p| {
            let mut s = lab
                .connect(Some(p))
                .unwrap_or_else(|e| panic!("connect from :{p}: {e}"));
            served_by(&whoami(&mut s).unwrap_or_else(|e| panic!("whoami from :{p}: {e}")))
        })
        .collect()
}
