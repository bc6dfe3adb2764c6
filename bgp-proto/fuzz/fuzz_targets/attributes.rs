//! Path attribute lists, wrapped in an UPDATE body with one IPv4 prefix so every RFC 7606 rule
//! (including missing mandatory attributes) applies.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&b, attrs)) = data.split_first() else {
        return;
    };
    let Ok(len) = u16::try_from(attrs.len()) else {
        return;
    };
    let (d, _) = common::contexts(b);
    let mut body = vec![0, 0];
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(&[24, 10, 0, 0]);
    if let Ok((u, outcome)) = bgp_proto::Update::decode(&body, &d) {
        assert_eq!(u.nlri.len(), 1, "the NLRI is always located");
        for e in outcome.errors() {
            assert_ne!(e.action, bgp_proto::Action::SessionReset);
        }
    }
});
