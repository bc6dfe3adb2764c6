//! `herald-route-scale`: one route-scale measurement of a BGP daemon under test (DUT).
//!
//! In three network namespaces made by `run.sh` (injector ↔ DUT ↔ receiver), this binary listens
//! as the receiver, starts the DUT (`ip netns exec`), connects as the injector, then blasts N
//! pre-encoded IPv4 prefixes (K per UPDATE) and measures, on one monotonic clock:
//! - announce: first UPDATE written by the injector → the receiver holds all N prefixes;
//! - withdraw: first withdrawal written → the receiver holds none;
//! - the DUT's peak RSS (VmHWM) and CPU seconds (utime + stime) from /proc.
//!
//! It prints one JSON object. I/O: the two TCP sessions, the DUT process and /proc.

mod peer;
mod workload;

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bgp_proto::{AttrValue, Family, Message, MpNlri, Update};
use clap::Parser;
use nix::sched::{CloneFlags, setns};

use peer::{Speaker, read_frame};

/// One measurement.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Name printed in the result.
    #[arg(long)]
    label: String,
    /// Namespace of the injector.
    #[arg(long)]
    inj_ns: String,
    /// Namespace of the DUT.
    #[arg(long)]
    dut_ns: String,
    /// Namespace of the receiver.
    #[arg(long)]
    rx_ns: String,
    /// Shell command that ends by `exec`ing the DUT in the foreground (so its PID is the DUT's).
    #[arg(long)]
    dut_cmd: String,
    /// Where the DUT's output goes.
    #[arg(long)]
    dut_log: String,
    /// The DUT's address on the injector link.
    #[arg(long, default_value = "10.0.1.2")]
    dut_addr: Ipv4Addr,
    /// The injector's address.
    #[arg(long, default_value = "10.0.1.1")]
    inj_addr: Ipv4Addr,
    /// The receiver's address (it listens on port 179).
    #[arg(long, default_value = "10.0.2.1")]
    rx_addr: Ipv4Addr,
    /// Injector AS.
    #[arg(long, default_value_t = 65001)]
    inj_asn: u32,
    /// Receiver AS.
    #[arg(long, default_value_t = 65003)]
    rx_asn: u32,
    /// Number of prefixes.
    #[arg(long)]
    prefixes: u32,
    /// Prefix length (24: /24s, 32: /32s).
    #[arg(long, default_value_t = 24)]
    len: u8,
    /// Prefixes per UPDATE.
    #[arg(long, default_value_t = 800)]
    per_update: u32,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// What the receiver reports.
enum RxEvent {
    Listening,
    Established,
    All(Instant),
    Empty(Instant),
    Failed(String),
}

