//! Any frame that decodes must re-encode under the matching context and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&b, frame)) = data.split_first() else {
        return;
    };
    let (d, e) = common::contexts(b);
    let Ok(decoded) = bgp_proto::Message::decode(frame, &d) else {
        return;
    };
    let wire = decoded
        .message
        .to_bytes(&e)
        .expect("a decoded message re-encodes");
    let again = bgp_proto::Message::decode(&wire, &d).expect("the re-encoding decodes");
    assert_eq!(again.message, decoded.message);
    let twice = again.message.to_bytes(&e).expect("re-encodes again");
    assert_eq!(twice, wire, "encoding is stable");
});
