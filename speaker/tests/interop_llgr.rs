//! Long-lived graceful restart (RFC 9494) against FRR 8.4 and GoBGP 3.10 in network namespaces:
//! FRR and GoBGP keep the routes of a crashed speaker as LLGR_STALE once the graceful restart
//! time has run out and drop them after the long-lived stale time (the NO_LLGR one at once);
//! the speaker does the same for FRR's routes when FRR's bgpd is killed (dropping the NO_LLGR
//! one at the end of the restart time), and its FIB import keeps the LLGR-stale route installed
//! until it goes; as route server it passes LLGR-stale routes to LLGR clients only (GoBGP
//! clients with and without LLGR). Times are a few seconds; the tests assert the order of
//! states, never durations. Needs root, FRR and GoBGP from `scripts/setup.sh`.

mod common;

use std::time::Duration;

use bgp_proto::Community;
use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{Frr, FrrConfig, GoBgp, wait_until_ok};
use nix::sys::signal::Signal;
use serde_json::Value;

const UP: Duration = Duration::from_secs(30);
/// Graceful restart time the restarting side advertises, seconds.
const RESTART: u16 = 3;
/// Long-lived stale time the restarting side advertises, seconds.
const LONG_LIVED: u32 = 10;
/// Time to wait for a whole restart + long-lived period, with room for a slow machine.
const LONG_WAIT: Duration = Duration::from_secs(60);
/// The route tagged NO_LLGR (65535:7) in both tests.
const NO_LLGR_PREFIX: &str = "198.51.100.0/24";

/// FRR (AS 65000) with GR and LLGR towards the speaker (AS 65001); `af` goes into the IPv4
/// unicast address family, `after` after the router block.
fn frr_conf(t: &Topology, af: &str, after: &str) -> String {
    format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n \
         bgp graceful-restart\n bgp graceful-restart restart-time {RESTART}\n \
         bgp long-lived-graceful-restart stale-time {LONG_LIVED}\n \
         neighbor {n} remote-as 65001\n neighbor {n} timers connect 1\n \
         address-family ipv4 unicast\n{af} exit-address-family\n!\n{after}",
        n = t.node_v4,
    )
}

/// The speaker's peer entry for FRR, with GR and LLGR.
fn speaker_peer(t: &Topology, restart: u16, long_lived: u32) -> String {
    format!(
        "    - address: {p}\n      asn: 65000\n      gracefulRestart:\n        enabled: true\n        \
         restartTimeSeconds: {restart}\n        longLived:\n          staleTimeSeconds: {long_lived}\n      \
         timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n",
        p = t.peer_v4,
    )
}

/// Kernel table the speaker imports FRR's routes into (FIB import).
const FIB_TABLE: u32 = 1234;

/// Whether the speaker's namespace has a route for `prefix` in [`FIB_TABLE`].
fn kernel_has(t: &Topology, prefix: &str) -> bool {
    t.node
        .ip(&["route", "show", "table", &FIB_TABLE.to_string(), prefix])
        .is_ok_and(|out| !out.trim().is_empty())
}

