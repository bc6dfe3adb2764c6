//! A misbehaving peer must not make the agent's memory grow without bound: a raw BGP client in
//! the peer namespace (1) leaks a million prefixes and must get a Cease / Maximum Number of
//! Prefixes Reached from the default limit, (2) stops reading its socket while asking for
//! ROUTE-REFRESH in a loop and must be dropped by the RFC 9687 send hold timer. Both watch the
//! agent's VmRSS / VmHWM in `/proc` and print the numbers.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bgp_proto::iana::RouteRefreshSubtype;
use bgp_proto::{
    AsPath, AttrValue, Capability, DecodeContext, EncodeContext, Family, HEADER_LEN, Ipv4Nlri,
    Ipv4Prefix, Message, Nlri, Open, Origin, PathAttribute, RouteRefresh, Update,
};
use common::{Speaker, Topology, speaker_yaml};
use herald_tests::in_netns;

const MIB: u64 = 1024 * 1024;

/// `VmRSS` and `VmHWM` of a process, bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn read_frame(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; HEADER_LEN];
    stream.read_exact(&mut buf)?;
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    if len < HEADER_LEN {
        return Err(std::io::Error::other("bad length"));
    }
    buf.resize(len, 0);
    stream.read_exact(&mut buf[HEADER_LEN..])?;
    Ok(buf)
}

fn encode() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        ..EncodeContext::default()
    }
}

/// Connects to the agent and runs the OPEN/KEEPALIVE exchange as AS 65000.
fn establish(hold: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("10.77.0.1", 179)).expect("connect to the agent");
    stream.set_nodelay(true).expect("nodelay");
    let open = Open::new(
        65000,
        hold,
        Ipv4Addr::new(10, 77, 0, 2),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65000),
        ],
    );
    stream
        .write_all(&Message::Open(open).to_bytes(&encode()).expect("encode"))
        .expect("send OPEN");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got_open = false;
    loop {
        let frame = read_frame(&mut stream).expect("read during OPEN exchange");
        match Message::decode(&frame, &DecodeContext::default()).map(|d| d.message) {
            Ok(Message::Open(_)) => {
                got_open = true;
                stream
                    .write_all(&Message::Keepalive.to_bytes(&encode()).expect("encode"))
                    .expect("send KEEPALIVE");
            }
            Ok(Message::Keepalive) if got_open => return stream,
            other => panic!("unexpected during OPEN exchange: {other:?}"),
        }
    }
}

/// `n` IPv4 /24s from 32.0.0.0, ~900 per UPDATE, pre-encoded.
fn leak(n: u32) -> Vec<u8> {
    let attributes = vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65000]))),
        PathAttribute::new(AttrValue::NextHop(Ipv4Addr::new(10, 77, 0, 2))),
    ];
    let mut out = bytes::BytesMut::new();
    let mut i = 0;
    while i < n {
        let end = (i + 900).min(n);
        let nlri: Vec<Ipv4Nlri> = (i..end)
            .map(|j| {
                let addr = Ipv4Addr::from(0x2000_0000u32 + (j << 8));
                Nlri::new(Ipv4Prefix::new(addr, 24).expect("len"))
            })
            .collect();
        Message::Update(Update {
            withdrawn: Vec::new(),
            attributes: attributes.clone(),
            nlri,
        })
        .encode(&encode(), &mut out)
        .expect("encode UPDATE");
        i = end;
    }
    out.to_vec()
}

fn peer_yaml(extra: &str) -> String {
    format!(
        "    - address: 10.77.0.2\n      asn: 65000\n      passive: true\n      timers:\n        holdTimeSeconds: 30\n{extra}"
    )
}

