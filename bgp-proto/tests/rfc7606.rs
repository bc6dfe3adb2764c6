//! RFC 7606 table: malformed UPDATEs and the outcome each must produce (treat-as-withdraw,
//! attribute discard, or session reset with the NOTIFICATION code/subcode/data).

use bgp_proto::{Action, AttrType, DecodeContext, Message, Rfc7606};

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 192, 0, 2, 1];
const NLRI: &[u8] = &[24, 10, 0, 0];

#[derive(Debug, PartialEq)]
enum Expect {
    Clean,
    Discard(&'static [u8]),
    Withdraw,
    Reset(u8, u8),
}

fn frame(withdrawn: &[u8], attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    raw(&body)
}

fn raw(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(body);
    m
}

fn ibgp() -> DecodeContext {
    DecodeContext {
        four_octet_as: true,
        ..Default::default()
    }
}

fn ebgp() -> DecodeContext {
    DecodeContext {
        four_octet_as: true,
        ebgp: true,
        ..Default::default()
    }
}

fn two_octet() -> DecodeContext {
    DecodeContext::default()
}

fn outcome(frame: &[u8], cx: &DecodeContext) -> Expect {
    match Message::decode(frame, cx) {
        Ok(d) => match d.rfc7606 {
            Rfc7606::Clean => Expect::Clean,
            Rfc7606::TreatAsWithdraw { .. } => Expect::Withdraw,
            Rfc7606::AttributeDiscard { errors } => {
                assert!(errors.iter().all(|e| e.action == Action::AttributeDiscard));
                let types: Vec<u8> = errors.iter().map(|e| u8::from(e.type_code)).collect();
                Expect::Discard(Box::leak(types.into_boxed_slice()))
            }
        },
        Err(e) => {
            let n = e
                .notification()
                .expect("decode errors carry a NOTIFICATION");
            Expect::Reset(n.code.into(), n.subcode)
        }
    }
}

#[test]
fn rfc7606_outcome_table() {
    let cases: Vec<(&str, Vec<u8>, DecodeContext, Expect)> = vec![
        (
            "well-formed",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI),
            ibgp(),
            Expect::Clean,
        ),
        (
            "§7.1 undefined ORIGIN",
            frame(&[], &[&[0x40, 1, 1, 5], AS_PATH, NEXT_HOP], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.1 ORIGIN length 2",
            frame(&[], &[&[0x40, 1, 2, 0, 0], AS_PATH, NEXT_HOP], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.2 AS_PATH segment overrun",
            frame(&[], &[ORIGIN, &[0x40, 2, 4, 2, 2, 0, 1], NEXT_HOP], NLRI),
            two_octet(),
            Expect::Withdraw,
        ),
        (
            "§7.2 AS_PATH single octet left",
            frame(&[], &[ORIGIN, &[0x40, 2, 5, 2, 1, 0, 1, 2], NEXT_HOP], NLRI),
            two_octet(),
            Expect::Withdraw,
        ),
        (
            "§7.2 AS_PATH zero-length segment",
            frame(&[], &[ORIGIN, &[0x40, 2, 2, 2, 0], NEXT_HOP], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.2 AS_PATH unknown segment type",
            frame(&[], &[ORIGIN, &[0x40, 2, 4, 7, 1, 0, 1], NEXT_HOP], NLRI),
            two_octet(),
            Expect::Withdraw,
        ),
        (
            "RFC 7607 AS 0 in AS_PATH",
            frame(
                &[],
                &[ORIGIN, &[0x40, 2, 6, 2, 1, 0, 0, 0, 0], NEXT_HOP],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.3 NEXT_HOP length 3",
            frame(&[], &[ORIGIN, AS_PATH, &[0x40, 3, 3, 1, 2, 3]], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.4 MED length 3",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 4, 3, 0, 0, 1]],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.5 LOCAL_PREF length 2",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 5, 2, 0, 1]], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.5 LOCAL_PREF from eBGP",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 5, 4, 0, 0, 0, 100]],
                NLRI,
            ),
            ebgp(),
            Expect::Discard(&[5]),
        ),
        (
            "§7.6 ATOMIC_AGGREGATE length 1",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 6, 1, 0]], NLRI),
            ibgp(),
            Expect::Discard(&[6]),
        ),
        (
            "§7.7 AGGREGATOR length 6 on 4-octet session",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 7, 6, 0, 1, 10, 0, 0, 1]],
                NLRI,
            ),
            ibgp(),
            Expect::Discard(&[7]),
        ),
        (
            "§7.8 COMMUNITIES length 5",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 8, 5, 0, 0, 0, 1, 2]],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.8 COMMUNITIES length 0",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 8, 0]], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.9 ORIGINATOR_ID length 3",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 9, 3, 1, 2, 3]],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.9 ORIGINATOR_ID from eBGP",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 9, 4, 1, 2, 3, 4]],
                NLRI,
            ),
            ebgp(),
            Expect::Discard(&[9]),
        ),
        (
            "§7.10 CLUSTER_LIST length 0",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 10, 0]], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§7.14 EXTENDED_COMMUNITIES length 7",
            frame(
                &[],
                &[
                    ORIGIN,
                    AS_PATH,
                    NEXT_HOP,
                    &[0xc0, 16, 7, 0, 2, 0, 1, 0, 0, 0],
                ],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "RFC 8092 LARGE_COMMUNITY length 11",
            frame(
                &[],
                &[
                    ORIGIN,
                    AS_PATH,
                    NEXT_HOP,
                    &[0xc0, 32, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0],
                ],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "RFC 6793 AS4_PATH with confed segment",
            frame(
                &[],
                &[
                    ORIGIN,
                    &[0x40, 2, 4, 2, 1, 0x5b, 0xa0],
                    NEXT_HOP,
                    &[0xc0, 17, 6, 3, 1, 0, 0, 0, 1],
                ],
                NLRI,
            ),
            two_octet(),
            Expect::Discard(&[17]),
        ),
        (
            "RFC 6793 AS4_AGGREGATOR length 6",
            frame(
                &[],
                &[
                    ORIGIN,
                    &[0x40, 2, 4, 2, 1, 0, 1],
                    NEXT_HOP,
                    &[0xc0, 18, 6, 0, 1, 10, 0, 0, 1],
                ],
                NLRI,
            ),
            two_octet(),
            Expect::Discard(&[18]),
        ),
        (
            "RFC 6793 AS4_PATH on a 4-octet session",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 17, 6, 2, 1, 0, 0, 0, 1]],
                NLRI,
            ),
            ibgp(),
            Expect::Discard(&[17]),
        ),
        (
            "§3(c) ORIGIN flagged optional",
            frame(&[], &[&[0xc0, 1, 1, 0], AS_PATH, NEXT_HOP], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§3(c) MED flagged transitive",
            frame(
                &[],
                &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 4, 4, 0, 0, 0, 1]],
                NLRI,
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§3(c) MP_REACH flagged transitive",
            frame(&[], &[&[0xc0, 14, 5, 0, 2, 1, 0, 0], ORIGIN, AS_PATH], &[]),
            ibgp(),
            Expect::Reset(3, 4),
        ),
        (
            "§3(g) repeated ORIGIN",
            frame(&[], &[ORIGIN, AS_PATH, ORIGIN, NEXT_HOP], NLRI),
            ibgp(),
            Expect::Discard(&[1]),
        ),
        (
            "§3(g) repeated MP_UNREACH",
            frame(
                &[],
                &[&[0x80, 15, 3, 0, 2, 1], &[0x80, 15, 3, 0, 2, 1]],
                &[],
            ),
            ibgp(),
            Expect::Reset(3, 1),
        ),
        (
            "§3(d) missing ORIGIN",
            frame(&[], &[AS_PATH, NEXT_HOP], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§3(d) missing NEXT_HOP with IPv4 NLRI",
            frame(&[], &[ORIGIN, AS_PATH], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§3(d) missing AS_PATH with MP_REACH NLRI",
            frame(
                &[],
                &[
                    &[
                        0x80, 14, 26, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 1, 0, 32, 0x20, 1, 0xd, 0xb8,
                    ],
                    ORIGIN,
                ][..],
                &[],
            ),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "MP_REACH without NLRI needs no ORIGIN/AS_PATH",
            frame(
                &[],
                &[&[
                    0x80, 14, 21, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    1, 0,
                ][..]],
                &[],
            ),
            ibgp(),
            Expect::Clean,
        ),
        (
            "withdraw-only UPDATE needs no attributes",
            frame(NLRI, &[], &[]),
            ibgp(),
            Expect::Clean,
        ),
        (
            "§4 attribute overruns total length",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 8, 8, 0, 0]], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "§4 fewer than three octets left",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 8]], NLRI),
            ibgp(),
            Expect::Withdraw,
        ),
        (
            "RFC 4271 withdrawn length beyond message",
            raw(&[0, 50, 0, 0]),
            ibgp(),
            Expect::Reset(3, 1),
        ),
        (
            "RFC 4271 attribute length beyond message",
            raw(&[0, 0, 0, 50, 0x40, 1, 1, 0]),
            ibgp(),
            Expect::Reset(3, 1),
        ),
        (
            "§5.3 NLRI prefix length 33",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP], &[33, 1, 2, 3, 4, 5]),
            ibgp(),
            Expect::Reset(3, 10),
        ),
        (
            "§5.3 truncated withdrawn prefix",
            frame(&[24, 10], &[], &[]),
            ibgp(),
            Expect::Reset(3, 10),
        ),
        (
            "§7.11 MP_REACH IPv6 next hop length 4",
            frame(
                &[],
                &[&[0x80, 14, 9, 0, 2, 1, 4, 1, 2, 3, 4, 0], ORIGIN, AS_PATH],
                &[],
            ),
            ibgp(),
            Expect::Reset(3, 9),
        ),
        (
            "§7.11 MP_REACH truncated NLRI",
            frame(
                &[],
                &[
                    &[
                        0x80, 14, 23, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 1, 0, 64, 0x20, 1,
                    ],
                    ORIGIN,
                    AS_PATH,
                ],
                &[],
            ),
            ibgp(),
            Expect::Reset(3, 9),
        ),
        (
            "§7.11 MP_UNREACH shorter than 3",
            frame(&[], &[&[0x80, 15, 2, 0, 2]], &[]),
            ibgp(),
            Expect::Reset(3, 9),
        ),
        (
            "RFC 4271 unrecognized well-known attribute",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 99, 1, 0]], NLRI),
            ibgp(),
            Expect::Reset(3, 2),
        ),
        (
            "unknown optional transitive kept",
            frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 99, 1, 0]], NLRI),
            ibgp(),
            Expect::Clean,
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, cx, expect) in &cases {
        let got = outcome(bytes, cx);
        if &got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn treat_as_withdraw_keeps_nlri_to_withdraw() {
    let f = frame(&[], &[&[0x40, 1, 1, 9], AS_PATH, NEXT_HOP], NLRI);
    let d = Message::decode(&f, &ibgp()).unwrap();
    let Message::Update(u) = d.message else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.nlri.len(), 1, "the prefixes to withdraw are reported");
    assert!(
        u.origin().is_none(),
        "the malformed attribute is not reported as a value"
    );
    assert_eq!(d.rfc7606.errors()[0].type_code, AttrType::Origin);
}

#[test]
fn session_reset_data_is_the_erroneous_attribute() {
    let bad = [0x40, 99, 1, 7];
    let f = frame(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &bad], NLRI);
    let e = Message::decode(&f, &ibgp()).unwrap_err();
    assert_eq!(e.notification().unwrap().data, bad);
}

#[test]
fn discarded_attribute_is_absent_and_rest_kept() {
    let f = frame(
        &[],
        &[
            ORIGIN,
            AS_PATH,
            NEXT_HOP,
            &[0x40, 6, 1, 0],
            &[0xc0, 8, 4, 0, 1, 0, 2],
        ],
        NLRI,
    );
    let d = Message::decode(&f, &ibgp()).unwrap();
    let Message::Update(u) = d.message else {
        panic!("not an UPDATE")
    };
    assert!(u.attribute(AttrType::AtomicAggregate).is_none());
    assert_eq!(u.communities().len(), 1);
}
