//! The session interop matrix: the speaker against each of BIRD 2, FRR, GoBGP and ExaBGP, all
//! features of the checklist driven by one table ([`PEERINGS`]) and one scenario
//! ([`run_matrix`]); each daemon contributes only its configuration and how to read its state.
//!
//! Per daemon, one topology (two namespaces, one veth) carries five peerings: IPv4 and IPv6 with
//! the speaker active (the daemon passive) and with the speaker passive (the daemon connecting),
//! TCP MD5 with the right key on two of them, and a fifth IPv4 peering whose keys differ. The
//! scenario then checks, in order: every good session establishes on both sides; the static
//! test prefix of the session's family is in the daemon's RIB, learned over that session; the
//! wrong-key session stays down (and the daemon's kernel counts MD5 failures); kill -9 of the
//! speaker with graceful restart leaves the prefix in the daemon's RIB, marked stale, until the
//! restarted speaker sends End-of-RIB, with no withdrawal in between; a configuration reload
//! that removes the static routes withdraws them without resetting any session; freezing the
//! daemon (SIGSTOP) makes our hold timer expire (we send NOTIFICATION 4/0).
//!
//! Needs root and the daemons from `scripts/setup.sh`.

mod common;

use std::time::{Duration, Instant};

use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{
    Bird, ExaBgp, ExaBgpNeighbor, Frr, FrrConfig, GoBgp, Netns, ProcessId, end_of_rib_count,
    wait_until_ok, withdrawn_prefixes,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const UP: Duration = Duration::from_secs(40);
const KEY: &str = "s3cret";
const WRONG_KEY: &str = "wrong-key";
const PREFIX_V4: &str = "192.0.2.0/24";
const PREFIX_V6: &str = "2001:db8:100::/48";
/// Our graceful restart time: the helpers keep our routes this long while we are down. Short, so
/// that a daemon which waits for us to reconnect (FRR) does not stall the test for long.
const RESTART: u16 = 20;
/// Our proposed hold time: short enough to see expiry quickly, long enough for a loaded machine.
const HOLD: u16 = 6;

/// TCP MD5 on a peering: none, the same key on both sides, or different keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Md5 {
    Off,
    Right,
    Wrong,
}

/// One BGP session between the speaker (`node`) and the daemon (`peer`).
#[derive(Clone, Copy, Debug)]
struct Peering {
    /// Short name (BIRD protocol names use it too).
    label: &'static str,
    /// The speaker's address.
    node: &'static str,
    /// The daemon's address.
    peer: &'static str,
    /// The speaker connects and the daemon only listens; otherwise the other way round.
    speaker_active: bool,
    md5: Md5,
}

impl Peering {
    fn v6(&self) -> bool {
        self.node.contains(':')
    }

    /// The static prefix the session carries.
    fn prefix(&self) -> &'static str {
        if self.v6() { PREFIX_V6 } else { PREFIX_V4 }
    }

    /// The key the daemon uses.
    fn daemon_key(&self) -> Option<&'static str> {
        match self.md5 {
            Md5::Off => None,
            Md5::Right => Some(KEY),
            Md5::Wrong => Some(WRONG_KEY),
        }
    }

    /// Sessions expected to come up.
    fn good(&self) -> bool {
        self.md5 != Md5::Wrong
    }

    /// Whether the daemon waits for the speaker. The wrong-key pair both connect, so both the
    /// speaker's outgoing SYN and its listener's check are exercised.
    fn daemon_passive(&self) -> bool {
        self.speaker_active && self.good()
    }
}

/// The matrix. Addresses: node side .1/.4/.6 and fd77::1/::4, daemon side .2/.3/.5, fd77::2/::3.
const PEERINGS: [Peering; 5] = [
    Peering {
        label: "v4act",
        node: "10.77.0.1",
        peer: "10.77.0.2",
        speaker_active: true,
        md5: Md5::Right,
    },
    Peering {
        label: "v4pas",
        node: "10.77.0.4",
        peer: "10.77.0.3",
        speaker_active: false,
        md5: Md5::Off,
    },
    Peering {
        label: "v6act",
        node: "fd77::1",
        peer: "fd77::2",
        speaker_active: true,
        md5: Md5::Off,
    },
    Peering {
        label: "v6pas",
        node: "fd77::4",
        peer: "fd77::3",
        speaker_active: false,
        md5: Md5::Right,
    },
    Peering {
        label: "v4bad",
        node: "10.77.0.6",
        peer: "10.77.0.5",
        speaker_active: true,
        md5: Md5::Wrong,
    },
];