#[test]
fn a_peer_leaking_a_million_prefixes_gets_a_cease_and_memory_stays_bounded() {
    let t = Topology::new("limits_leak");
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peer_yaml(""),
        common::ACCEPT_ALL_AND_STATIC,
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    let pid = speaker.process.as_ref().expect("running").pid();
    let (rss_before, _) = memory(pid);
    let updates = leak(1_000_000);

    let started = Instant::now();
    let notification = in_netns(&t.peer, move || {
        let stream = establish(30);
        let mut reader = stream.try_clone().expect("clone");
        reader
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let read = std::thread::spawn(move || {
            loop {
                let Ok(frame) = read_frame(&mut reader) else {
                    return None;
                };
                let cx = DecodeContext {
                    four_octet_as: true,
                    ..DecodeContext::default()
                };
                if let Ok(Message::Notification(n)) =
                    Message::decode(&frame, &cx).map(|d| d.message)
                {
                    return Some(n);
                }
            }
        });
        let mut writer = stream;
        // The agent closes the connection after its Cease; the rest of the leak fails to send.
        for chunk in updates.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
        let n = read.join().expect("reader thread");
        let _ = writer.shutdown(Shutdown::Both);
        n
    });
    let elapsed = started.elapsed();
    let (rss_after, hwm) = memory(pid);
    let status = speaker.peer("10.77.0.2");
    println!(
        "leak: Cease after {elapsed:?}; agent VmRSS before {} MiB, after {} MiB, peak (VmHWM) {} MiB; peer {} last_error {:?} memory_bytes {}",
        rss_before / MIB,
        rss_after / MIB,
        hwm / MIB,
        status.state,
        status.last_error,
        status.memory_bytes
    );
    let n =
        notification.unwrap_or_else(|| panic!("no NOTIFICATION from the agent\n{}", speaker.log()));
    assert_eq!(u8::from(n.code), 6, "Cease: {n:?}");
    assert_eq!(n.subcode, 1, "Maximum Number of Prefixes Reached: {n:?}");
    // AFI 1, SAFI 1, upper bound 100000.
    assert_eq!(n.data, [0, 1, 1, 0x00, 0x01, 0x86, 0xa0]);
    assert_ne!(status.state, "Established");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("100000")),
        "{status:?}"
    );
    assert_eq!(
        status.prefixes_received, 0,
        "routes flushed after the Cease"
    );
    assert!(
        hwm.saturating_sub(rss_before) < 200 * MIB,
        "agent peak RSS grew by {} MiB",
        hwm.saturating_sub(rss_before) / MIB
    );
}

#[test]
fn a_peer_that_stops_reading_is_dropped_by_the_send_hold_timer() {
    let t = Topology::new("limits_sendhold");
    // 60,000 /32s to announce (the YAML parser caps a file at 250,000 nodes): each replay of
    // the table is ~300 KB, which fills the socket
    // buffers of a peer that reads nothing within a few replays.
    let mut statics = String::from("  staticRoutes:\n");
    for i in 0..60_000u32 {
        let a = Ipv4Addr::from(0x0a40_0000u32 + i);
        statics.push_str(&format!("    - prefix: {a}/32\n"));
    }
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peer_yaml("      sendHoldTimeSeconds: 5\n"),
        &statics,
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    let pid = speaker.process.as_ref().expect("running").pid();
    let (rss_before, _) = memory(pid);

    let (dropped_after, max_rss) = in_netns(&t.peer, move || {
        let stream = establish(30);
        let connected = Instant::now();
        let mut writer = stream;
        let refresh = Message::RouteRefresh(RouteRefresh::new(
            Family::IPV4_UNICAST,
            RouteRefreshSubtype::Normal,
        ))
        .to_bytes(&encode())
        .expect("encode");
        let keepalive = Message::Keepalive.to_bytes(&encode()).expect("encode");
        let mut max_rss = 0;
        let mut last_keepalive = Instant::now();
        // Never read; ask for the table again and again, keep the hold timer happy.
        while connected.elapsed() < Duration::from_secs(60) {
            if writer.write_all(&refresh).is_err() {
                return (Some(connected.elapsed()), max_rss);
            }
            if last_keepalive.elapsed() >= Duration::from_secs(1) {
                last_keepalive = Instant::now();
                if writer.write_all(&keepalive).is_err() {
                    return (Some(connected.elapsed()), max_rss);
                }
                max_rss = max_rss.max(memory(pid).0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (None, max_rss)
    });
    let (_, hwm) = memory(pid);
    let status = speaker.peer("10.77.0.2");
    println!(
        "send hold: dropped after {dropped_after:?}; agent VmRSS before {} MiB, max while connected {} MiB, peak (VmHWM) {} MiB; peer {} last_error {:?}",
        rss_before / MIB,
        max_rss / MIB,
        hwm / MIB,
        status.state,
        status.last_error
    );
    let dropped_after =
        dropped_after.unwrap_or_else(|| panic!("never dropped: {status:?}\n{}", speaker.log()));
    // Buffers fill within a few replays, then 5 s without progress.
    assert!(dropped_after < Duration::from_secs(45), "{dropped_after:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("send hold")),
        "{status:?}"
    );
    assert!(
        max_rss.saturating_sub(rss_before) < 200 * MIB,
        "agent RSS grew by {} MiB while the peer was connected",
        max_rss.saturating_sub(rss_before) / MIB
    );
}
