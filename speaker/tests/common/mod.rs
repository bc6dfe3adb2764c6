//! Shared helpers for the speaker's end-to-end tests: a two-namespace topology (speaker node and
//! peer router over one veth pair, IPv4 and IPv6), and a guard around a real `herald agent`
//! process queried over its control socket. Everything is torn down on drop.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_tests::{ChildProcess, ExaBgpNeighbor, Netns, TestLab, VethPair, wait_until_ok};
use nix::sys::signal::Signal;
use speaker::api::control::{Request, Response, request};
use speaker::bgp::io::instance::PeerStatus;
use speaker::bgp::route_rows::{RouteQuery, RouteRow};
use speaker::bgp::session::PeerReset;

/// Two namespaces joined by a veth pair: `node` (the speaker) and `peer` (the router).
pub struct Topology {
    pub lab: TestLab,
    pub node: Netns,
    pub peer: Netns,
    _link: VethPair,
    pub node_v4: &'static str,
    pub peer_v4: &'static str,
    pub node_v6: &'static str,
    pub peer_v6: &'static str,
}

impl Topology {
    pub fn new(test: &str) -> Self {
        let lab = TestLab::new(test).expect("test lab");
        let node = lab.netns("node").expect("node netns");
        let peer = lab.netns("peer").expect("peer netns");
        let link = VethPair::create(&node, "eth1", &peer, "eth1").expect("veth");
        for ns in [&node, &peer] {
            ns.link_up("lo").expect("lo up");
            ns.link_up("eth1").expect("eth1 up");
        }
        node.addr_add("eth1", "10.77.0.1/29").expect("addr");
        peer.addr_add("eth1", "10.77.0.2/29").expect("addr");
        // No duplicate address detection: daemons bind these at once.
        for (ns, a) in [(&node, "fd77::1/64"), (&peer, "fd77::2/64")] {
            ns.ip(&["addr", "add", a, "dev", "eth1", "nodad"])
                .expect("addr");
        }
        Self {
            lab,
            node,
            peer,
            _link: link,
            node_v4: "10.77.0.1",
            peer_v4: "10.77.0.2",
            node_v6: "fd77::1",
            peer_v6: "fd77::2",
        }
    }

    pub fn dir(&self, role: &str) -> PathBuf {
        self.lab.subdir(role).expect("subdir")
    }

    /// ExaBGP on the peer side (AS 65000) towards the speaker (AS 65001), IPv4 unicast.
    pub fn exabgp_neighbor(&self) -> ExaBgpNeighbor {
        ExaBgpNeighbor {
            peer_address: self.node_v4.to_owned(),
            local_address: self.peer_v4.to_owned(),
            local_as: 65000,
            peer_as: 65001,
            router_id: self.peer_v4.to_owned(),
            families: vec!["ipv4 unicast".to_owned()],
            ..Default::default()
        }
    }
}

/// `bgp:` lines for a speaker that accepts everything and originates 192.0.2.0/24.
pub const ACCEPT_ALL_AND_STATIC: &str =
    "  importPolicy: accept-all\n  staticRoutes:\n    - prefix: 192.0.2.0/24\n";

