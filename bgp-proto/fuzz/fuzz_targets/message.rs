//! Whole frames through `frame_len` and `Message::decode` under every context.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    for b in [0u8, 0x1f] {
        let (d, _) = common::contexts(b);
        if let Some(n) = bgp_proto::frame_len(data) {
            if let Some(frame) = data.get(..n) {
                let _ = bgp_proto::Message::decode(frame, &d);
            }
        }
        let _ = bgp_proto::Message::decode(data, &d);
    }
});
