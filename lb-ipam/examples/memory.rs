//! Memory use of the allocator: allocates N services from an IPv6 /64 and from an IPv4 /11 pool
//! and prints the resident-set growth, to show it follows the number of allocations and not the
//! pool size. Run: `cargo run --release -p lb-ipam --no-default-features --example memory -- 1000000`.

use lb_ipam::{Allocator, Block, IpFamily, Pool, PoolSpec, Request, ServiceKey};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn run(n: usize, cidr: &str, family: IpFamily) -> Result<(), lb_ipam::Error> {
    let before = rss_kib();
    let mut a = Allocator::new();
    a.set_pools(vec![Pool::new(
        "p",
        PoolSpec {
            blocks: vec![Block::Cidr {
                cidr: cidr.parse().map_err(|e: ipnet::AddrParseError| {
                    lb_ipam::Error::InvalidPool {
                        pool: "p".into(),
                        reason: e.to_string(),
                    }
                })?,
            }],
            auto_assign: true,
            ..Default::default()
        },
    )?])?;
    let empty = rss_kib();
    for i in 0..n {
        let mut r = Request::new(ServiceKey::new("ns", format!("svc-{i}")));
        r.families = vec![family];
        a.upsert(r);
    }
    let full = rss_kib();
    let st = &a.pool_statuses()[0];
    println!(
        "{cidr:>16}: pool of {} addresses, {} allocated; empty allocator +{} KiB, \
         after allocating +{} KiB ({:.0} bytes per service)",
        st.total,
        st.used,
        empty.saturating_sub(before),
        full.saturating_sub(empty),
        (full.saturating_sub(empty) * 1024) as f64 / n.max(1) as f64
    );
    Ok(())
}

fn main() -> Result<(), lb_ipam::Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    run(n, "2001:db8::/64", IpFamily::IPv6)?;
    run(n, "10.0.0.0/11", IpFamily::IPv4)?;
    run(0, "2001:db8::/32", IpFamily::IPv6)?;
    Ok(())
}
