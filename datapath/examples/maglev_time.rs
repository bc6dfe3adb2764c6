//! Times one Maglev build: `cargo run --release -p datapath --example maglev_time -- M N`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use datapath::maglev::{self, Backend, Proto, Seed};

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (m, n) = (
        args.first().copied().unwrap_or(131071),
        args.get(1).copied().unwrap_or(1000),
    );
    let backends: Vec<Backend> = (0..n)
        .map(|i| {
            Backend::new(
                SocketAddr::new(Ipv4Addr::from(0x0a01_0000u32 + i).into(), 8080),
                Proto::Tcp,
            )
        })
        .collect();
    let seed = Seed::default();
    for _ in 0..20 {
        let t = Instant::now();
        let table = maglev::build(m, &seed, &backends);
        println!(
            "M={m} N={n}: {:?} ({} slots)",
            t.elapsed(),
            table.map(|t| t.len()).unwrap_or(0)
        );
    }
}
