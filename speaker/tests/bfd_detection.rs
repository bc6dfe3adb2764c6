//! On-demand measurement (ignored by default): how long our BFD and FRR's bfdd each take to
//! declare a silent peer down, observed side by side against the same peer.
//!
//! ```text
//!   ours (speaker BFD) ──eth1── target (FRR bfdd) ──eth2── frrobs (FRR bfdd)
//! ```
//! Both observers run 100 ms × 3 with the target. Each trial freezes the target's bfdd
//! (SIGSTOP), so both observers lose it at the same instant, then records the time to our
//! `BfdEvent` Down and the time stamp of the observer bfdd's `state-change ... up -> down` log
//! line, then thaws the target and waits for both sessions to come back.
//!
//! Run: `cargo test -p speaker --test bfd_detection -- --ignored --nocapture`
//! (env `BFD_TRIALS`, default 5). Prints one line per trial and min/median/max for each side.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_tests::{Frr, FrrConfig, FrrDaemon, Netns, TestLab, VethPair, runtime_in};
use nix::sys::signal::Signal;
use serde_json::Value;
use speaker::bfd::{Bfd, SessionSpec, State};
use speaker::config::BfdConfig;

const UP_TIMEOUT: Duration = Duration::from_secs(30);

fn bfd_block(peer: &str, local: &str) -> String {
    format!(
        " peer {peer} local-address {local} interface eth1\n  receive-interval 100\n  \
         transmit-interval 100\n  detect-multiplier 3\n !\n"
    )
}

/// Starts zebra + bfdd; bfdd also logs state changes with µs time stamps to `<dir>/precise.log`
/// (the command-line log target ignores `log timestamp precision`).
fn start_frr(lab: &TestLab, ns: &Netns, role: &str, peers: &str) -> Frr {
    let dir = lab.subdir(role).expect("dir");
    let config = format!(
        "frr defaults datacenter\nhostname {role}\nlog timestamp precision 6\n\
         log file {}/precise.log debugging\ndebug bfd peer\nbfd\n{peers}!\n",
        dir.display()
    );
    Frr::start(
        ns,
        &dir,
        &FrrConfig {
            config,
            daemons: vec![FrrDaemon::Bfdd],
        },
    )
    .expect("FRR")
}

fn frr_status(frr: &Frr, peer: &str) -> Option<String> {
    let v = frr.vtysh_json("show bfd peers json").ok()?;
    v.as_array()?
        .iter()
        .find(|p| p.get("peer").and_then(Value::as_str) == Some(peer))
        .and_then(|p| p.get("status").and_then(Value::as_str))
        .map(str::to_owned)
}

/// Seconds since UTC midnight of an FRR log time stamp (`2026/11/22 01:10:11.123456 ...`).
fn log_time_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().nth(1)?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn now_time_of_day() -> f64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    since % 86_400.0
}

/// Time stamps of every `up -> down` state change of `peer` in the bfdd log.
fn frr_down_times(log: &Path, peer: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("state-change") && l.contains(peer) && l.contains("up -> down"))
        .filter_map(log_time_of_day)
        .collect()
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        eprintln!("{name}: no samples");
        return;
    }
    eprintln!(
        "{name}: n={} min={:.0} ms median={:.0} ms max={:.0} ms",
        ms.len(),
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

#[test]
#[ignore = "measurement; run on demand with --ignored --nocapture"]
fn detection_time_ours_vs_frr_bfdd() {
    let trials: usize = std::env::var("BFD_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let lab = TestLab::new("bfd_detect").expect("lab");
    let ours = lab.netns("ours").expect("ns");
    let target = lab.netns("target").expect("ns");
    let obs = lab.netns("frrobs").expect("ns");
    let _l1 = VethPair::create(&ours, "eth1", &target, "eth1").expect("veth");
    let _l2 = VethPair::create(&obs, "eth1", &target, "eth2").expect("veth");
    target.addr_add("eth1", "10.40.0.1/30").expect("addr");
    ours.addr_add("eth1", "10.40.0.2/30").expect("addr");
    target.addr_add("eth2", "10.40.1.1/30").expect("addr");
    obs.addr_add("eth1", "10.40.1.2/30").expect("addr");

    let target_peers = format!(
        "{}{}",
        bfd_block("10.40.0.2", "10.40.0.1"),
        bfd_block("10.40.1.2", "10.40.1.1").replace("eth1", "eth2")
    );
    let target_frr = start_frr(&lab, &target, "target", &target_peers);
    let obs_frr = start_frr(&lab, &obs, "frrobs", &bfd_block("10.40.1.1", "10.40.1.2"));
    let target_bfdd = target_frr
        .processes()
        .into_iter()
        .find(|(name, _)| name == "bfdd")
        .map(|(_, id)| id)
        .expect("target bfdd");
    let obs_log = obs_frr.dir().join("precise.log");

    let rt = runtime_in(&ours, 1);
    let (mut ours_ms, mut frr_ms) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let bfd = Bfd::spawn();
        let mut session = bfd
            .register(SessionSpec {
                peer: "10.40.0.1".parse::<IpAddr>().expect("ip"),
                local: "10.40.0.2".parse::<IpAddr>().expect("ip"),
                interface: Some("eth1".into()),
                config: BfdConfig {
                    min_tx_ms: 100,
                    min_rx_ms: 100,
                    multiplier: 3,
                    multihop: false,
                    authentication: None,
                },
                auth: None,
            })
            .await
            .expect("register");
        for trial in 0..trials {
            // Both sessions Up (and settled past the poll sequence).
            let deadline = std::time::Instant::now() + UP_TIMEOUT;
            while session.state() != State::Up
                || frr_status(&obs_frr, "10.40.1.1").as_deref() != Some("up")
            {
                assert!(std::time::Instant::now() < deadline, "sessions not Up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            while session.try_recv().is_some() {}
            let before = frr_down_times(&obs_log, "10.40.1.1").len();

            let frozen_at = now_time_of_day();
            let start = std::time::Instant::now();
            target_bfdd.signal(Signal::SIGSTOP).expect("SIGSTOP");
            loop {
                let event = tokio::time::timeout(UP_TIMEOUT, session.recv())
                    .await
                    .expect("our Down in time")
                    .expect("driver");
                if event.is_failure() {
                    break;
                }
            }
            let ours_took = start.elapsed().as_secs_f64() * 1000.0;
            // bfdd logs its own Down; give it the same generous bound.
            let deadline = std::time::Instant::now() + UP_TIMEOUT;
            let frr_took = loop {
                let times = frr_down_times(&obs_log, "10.40.1.1");
                if let Some(t) = times.get(before) {
                    break (t - frozen_at) * 1000.0;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "FRR observer not Down"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            target_bfdd.signal(Signal::SIGCONT).expect("SIGCONT");
            if std::env::var_os("BFD_DEBUG").is_some() {
                let log = std::fs::read_to_string(&obs_log).unwrap_or_default();
                for l in log.lines().filter(|l| l.contains("state-change")) {
                    eprintln!("  {l}");
                }
                eprintln!("  frozen at {frozen_at:.6}");
            }
            eprintln!("trial {trial}: ours {ours_took:.0} ms, frr bfdd {frr_took:.0} ms");
            ours_ms.push(ours_took);
            frr_ms.push(frr_took);
        }
    });
    summary("ours (speaker bfd)", ours_ms);
    summary("frr bfdd", frr_ms);
}