/// A running `herald agent` in a namespace.
pub struct Speaker {
    pub process: Option<ChildProcess>,
    pub config: PathBuf,
    pub socket: PathBuf,
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Speaker {
    /// Writes `yaml` (with `{socket}` replaced by the control socket path) and starts the speaker.
    pub fn start(ns: &Netns, dir: &Path, yaml: &str) -> Self {
        let socket = dir.join("speaker.sock");
        let config = dir.join("speaker.yaml");
        std::fs::write(&config, yaml.replace("{socket}", &socket.to_string_lossy()))
            .expect("write config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut me = Self {
            process: None,
            config,
            socket,
            dir: dir.to_owned(),
            runtime,
        };
        me.spawn(ns);
        me
    }

    pub fn spawn(&mut self, ns: &Netns) {
        let _ = std::fs::remove_file(&self.socket);
        let config = self.config.to_string_lossy().into_owned();
        let mut cmd = ns.command(env!("CARGO_BIN_EXE_herald"));
        cmd.args(["agent", "--config", &config]);
        cmd.env("RUST_LOG", "speaker=debug,info");
        let process = ChildProcess::spawn("speaker", cmd, &self.dir).expect("spawn speaker");
        self.process = Some(process);
        wait_until_ok("speaker control socket", Duration::from_secs(10), || {
            self.peers().map(|_| ())
        })
        .unwrap_or_else(|e| panic!("speaker did not start: {e}\n{}", self.log()));
    }

    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(4000))
            .unwrap_or_default()
    }

    pub fn peers(&self) -> Result<Vec<PeerStatus>, String> {
        match self
            .runtime
            .block_on(request(&self.socket, &Request::Peers))
            .map_err(|e| e.to_string())?
        {
            Response::Peers { peers } => Ok(peers),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    pub fn peer(&self, address: &str) -> PeerStatus {
        let ip: std::net::IpAddr = address.parse().expect("ip");
        self.peers()
            .expect("peers")
            .into_iter()
            .find(|p| p.address == ip)
            .unwrap_or_else(|| panic!("peer {address} not configured"))
    }

    pub fn wait_state(&self, address: &str, state: &str, timeout: Duration) -> PeerStatus {
        let ip: std::net::IpAddr = address.parse().expect("ip");
        wait_until_ok(&format!("speaker peer {address} {state}"), timeout, || {
            let peers = self.peers()?;
            match peers.into_iter().find(|p| p.address == ip) {
                Some(p) if p.state == state => Ok(p),
                Some(p) => Err(format!("{} ({:?})", p.state, p.last_error)),
                None => Err("not configured".into()),
            }
        })
        .unwrap_or_else(|e| panic!("{e}\nspeaker log:\n{}", self.log()))
    }

    /// The BMP collectors and their counters.
    pub fn bmp_collectors(&self) -> Result<Vec<speaker::bmp::hub::CollectorStatus>, String> {
        match self
            .runtime
            .block_on(request(&self.socket, &Request::Bmp))
            .map_err(|e| e.to_string())?
        {
            Response::Bmp { collectors } => Ok(collectors),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// `speaker reset`, through the control socket.
    pub fn reset(&self, peer: &str, kind: PeerReset) -> Result<Response, String> {
        self.runtime
            .block_on(request(
                &self.socket,
                &Request::Reset {
                    peer: peer.to_owned(),
                    kind,
                },
            ))
            .map_err(|e| e.to_string())
    }

    /// Routes advertised to (or received from) every peer.
    pub fn routes(&self, received: bool) -> Result<Vec<RouteRow>, String> {
        let query = RouteQuery {
            received,
            peer: None,
            family: None,
        };
        match self
            .runtime
            .block_on(request(&self.socket, &Request::Routes { query }))
            .map_err(|e| e.to_string())?
        {
            Response::Routes { routes } => Ok(routes),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// Rewrites the configuration and sends SIGHUP.
    pub fn reconfigure(&self, yaml: &str) {
        std::fs::write(
            &self.config,
            yaml.replace("{socket}", &self.socket.to_string_lossy()),
        )
        .expect("write config");
        if let Some(p) = &self.process {
            p.signal(Signal::SIGHUP).expect("SIGHUP");
        }
    }

    /// Crashes the speaker (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.signal(Signal::SIGKILL).expect("SIGKILL");
            let _ = p.wait_exit(Duration::from_secs(5));
        }
    }
}

/// Minimal speaker YAML: `peers` and `extra_bgp` are raw YAML fragments (indented for `bgp:`).
pub fn speaker_yaml(router_id: &str, asn: u32, peers: &str, extra_bgp: &str) -> String {
    format!(
        "node:\n  name: node\n  routerId: {router_id}\nbgp:\n  localASN: {asn}\n  listen:\n    address: \"::\"\n    port: 179\n{extra_bgp}  peers:\n{peers}api:\n  controlSocket: {{socket}}\n"
    )
}