fn good_peerings() -> impl Iterator<Item = &'static Peering> {
    PEERINGS.iter().filter(|p| p.good())
}

/// What the scenario needs from a daemon.
trait Daemon {
    fn name(&self) -> &'static str;
    /// Whether the daemon sees the session Established.
    fn established(&self, p: &Peering) -> Result<bool, String>;
    /// The daemon's copy of `p.prefix()` learned over `p`: `None` if absent, else whether it is
    /// marked stale.
    fn route(&self, p: &Peering) -> Result<Option<bool>, String>;
    /// The process to freeze with SIGSTOP (the one running BGP).
    fn bgp_process(&mut self) -> ProcessId;
    /// The daemon's own account of the session, for failure messages.
    fn describe(&self, p: &Peering) -> String;
    /// Whether the daemon acts as graceful restart helper (keeps a restarting peer's routes as
    /// stale in a RIB).
    fn gr_helper(&self) -> bool {
        true
    }
    /// Whether, as helper, the daemon keeps connecting to a restarting peer. If not, a session
    /// on which the speaker is passive only returns when the daemon's restart timer expires,
    /// after the stale routes are gone.
    fn helper_connects(&self) -> bool {
        true
    }
    /// ExaBGP's message log, to check exactly what the restarted speaker sent.
    fn message_log(&self) -> Option<&ExaBgp> {
        None
    }
}

struct BirdDaemon(Bird);

impl BirdDaemon {
    fn start(ns: &Netns, dir: &std::path::Path) -> Self {
        let mut conf = "router id 10.77.0.2;\nprotocol device {}\n".to_owned();
        for p in &PEERINGS {
            let family = if p.v6() { "ipv6" } else { "ipv4" };
            let passive = if p.daemon_passive() { "on" } else { "off" };
            let password = p
                .daemon_key()
                .map(|k| format!("password \"{k}\"; "))
                .unwrap_or_default();
            conf.push_str(&format!(
                "protocol bgp {l} {{ local {peer} as 65000; neighbor {node} as 65001; passive {passive}; \
                 {password}hold time 9; error wait time 1, 5; connect retry time 1; start delay time 1; \
                 graceful restart on; {family} {{ import all; export none; }}; }}\n",
                l = p.label,
                peer = p.peer,
                node = p.node,
            ));
        }
        Self(Bird::start(ns, dir, &conf).expect("bird"))
    }
}

impl Daemon for BirdDaemon {
    fn name(&self) -> &'static str {
        "BIRD"
    }

    fn describe(&self, p: &Peering) -> String {
        self.0
            .birdc(&format!("show protocols all {}", p.label))
            .unwrap_or_else(|e| e.to_string())
    }

    fn established(&self, p: &Peering) -> Result<bool, String> {
        let state = self.0.bgp_state(p.label).map_err(|e| e.to_string())?;
        Ok(state.as_deref() == Some("Established"))
    }

    fn route(&self, p: &Peering) -> Result<Option<bool>, String> {
        // BIRD has no per-route stale flag in `show route`; while it keeps a restarting
        // neighbour's routes its protocol reports "Neighbor graceful restart active".
        let routes = self.0.routes().map_err(|e| e.to_string())?;
        let present = routes
            .get(p.prefix())
            .is_some_and(|rs| rs.iter().any(|r| r.protocol == p.label));
        if !present {
            return Ok(None);
        }
        let detail = self
            .0
            .birdc(&format!("show protocols all {}", p.label))
            .map_err(|e| e.to_string())?;
        Ok(Some(detail.contains("graceful restart active")))
    }

    fn bgp_process(&mut self) -> ProcessId {
        self.0.process().id()
    }
}

struct FrrDaemon(Frr);

impl FrrDaemon {
    fn start(ns: &Netns, dir: &std::path::Path) -> Self {
        let mut conf = "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
                        no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n \
                        bgp graceful-restart\n bgp graceful-restart stalepath-time 120\n"
            .to_owned();
        let mut v6 = String::new();
        for p in &PEERINGS {
            let n = p.node;
            conf.push_str(&format!(
                " neighbor {n} remote-as 65001\n neighbor {n} timers connect 1\n neighbor {n} update-source {}\n",
                p.peer
            ));
            if p.daemon_passive() {
                conf.push_str(&format!(" neighbor {n} passive\n"));
            }
            if let Some(k) = p.daemon_key() {
                conf.push_str(&format!(" neighbor {n} password {k}\n"));
            }
            if p.v6() {
                v6.push_str(&format!("  neighbor {n} activate\n"));
            }
        }
        conf.push_str(&format!(
            " address-family ipv6 unicast\n{v6} exit-address-family\n!\n"
        ));
        Self(Frr::start(ns, dir, &FrrConfig::bgp(conf)).expect("frr"))
    }
}

