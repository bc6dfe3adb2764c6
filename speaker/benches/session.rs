//! Session-layer cost without sockets: UPDATE ingest into the Adj-RIB-In (accept-all import) and
//! UPDATE packing of an Adj-RIB-Out, for 100k IPv4 /24s in 800-prefix UPDATEs. Run with
//! `cargo bench -p speaker --bench session`.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_proto::{
    AsPath, AttrValue, Capability, Decoded, EncodeContext, Family, Ipv4Nlri, Ipv4Prefix, Message,
    NextHop, Open, Origin, PathAttribute, Rfc7606, Update,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};
use speaker::advertise::packing::{AdjRibOut, OutRoute, diff, pack};
use speaker::bgp::collision::Direction;
use speaker::bgp::fsm::{FsmConfig, Input};
use speaker::bgp::session::{Session, SessionConfig};
use speaker::config::PeerAsn;
use speaker::import_policy::ImportPolicy;

const PREFIXES: u32 = 100_000;
const PER_UPDATE: u32 = 800;

fn clean(message: Message) -> Decoded {
    Decoded {
        message,
        rfc7606: Rfc7606::Clean,
    }
}

fn established(now: Instant) -> Session {
    let mut fsm = FsmConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), PeerAsn::Number(65002));
    fsm.hold_time = 90;
    let mut session = Session::new(SessionConfig {
        fsm,
        families: BTreeSet::from([Family::IPV4_UNICAST]),
        import: ImportPolicy::accept_all(),
        max_prefixes: None,
        soft_reconfiguration_inbound: false,
        refresh_interval: Duration::from_secs(5),
        graceful_restart: None,
        stale_path_time: Duration::from_secs(360),
        extended_next_hop: false,
    });
    session.handle(now, Input::Start);
    session.connected(
        now,
        1,
        Direction::Outbound,
        "10.0.0.1".parse().expect("ip"),
        None,
    );
    let open = Open::new(
        65002,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65002),
        ],
    );
    session.received(now, 1, clean(Message::Open(open)));
    session.received(now, 1, clean(Message::Keepalive));
    session
}

fn updates() -> Vec<Update> {
    (0..PREFIXES / PER_UPDATE)
        .map(|u| Update {
            attributes: vec![
                PathAttribute::new(AttrValue::Origin(Origin::Igp)),
                PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65002]))),
                PathAttribute::new(AttrValue::NextHop(Ipv4Addr::new(10, 0, 0, 2))),
            ],
            nlri: (0..PER_UPDATE)
                .map(|i| {
                    let n = u * PER_UPDATE + i;
                    let addr = Ipv4Addr::from(0x0b00_0000 + (n << 8));
                    Ipv4Nlri::new(Ipv4Prefix::new(addr, 24).expect("len"))
                })
                .collect(),
            ..Update::default()
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let updates = updates();
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(u64::from(PREFIXES)));
    group.sample_size(10);
    group.bench_function("ingest_100k_prefixes_accept_all", |b| {
        b.iter_batched(
            || (established(Instant::now()), updates.clone()),
            |(mut session, updates)| {
                let now = Instant::now();
                for u in updates {
                    black_box(session.received(now, 1, clean(Message::Update(u))));
                }
                assert_eq!(session.rib_in().accepted(), PREFIXES as usize);
                session
            },
            criterion::BatchSize::LargeInput,
        );
    });
    let route = OutRoute {
        attributes: Arc::new(vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65001]))),
        ]),
        next_hop: NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
    };
    let desired: AdjRibOut = (0..PREFIXES)
        .map(|n| {
            let net = Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + (n << 8)), 24).expect("net");
            (IpNet::V4(net), route.clone())
        })
        .collect();
    let empty = AdjRibOut::new();
    let changes = diff(&empty, &desired);
    let cx = EncodeContext::default();
    group.bench_function("pack_100k_prefixes", |b| {
        b.iter(|| black_box(pack(black_box(&changes), &cx).updates));
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
