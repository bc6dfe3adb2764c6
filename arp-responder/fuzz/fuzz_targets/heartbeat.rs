//! Heartbeat payloads through the checked `Packet` view, tag verification, `HeartbeatRepr`
//! parse/emit (a re-encoded heartbeat must parse back to the same value), and the election's
//! `on_heartbeat`, which must reject or accept any input without panicking.
#![no_main]

use std::time::{Duration, Instant};

use arp_responder::election::{Election, ElectionTiming, HeartbeatAuth};
use arp_responder::wire::heartbeat::{HeartbeatKey, HeartbeatRepr, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = HeartbeatKey::new(&[7u8; 32]) else {
        return;
    };
    if let Ok(p) = Packet::new_checked(data) {
        let _ = p.verify(&key);
        if let Ok(repr) = HeartbeatRepr::parse(&p) {
            for k in [None, Some(&key)] {
                let mut out = Vec::new();
                if repr.emit(k, &mut out).is_ok() {
                    let again = HeartbeatRepr::parse_bytes(&out).ok();
                    assert_eq!(again.as_ref(), Some(&repr));
                    assert_eq!(out.len(), repr.buffer_len(k.is_some()));
                }
            }
        }
    }
    let now = Instant::now();
    for key in [None, Some(key)] {
        let mut e =
            Election::new("a", 0, ElectionTiming::default(), now).with_auth(HeartbeatAuth {
                key,
                ..HeartbeatAuth::default()
            });
        e.set_known_nodes(["a", "b", "c"].map(String::from));
        let _ = e.on_heartbeat(now, 1_800_000_000_000, data);
        e.prune(now + Duration::from_secs(10));
    }
});
