//! ARP packets through the `Packet` view (every accessor on unchecked input), the checked
//! constructor and `ArpRepr::parse`; a parsed request or reply re-emits to the same 28 octets.
#![no_main]

use arp_responder::wire::ArpRepr;
use arp_responder::wire::arp::{PACKET_LEN, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = Packet::new_unchecked(data);
    let _ = (
        p.hardware_type(),
        p.protocol_type(),
        p.hardware_len(),
        p.protocol_len(),
        p.operation(),
    );
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = ArpRepr::parse(&p) else {
        return;
    };
    // Parse accepts only Ethernet/IPv4, so every one of the 28 octets is determined by `repr`.
    let mut out = [0u8; PACKET_LEN];
    repr.emit(&mut out);
    assert_eq!(Some(&out[..]), data.get(..PACKET_LEN));
    let again = Packet::new_checked(&out[..]).and_then(|p| ArpRepr::parse(&p));
    assert_eq!(again.ok(), Some(repr));
});
