//! Header, OPEN, NOTIFICATION and ROUTE-REFRESH errors through `Message::decode`: each malformed
//! frame must map to the NOTIFICATION code, subcode and data RFC 4271 §6 (and RFC 7313) prescribe.

use bgp_proto::{DecodeContext, Message};

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

/// NOTIFICATION code, subcode and data.
type Expected = (u8, u8, Vec<u8>);

const OPEN_OK: [u8; 10] = [4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 0];

fn open_with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = OPEN_OK.to_vec();
    f(&mut b);
    frame(1, &b)
}

fn code_of(frame: &[u8]) -> (u8, u8, Vec<u8>) {
    let e = Message::decode(frame, &DecodeContext::default()).expect_err("must be rejected");
    let n = e.notification().expect("carries a NOTIFICATION");
    (n.code.into(), n.subcode, n.data.clone())
}

#[test]
fn header_and_open_errors_table() {
    let mut bad_marker = frame(4, &[]);
    bad_marker[0] = 0;
    let mut long = frame(2, &[0; 4100]);
    long.truncate(4119);
    let cases: Vec<(&str, Vec<u8>, Expected)> = vec![
        ("marker not all ones", bad_marker, (1, 1, vec![])),
        (
            "length over 4096",
            long,
            (1, 2, 4119u16.to_be_bytes().to_vec()),
        ),
        ("KEEPALIVE with a body", frame(4, &[0]), (1, 2, vec![0, 20])),
        (
            "OPEN shorter than 29",
            frame(1, &[4, 0, 1]),
            (1, 2, vec![0, 22]),
        ),
        (
            "UPDATE shorter than 23",
            frame(2, &[0, 0]),
            (1, 2, vec![0, 21]),
        ),
        (
            "NOTIFICATION shorter than 21",
            frame(3, &[6]),
            (1, 2, vec![0, 20]),
        ),
        (
            "ROUTE-REFRESH shorter than 23",
            frame(5, &[0, 1, 0]),
            (1, 2, vec![0, 22]),
        ),
        ("unknown message type", frame(9, &[]), (1, 3, vec![9])),
        (
            "OPEN version 3",
            open_with(|b| b[0] = 3),
            (2, 1, vec![0, 4]),
        ),
        (
            "OPEN My AS 0",
            open_with(|b| b[1..3].copy_from_slice(&[0, 0])),
            (2, 2, vec![]),
        ),
        (
            "OPEN hold time 1",
            open_with(|b| b[3..5].copy_from_slice(&[0, 1])),
            (2, 6, vec![]),
        ),
        (
            "OPEN hold time 2",
            open_with(|b| b[3..5].copy_from_slice(&[0, 2])),
            (2, 6, vec![]),
        ),
        (
            "OPEN BGP identifier 0",
            open_with(|b| b[5..9].copy_from_slice(&[0; 4])),
            (2, 3, vec![]),
        ),
        (
            "OPEN unsupported optional parameter",
            open_with(|b| {
                b[9] = 3;
                b.extend_from_slice(&[1, 1, 0])
            }),
            (2, 4, vec![]),
        ),
        (
            "OPEN optional parameters overrun",
            open_with(|b| {
                b[9] = 4;
                b.extend_from_slice(&[2, 9, 0, 0])
            }),
            (2, 0, vec![]),
        ),
        (
            "OPEN parameters length disagrees",
            open_with(|b| b[9] = 7),
            (2, 0, vec![]),
        ),
        (
            "OPEN malformed 4-octet AS capability",
            open_with(|b| {
                b[9] = 5;
                b.extend_from_slice(&[2, 3, 65, 1, 0])
            }),
            (2, 0, vec![]),
        ),
        (
            "OPEN 4-octet AS 0",
            open_with(|b| {
                b[9] = 8;
                b.extend_from_slice(&[2, 6, 65, 4, 0, 0, 0, 0])
            }),
            (2, 2, vec![]),
        ),
        (
            "OPEN RFC 9072 length disagrees",
            open_with(|b| {
                b[9] = 255;
                b.extend_from_slice(&[255, 0, 9, 2, 0, 0])
            }),
            (2, 0, vec![]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, expect) in &cases {
        let got = code_of(bytes);
        if &got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn extended_message_lengths_follow_rfc8654() {
    let mut body = vec![0u8, 0, 0, 0];
    for _ in 0..1249 {
        body.extend_from_slice(&[24, 10, 0, 0]);
    }
    let big_update = frame(2, &body);
    assert_eq!(big_update.len(), 5019);
    let ext = DecodeContext {
        extended_message: true,
        ..Default::default()
    };
    let d = Message::decode(&big_update, &ext).expect("5019 octets allowed with extended messages");
    let Message::Update(u) = d.message else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.nlri.len(), 1249);
    let (code, sub, data) = code_of(&big_update);
    assert_eq!((code, sub, data), (1, 2, 5019u16.to_be_bytes().to_vec()));
    // OPEN stays limited to 4096 octets even with extended messages.
    let mut open = OPEN_OK.to_vec();
    open[9] = 255;
    open.extend_from_slice(&[255, 0x10, 0x00]);
    open.extend(std::iter::repeat_n(0u8, 0x1000));
    let f = frame(1, &open);
    let e = Message::decode(&f, &ext).unwrap_err();
    let n = e.notification().unwrap();
    assert_eq!((u8::from(n.code), n.subcode), (1, 2));
}

#[test]
fn rfc9072_extended_parameters_decode() {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length 5, one capability
    // parameter with a 2-octet length holding Route Refresh.
    let mut b = OPEN_OK.to_vec();
    b[9] = 255;
    b.extend_from_slice(&[255, 0, 5, 2, 0, 2, 2, 0]);
    let d = Message::decode(&frame(1, &b), &DecodeContext::default()).unwrap();
    let Message::Open(o) = d.message else {
        panic!("not an OPEN")
    };
    assert!(o.extended_params);
    assert_eq!(o.capabilities, vec![bgp_proto::Capability::RouteRefresh]);
}
