//! ICMPv6 neighbor discovery (NS/NA with link-layer address options). The input is the IPv6
//! source (16 octets), destination (16 octets) and the ICMPv6 message. Each message is parsed as
//! is and again with a corrected checksum, so the option walk is reached; a parsed message
//! re-emits to bytes that parse back to the same value.
#![no_main]

use std::net::Ipv6Addr;

use arp_responder::wire::NdiscRepr;
use arp_responder::wire::ipv6::{NEXT_HEADER_ICMPV6, upper_layer_checksum};
use libfuzzer_sys::fuzz_target;

fn check(msg: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let Ok(repr) = NdiscRepr::parse(msg, src, dst) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, src, dst);
    assert_eq!(NdiscRepr::parse(&out, src, dst).ok(), Some(repr));
}

fuzz_target!(|data: &[u8]| {
    let Some((addrs, msg)) = data.split_first_chunk::<32>() else {
        return;
    };
    let (s, d) = addrs.split_at(16);
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(s).unwrap_or_default());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(d).unwrap_or_default());
    check(msg, src, dst);
    if msg.len() >= 4 {
        let mut fixed = msg.to_vec();
        fixed[2] = 0;
        fixed[3] = 0;
        let c = upper_layer_checksum(src, dst, NEXT_HEADER_ICMPV6, &fixed);
        fixed[2..4].copy_from_slice(&c.to_be_bytes());
        check(&fixed, src, dst);
    }
});
