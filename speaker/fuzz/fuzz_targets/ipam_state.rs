//! The lb-ipam state file as read back from disk (a file anyone with write access to the state
//! directory could have edited): decoded and checked, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The owner the seed in seeds/ipam_state/ was written for, so mutations of it get past the
/// ownership check to the checksum and the records.
const SEED_OWNER: &str = "vm:/tmp/fuzzseed.yaml";

fuzz_target!(|data: &[u8]| {
    let file = lb_ipam::store::StateFile::new("/fuzz/state.json", SEED_OWNER);
    let _ = file.decode(data);
});
