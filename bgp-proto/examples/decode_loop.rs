//! Decodes benchmark case (a) — one IPv4 /24 with ORIGIN, a 3-AS AS_PATH, NEXT_HOP, MED and three
//! communities, the same bytes `benches/codec.rs` uses — N times in a loop, so an instruction
//! counter can measure the decoder on a loaded machine where timings wander:
//!
//! ```sh
//! cargo build --release -p bgp-proto --example decode_loop
//! valgrind --tool=callgrind target/release/examples/decode_loop 100000
//! ```
//!
//! Instructions per decode = (total at N) − (total at 0), divided by N.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use bgp_proto::{
    AsPath, AttrValue, Community, DecodeContext, EncodeContext, Ipv4Nlri, Ipv4Prefix, Message,
    Origin, PathAttribute, Update,
};

fn main() -> ExitCode {
    let n: u64 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: decode_loop [ITERATIONS]: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(prefix) = Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 0), 24) else {
        eprintln!("invalid prefix");
        return ExitCode::FAILURE;
    };
    let update = Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[
                65001,
                65002,
                4_200_000_000,
            ]))),
            PathAttribute::new(AttrValue::NextHop(Ipv4Addr::new(192, 0, 2, 1))),
            PathAttribute::new(AttrValue::MultiExitDisc(10)),
            PathAttribute::new(AttrValue::Communities(vec![
                Community::new(65001, 100),
                Community::new(65001, 200),
                Community::NO_EXPORT,
            ])),
        ],
        nlri: vec![Ipv4Nlri::new(prefix)],
    };
    let ecx = EncodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    let dcx = DecodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    let wire = match Message::Update(update).to_bytes(&ecx) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("encode: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut clean = 0u64;
    for _ in 0..n {
        if let Ok(d) = Message::decode(black_box(&wire), &dcx) {
            clean += u64::from(d.rfc7606.is_clean());
            black_box(d);
        }
    }
    println!("{clean}/{n} decoded clean ({} octets)", wire.len());
    ExitCode::SUCCESS
}
