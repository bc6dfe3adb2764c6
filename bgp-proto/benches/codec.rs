//! Decode/encode benchmarks of three UPDATE shapes, side by side with `rustbgpd-wire` and
//! `bgpkit-parser` decoding the same bytes. Run with `cargo bench -p bgp-proto`.
#![expect(missing_docs, reason = "criterion generates the bench entry points")]

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_proto::{
    AsPath, AttrValue, Community, DecodeContext, EncodeContext, Family, Ipv4Nlri, Ipv4Prefix,
    Ipv6Nlri, Ipv6Prefix, LargeCommunity, Message, MpNlri, MpReach, NextHop, Origin, PathAttribute,
    Update,
};
use bytes::{Bytes, BytesMut};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nix::time::{ClockId, clock_gettime};

/// Criterion clock reading the calling thread's CPU time: on a shared machine wall time also counts
/// the time other processes hold the core, CPU time counts only ours.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e3, "µs")
        } else {
            (1e6, "ms")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        // Report nanoseconds per element (prefix), which is what the targets are stated in.
        values.iter_mut().for_each(|v| *v /= n);
        "ns/prefix"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn v4(a: u8, b: u8, c: u8, len: u8) -> Ipv4Nlri {
    Ipv4Nlri::new(Ipv4Prefix::new(Ipv4Addr::new(a, b, c, 0), len).expect("valid prefix"))
}

fn base_attrs() -> Vec<PathAttribute> {
    vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[
            65001,
            65002,
            4_200_000_000,
        ]))),
    ]
}

/// (a) one IPv4 prefix with NEXT_HOP, MED and three communities.
fn one_prefix() -> Update {
    let mut attributes = base_attrs();
    attributes.push(PathAttribute::new(AttrValue::NextHop(Ipv4Addr::new(
        192, 0, 2, 1,
    ))));
    attributes.push(PathAttribute::new(AttrValue::MultiExitDisc(10)));
    attributes.push(PathAttribute::new(AttrValue::Communities(vec![
        Community::new(65001, 100),
        Community::new(65001, 200),
        Community::NO_EXPORT,
    ])));
    Update {
        withdrawn: vec![],
        attributes,
        nlri: vec![v4(10, 1, 2, 24)],
    }
}

/// (b) 900 IPv4 /24s sharing one set of attributes.
fn packed() -> Update {
    let mut attributes = base_attrs();
    attributes.push(PathAttribute::new(AttrValue::NextHop(Ipv4Addr::new(
        192, 0, 2, 1,
    ))));
    let nlri = (0..900u32)
        .map(|i| v4(10, (i >> 8) as u8, i as u8, 24))
        .collect();
    Update {
        withdrawn: vec![],
        attributes,
        nlri,
    }
}

/// (c) IPv6 unicast in MP_REACH_NLRI: global + link-local next hop, 8 /48s, large communities.
fn ipv6() -> Update {
    let mut attributes = base_attrs();
    let nlri: Vec<Ipv6Nlri> = (0..8u16)
        .map(|i| {
            let a = Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0);
            Ipv6Nlri::new(Ipv6Prefix::new(a, 48).expect("valid prefix"))
        })
        .collect();
    attributes.insert(
        0,
        PathAttribute::new(AttrValue::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "2001:db8::1".parse().expect("address"),
                link_local: Some("fe80::1".parse().expect("address")),
            },
            nlri: MpNlri::Ipv6(nlri),
        })),
    );
    attributes.push(PathAttribute::new(AttrValue::LargeCommunities(vec![
        LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        },
        LargeCommunity {
            global: 65001,
            local1: 3,
            local2: 4,
        },
    ])));
    Update {
        withdrawn: vec![],
        attributes,
        nlri: vec![],
    }
}

fn cases() -> Vec<(&'static str, Update, u64)> {
    vec![
        ("a_one_prefix_communities", one_prefix(), 1),
        ("b_900_slash24", packed(), 900),
        ("c_ipv6_mp_reach", ipv6(), 8),
    ]
}

