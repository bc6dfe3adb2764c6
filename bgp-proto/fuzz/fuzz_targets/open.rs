//! OPEN bodies, and negotiation between any two OPENs that decode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(open) = bgp_proto::Open::decode(data) else {
        return;
    };
    let n = bgp_proto::negotiate(&open, &open);
    assert_eq!(
        n.add_path_rx, n.add_path_tx,
        "negotiation with itself is symmetric"
    );
    let mut out = Vec::new();
    open.encode_body(&mut out)
        .expect("a decoded OPEN re-encodes");
    assert_eq!(bgp_proto::Open::decode(&out).as_ref(), Ok(&open));
});
