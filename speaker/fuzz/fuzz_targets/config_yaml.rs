//! Every YAML configuration parser on the same bytes: the agent's file (which holds the
//! `datapath:`, `l2:` and `ipam:` sections), a `datapath:` section alone, herald-l2's file and
//! lb-ipam's standalone file. Each must answer with a value or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = speaker::config::parse(text, "fuzz.yaml");
    let _ = datapath::config::DatapathConfig::parse(text, "fuzz.yaml");
    let _ = arp_responder::config::L2Config::from_yaml(text);
    let _ = lb_ipam::standalone::parse_config(text, "fuzz.yaml");
});
