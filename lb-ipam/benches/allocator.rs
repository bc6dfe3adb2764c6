//! Allocation and release throughput of the pure allocator: 50k and 1M services over an IPv4
//! /11 and an IPv6 /64 pool (IPv4 only, IPv6 only, and half/half). Requests are built outside the
//! timed section; only `upsert` / `remove` are measured.
//!
//! Time is the benchmark thread's CPU time (`/proc/thread-self/schedstat`), not wall time: the
//! machines this runs on are shared, and wall time mostly measured the other tenants.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use lb_ipam::{Allocator, Block, IpFamily, Pool, PoolSpec, Request, ServiceKey};

fn pools() -> Vec<Pool> {
    let mk = |name: &str, cidr: &str| {
        Pool::new(
            name,
            PoolSpec {
                blocks: vec![Block::Cidr {
                    cidr: cidr.parse().expect("bench cidr"),
                }],
                auto_assign: true,
                ..Default::default()
            },
        )
        .expect("bench pool")
    };
    vec![mk("v4", "10.0.0.0/11"), mk("v6", "2001:db8::/64")]
}

#[derive(Clone, Copy)]
enum Mix {
    V4,
    V6,
    Half,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
            Self::Half => "mixed",
        }
    }
}

fn requests(n: usize, mix: Mix) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let mut r = Request::new(ServiceKey::new(format!("ns{}", i % 64), format!("svc-{i}")));
            let v6 = match mix {
                Mix::V4 => false,
                Mix::V6 => true,
                Mix::Half => i % 2 == 1,
            };
            r.families = vec![if v6 { IpFamily::IPv6 } else { IpFamily::IPv4 }];
            r
        })
        .collect()
}

/// CPU time consumed by this thread so far, in nanoseconds.
fn thread_cpu() -> Duration {
    let ns = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// Runs `work` on a fresh input from `setup` per iteration, timing only `work` in CPU time.
fn cpu_iter<I, O>(
    iters: u64,
    mut setup: impl FnMut() -> I,
    mut work: impl FnMut(I) -> O,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let start = thread_cpu();
        let out = work(input);
        total += thread_cpu().saturating_sub(start);
        drop(black_box(out));
    }
    total
}

/// `items` in a fixed pseudo-random order (Fisher-Yates driven by xorshift64).
fn shuffled<T>(mut items: Vec<T>) -> Vec<T> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
    items
}

fn filled(reqs: &[Request]) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools()).expect("pools");
    for r in reqs {
        a.upsert(r.clone());
    }
    a
}

fn bench(c: &mut Criterion) {
    for (n, mixes) in [
        (50_000usize, &[Mix::V4, Mix::V6, Mix::Half][..]),
        (1_000_000, &[Mix::Half][..]),
    ] {
        let mut group = c.benchmark_group(format!("allocator/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(10);
        // One timed pass per sample: each pass is already 50k or 1M operations.
        group.sampling_mode(SamplingMode::Flat);
        group.measurement_time(Duration::from_secs(if n > 100_000 { 20 } else { 3 }));
        for &mix in mixes {
            let reqs = requests(n, mix);
            group.bench_function(format!("allocate/{}", mix.name()), |b| {
                b.iter_custom(|iters| {
                    cpu_iter(
                        iters,
                        || {
                            let mut a = Allocator::new();
                            a.set_pools(pools()).expect("pools");
                            (a, reqs.clone())
                        },
                        |(mut a, reqs)| {
                            for r in reqs {
                                a.upsert(black_box(r));
                            }
                            a
                        },
                    )
                });
            });
            let full = filled(&reqs);
            let keys: Vec<ServiceKey> = reqs.iter().map(|r| r.key.clone()).collect();
            // Creation order (which is address order) and a fixed random order, which defeats
            // the locality that ordered maps get from sequential addresses.
            for (order, keys) in [("", keys.clone()), ("-random", shuffled(keys))] {
                group.bench_function(format!("release{order}/{}", mix.name()), |b| {
                    b.iter_custom(|iters| {
                        cpu_iter(
                            iters,
                            || full.clone(),
                            |mut a| {
                                for k in &keys {
                                    a.remove(k);
                                }
                                a
                            },
                        )
                    });
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