/// Waits until the kernel route for `prefix` is there (or gone).
fn wait_kernel(t: &Topology, prefix: &str, present: bool) {
    wait_until_ok(&format!("{prefix} in the kernel: {present}"), UP, || {
        (kernel_has(t, prefix) == present)
            .then_some(())
            .ok_or("not yet")
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A route's state at one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Absent,
    Fresh,
    /// Kept through a graceful restart (RFC 4724).
    Stale,
    /// Tagged LLGR_STALE (RFC 9494).
    LlgrStale,
}

/// How FRR holds `prefix`.
fn at_frr(frr: &Frr, prefix: &str) -> Result<Held, String> {
    let v = frr
        .vtysh_json(&format!("show bgp ipv4 unicast {prefix} json"))
        .map_err(|e| e.to_string())?;
    let Some(path) = v
        .get("paths")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
    else {
        return Ok(Held::Absent);
    };
    let llgr = path
        .pointer("/community/string")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split_whitespace().any(|c| c == "llgr-stale"));
    let stale = path.get("stale").and_then(Value::as_bool) == Some(true);
    Ok(match (llgr, stale) {
        (true, _) => Held::LlgrStale,
        (false, true) => Held::Stale,
        (false, false) => Held::Fresh,
    })
}

/// How the speaker holds `prefix` received from FRR.
fn at_speaker(speaker: &Speaker, prefix: &str) -> Result<Held, String> {
    let rows = speaker.routes(true)?;
    let Some(row) = rows
        .iter()
        .find(|r| r.prefix.to_string() == prefix && r.accepted == Some(true))
    else {
        return Ok(Held::Absent);
    };
    Ok(
        match (row.communities.iter().any(|c| c == "LLGR_STALE"), row.stale) {
            (true, _) => Held::LlgrStale,
            (false, true) => Held::Stale,
            (false, false) => Held::Fresh,
        },
    )
}

/// Polls `probe` (the states of the kept route and of the NO_LLGR route) until `done` holds
/// for them; returns every observation, the last one satisfying `done`.
fn observe(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<(Held, Held), String>,
    done: impl Fn((Held, Held)) -> bool,
) -> Vec<(Held, Held)> {
    let mut seen = Vec::new();
    let result = wait_until_ok(what, timeout, || {
        let now = probe()?;
        seen.push(now);
        if done(now) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    if let Err(e) = result {
        panic!("{e}; observed {seen:?}");
    }
    seen
}

/// The speaker with GR and LLGR towards the helper, originating 192.0.2.0/24 and the NO_LLGR
/// route, with a state directory so that a restart sets the R and F bits.
fn restarting_speaker(t: &Topology) -> Speaker {
    let state = t.dir("state");
    let extra = format!(
        "  importPolicy: accept-all\n  stateDir: {}\n  staticRoutes:\n    - prefix: 192.0.2.0/24\n    \
         - prefix: {NO_LLGR_PREFIX}\n      communities: [\"65535:7\"]\n",
        state.display()
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &speaker_peer(t, RESTART, LONG_LIVED),
        &extra,
    );
    Speaker::start(&t.node, &t.dir("speaker"), &yaml)
}

/// A helper daemon keeps a crashed speaker's routes: stale (GR), then the plain one tagged
/// LLGR_STALE while the NO_LLGR one goes; the restarted speaker refreshes the route without it
/// ever leaving the helper's table; after a second crash the route goes once the long-lived
/// stale time is over. `probe` reads (192.0.2.0/24, NO_LLGR route) at the helper.
fn helper_keeps_crashed_speakers_routes(
    t: &Topology,
    speaker: &mut Speaker,
    probe: impl Fn() -> Result<(Held, Held), String> + Copy,
) {
    observe("both routes fresh at the helper", UP, probe, |s| {
        s == (Held::Fresh, Held::Fresh)
    });

    // 1. Crash: stale (GR), then LLGR-stale; the NO_LLGR route goes when GR ends.
    speaker.kill9();
    // FRR removes the NO_LLGR route through its work queue, a moment after tagging the other.
    let seen = observe("LLGR_STALE at the helper", LONG_WAIT, probe, |s| {
        s == (Held::LlgrStale, Held::Absent)
    });
    assert!(
        seen.iter().all(|s| s.0 != Held::Absent),
        "the helper dropped the route: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == &(Held::Stale, Held::Stale)),
        "no graceful restart phase first: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.1 != Held::LlgrStale),
        "NO_LLGR route kept into the long-lived period: {seen:?}"
    );

    // 2. Back within the long-lived stale time: refreshed, never withdrawn.
    speaker.spawn(&t.node);
    let seen = observe("fresh again at the helper", UP, probe, |s| {
        s == (Held::Fresh, Held::Fresh)
    });
    assert!(
        seen.iter().all(|s| s.0 != Held::Absent),
        "the helper dropped the route across the restart: {seen:?}"
    );

    // 3. Crash for good: the route goes after the long-lived stale time.
    speaker.kill9();
    let seen = observe("LLGR_STALE at the helper again", LONG_WAIT, probe, |s| {
        s.0 == Held::LlgrStale
    });
    assert!(seen.iter().all(|s| s.0 != Held::Absent), "{seen:?}");
    let seen = observe("route gone at the helper", LONG_WAIT, probe, |s| {
        s == (Held::Absent, Held::Absent)
    });
    assert!(seen.iter().any(|s| s.0 == Held::LlgrStale), "{seen:?}");
}

/// FRR as helper of the crashing speaker (see [`helper_keeps_crashed_speakers_routes`]).
#[test]
fn frr_keeps_a_crashed_speakers_routes_llgr_stale_then_drops_them() {
    let t = Topology::new("llgr_frr_helper");
    let frr = Frr::start(
        &t.peer,
        &t.dir("frr"),
        &FrrConfig::bgp(frr_conf(&t, "", "")),
    )
    .expect("frr");
    let mut speaker = restarting_speaker(&t);
    wait_until_ok("FRR negotiated LLGR", UP, || {
        let neighbor = frr
            .vtysh_json(&format!("show bgp neighbors {} json", t.node_v4))
            .map_err(|e| e.to_string())?;
        let llgr = neighbor.pointer(&format!(
            "/{}/neighborCapabilities/longLivedGracefulRestart",
            t.node_v4
        ));
        match llgr.and_then(Value::as_str) {
            Some("advertisedAndReceived") => Ok(()),
            _ => Err(format!("{llgr:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    let probe = || Ok((at_frr(&frr, "192.0.2.0/24")?, at_frr(&frr, NO_LLGR_PREFIX)?));
    helper_keeps_crashed_speakers_routes(&t, &mut speaker, probe);
}

/// How GoBGP holds `prefix` (`gobgp -j global rib`: `stale`, and the COMMUNITIES attribute,
/// type 8, as numbers).
fn at_gobgp(gobgp: &GoBgp, prefix: &str) -> Result<Held, String> {
    let text = gobgp
        .gobgp(&["-j", "global", "rib", "-a", "ipv4"])
        .map_err(|e| e.to_string())?;
    let rib: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let Some(path) = rib
        .get(prefix)
        .and_then(Value::as_array)
        .and_then(|p| p.first())
    else {
        return Ok(Held::Absent);
    };
    let llgr = path
        .get("attrs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("type").and_then(Value::as_u64) == Some(8))
        .filter_map(|a| a.get("communities").and_then(Value::as_array))
        .flatten()
        .any(|c| c.as_u64() == Some(u64::from(Community::LLGR_STALE.0)));
    let stale = path.get("stale").and_then(Value::as_bool) == Some(true);
    Ok(match (llgr, stale) {
        (true, _) => Held::LlgrStale,
        (false, true) => Held::Stale,
        (false, false) => Held::Fresh,
    })
}

/// GoBGP 3.10 as helper of the crashing speaker (`long-lived-enabled`; see
/// [`helper_keeps_crashed_speakers_routes`]).
#[test]
fn gobgp_keeps_a_crashed_speakers_routes_llgr_stale_then_drops_them() {
    let t = Topology::new("llgr_gobgp_helper");
    let conf = format!(
        "[global.config]\n  as = 65000\n  router-id = \"10.77.0.2\"\n  port = 179\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{node}\"\n    peer-as = 65001\n\
           [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
           [neighbors.graceful-restart.config]\n    enabled = true\n    long-lived-enabled = true\n\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
             [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n\
             [neighbors.afi-safis.long-lived-graceful-restart.config]\n      enabled = true\n",
        node = t.node_v4,
    );
    let gobgp = GoBgp::start(&t.peer, &t.dir("gobgp"), &conf).expect("gobgpd");
    let mut speaker = restarting_speaker(&t);
    let probe = || {
        Ok((
            at_gobgp(&gobgp, "192.0.2.0/24")?,
            at_gobgp(&gobgp, NO_LLGR_PREFIX)?,
        ))
    };
    helper_keeps_crashed_speakers_routes(&t, &mut speaker, probe);
}

/// The speaker as helper: FRR's bgpd is killed. The speaker keeps FRR's routes stale for
/// FRR's restart time, then keeps the plain one tagged LLGR_STALE (shown by `herald bgp routes`)
/// and drops the NO_LLGR one, and drops the rest after FRR's long-lived stale time.
#[test]
fn speaker_keeps_a_crashed_frrs_routes_llgr_stale_then_drops_them() {
    let t = Topology::new("llgr_speaker_helper");
    let conf = frr_conf(
        &t,
        &format!("  network 203.0.113.0/24\n  network {NO_LLGR_PREFIX} route-map NO-LLGR\n"),
        "route-map NO-LLGR permit 10\n set community 65535:7\n!\n",
    );
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &speaker_peer(&t, 120, 3600),
        &format!("  importPolicy: accept-all\n  fibImport: {{ table: {FIB_TABLE} }}\n"),
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    let probe = || {
        Ok((
            at_speaker(&speaker, "203.0.113.0/24")?,
            at_speaker(&speaker, NO_LLGR_PREFIX)?,
        ))
    };
    observe("both routes fresh at the speaker", UP, probe, |s| {
        s == (Held::Fresh, Held::Fresh)
    });
    wait_kernel(&t, "203.0.113.0/24", true);
    wait_kernel(&t, NO_LLGR_PREFIX, true);
    let status = speaker.peer(t.peer_v4);
    assert!(
        status
            .capabilities
            .iter()
            .any(|c| c.starts_with("long-lived-graceful-restart")),
        "{:?}",
        status.capabilities
    );

    let bgpd = frr
        .processes()
        .into_iter()
        .find(|(n, _)| n == "bgpd")
        .map(|(_, id)| id)
        .expect("bgpd");
    bgpd.signal(Signal::SIGKILL).expect("SIGKILL");
    let seen = observe("LLGR_STALE at the speaker", LONG_WAIT, probe, |s| {
        s == (Held::LlgrStale, Held::Absent)
    });
    assert!(
        seen.iter().all(|s| s.0 != Held::Absent),
        "the speaker dropped FRR's route: {seen:?}\n{}",
        speaker.log()
    );
    assert!(
        seen.iter().any(|s| s == &(Held::Stale, Held::Stale)),
        "no graceful restart phase first: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.1 != Held::LlgrStale),
        "NO_LLGR route kept into the long-lived period: {seen:?}"
    );
    // FIB import follows: the LLGR-stale route stays installed (the only one, least preferred)
    // until it goes; the NO_LLGR one is gone. The kernel is read before the speaker, so a
    // sample that finds the route still LLGR-stale was taken while it had to be installed.
    let mut installed = Vec::new();
    let seen = observe(
        "FRR's route gone at the speaker",
        LONG_WAIT,
        || {
            let kernel = kernel_has(&t, "203.0.113.0/24");
            let held = probe()?;
            installed.push((held.0, kernel));
            Ok(held)
        },
        |s| s == (Held::Absent, Held::Absent),
    );
    assert!(seen.iter().any(|s| s.0 == Held::LlgrStale), "{seen:?}");
    assert!(
        installed
            .iter()
            .all(|(held, kernel)| *held != Held::LlgrStale || *kernel),
        "LLGR-stale route missing from the kernel: {installed:?}"
    );
    wait_kernel(&t, NO_LLGR_PREFIX, false);
    wait_kernel(&t, "203.0.113.0/24", false);
}

/// GoBGP as a route-server client at `address` (a second address of the peer namespace, active,
/// no listener), AS `asn`, with or without LLGR.
fn gobgp_client(t: &Topology, role: &str, address: &str, asn: u32, llgr: bool) -> GoBgp {
    t.peer
        .ip(&["addr", "add", &format!("{address}/29"), "dev", "eth1"])
        .expect("client address");
    let (gr, family) = if llgr {
        (
            "    long-lived-enabled = true\n",
            "    [neighbors.afi-safis.long-lived-graceful-restart.config]\n      enabled = true\n",
        )
    } else {
        ("", "")
    };
    let conf = format!(
        "[global.config]\n  as = {asn}\n  router-id = \"{address}\"\n  port = -1\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{node}\"\n    peer-as = 65001\n\
           [neighbors.transport.config]\n    local-address = \"{address}\"\n\
           [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
           [neighbors.graceful-restart.config]\n    enabled = true\n{gr}\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
             [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n{family}",
        node = t.node_v4,
    );
    GoBgp::start(&t.peer, &t.dir(role), &conf).expect("gobgpd")
}

/// Route-server mode: FRR's bgpd is killed; once its restart time is over, the speaker passes
/// FRR's route on tagged LLGR_STALE to the client that negotiated LLGR and withdraws it from
/// the one that did not (RFC 9494 §4.5); after the long-lived stale time the LLGR client loses
/// it too.
#[test]
fn route_server_passes_llgr_stale_routes_to_llgr_clients_only() {
    let t = Topology::new("llgr_route_server");
    let conf = frr_conf(&t, "  network 203.0.113.0/24\n", "");
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let llgr_client = gobgp_client(&t, "gobgp-llgr", "10.77.0.3", 65002, true);
    let plain_client = gobgp_client(&t, "gobgp-plain", "10.77.0.4", 65003, false);
    let client = |address: &str, asn: u32| {
        format!(
            "    - address: {address}\n      asn: {asn}\n      passive: true\n      gracefulRestart:\n        \
             enabled: true\n        longLived:\n          staleTimeSeconds: 3600\n      \
             timers:\n        holdTimeSeconds: 9\n"
        )
    };
    let peers = format!(
        "{}{}{}",
        speaker_peer(&t, 120, 3600),
        client("10.77.0.3", 65002),
        client("10.77.0.4", 65003)
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        "  importPolicy: accept-all\n  routeServer: true\n",
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    let prefix = "203.0.113.0/24";
    wait_until_ok("three sessions Established", UP, || {
        let peers = speaker.peers()?;
        let up = peers.iter().filter(|p| p.state == "Established").count();
        (up == 3).then_some(()).ok_or(format!("{up} up"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    let probe = || {
        Ok((
            at_gobgp(&llgr_client, prefix)?,
            at_gobgp(&plain_client, prefix)?,
        ))
    };
    observe("FRR's route at both clients", UP, probe, |s| {
        s == (Held::Fresh, Held::Fresh)
    });

    let bgpd = frr
        .processes()
        .into_iter()
        .find(|(n, _)| n == "bgpd")
        .map(|(_, id)| id)
        .expect("bgpd");
    bgpd.signal(Signal::SIGKILL).expect("SIGKILL");
    let seen = observe(
        "LLGR_STALE at the LLGR client only",
        LONG_WAIT,
        probe,
        |s| s == (Held::LlgrStale, Held::Absent),
    );
    assert!(
        seen.iter().all(|s| s.0 != Held::Absent),
        "the LLGR client lost the route: {seen:?}"
    );
    let seen = observe("route gone at both clients", LONG_WAIT, probe, |s| {
        s == (Held::Absent, Held::Absent)
    });
    assert!(seen.iter().any(|s| s.0 == Held::LlgrStale), "{seen:?}");
}
