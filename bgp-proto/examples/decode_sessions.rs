//! Decodes the BGP sessions captured from BIRD 2, FRR, GoBGP and ExaBGP (`tests/vectors/`) and
//! prints, per sending daemon, what the codec read and whether re-encoding gave the same bytes.
//!
//! Each message is decoded with the context negotiated from the two OPENs of its TCP connection,
//! as a live session would. Usage: `cargo run -p bgp-proto --example decode_sessions [DIR]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bgp_proto::{AttrValue, Message, MpNlri, Open, negotiate};
use bytes::BytesMut;
use serde_json::Value;

/// What one daemon sent, summed over its captured messages.
#[derive(Default)]
struct Tally {
    by_type: BTreeMap<&'static str, usize>,
    ipv4_prefixes: usize,
    ipv6_prefixes: usize,
    communities: usize,
    byte_exact: usize,
    total: usize,
    failures: Vec<String>,
}

fn open_of(dir: &Path, rel: &str) -> Result<Open, String> {
    let bytes = std::fs::read(dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
    match Message::decode(&bytes, &Default::default()) {
        Ok(decoded) => match decoded.message {
            Message::Open(open) => Ok(open),
            other => Err(format!("{rel}: expected OPEN, got {:?}", other.kind())),
        },
        Err(error) => Err(format!("{rel}: {error}")),
    }
}

fn count(tally: &mut Tally, message: &Message) {
    let name = match message {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    };
    *tally.by_type.entry(name).or_default() += 1;
    let Message::Update(update) = message else {
        return;
    };
    tally.ipv4_prefixes += update.nlri.len() + update.withdrawn.len();
    for attribute in &update.attributes {
        match &attribute.value {
            AttrValue::MpReach(reach) => count_mp(tally, &reach.nlri),
            AttrValue::MpUnreach(unreach) => count_mp(tally, &unreach.withdrawn),
            AttrValue::Communities(list) => tally.communities += list.len(),
            AttrValue::LargeCommunities(list) => tally.communities += list.len(),
            AttrValue::ExtendedCommunities(list) => tally.communities += list.len(),
            AttrValue::Ipv6ExtendedCommunities(list) => tally.communities += list.len(),
            _ => {}
        }
    }
}

fn count_mp(tally: &mut Tally, nlri: &MpNlri) {
    match nlri {
        MpNlri::Ipv4(list) => tally.ipv4_prefixes += list.len(),
        MpNlri::Ipv6(list) => tally.ipv6_prefixes += list.len(),
        MpNlri::Raw(_) => {}
    }
}

fn decode_vector(dir: &Path, rel: &str, meta: &Value, tally: &mut Tally) -> Result<(), String> {
    let bytes = std::fs::read(dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
    let field = |key: &str| {
        meta[key]
            .as_str()
            .ok_or_else(|| format!("{rel}: manifest lacks {key}"))
    };
    let sender = open_of(dir, field("sender_open")?)?;
    let receiver = open_of(dir, field("receiver_open")?)?;
    // The receiver decodes what the sender encoded: negotiate from the receiver's point of view.
    let negotiated = negotiate(&receiver, &sender);
    let decoded =
        Message::decode(&bytes, &negotiated.decode_context()).map_err(|e| format!("{rel}: {e}"))?;
    count(tally, &decoded.message);
    let sender_view = negotiate(&sender, &receiver);
    let mut out = BytesMut::new();
    decoded
        .message
        .encode(&sender_view.encode_context(), &mut out)
        .map_err(|e| format!("{rel}: re-encode: {e}"))?;
    if out[..] == bytes[..] {
        tally.byte_exact += 1;
    } else {
        tally
            .failures
            .push(format!("{rel}: re-encoded bytes differ"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
        PathBuf::from,
    );
    let manifest: Value = match std::fs::read_to_string(dir.join("manifest.json"))
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(value) => value,
        Err(error) => {
            eprintln!("error: {}/manifest.json: {error}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let Some(vectors) = manifest["vectors"].as_object() else {
        eprintln!("error: manifest.json has no \"vectors\" object");
        return ExitCode::FAILURE;
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (rel, meta) in vectors {
        let daemon = meta["daemon"].as_str().unwrap_or("?").to_owned();
        let tally = tallies.entry(daemon).or_default();
        tally.total += 1;
        if let Err(error) = decode_vector(&dir, rel, meta, tally) {
            tally.failures.push(error);
        }
    }
    println!(
        "BGP sessions captured from real daemons, decoded by Herald's bgp-proto ({})",
        dir.display()
    );
    println!();
    println!(
        "{:<8} {:>5} {:>5} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>11} {:>11}",
        "daemon",
        "msgs",
        "OPEN",
        "UPDATE",
        "NOTIF",
        "KEEP",
        "RR",
        "v4 pfx",
        "v6 pfx",
        "communities",
        "byte-exact"
    );
    let mut failed = false;
    for (daemon, tally) in &tallies {
        let get = |name: &str| tally.by_type.get(name).copied().unwrap_or(0);
        println!(
            "{:<8} {:>5} {:>5} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>11} {:>6}/{:<4}",
            daemon,
            tally.total,
            get("OPEN"),
            get("UPDATE"),
            get("NOTIFICATION"),
            get("KEEPALIVE"),
            get("ROUTE-REFRESH"),
            tally.ipv4_prefixes,
            tally.ipv6_prefixes,
            tally.communities,
            tally.byte_exact,
            tally.total
        );
        failed |= !tally.failures.is_empty();
    }
    for (daemon, tally) in &tallies {
        for failure in &tally.failures {
            eprintln!("{daemon}: {failure}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
