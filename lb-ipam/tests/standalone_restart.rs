//! Standalone mode restarts: after any sequence of configuration changes applied to a running
//! instance, reopening from the state file (a restart) reproduces exactly the same allocations
//! and outcomes. Uses real files in a temporary directory.

use lb_ipam::config::{BlockConfig, IpamConfig, PoolConfig};
use lb_ipam::service::ServiceSpec;
use lb_ipam::standalone::Standalone;
use proptest::prelude::*;

const CIDRS: [&str; 4] = [
    "10.1.0.0/29",
    "10.1.0.8/30",
    "2001:db8:5::/126",
    "10.1.0.4/30",
];

#[derive(Debug, Clone)]
struct Config {
    pools: Vec<(u8, usize, bool, Option<u32>)>,
    services: Vec<(u8, u8, Option<u8>)>,
}

fn config_gen() -> impl Strategy<Value = Config> {
    (
        prop::collection::vec(
            (
                0u8..3,
                0..CIDRS.len(),
                prop::bool::weighted(0.2),
                prop::option::of(0u32..2),
            ),
            0..4,
        ),
        prop::collection::vec((0u8..8, 0u8..3, prop::option::weighted(0.3, 0u8..3)), 0..8),
    )
        .prop_map(|(pools, services)| Config { pools, services })
}

fn materialise(c: &Config, state: &std::path::Path) -> (IpamConfig, Vec<ServiceSpec>) {
    let mut pools: Vec<PoolConfig> = Vec::new();
    for (name, cidr, disabled, priority) in &c.pools {
        let name = format!("pool{name}");
        if pools.iter().any(|p| p.name == name) {
            continue;
        }
        pools.push(PoolConfig {
            name,
            blocks: vec![BlockConfig {
                cidr: Some(CIDRS[*cidr].parse().expect("cidr")),
                start: None,
                stop: None,
            }],
            service_selector: None,
            namespace_selector: None,
            allow_first_last_ips: false,
            disabled: *disabled,
            auto_assign: true,
            priority: *priority,
        });
    }
    let mut services: Vec<ServiceSpec> = Vec::new();
    for (id, family, sharing) in &c.services {
        let name = format!("svc{id}");
        if services.iter().any(|s| s.name == name) {
            continue;
        }
        let mut s = ServiceSpec::new("default", name);
        s.ip_families = match family {
            0 => vec![lb_ipam::IpFamily::IPv4],
            1 => vec![lb_ipam::IpFamily::IPv6],
            _ => vec![lb_ipam::IpFamily::IPv4, lb_ipam::IpFamily::IPv6],
        };
        if *family == 2 {
            s.ip_family_policy = Some(lb_ipam::FamilyPolicy::PreferDualStack);
        }
        if let Some(k) = sharing {
            s.annotations
                .insert("herald.io/sharing-key".into(), format!("k{k}"));
            s.ports.push(lb_ipam::service::ServicePort {
                name: None,
                port: 8000 + u16::from(*id),
                protocol: lb_ipam::Protocol::TCP,
            });
        }
        services.push(s);
    }
    (
        IpamConfig {
            pools,
            state_file: Some(state.to_path_buf()),
        },
        services,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reopening_the_state_file_reproduces_the_state(configs in prop::collection::vec(config_gen(), 1..6)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("lb-ipam.json");
        let (first_cfg, first_services) = materialise(&configs[0], &state);
        let mut running = Standalone::open(&first_cfg, &first_services, "node-a").expect("open");
        for c in &configs {
            let (cfg, services) = materialise(c, &state);
            running.apply(&cfg, &services).expect("apply");
            let restarted = Standalone::open(&cfg, &services, "node-a").expect("reopen");
            prop_assert_eq!(restarted.report(), running.report());
        }
    }
}
