//! IPv4 and IPv6 NLRI fields with and without path identifiers; what decodes re-encodes to the
//! same length.
#![no_main]

use bgp_proto::nlri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for add_path in [false, true] {
        let mut v4 = Vec::new();
        if nlri::decode_ipv4(data, add_path, &mut v4).is_ok() {
            assert_eq!(nlri::ipv4_len(&v4, add_path), data.len());
            let mut out = Vec::new();
            nlri::encode_ipv4(&v4, add_path, &mut out);
            let mut again = Vec::new();
            nlri::decode_ipv4(&out, add_path, &mut again).expect("re-decodes");
            assert_eq!(again, v4);
        }
        let mut v6 = Vec::new();
        if nlri::decode_ipv6(data, add_path, &mut v6).is_ok() {
            assert_eq!(nlri::ipv6_len(&v6, add_path), data.len());
        }
    }
});
