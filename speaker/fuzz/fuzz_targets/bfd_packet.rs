//! A BFD control packet from the network (RFC 5880): decoded, then checked as a session with a
//! keyed SHA1 or a meticulous keyed SHA1 key would check it (§6.7.4), and written back out.
//! Any of it may refuse the packet; none of it may panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use speaker::bfd::auth::{AuthKey, AuthState};
use speaker::bfd::packet::{Packet, Repr};
use speaker::config::BfdAuthType;

fuzz_target!(|data: &[u8]| {
    let Ok(repr) = Repr::parse_bytes(data) else {
        return;
    };
    let now = Instant::now();
    for kind in [BfdAuthType::KeyedSha1, BfdAuthType::MeticulousKeyedSha1] {
        let Ok(key) = AuthKey::new(kind, 1, b"fuzz-secret") else {
            return;
        };
        let mut state = AuthState::new(key, 7);
        let _ = state.verify(now, &repr, 3, Some(Duration::from_secs(1)));
        let _ = state.verify(now, &repr, 3, None);
    }
    let mut buffer = vec![0u8; repr.buffer_len()];
    let _ = repr.emit(&mut Packet::new_unchecked(&mut buffer[..]));
});
