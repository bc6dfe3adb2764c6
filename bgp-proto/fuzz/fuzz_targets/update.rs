//! UPDATE bodies; the first octet picks the session context.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&b, body)) = data.split_first() else {
        return;
    };
    let (d, _) = common::contexts(b);
    if let Ok((mut u, _)) = bgp_proto::Update::decode(body, &d) {
        let _ = u.end_of_rib_family();
        u.merge_as4();
        u.prepare_readvertise();
        u.add_as4_for_two_octet_peer();
    }
});