fn decode(c: &mut Criterion<CpuTime>) {
    let ecx = EncodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    let dcx = DecodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    for (name, update, prefixes) in cases() {
        let wire = Message::Update(update)
            .to_bytes(&ecx)
            .expect("encodes")
            .freeze();
        let mut g = c.benchmark_group(format!("decode/{name}"));
        g.throughput(Throughput::Elements(prefixes));

        // Every library must accept the bytes, or the comparison is void.
        assert!(
            Message::decode(&wire, &dcx)
                .expect("bgp-proto decodes")
                .rfc7606
                .is_clean()
        );
        let rb = rustbgpd_wire::decode_message(&mut wire.clone(), 4096).expect("rustbgpd decodes");
        let rustbgpd_wire::Message::Update(rb) = rb else {
            panic!("rustbgpd: not an UPDATE")
        };
        rb.parse(true, false, &[]).expect("rustbgpd parses");
        bgpkit_parser::parser::bgp::parse_bgp_message(
            &mut wire.clone(),
            false,
            &bgpkit_parser::models::AsnLength::Bits32,
        )
        .expect("bgpkit decodes");

        g.bench_function(BenchmarkId::new("bgp-proto", name), |b| {
            b.iter(|| Message::decode(black_box(&wire), &dcx))
        });
        g.bench_function(BenchmarkId::new("rustbgpd-wire", name), |b| {
            b.iter(|| {
                let mut buf: Bytes = black_box(&wire).clone();
                match rustbgpd_wire::decode_message(&mut buf, 4096) {
                    Ok(rustbgpd_wire::Message::Update(u)) => u.parse(true, false, &[]).ok(),
                    _ => None,
                }
            })
        });
        g.bench_function(BenchmarkId::new("bgpkit-parser", name), |b| {
            b.iter(|| {
                let mut buf: Bytes = black_box(&wire).clone();
                bgpkit_parser::parser::bgp::parse_bgp_message(
                    &mut buf,
                    false,
                    &bgpkit_parser::models::AsnLength::Bits32,
                )
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion<CpuTime>) {
    let ecx = EncodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    for (name, update, prefixes) in cases() {
        let msg = Message::Update(update);
        let wire = msg.to_bytes(&ecx).expect("encodes").freeze();
        let mut g = c.benchmark_group(format!("encode/{name}"));
        g.throughput(Throughput::Elements(prefixes));

        let mut out = BytesMut::with_capacity(4096);
        g.bench_function(BenchmarkId::new("bgp-proto", name), |b| {
            b.iter(|| {
                out.clear();
                black_box(&msg).encode(&ecx, &mut out).expect("encodes");
                out.len()
            })
        });

        // rustbgpd-wire: build the wire UPDATE from its parsed form, then frame it.
        let rustbgpd_wire::Message::Update(raw) =
            rustbgpd_wire::decode_message(&mut wire.clone(), 4096).expect("decodes")
        else {
            panic!("not an UPDATE")
        };
        let parsed = raw.parse(true, false, &[]).expect("parses");
        g.bench_function(BenchmarkId::new("rustbgpd-wire", name), |b| {
            b.iter(|| {
                let p = black_box(&parsed);
                let u = rustbgpd_wire::UpdateMessage::try_build(
                    &p.announced,
                    &p.withdrawn,
                    &p.attributes,
                    true,
                    false,
                    rustbgpd_wire::Ipv4UnicastMode::Body,
                )
                .expect("builds");
                rustbgpd_wire::encode_message(&rustbgpd_wire::Message::Update(u))
                    .expect("encodes")
                    .len()
            })
        });

        let bk = bgpkit_parser::parser::bgp::parse_bgp_message(
            &mut wire.clone(),
            false,
            &bgpkit_parser::models::AsnLength::Bits32,
        )
        .expect("decodes");
        g.bench_function(BenchmarkId::new("bgpkit-parser", name), |b| {
            b.iter(|| {
                black_box(&bk)
                    .encode(bgpkit_parser::models::AsnLength::Bits32)
                    .map(|b| b.len())
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = decode, encode
}
criterion_main!(benches);
