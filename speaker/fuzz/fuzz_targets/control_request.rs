//! A control-socket client's bytes: the bounded line reader, then the request decoder, as the
//! agent runs them on every connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speaker::api::control::Request;
use speaker::api::control_access::{Line, read_line};

fuzz_target!(|data: &[u8]| {
    let mut reader = tokio::io::BufReader::new(data);
    while let Ok(Line::Request(line)) = futures::executor::block_on(read_line(&mut reader)) {
        let _ = serde_json::from_str::<Request>(&line);
    }
});
