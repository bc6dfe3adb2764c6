//! Cost of deriving the datapath's service table (`daemon::desired::service_table`), the pure step
//! between a service change (an EndpointSlice update, a reload) and the datapath's apply: one
//! service with 100 endpoints, one with 1,000 ports × 4 endpoints, and 10,000 services × 10
//! endpoints on 100 nodes. The kernel side of the same cases is `datapath/examples/resync.rs`.
//! `cargo bench -p speaker --bench service_table`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use lb_ipam::{Protocol, ServiceKey};
use speaker::advertise::{EndpointView, PortView, ServiceState, ServiceView};
use speaker::daemon::desired::{TableInputs, service_table};

fn nodes(n: usize) -> BTreeMap<String, IpAddr> {
    (0..n)
        .map(|i| {
            (
                format!("node{i}"),
                IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]),
            )
        })
        .collect()
}

fn service(index: usize, ports: usize, endpoints: usize, nodes: usize) -> ServiceView {
    ServiceView {
        namespace: "bench".into(),
        name: format!("svc{index}"),
        ports: (0..ports)
            .map(|p| PortView {
                name: Some(format!("p{p}")),
                port: 1000 + p as u16,
                protocol: Protocol::TCP,
            })
            .collect(),
        endpoints: (0..endpoints)
            .map(|e| EndpointView {
                ip: IpAddr::from([
                    10,
                    250,
                    (index / 256 % 256) as u8,
                    ((index + e) % 256) as u8,
                ]),
                node_name: Some(format!("node{}", (index + e) % nodes)),
                ready: true,
                ports: Vec::new(),
            })
            .collect(),
        ..ServiceView::default()
    }
}

fn state(services: Vec<ServiceView>) -> ServiceState {
    let allocations = services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                ServiceKey::new(&s.namespace, &s.name),
                vec![IpAddr::from([
                    10,
                    200,
                    (i / 256 % 256) as u8,
                    (i % 256) as u8,
                ])],
            )
        })
        .collect();
    ServiceState {
        services,
        allocations,
    }
}

fn bench(c: &mut Criterion) {
    let nodes = nodes(100);
    let cases = [
        (
            "1 service x 100 endpoints",
            state(vec![service(0, 1, 100, 100)]),
        ),
        (
            "1 service x 1000 ports x 4 endpoints",
            state(vec![service(0, 1000, 4, 100)]),
        ),
        (
            "10000 services x 10 endpoints",
            state((0..10_000).map(|i| service(i, 1, 10, 100)).collect()),
        ),
    ];
    let mut group = c.benchmark_group("service_table");
    group.sample_size(10);
    for (name, st) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                service_table(&TableInputs {
                    node_name: "node0",
                    nodes: &nodes,
                    state: st,
                    cluster_ips: false,
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
