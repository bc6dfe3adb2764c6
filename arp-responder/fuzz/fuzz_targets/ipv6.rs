//! The fixed IPv6 header through the `Packet` view (every accessor on unchecked input), the
//! checked constructor and `Ipv6Repr::parse`, then a re-emit that must parse back to the same
//! header; and the pseudo-header checksum over the payload.
#![no_main]

use arp_responder::wire::Ipv6Repr;
use arp_responder::wire::ipv6::{HEADER_LEN, Packet, upper_layer_checksum};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = Packet::new_unchecked(data);
    let _ = (
        p.version(),
        p.payload_len(),
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload(),
    );
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    assert_eq!(p.payload().len(), usize::from(p.payload_len()));
    let Ok(repr) = Ipv6Repr::parse(&p) else {
        return;
    };
    let _ = upper_layer_checksum(repr.src_addr, repr.dst_addr, repr.next_header, p.payload());
    let mut out = vec![0u8; HEADER_LEN + usize::from(repr.payload_len)];
    repr.emit(&mut out);
    let again = Packet::new_checked(&out[..]).and_then(|p| Ipv6Repr::parse(&p));
    assert_eq!(again.ok(), Some(repr));
});