fn enter(ns: &str) -> Result<()> {
    let f = File::open(format!("/run/netns/{ns}")).with_context(|| format!("open netns {ns}"))?;
    setns(f, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {ns}"))?;
    Ok(())
}

fn key(addr: Ipv4Addr, len: u8) -> u64 {
    (u64::from(u32::from(addr)) << 8) | u64::from(len)
}

/// Applies one UPDATE to the receiver's set of prefixes.
fn apply(u: &Update, held: &mut HashSet<u64>) {
    for n in &u.withdrawn {
        held.remove(&key(n.prefix.addr(), n.prefix.len()));
    }
    for n in &u.nlri {
        held.insert(key(n.prefix.addr(), n.prefix.len()));
    }
    for a in &u.attributes {
        match &a.value {
            AttrValue::MpReach(m) => {
                if let MpNlri::Ipv4(v) = &m.nlri {
                    v.iter().for_each(|n| {
                        held.insert(key(n.prefix.addr(), n.prefix.len()));
                    });
                }
            }
            AttrValue::MpUnreach(m) => {
                if let MpNlri::Ipv4(v) = &m.withdrawn {
                    v.iter().for_each(|n| {
                        held.remove(&key(n.prefix.addr(), n.prefix.len()));
                    });
                }
            }
            _ => {}
        }
    }
}

fn receiver(args: &Args, tx: mpsc::Sender<RxEvent>) -> Result<()> {
    enter(&args.rx_ns)?;
    let listener =
        TcpListener::bind(SocketAddr::from((args.rx_addr, 179))).context("bind receiver")?;
    let _ = tx.send(RxEvent::Listening);
    let me = Speaker {
        asn: args.rx_asn,
        router_id: args.rx_addr,
    };
    // A failed OPEN exchange (a DUT still starting) is followed by the DUT's next attempt.
    let mut s = loop {
        let (stream, _) = listener.accept().context("accept DUT")?;
        if let Ok(s) = me.establish(stream) {
            break s;
        }
    };
    let _ = tx.send(RxEvent::Established);
    let n = args.prefixes as usize;
    let mut held: HashSet<u64> = HashSet::with_capacity(n);
    let mut full = false;
    let mut buf = Vec::with_capacity(65535);
    loop {
        read_frame(&mut s.reader, &mut buf)?;
        let d = Message::decode(&buf, &s.decode).map_err(|e| anyhow::anyhow!("decode: {e:?}"))?;
        match d.message {
            Message::Update(u) => {
                apply(&u, &mut held);
                if !full && held.len() >= n {
                    full = true;
                    let _ = tx.send(RxEvent::All(Instant::now()));
                } else if full && held.is_empty() {
                    let _ = tx.send(RxEvent::Empty(Instant::now()));
                    full = false;
                }
            }
            Message::Notification(n) => bail!("DUT sent NOTIFICATION {n:?}"),
            _ => {}
        }
    }
}

/// CPU seconds (utime + stime, USER_HZ = 100 on Linux) and VmHWM in KiB of a process.
fn proc_stats(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM")?;
    Ok((ticks as f64 / 100.0, hwm))
}

struct Dut(Child);

impl Drop for Dut {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_rx(rx: &mpsc::Receiver<RxEvent>, timeout: Duration, what: &str) -> Result<RxEvent> {
    match rx.recv_timeout(timeout) {
        Ok(RxEvent::Failed(e)) => bail!("receiver failed while waiting for {what}: {e}"),
        Ok(ev) => Ok(ev),
        Err(_) => bail!("timed out waiting for {what}"),
    }
}

fn run(args: Args) -> Result<serde_json::Value> {
    if !(1..=32).contains(&args.len) || args.per_update == 0 || args.prefixes == 0 {
        bail!("need --len in 1..=32 and non-zero --prefixes and --per-update");
    }
    let args = std::sync::Arc::new(args);
    let timeout = Duration::from_secs(args.timeout);
    let cx = bgp_proto::EncodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    let (announce, n_ann) = workload::announcements(
        args.prefixes,
        args.len,
        args.per_update,
        args.inj_asn,
        args.inj_addr,
        &cx,
    )?;
    let (withdraw, n_wd) = workload::withdrawals(args.prefixes, args.len, args.per_update, &cx)?;
    let eor = Message::Update(Update::end_of_rib(Family::IPV4_UNICAST)).to_bytes(&cx)?;

    let (rx_tx, rx_rx) = mpsc::channel();
    {
        let args = args.clone();
        let tx = rx_tx.clone();
        thread::spawn(move || {
            if let Err(e) = receiver(&args, tx.clone()) {
                let _ = tx.send(RxEvent::Failed(format!("{e:#}")));
            }
        });
    }
    match wait_rx(&rx_rx, Duration::from_secs(10), "receiver listening")? {
        RxEvent::Listening => {}
        _ => bail!("receiver out of order"),
    }
    let log = File::create(&args.dut_log).context("DUT log")?;
    let child = Command::new("ip")
        .args(["netns", "exec", &args.dut_ns, "sh", "-c", &args.dut_cmd])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start DUT")?;
    let dut = Dut(child);
    let pid = dut.0.id();
    let started = Instant::now();

    // Injector: connect (retrying while the DUT starts), establish, drain whatever the DUT sends.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (inj_tx, inj_rx) = mpsc::channel::<Result<Instant, String>>();
    {
        let args = args.clone();
        thread::spawn(move || {
            let r = (|| -> Result<()> {
                enter(&args.inj_ns)?;
                let target = SocketAddr::from((args.dut_addr, 179));
                let deadline = Instant::now() + Duration::from_secs(30);
                let me = Speaker {
                    asn: args.inj_asn,
                    router_id: args.inj_addr,
                };
                // A daemon still loading its configuration may refuse or reset the first
                // attempts (FRR answers an early OPEN with an FSM error): retry until the deadline.
                let s = loop {
                    let attempt = TcpStream::connect_timeout(&target, Duration::from_secs(1))
                        .context("connect DUT")
                        .and_then(|stream| me.establish(stream));
                    match attempt {
                        Ok(s) => break s,
                        Err(e) if Instant::now() > deadline => return Err(e),
                        Err(_) => thread::sleep(Duration::from_millis(500)),
                    }
                };
                let mut reader = s.reader;
                thread::spawn(move || {
                    let mut sink = vec![0u8; 1 << 16];
                    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                });
                let w = s.writer;
                let _ = inj_tx.send(Ok(Instant::now()));
                go_rx.recv()?;
                {
                    // The DUT's hold timer restarts on every UPDATE, so holding the lock (and
                    // not sending keepalives) during the blast is fine.
                    let mut w = w
                        .lock()
                        .map_err(|_| anyhow::anyhow!("writer lock poisoned"))?;
                    let t0 = Instant::now();
                    w.write_all(&announce)?;
                    w.write_all(&eor)?;
                    let _ = inj_tx.send(Ok(t0));
                }
                go_rx.recv()?;
                {
                    let mut w = w
                        .lock()
                        .map_err(|_| anyhow::anyhow!("writer lock poisoned"))?;
                    let t1 = Instant::now();
                    w.write_all(&withdraw)?;
                    let _ = inj_tx.send(Ok(t1));
                }
                // Keep the session up until the process ends.
                let _ = go_rx.recv();
                Ok(())
            })();
            if let Err(e) = r {
                let _ = inj_tx.send(Err(format!("{e:#}")));
            }
        });
    }
    let inj_wait = |what: &str| -> Result<Instant> {
        match inj_rx.recv_timeout(timeout) {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => bail!("injector: {e}"),
            Err(_) => bail!("timed out waiting for injector {what}"),
        }
    };
    inj_wait("session")?;
    match wait_rx(&rx_rx, Duration::from_secs(60), "receiver session")? {
        RxEvent::Established => {}
        _ => bail!("receiver out of order"),
    }
    let establish_s = started.elapsed().as_secs_f64();
    // Let both sessions finish their initial exchange (End-of-RIB) before measuring.
    thread::sleep(Duration::from_secs(1));
    let (cpu0, _) = proc_stats(pid)?;
    let (self0, _) = proc_stats(std::process::id())?;
    go_tx.send(())?;
    let t0 = inj_wait("announce start")?;
    let t_all = match wait_rx(&rx_rx, timeout, "all prefixes at the receiver")? {
        RxEvent::All(t) => t,
        _ => bail!("receiver out of order"),
    };
    let (cpu1, _) = proc_stats(pid)?;
    let (self1, _) = proc_stats(std::process::id())?;
    go_tx.send(())?;
    let t1 = inj_wait("withdraw start")?;
    let t_empty = match wait_rx(&rx_rx, timeout, "all prefixes withdrawn at the receiver")? {
        RxEvent::Empty(t) => t,
        _ => bail!("receiver out of order"),
    };
    let (cpu2, hwm) = proc_stats(pid)?;
    let _ = go_tx.send(());
    drop(dut);
    Ok(serde_json::json!({
        "dut": args.label,
        "prefixes": args.prefixes,
        "len": args.len,
        "per_update": args.per_update,
        "updates": n_ann,
        "withdraw_updates": n_wd,
        "establish_s": establish_s,
        "announce_s": t_all.duration_since(t0).as_secs_f64(),
        "withdraw_s": t_empty.duration_since(t1).as_secs_f64(),
        "cpu_announce_s": cpu1 - cpu0,
        "cpu_s": cpu2 - cpu0,
        "harness_cpu_announce_s": self1 - self0,
        "vmhwm_kib": hwm,
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let label = args.label.clone();
    match run(args) {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({ "dut": label, "error": format!("{e:#}") })
            );
            std::process::ExitCode::FAILURE
        }
    }
}
