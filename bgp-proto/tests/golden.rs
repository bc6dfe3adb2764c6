//! Golden vectors: BGP messages that BIRD 2, FRR, GoBGP and ExaBGP sent to each other in network
//! namespaces (captured by `tests/vectors/capture.sh`), checked against what tshark, an independent
//! decoder, read from the same bytes (`tests/vectors/manifest.json`).
//!
//! Every vector is decoded with the context its session negotiated (built by `negotiate` from the
//! two OPENs of its TCP connection), compared field by field with tshark's decode, and re-encoded;
//! the re-encoding must equal the captured bytes. I/O boundary: reads files under `tests/vectors/`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use bgp_proto::{
    AttrValue, Capability, DecodeContext, EncodeContext, Ipv4Nlri, Ipv6Nlri, Message, MpNlri,
    NextHop, Open, PathAttribute, Update, negotiate,
};
use bytes::BytesMut;
use serde_json::Value;

const DAEMONS: [&str; 4] = ["bird", "exabgp", "frr", "gobgp"];
/// Files in `tests/vectors/` besides the daemon directories.
const SUPPORT_FILES: [&str; 4] = ["README.md", "capture.sh", "extract.py", "manifest.json"];

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

fn manifest() -> Value {
    let text = fs::read_to_string(vectors_dir().join("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("parse manifest.json")
}

fn read_vector(rel: &str) -> Vec<u8> {
    fs::read(vectors_dir().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Mismatches for one vector, collected so a failure lists every disagreement at once.
struct Report {
    rel: String,
    problems: Vec<String>,
}

impl Report {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, ours: T, theirs: T) {
        if ours != theirs {
            self.problems
                .push(format!("{what}: codec {ours:?}, tshark {theirs:?}"));
        }
    }
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("manifest field {key} missing in {v}"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("manifest field {key} missing in {v}"))
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// tshark writes some numbers as strings (capability fields); accept either.
fn field_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A capability field that tshark writes once or, when repeated, as a list.
fn field_list(v: &Value) -> Vec<u64> {
    match v {
        Value::Array(a) => a.iter().filter_map(field_u64).collect(),
        other => field_u64(other).into_iter().collect(),
    }
}

fn decode_open(rel: &str) -> Open {
    let bytes = read_vector(rel);
    match Message::decode(&bytes, &DecodeContext::default()) {
        Ok(d) => match d.message {
            Message::Open(o) => o,
            other => panic!("{rel} is not an OPEN: {other:?}"),
        },
        Err(e) => panic!("{rel}: OPEN does not decode: {e}"),
    }
}

/// The contexts of the vector's session: how its receiver decodes and how its sender encodes.
fn contexts(meta: &Value) -> (DecodeContext, EncodeContext) {
    match (meta["sender_open"].as_str(), meta["receiver_open"].as_str()) {
        (Some(sender), Some(receiver)) => {
            let sender = decode_open(sender);
            let receiver = decode_open(receiver);
            (
                negotiate(&receiver, &sender).decode_context(),
                negotiate(&sender, &receiver).encode_context(),
            )
        }
        _ => (DecodeContext::default(), EncodeContext::default()),
    }
}

fn prefixes_v4(list: &[Ipv4Nlri]) -> Vec<(String, Option<u32>)> {
    list.iter()
        .map(|n| (format!("{}/{}", n.prefix.addr(), n.prefix.len()), n.path_id))
        .collect()
}

fn prefixes_v6(list: &[Ipv6Nlri]) -> Vec<(String, Option<u32>)> {
    list.iter()
        .map(|n| (format!("{}/{}", n.prefix.addr(), n.prefix.len()), n.path_id))
        .collect()
}

fn prefixes_mp(nlri: &MpNlri) -> Vec<(String, Option<u32>)> {
    match nlri {
        MpNlri::Ipv4(v) => prefixes_v4(v),
        MpNlri::Ipv6(v) => prefixes_v6(v),
        MpNlri::Raw(b) => vec![(format!("raw:{}", hex_of(b)), None)],
    }
}

fn prefixes_tshark(v: &Value) -> Vec<(String, Option<u32>)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let path_id = p["path_id"]
                        .as_u64()
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                    (text(p, "prefix").to_owned(), path_id)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn check_open(open: &Open, t: &Value, r: &mut Report) {
    r.eq("version", u64::from(open.version), num(t, "version"));
    r.eq("my_as", u64::from(open.my_as), num(t, "my_as"));
    r.eq("hold_time", u64::from(open.hold_time), num(t, "hold_time"));
    r.eq(
        "bgp_id",
        open.bgp_id.to_string().as_str(),
        text(t, "bgp_id"),
    );
    let caps = t["capabilities"].as_array().cloned().unwrap_or_default();
    let ours: Vec<u64> = open
        .capabilities
        .iter()
        .map(|c| u64::from(u8::from(c.code())))
        .collect();
    let theirs: Vec<u64> = caps.iter().map(|c| num(c, "code")).collect();
    r.eq("capability codes", ours, theirs);
    for (i, (cap, tc)) in open.capabilities.iter().zip(&caps).enumerate() {
        let mut buf = BytesMut::new();
        match cap.encode(&mut buf) {
            Ok(()) => r.eq(
                &format!("capability {i} bytes"),
                hex_of(&buf).as_str(),
                text(tc, "raw"),
            ),
            Err(e) => r
                .problems
                .push(format!("capability {i} does not encode: {e}")),
        }
        let f = &tc["fields"];
        match cap {
            Capability::Multiprotocol(fam) => {
                r.eq(
                    &format!("capability {i} afi"),
                    Some(u64::from(u16::from(fam.afi))),
                    field_u64(&f["mp.afi"]),
                );
                r.eq(
                    &format!("capability {i} safi"),
                    Some(u64::from(u8::from(fam.safi))),
                    field_u64(&f["mp.safi"]),
                );
            }
            Capability::FourOctetAs(asn) => {
                r.eq(
                    &format!("capability {i} asn"),
                    Some(u64::from(*asn)),
                    field_u64(&f["4as"]),
                );
            }
            Capability::AddPath(fams) => {
                let ours: Vec<(u64, u64, u64)> = fams
                    .iter()
                    .map(|a| {
                        (
                            u64::from(u16::from(a.family.afi)),
                            u64::from(u8::from(a.family.safi)),
                            u64::from(a.mode.0),
                        )
                    })
                    .collect();
                let afi = field_list(&f["ap.afi"]);
                let safi = field_list(&f["ap.safi"]);
                let mode = field_list(&f["ap.sendreceive"]);
                let theirs: Vec<(u64, u64, u64)> = afi
                    .iter()
                    .zip(&safi)
                    .zip(&mode)
                    .map(|((a, s), m)| (*a, *s, *m))
                    .collect();
                r.eq(&format!("capability {i} add-path"), ours, theirs);
            }
            Capability::ExtendedNextHop(fams) => {
                let ours: Vec<(u64, u64, u64)> = fams
                    .iter()
                    .map(|e| {
                        (
                            u64::from(u16::from(e.afi)),
                            u64::from(e.safi),
                            u64::from(u16::from(e.next_hop_afi)),
                        )
                    })
                    .collect();
                let afi = field_list(&f["enh.afi"]);
                let safi = field_list(&f["enh.safi"]);
                let nh = field_list(&f["enh.nhafi"]);
                let theirs: Vec<(u64, u64, u64)> = afi
                    .iter()
                    .zip(&safi)
                    .zip(&nh)
                    .map(|((a, s), n)| (*a, *s, *n))
                    .collect();
                r.eq(&format!("capability {i} extended next hop"), ours, theirs);
            }
            Capability::GracefulRestart(gr) => {
                let afi = field_list(&f["gr.afi"]);
                let ours: Vec<u64> = gr
                    .families
                    .iter()
                    .map(|g| u64::from(u16::from(g.family.afi)))
                    .collect();
                r.eq(
                    &format!("capability {i} graceful restart families"),
                    ours,
                    afi,
                );
                let timers = f["gr.timers"]
                    .as_str()
                    .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
                let ours = (u64::from(gr.flags) << 12) | u64::from(gr.restart_time);
                r.eq(
                    &format!("capability {i} graceful restart flags+time"),
                    Some(ours),
                    timers,
                );
            }
            Capability::Fqdn { hostname, .. } => {
                r.eq(
                    &format!("capability {i} hostname"),
                    Some(String::from_utf8_lossy(hostname).into_owned()),
                    f["orf.fqdn.hostname"].as_str().map(str::to_owned),
                );
            }
            _ => {}
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn next_hops(nh: &NextHop) -> Vec<String> {
    match nh {
        NextHop::Ipv4(a) => vec![a.to_string()],
        NextHop::Ipv6 { global, link_local } => {
            let mut v = vec![global.to_string()];
            v.extend(link_local.map(|l| l.to_string()));
            v
        }
        NextHop::Raw(b) => vec![hex_of(b)],
    }
}

fn check_attribute(i: usize, a: &PathAttribute, t: &Value, cx: &EncodeContext, r: &mut Report) {
    let at = |what: &str| format!("attribute {i} ({}) {what}", num(t, "type"));
    r.eq(
        &at("type"),
        u64::from(u8::from(a.value.type_code())),
        num(t, "type"),
    );
    r.eq(&at("flags"), u64::from(a.flags.0), num(t, "flags"));
    let mut buf = BytesMut::new();
    match a.encode(cx, &mut buf) {
        Ok(()) => r.eq(&at("bytes"), hex_of(&buf).as_str(), text(t, "raw")),
        Err(e) => r.problems.push(format!("{} does not encode: {e}", at(""))),
    }
    match &a.value {
        AttrValue::Origin(o) => r.eq(&at("origin"), u64::from(u8::from(*o)), num(t, "origin")),
        AttrValue::AsPath(p) | AttrValue::As4Path(p) => {
            let ours: Vec<(u64, Vec<u64>)> = p
                .segments()
                .map(|s| {
                    (
                        u64::from(u8::from(s.kind)),
                        s.asns.iter().map(|&n| u64::from(n)).collect(),
                    )
                })
                .collect();
            let theirs: Vec<(u64, Vec<u64>)> = t["segments"]
                .as_array()
                .map(|segs| {
                    segs.iter()
                        .map(|s| {
                            let asns = s["asns"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_u64).collect());
                            (num(s, "type"), asns.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            r.eq(&at("segments"), ours, theirs);
        }
        AttrValue::NextHop(n) => r.eq(&at("next hop"), n.to_string().as_str(), text(t, "next_hop")),
        AttrValue::MultiExitDisc(m) => r.eq(&at("med"), u64::from(*m), num(t, "med")),
        AttrValue::LocalPref(l) => r.eq(&at("local pref"), u64::from(*l), num(t, "local_pref")),
        AttrValue::Communities(cs) => {
            let ours: Vec<String> = cs
                .iter()
                .map(|c| format!("{}:{}", c.0 >> 16, c.0 & 0xffff))
                .collect();
            let theirs = strings(&t["communities"]);
            r.eq(&at("communities"), ours, theirs);
        }
        AttrValue::LargeCommunities(ls) => {
            let ours: Vec<String> = ls
                .iter()
                .map(|l| format!("{}:{}:{}", l.global, l.local1, l.local2))
                .collect();
            let theirs = strings(&t["large_communities"]);
            r.eq(&at("large communities"), ours, theirs);
        }
        AttrValue::ExtendedCommunities(es) => {
            let ours: Vec<String> = es.iter().map(|e| hex_of(&e.0)).collect();
            let theirs = strings(&t["ext_communities"]);
            r.eq(&at("extended communities"), ours, theirs);
        }
        AttrValue::MpReach(m) => {
            r.eq(
                &at("afi"),
                u64::from(u16::from(m.family.afi)),
                num(t, "afi"),
            );
            r.eq(
                &at("safi"),
                u64::from(u8::from(m.family.safi)),
                num(t, "safi"),
            );
            let theirs = strings(&t["next_hops"]);
            r.eq(&at("next hops"), next_hops(&m.next_hop), theirs);
            r.eq(
                &at("nlri"),
                prefixes_mp(&m.nlri),
                prefixes_tshark(&t["nlri"]),
            );
        }
        AttrValue::MpUnreach(m) => {
            r.eq(
                &at("afi"),
                u64::from(u16::from(m.family.afi)),
                num(t, "afi"),
            );
            r.eq(
                &at("safi"),
                u64::from(u8::from(m.family.safi)),
                num(t, "safi"),
            );
            r.eq(
                &at("withdrawn"),
                prefixes_mp(&m.withdrawn),
                prefixes_tshark(&t["nlri"]),
            );
        }
        AttrValue::Aggregator(g) | AttrValue::As4Aggregator(g) => {
            r.eq(
                &at("aggregator as"),
                u64::from(g.asn),
                num(t, "aggregator_as"),
            );
            r.eq(
                &at("aggregator address"),
                g.addr.to_string().as_str(),
                text(t, "aggregator_addr"),
            );
        }
        AttrValue::OriginatorId(id) => {
            r.eq(
                &at("originator id"),
                id.to_string().as_str(),
                text(t, "originator_id"),
            );
        }
        AttrValue::ClusterList(ids) => {
            let ours: Vec<String> = ids.iter().map(ToString::to_string).collect();
            r.eq(&at("cluster list"), ours, strings(&t["cluster_list"]));
        }
        // Other attributes are covered by the byte comparison above.
        _ => {}
    }
}

fn check_update(u: &Update, t: &Value, cx: &EncodeContext, r: &mut Report) {
    r.eq(
        "withdrawn",
        prefixes_v4(&u.withdrawn),
        prefixes_tshark(&t["withdrawn"]),
    );
    r.eq("nlri", prefixes_v4(&u.nlri), prefixes_tshark(&t["nlri"]));
    let attrs = t["attributes"].as_array().cloned().unwrap_or_default();
    r.eq("attribute count", u.attributes.len(), attrs.len());
    for (i, (a, ta)) in u.attributes.iter().zip(&attrs).enumerate() {
        check_attribute(i, a, ta, cx, r);
    }
}

/// Decodes one vector, compares it with tshark's reading and re-encodes it.
fn check_vector(rel: &str, meta: &Value) -> Report {
    let mut r = Report {
        rel: rel.to_owned(),
        problems: Vec::new(),
    };
    let bytes = read_vector(rel);
    let t = &meta["tshark"];
    r.eq("length", bytes.len() as u64, num(t, "length"));
    let (dcx, ecx) = contexts(meta);
    let decoded = match Message::decode(&bytes, &dcx) {
        Ok(d) => d,
        Err(e) => {
            r.problems.push(format!("does not decode: {e}"));
            return r;
        }
    };
    if !decoded.rfc7606.is_clean() {
        r.problems.push(format!(
            "RFC 7606 outcome {:?} for a message tshark reads cleanly",
            decoded.rfc7606
        ));
    }
    r.eq(
        "type",
        u64::from(u8::from(decoded.message.kind())),
        num(t, "type"),
    );
    match &decoded.message {
        Message::Open(o) => check_open(o, t, &mut r),
        Message::Update(u) => check_update(u, t, &ecx, &mut r),
        Message::Notification(n) => {
            r.eq("code", u64::from(u8::from(n.code)), num(t, "code"));
            r.eq("subcode", u64::from(n.subcode), num(t, "subcode"));
            r.eq(
                "shutdown message",
                n.shutdown_communication(),
                t["shutdown_message"].as_str(),
            );
            if let Some(data) = t["data"].as_str() {
                r.eq("data", hex_of(&n.data).as_str(), data);
            }
        }
        Message::RouteRefresh(rr) => {
            r.eq("afi", u64::from(u16::from(rr.afi)), num(t, "afi"));
            r.eq("safi", u64::from(u8::from(rr.safi)), num(t, "safi"));
            r.eq(
                "subtype",
                u64::from(u8::from(rr.subtype)),
                num(t, "subtype"),
            );
        }
        Message::Keepalive => {}
    }
    match decoded.message.to_bytes(&ecx) {
        Ok(out) if out[..] == bytes[..] => {}
        Ok(out) => r.problems.push(format!(
            "re-encoding differs ({} vs {} octets, first difference at octet {})\n  captured {}\n  encoded  {}",
            bytes.len(),
            out.len(),
            bytes.iter().zip(out.iter()).position(|(a, b)| a != b).unwrap_or(bytes.len().min(out.len())),
            hex_of(&bytes),
            hex_of(&out)
        )),
        Err(e) => r.problems.push(format!("does not re-encode: {e}")),
    }
    r
}

/// Every file in the vector directory is known: a vector listed in the manifest or a support file.
#[test]
fn every_vector_file_is_in_the_manifest_and_back() {
    let m = manifest();
    let listed: BTreeSet<String> = m["vectors"]
        .as_object()
        .expect("vectors object")
        .keys()
        .cloned()
        .collect();
    let mut found = BTreeSet::new();
    for entry in fs::read_dir(vectors_dir()).expect("read vectors dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            assert!(
                DAEMONS.contains(&name.as_str()),
                "unknown directory tests/vectors/{name}"
            );
            for f in fs::read_dir(entry.path()).expect("read daemon dir") {
                let f = f
                    .expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                assert!(f.ends_with(".bin"), "unknown file tests/vectors/{name}/{f}");
                found.insert(format!("{name}/{f}"));
            }
        } else {
            assert!(
                SUPPORT_FILES.contains(&name.as_str()),
                "unknown file tests/vectors/{name}"
            );
        }
    }
    let unlisted: Vec<_> = found.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&found).collect();
    assert!(
        unlisted.is_empty(),
        "vectors missing from manifest.json: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "manifest.json lists absent files: {missing:?}"
    );
    for daemon in DAEMONS {
        for kind in ["open", "update", "notification", "keepalive"] {
            assert!(
                found
                    .iter()
                    .any(|f| f.starts_with(&format!("{daemon}/"))
                        && f.contains(&format!("-{kind}-"))),
                "no {kind} vector from {daemon}"
            );
        }
    }
}

/// Each vector decodes to what tshark decoded and re-encodes to the captured bytes.
#[test]
fn vectors_decode_as_tshark_does_and_reencode_byte_exact() {
    let m = manifest();
    let vectors = m["vectors"].as_object().expect("vectors object");
    assert!(vectors.len() >= 40, "only {} vectors", vectors.len());
    let mut failures = String::new();
    let mut failed = 0;
    for (rel, meta) in vectors {
        let r = check_vector(rel, meta);
        if !r.problems.is_empty() {
            failed += 1;
            let _ = writeln!(failures, "{}:", r.rel);
            for p in &r.problems {
                let _ = writeln!(failures, "  {p}");
            }
        }
    }
    assert!(
        failed == 0,
        "{failed} of {} vectors disagree:\n{failures}",
        vectors.len()
    );
}

fn session_contexts(m: &Value, sender: &str, receiver: &str) -> (DecodeContext, EncodeContext) {
    let vectors = m["vectors"].as_object().expect("vectors object");
    let meta = vectors
        .values()
        .find(|v| v["daemon"] == sender && v["peer"] == receiver && v["type"] == "update")
        .unwrap_or_else(|| panic!("no UPDATE from {sender} to {receiver}"));
    contexts(meta)
}

/// `negotiate` over the captured OPENs yields what each session was configured to have.
#[test]
fn negotiated_contexts_match_the_configured_sessions() {
    let m = manifest();
    let v4 = bgp_proto::Family::IPV4_UNICAST;
    let v6 = bgp_proto::Family::IPV6_UNICAST;

    // FRR <-> BIRD: iBGP, 4-octet AS, extended messages, ADD-PATH both families both ways.
    for (s, r) in [("frr", "bird"), ("bird", "frr")] {
        let (d, e) = session_contexts(&m, s, r);
        assert!(
            d.four_octet_as && d.extended_message && !d.ebgp,
            "{s}->{r}: {d:?}"
        );
        assert!(d.add_path(v4) && d.add_path(v6), "{s}->{r}: {d:?}");
        assert_eq!(
            d.add_path, e.add_path,
            "{s}->{r}: receiver and sender disagree"
        );
    }
    // BIRD <-> ExaBGP: ExaBGP has no 4-octet AS capability, no ADD-PATH.
    for (s, r) in [("bird", "exabgp"), ("exabgp", "bird")] {
        let (d, e) = session_contexts(&m, s, r);
        assert!(
            !d.four_octet_as && !e.four_octet_as && d.ebgp,
            "{s}->{r}: {d:?}"
        );
        assert!(d.add_path.is_empty(), "{s}->{r}: {d:?}");
    }
    // GoBGP <-> FRR: eBGP with ADD-PATH; GoBGP has no extended message capability.
    for (s, r) in [("gobgp", "frr"), ("frr", "gobgp")] {
        let (d, _) = session_contexts(&m, s, r);
        assert!(
            d.four_octet_as && d.ebgp && !d.extended_message,
            "{s}->{r}: {d:?}"
        );
        assert!(d.add_path(v4) && d.add_path(v6), "{s}->{r}: {d:?}");
    }
}

fn sequence(path: &bgp_proto::AsPath) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for s in path.segments() {
        if s.kind != bgp_proto::SegmentType::AsSequence {
            return None;
        }
        out.extend_from_slice(s.asns);
    }
    Some(out)
}

/// BIRD's UPDATEs to the 2-octet ExaBGP session carry AS_TRANS in AS_PATH and the real path in
/// AS4_PATH; `merge_as4` must rebuild it as RFC 6793 §4.2.3 says (leading AS_PATH entries beyond
/// the AS4_PATH count, then AS4_PATH).
#[test]
fn as4_path_from_bird_merges_into_the_real_path() {
    let m = manifest();
    let mut checked = 0;
    for (rel, meta) in m["vectors"].as_object().expect("vectors object") {
        if meta["type"] != "update" {
            continue;
        }
        let (dcx, _) = contexts(meta);
        let bytes = read_vector(rel);
        let Ok(Message::Update(mut u)) = Message::decode(&bytes, &dcx).map(|d| d.message) else {
            continue;
        };
        let Some(as4) = u.attributes.iter().find_map(|a| match &a.value {
            AttrValue::As4Path(p) => sequence(p),
            _ => None,
        }) else {
            continue;
        };
        let Some(two) = u.as_path().and_then(sequence) else {
            continue;
        };
        assert!(!dcx.four_octet_as, "{rel}: AS4_PATH on a 4-octet session");
        assert!(
            two.contains(&23456),
            "{rel}: AS_PATH {two:?} without AS_TRANS"
        );
        let mut expected = two[..two.len().saturating_sub(as4.len())].to_vec();
        expected.extend(&as4);
        u.merge_as4();
        assert_eq!(u.as_path().and_then(sequence), Some(expected), "{rel}");
        assert!(
            u.attributes
                .iter()
                .all(|a| !matches!(a.value, AttrValue::As4Path(_))),
            "{rel}"
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} UPDATEs with AS4_PATH");
}
