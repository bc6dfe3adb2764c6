//! Capability sequences of one optional parameter; what decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut caps = Vec::new();
    if bgp_proto::Capability::decode_all(data, &mut caps).is_ok() {
        let mut out = Vec::new();
        for c in &caps {
            c.encode(&mut out).expect("a decoded capability re-encodes");
        }
        let mut again = Vec::new();
        bgp_proto::Capability::decode_all(&out, &mut again).expect("re-decodes");
        assert_eq!(again, caps);
    }
});