impl Daemon for FrrDaemon {
    fn name(&self) -> &'static str {
        "FRR"
    }

    fn describe(&self, p: &Peering) -> String {
        self.0
            .vtysh(&format!("show bgp neighbors {}", p.node))
            .unwrap_or_else(|e| e.to_string())
    }

    /// FRR 8.4 waits for a restarting neighbour to connect ("BGP state = Active (NSF passive)")
    /// until the restart time runs out: a passive speaker loses its routes at FRR across a
    /// restart. Peer FRR with the speaker active when graceful restart matters.
    fn helper_connects(&self) -> bool {
        false
    }

    fn established(&self, p: &Peering) -> Result<bool, String> {
        let state = self.0.peer_state(p.node).map_err(|e| e.to_string())?;
        Ok(state.as_deref() == Some("Established"))
    }

    fn route(&self, p: &Peering) -> Result<Option<bool>, String> {
        let afi = if p.v6() { "ipv6" } else { "ipv4" };
        let v = self
            .0
            .vtysh_json(&format!("show bgp {afi} unicast {} json", p.prefix()))
            .map_err(|e| e.to_string())?;
        let paths = v.get("paths").and_then(Value::as_array);
        let path = paths
            .into_iter()
            .flatten()
            .find(|path| path.pointer("/peer/peerId").and_then(Value::as_str) == Some(p.node));
        Ok(path.map(|path| path.get("stale").and_then(Value::as_bool) == Some(true)))
    }

    fn bgp_process(&mut self) -> ProcessId {
        self.0
            .processes()
            .into_iter()
            .find(|(name, _)| name == "bgpd")
            .map(|(_, id)| id)
            .expect("bgpd running")
    }
}

struct GoBgpDaemon(GoBgp);

impl GoBgpDaemon {
    fn start(ns: &Netns, dir: &std::path::Path) -> Self {
        let mut conf =
            "[global.config]\n  as = 65000\n  router-id = \"10.77.0.2\"\n  port = 179\n".to_owned();
        for p in &PEERINGS {
            let family = if p.v6() {
                "ipv6-unicast"
            } else {
                "ipv4-unicast"
            };
            let password = p
                .daemon_key()
                .map(|k| format!("    auth-password = \"{k}\"\n"))
                .unwrap_or_default();
            conf.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{node}\"\n    peer-as = 65001\n{password}\
                   [neighbors.transport.config]\n    local-address = \"{peer}\"\n    passive-mode = {passive}\n\
                   [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
                   [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n\
                   [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n\
                     [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
                node = p.node,
                peer = p.peer,
                passive = p.daemon_passive(),
            ));
        }
        Self(GoBgp::start(ns, dir, &conf).expect("gobgpd"))
    }
}

impl Daemon for GoBgpDaemon {
    fn name(&self) -> &'static str {
        "GoBGP"
    }

    fn describe(&self, p: &Peering) -> String {
        self.0
            .gobgp(&["neighbor", p.node])
            .unwrap_or_else(|e| e.to_string())
    }

    fn established(&self, p: &Peering) -> Result<bool, String> {
        let neighbors = self.0.neighbors().map_err(|e| e.to_string())?;
        Ok(neighbors
            .iter()
            .any(|n| n.address == p.node && n.state == "Established"))
    }

    fn route(&self, p: &Peering) -> Result<Option<bool>, String> {
        let family = if p.v6() { "ipv6" } else { "ipv4" };
        let rib = self.0.rib(family).map_err(|e| e.to_string())?;
        let Some(paths) = rib.get(p.prefix()) else {
            return Ok(None);
        };
        match paths
            .iter()
            .find(|path| path.neighbor.as_deref() == Some(p.node))
        {
            Some(path) => Ok(Some(path.stale)),
            None => Err(format!("no path from {} in {paths:?}", p.node)),
        }
    }

    fn bgp_process(&mut self) -> ProcessId {
        self.0.process().id()
    }
}

struct ExaBgpDaemon(ExaBgp);

impl ExaBgpDaemon {
    fn start(ns: &Netns, dir: &std::path::Path) -> Self {
        let neighbors: Vec<ExaBgpNeighbor> = PEERINGS
            .iter()
            .map(|p| ExaBgpNeighbor {
                peer_address: p.node.to_owned(),
                local_address: p.peer.to_owned(),
                local_as: 65000,
                peer_as: 65001,
                router_id: "10.77.0.2".to_owned(),
                families: vec![
                    if p.v6() {
                        "ipv6 unicast"
                    } else {
                        "ipv4 unicast"
                    }
                    .to_owned(),
                ],
                passive: p.daemon_passive(),
                md5_password: p.daemon_key().map(str::to_owned),
                hold_time: Some(9),
                graceful_restart: Some(120),
            })
            .collect();
        Self(ExaBgp::start(ns, dir, &neighbors).expect("exabgp"))
    }
}

impl Daemon for ExaBgpDaemon {
    fn name(&self) -> &'static str {
        "ExaBGP"
    }

    fn describe(&self, p: &Peering) -> String {
        let messages = self.0.messages_from(p.node).unwrap_or_default();
        let tail = messages.len().saturating_sub(5);
        format!("{:?}", &messages[tail..])
    }

    fn established(&self, p: &Peering) -> Result<bool, String> {
        let states = self.0.peer_states().map_err(|e| e.to_string())?;
        Ok(states.get(p.node).map(String::as_str) == Some("up"))
    }

    fn route(&self, p: &Peering) -> Result<Option<bool>, String> {
        let prefixes = self
            .0
            .received_prefixes_from(p.node)
            .map_err(|e| e.to_string())?;
        Ok(prefixes.contains(p.prefix()).then_some(false))
    }

    fn bgp_process(&mut self) -> ProcessId {
        self.0.process().id()
    }

    /// ExaBGP keeps no RIB of received routes (it passes messages to its API processes), so it
    /// has no helper role: the scenario checks the restarting side instead (End-of-RIB after
    /// the restart, no withdrawal).
    fn gr_helper(&self) -> bool {
        false
    }

    fn message_log(&self) -> Option<&ExaBgp> {
        Some(&self.0)
    }
}

/// Adds the matrix's extra addresses to the two-namespace topology.
fn matrix_topology(test: &str) -> Topology {
    let t = Topology::new(test);
    for (ns, addrs) in [
        (&t.node, ["10.77.0.4/29", "10.77.0.6/29", "fd77::4/64"]),
        (&t.peer, ["10.77.0.3/29", "10.77.0.5/29", "fd77::3/64"]),
    ] {
        for a in addrs {
            ns.ip(&["addr", "add", a, "dev", "eth1", "nodad"])
                .expect("address");
        }
    }
    t
}

fn speaker_config(
    key_file: &std::path::Path,
    state_dir: &std::path::Path,
    statics: bool,
) -> String {
    let mut peers = String::new();
    for p in &PEERINGS {
        peers.push_str(&format!("    - address: {}\n      asn: 65000\n", p.peer));
        if p.speaker_active {
            peers.push_str(&format!("      localAddress: {}\n", p.node));
        } else {
            peers.push_str("      passive: true\n");
        }
        if p.md5 != Md5::Off {
            peers.push_str(&format!("      passwordFile: {}\n", key_file.display()));
        }
        peers.push_str(&format!(
            "      gracefulRestart:\n        enabled: true\n        restartTimeSeconds: {RESTART}\n      \
             timers:\n        holdTimeSeconds: {HOLD}\n        connectRetryTimeSeconds: 1\n"
        ));
    }
    let mut extra = format!("  stateDir: {}\n", state_dir.display());
    if statics {
        extra.push_str(&format!(
            "  staticRoutes:\n    - prefix: {PREFIX_V4}\n    - prefix: {PREFIX_V6}\n"
        ));
    }
    speaker_yaml("10.77.0.1", 65001, &peers, &extra)
}

/// `nstat` counter in `ns` (absolute value).
fn md5_failures(ns: &Netns) -> u64 {
    ns.exec("nstat", &["-az", "TcpExtTCPMD5Failure"])
        .ok()
        .and_then(|out| {
            out.lines()
                .find(|l| l.starts_with("TcpExtTCPMD5Failure"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until every good session is Established on the speaker and on the daemon.
fn wait_all_established(speaker: &Speaker, daemon: &dyn Daemon) {
    let name = daemon.name();
    for p in good_peerings() {
        wait_until_ok(
            &format!("{name} {} Established on both sides", p.label),
            UP,
            || {
                let ours = speaker.peer(p.peer);
                if ours.state != "Established" {
                    return Err(format!("speaker: {} ({:?})", ours.state, ours.last_error));
                }
                daemon
                    .established(p)?
                    .then_some(())
                    .ok_or("daemon: not Established".to_owned())
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n{name} says:\n{}\nspeaker log:\n{}",
                daemon.describe(p),
                speaker.log()
            )
        });
    }
}

/// Polls every good peering's route at the daemon until `want` holds for all, asserting on the
/// way that the route never disappears when `must_stay` is set.
fn wait_routes(
    daemon: &dyn Daemon,
    peerings: &[&Peering],
    what: &str,
    must_stay: bool,
    want: impl Fn(Option<bool>) -> bool,
) {
    wait_until_ok(&format!("{}: {what}", daemon.name()), UP, || {
        let mut pending = Vec::new();
        for p in peerings {
            let route = daemon.route(p)?;
            assert!(
                !(must_stay && route.is_none()),
                "{}: {} withdrawn over {} while it had to stay",
                daemon.name(),
                p.prefix(),
                p.label
            );
            if !want(route) {
                pending.push(format!("{}={route:?}", p.label));
            }
        }
        pending.is_empty().then_some(()).ok_or(pending.join(" "))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The scenario of the module docs, against one daemon.
fn run_matrix(t: &Topology, daemon: &mut dyn Daemon) {
    let name = daemon.name();
    let dir = t.dir("speaker");
    let key = dir.join("md5.key");
    std::fs::write(&key, format!("{KEY}\n")).expect("key file");
    let state = dir.join("state");
    // Whichever side gets a SYN signed with the other key counts it (a daemon that does not
    // listen, like ExaBGP for an active neighbor, leaves it all to our side).
    let md5_total = || md5_failures(&t.peer) + md5_failures(&t.node);
    let md5_before = md5_total();
    let mut speaker = Speaker::start(&t.node, &dir, &speaker_config(&key, &state, true));
    let started = Instant::now();

    // 1. Every good session comes up on both sides, whoever connects.
    wait_all_established(&speaker, daemon);
    for p in good_peerings() {
        let status = speaker.peer(p.peer);
        assert_eq!(status.remote_asn, Some(65000), "{name} {}", p.label);
        assert_eq!(
            status.hold_time,
            Some(u64::from(HOLD)),
            "{name} {}",
            p.label
        );
        assert!(
            status
                .capabilities
                .iter()
                .any(|c| c.starts_with("graceful-restart")),
            "{name} {}: GR not negotiated: {:?}",
            p.label,
            status.capabilities
        );
    }

    // 2. The static prefix of each session's family is in the daemon's RIB, from that session.
    let good: Vec<&Peering> = good_peerings().collect();
    wait_routes(daemon, &good, "prefixes learned", false, |r| r.is_some());

    // 3. Different MD5 keys: the session never comes up, and the kernels drop the segments for
    // their signature.
    let settle = Duration::from_secs(5).saturating_sub(started.elapsed());
    std::thread::sleep(settle);
    let bad = PEERINGS.iter().find(|p| !p.good()).expect("bad peering");
    assert_ne!(speaker.peer(bad.peer).state, "Established", "{name}");
    assert!(!daemon.established(bad).expect("daemon state"), "{name}");
    let failures = md5_total() - md5_before;
    assert!(failures > 0, "{name}: no TcpExtTCPMD5Failure counted");

    // The CLI reads the same over the control socket.
    let socket = speaker.socket.to_string_lossy().into_owned();
    let json = t
        .node
        .exec(
            env!("CARGO_BIN_EXE_herald"),
            &["bgp", "peers", "--json", "--socket", &socket],
        )
        .expect("speaker peers --json");
    let parsed: Value = serde_json::from_str(&json).expect("JSON");
    let up = parsed
        .as_array()
        .expect("array")
        .iter()
        .filter(|p| p.get("state").and_then(Value::as_str) == Some("Established"))
        .count();
    assert_eq!(up, 4, "{json}");

    // 4. Graceful restart: kill -9, the daemon keeps the routes (stale) until we are back and
    // have sent End-of-RIB; the prefix is never withdrawn.
    let exa_mark = daemon
        .message_log()
        .map(|e| e.messages().expect("exabgp log").len());
    // Sessions that come back while the helper still holds our routes.
    let kept: Vec<&Peering> = good_peerings()
        .filter(|p| p.speaker_active || daemon.helper_connects())
        .collect();
    speaker.kill9();
    if daemon.gr_helper() {
        wait_routes(daemon, &kept, "routes stale after the crash", true, |r| {
            r == Some(true)
        });
        // Down for a while: still there.
        let down = Instant::now();
        while down.elapsed() < Duration::from_secs(2) {
            wait_routes(daemon, &kept, "routes kept while we are down", true, |r| {
                r.is_some()
            });
            std::thread::sleep(Duration::from_millis(300));
        }
    } else {
        std::thread::sleep(Duration::from_secs(2));
    }
    speaker.spawn(&t.node);
    wait_routes(daemon, &kept, "routes fresh after End-of-RIB", true, |r| {
        r == Some(false)
    });
    wait_all_established(&speaker, daemon);
    wait_routes(daemon, &good, "all routes back", false, |r| {
        r == Some(false)
    });
    if let (Some(exa), Some(mark)) = (daemon.message_log(), exa_mark) {
        // ExaBGP logs every message, so the restarting side can be checked exactly.
        wait_until_ok("End-of-RIB at ExaBGP after the restart", UP, || {
            let all = exa.messages().map_err(|e| e.to_string())?;
            for p in &kept {
                let after: Vec<Value> = all
                    .iter()
                    .skip(mark)
                    .filter(|m| {
                        m.pointer("/neighbor/address/peer").and_then(Value::as_str) == Some(p.node)
                    })
                    .cloned()
                    .collect();
                let withdrawn = withdrawn_prefixes(&after);
                assert!(
                    withdrawn.is_empty(),
                    "{}: withdrawal across the restart: {withdrawn:?}",
                    p.label
                );
                if end_of_rib_count(&after) == 0 {
                    return Err(format!("{}: no End-of-RIB yet", p.label));
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    // 5. Withdrawal by reload: the static routes go, the sessions stay.
    let before: Vec<u64> = good_peerings()
        .map(|p| speaker.peer(p.peer).transitions)
        .collect();
    speaker.reconfigure(&speaker_config(&key, &state, false));
    wait_routes(daemon, &good, "routes withdrawn after reload", false, |r| {
        r.is_none()
    });
    let after: Vec<u64> = good_peerings()
        .map(|p| speaker.peer(p.peer).transitions)
        .collect();
    assert_eq!(before, after, "{name}: reload reset a session");

    // 6. Hold timer: freeze the daemon; we send Hold Timer Expired on every session.
    let frozen = daemon.bgp_process();
    frozen.signal(Signal::SIGSTOP).expect("SIGSTOP");
    let frozen_at = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for p in good_peerings() {
            let down = wait_until_ok(&format!("{name} {} hold timer expiry", p.label), UP, || {
                let s = speaker.peer(p.peer);
                (s.state != "Established")
                    .then_some(s)
                    .ok_or("still Established".to_owned())
            })
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                down.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("4/0")),
                "{name} {}: {:?}",
                p.label,
                down.last_error
            );
        }
    }));
    eprintln!(
        "{name}: all sessions down {:?} after SIGSTOP (hold time {HOLD} s)",
        frozen_at.elapsed()
    );
    frozen.signal(Signal::SIGCONT).expect("SIGCONT");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn bird_matrix() {
    let t = matrix_topology("matrix_bird");
    let mut bird = BirdDaemon::start(&t.peer, &t.dir("bird"));
    run_matrix(&t, &mut bird);
}

#[test]
fn frr_matrix() {
    let t = matrix_topology("matrix_frr");
    let mut frr = FrrDaemon::start(&t.peer, &t.dir("frr"));
    run_matrix(&t, &mut frr);
}

#[test]
fn gobgp_matrix() {
    let t = matrix_topology("matrix_gobgp");
    let mut gobgp = GoBgpDaemon::start(&t.peer, &t.dir("gobgp"));
    run_matrix(&t, &mut gobgp);
}

#[test]
fn exabgp_matrix() {
    let t = matrix_topology("matrix_exabgp");
    let mut exa = ExaBgpDaemon::start(&t.peer, &t.dir("exabgp"));
    run_matrix(&t, &mut exa);
}
