//! Unit tests of signing and the §6.7.4 receive checks: golden vectors from an independent
//! encoder, the replay window of both types, and the rule that a failed check changes nothing.

use super::*;
use crate::bfd::packet::{AuthSection, Diagnostic, SHA1_AUTH_LEN, State};

const SECOND: Duration = Duration::from_secs(1);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn key(auth_type: BfdAuthType) -> AuthKey {
    AuthKey::new(auth_type, 1, b"secret").expect("key")
}

fn unsigned(state: State, mult: u8) -> Repr {
    Repr {
        diagnostic: Diagnostic::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: mult,
        my_discriminator: 0x1111_1111,
        your_discriminator: 0x2222_2222,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
        auth: None,
    }
}

/// A packet signed by a sender whose bfd.XmitAuthSeq is `seq`.
fn signed(auth_type: BfdAuthType, seq: u32) -> Repr {
    let mut sender = AuthState::new(key(auth_type), seq);
    let mut repr = unsigned(State::Up, 3);
    sender.sign(Instant::now(), &mut repr);
    repr
}

fn sequence(repr: &Repr) -> u32 {
    let section = repr.auth.as_ref().expect("signed");
    let t = if section.auth_type() == 5 {
        AuthType::MeticulousKeyedSha1
    } else {
        AuthType::KeyedSha1
    };
    Sha1Auth::parse(section, t).expect("sha1 section").sequence
}

/// Output of `vectors/keyed_sha1.py` (Python's struct + hashlib, an independent encoder).
#[test]
fn python_vectors_verify_and_reemit_byte_for_byte() {
    let cases = [
        (
            "20c403341111111122222222000493e0000493e000000000041c01000102030460b3b2c8a38779a7c6a2e771ddbbfa5baea95135",
            AuthKey::new(BfdAuthType::KeyedSha1, 1, b"secret"),
            0x0102_0304,
        ),
        (
            "204405340000000700000000000f4240000186a000000000051cc800ffffffffaf99a3999bd0c22f5ec8d14f02206fb2b5e86f84",
            AuthKey::new(
                BfdAuthType::MeticulousKeyedSha1,
                200,
                b"0123456789abcdefghij",
            ),
            u32::MAX,
        ),
    ];
    for (hex, key, seq) in cases {
        let bytes = unhex(hex);
        let key = key.expect("key");
        let repr = Repr::parse_bytes(&bytes).expect("parses");
        assert_eq!(repr.to_bytes(), bytes, "{hex}");
        let mut receiver = AuthState::new(key.clone(), 0);
        assert_eq!(receiver.verify(Instant::now(), &repr, 3, None), Ok(()));
        assert_eq!(receiver.received_sequence(), Some(seq));
        // Our signer produces the same bytes from the same fields.
        let mut sender = AuthState::new(key, seq);
        let mut ours = repr.clone();
        ours.auth = None;
        sender.sign(Instant::now(), &mut ours);
        assert_eq!(ours.to_bytes(), bytes, "{hex}");
    }
}

#[test]
fn keys_are_one_to_twenty_octets_and_never_printed() {
    assert!(AuthKey::new(BfdAuthType::KeyedSha1, 1, b"").is_err());
    assert!(AuthKey::new(BfdAuthType::KeyedSha1, 1, &[b'k'; 21]).is_err());
    let k = AuthKey::new(BfdAuthType::KeyedSha1, 9, b"hunter2-secret").expect("key");
    let shown = format!("{k:?} {:?}", AuthState::new(k.clone(), 0));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("key_id: 9") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[test]
fn key_file_is_trimmed_and_its_errors_name_the_file_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bfd.key");
    std::fs::write(&path, "  secret\n").expect("write");
    let config = BfdAuthConfig {
        auth_type: BfdAuthType::KeyedSha1,
        key_id: 1,
        password_file: path.clone(),
    };
    assert_eq!(AuthKey::load(&config), Ok(key(BfdAuthType::KeyedSha1)));
    std::fs::write(&path, "this key is longer than twenty octets\n").expect("write");
    let error = AuthKey::load(&config).expect_err("too long").to_string();
    assert!(
        error.contains(&path.display().to_string()) && error.contains("1 to 20"),
        "{error}"
    );
    assert!(!error.contains("twenty"), "the key leaked: {error}");
    let missing = BfdAuthConfig {
        password_file: dir.path().join("absent"),
        ..config
    };
    assert!(matches!(
        AuthKey::load(&missing),
        Err(Error::AuthKey { .. })
    ));
}

#[test]
fn signed_packets_carry_type_len_key_id_and_verify() {
    for t in [BfdAuthType::KeyedSha1, BfdAuthType::MeticulousKeyedSha1] {
        let repr = signed(t, 77);
        let bytes = repr.to_bytes();
        assert_eq!(bytes.len(), 52);
        assert_eq!(bytes[1] & 0x04, 0x04, "A bit");
        assert_eq!(bytes[3], 52);
        let code = if t == BfdAuthType::KeyedSha1 { 4 } else { 5 };
        assert_eq!(
            (bytes[24], bytes[25], bytes[26], bytes[27]),
            (code, 28, 1, 0)
        );
        assert_eq!(&bytes[28..32], &77u32.to_be_bytes());
        let parsed = Repr::parse_bytes(&bytes).expect("parses");
        let mut receiver = AuthState::new(key(t), 0);
        assert_eq!(receiver.verify(Instant::now(), &parsed, 3, None), Ok(()));
    }
}

#[test]
fn every_receive_check_has_its_own_error() {
    let t0 = Instant::now();
    let good = signed(BfdAuthType::KeyedSha1, 10);
    let check =
        |repr: &Repr| AuthState::new(key(BfdAuthType::KeyedSha1), 0).verify(t0, repr, 3, None);
    assert_eq!(check(&good), Ok(()));
    assert_eq!(
        check(&unsigned(State::Up, 3)),
        Err(Error::AuthMissing),
        "A bit clear"
    );
    // The meticulous type where keyed is configured (and the other way round).
    assert_eq!(
        check(&signed(BfdAuthType::MeticulousKeyedSha1, 10)),
        Err(Error::AuthTypeMismatch {
            expected: 4,
            received: 5
        })
    );
    let mut simple = unsigned(State::Up, 3);
    simple.auth = AuthSection::new(1, b"\x01secret".to_vec());
    assert_eq!(
        check(&simple),
        Err(Error::AuthTypeMismatch {
            expected: 4,
            received: 1
        })
    );
    // Auth Len 27 and 29 with the right type.
    for len in [25usize, 27] {
        let mut wrong_len = good.clone();
        let mut data = wrong_len.auth.as_ref().expect("auth").data().to_vec();
        data.resize(len, 0);
        wrong_len.auth = AuthSection::new(4, data);
        assert_eq!(
            check(&wrong_len),
            Err(Error::AuthLenMismatch {
                auth_len: len + 2,
                expected: SHA1_AUTH_LEN
            })
        );
    }
    let other_id = {
        let mut sender = AuthState::new(
            AuthKey::new(BfdAuthType::KeyedSha1, 2, b"secret").expect("key"),
            10,
        );
        let mut r = unsigned(State::Up, 3);
        sender.sign(t0, &mut r);
        r
    };
    assert_eq!(
        check(&other_id),
        Err(Error::AuthKeyId {
            expected: 1,
            received: 2
        })
    );
    let wrong_key = {
        let mut sender = AuthState::new(
            AuthKey::new(BfdAuthType::KeyedSha1, 1, b"secreT").expect("key"),
            10,
        );
        let mut r = unsigned(State::Up, 3);
        sender.sign(t0, &mut r);
        r
    };
    assert_eq!(check(&wrong_key), Err(Error::AuthDigest));
    // Any field changed after signing breaks the digest: here the state, Up to Down.
    let mut altered = good.clone();
    altered.state = State::Down;
    assert_eq!(check(&altered), Err(Error::AuthDigest));
    // So does a changed Reserved octet, which the digest covers as received.
    let mut bytes = good.to_bytes();
    bytes[27] = 0xff;
    let reserved = Repr::parse_bytes(&bytes).expect("parses");
    assert_eq!(check(&reserved), Err(Error::AuthDigest));
}

#[test]
fn hostile_auth_sections_are_refused_by_the_codec() {
    let good = signed(BfdAuthType::KeyedSha1, 10).to_bytes();
    // Octets appended inside Length, after a valid section: they would escape the digest.
    let mut padded = good.clone();
    padded[3] = 56;
    padded.extend_from_slice(&[0; 4]);
    assert_eq!(
        Repr::parse_bytes(&padded),
        Err(Error::BadAuthLength {
            auth_len: 28,
            length: 56
        })
    );
    // A truncated datagram: Length 52 but only 40 octets arrived.
    assert_eq!(
        Repr::parse_bytes(&good[..40]),
        Err(Error::LengthExceedsPayload {
            length: 52,
            payload: 40
        })
    );
    // Length cut to 40 (a truncated section), Auth Len still 28: exceeds the packet.
    let mut cut = good[..40].to_vec();
    cut[3] = 40;
    assert_eq!(
        Repr::parse_bytes(&cut),
        Err(Error::BadAuthLength {
            auth_len: 28,
            length: 40
        })
    );
    // Auth Len 255 and Auth Len 0/1 (shorter than its own two octets).
    for auth_len in [255u8, 0, 1] {
        let mut bad = good.clone();
        bad[25] = auth_len;
        assert_eq!(
            Repr::parse_bytes(&bad),
            Err(Error::BadAuthLength {
                auth_len,
                length: 52
            })
        );
    }
    // A consistent but short section of the SHA1 type parses, and the session check refuses it.
    let mut short = good[..30].to_vec();
    short[3] = 30;
    short[25] = 6;
    let repr = Repr::parse_bytes(&short).expect("codec accepts a 6-octet section");
    let mut receiver = AuthState::new(key(BfdAuthType::KeyedSha1), 0);
    assert_eq!(
        receiver.verify(Instant::now(), &repr, 3, None),
        Err(Error::AuthLenMismatch {
            auth_len: 6,
            expected: SHA1_AUTH_LEN
        })
    );
}

#[test]
fn keyed_window_accepts_repeats_and_up_to_three_detect_mult_ahead() {
    let t0 = Instant::now();
    let mut rx = AuthState::new(key(BfdAuthType::KeyedSha1), 0);
    let start = u32::MAX - 2; // the window wraps around zero
    assert_eq!(
        rx.verify(t0, &signed(BfdAuthType::KeyedSha1, start), 3, None),
        Ok(())
    );
    // Keyed: the same number again is fine (the sender "MAY" keep it).
    assert_eq!(
        rx.verify(t0, &signed(BfdAuthType::KeyedSha1, start), 3, None),
        Ok(())
    );
    // 3 × 3 = 9 ahead is the edge; 10 is out.
    let edge = start.wrapping_add(9);
    assert_eq!(
        rx.clone().verify(
            t0,
            &signed(BfdAuthType::KeyedSha1, edge.wrapping_add(1)),
            3,
            None
        ),
        Err(Error::AuthSequence {
            received: edge.wrapping_add(1),
            last: start
        })
    );
    assert_eq!(
        rx.verify(t0, &signed(BfdAuthType::KeyedSha1, edge), 3, None),
        Ok(())
    );
    assert_eq!(rx.received_sequence(), Some(edge));
    // Anything behind the last accepted number is a replay.
    assert_eq!(
        rx.verify(t0, &signed(BfdAuthType::KeyedSha1, start), 3, None),
        Err(Error::AuthSequence {
            received: start,
            last: edge
        })
    );
}

#[test]
fn meticulous_window_refuses_a_repeat() {
    let t0 = Instant::now();
    let t = BfdAuthType::MeticulousKeyedSha1;
    let mut rx = AuthState::new(key(t), 0);
    assert_eq!(rx.verify(t0, &signed(t, 100), 3, None), Ok(()));
    assert_eq!(
        rx.verify(t0, &signed(t, 100), 3, None),
        Err(Error::AuthSequence {
            received: 100,
            last: 100
        }),
        "an exact replay"
    );
    assert_eq!(rx.verify(t0, &signed(t, 101), 3, None), Ok(()));
    assert_eq!(rx.verify(t0, &signed(t, 110), 3, None), Ok(()), "101 + 9");
    assert!(rx.verify(t0, &signed(t, 120), 3, None).is_err(), "110 + 10");
}

#[test]
fn the_window_uses_the_larger_detect_mult_of_both_ends() {
    let t0 = Instant::now();
    let t = BfdAuthType::KeyedSha1;
    let mut rx = AuthState::new(key(t), 0);
    assert_eq!(rx.verify(t0, &signed(t, 0), 1, None), Ok(()));
    // Local multiplier 1, the packet says 3: 9 ahead is still inside.
    assert_eq!(rx.verify(t0, &signed(t, 9), 1, None), Ok(()));
    // Local 5, packet 3: 15 ahead is inside.
    assert_eq!(rx.verify(t0, &signed(t, 24), 5, None), Ok(()));
}

#[test]
fn a_failed_check_does_not_move_the_window() {
    let t0 = Instant::now();
    let t = BfdAuthType::MeticulousKeyedSha1;
    let mut rx = AuthState::new(key(t), 0);
    assert_eq!(rx.verify(t0, &signed(t, 5), 3, None), Ok(()));
    // A forgery with a plausible sequence number and a bad digest.
    let mut forged = signed(t, 6);
    forged.state = State::Down;
    assert_eq!(rx.verify(t0, &forged, 3, None), Err(Error::AuthDigest));
    assert_eq!(rx.received_sequence(), Some(5));
    // The genuine packet with that number is still accepted.
    assert_eq!(rx.verify(t0, &signed(t, 6), 3, None), Ok(()));
    // Before anything is known, a forgery does not make the number known either.
    let mut fresh = AuthState::new(key(t), 0);
    assert_eq!(fresh.verify(t0, &forged, 3, None), Err(Error::AuthDigest));
    assert_eq!(fresh.received_sequence(), None);
}

#[test]
fn the_sequence_is_forgotten_after_twice_the_detection_time_of_silence() {
    let t0 = Instant::now();
    let t = BfdAuthType::MeticulousKeyedSha1;
    let detect = Duration::from_millis(900);
    let mut rx = AuthState::new(key(t), 0);
    assert_eq!(rx.verify(t0, &signed(t, 1000), 3, Some(2 * detect)), Ok(()));
    // A restarted peer starts from a new random number: refused while the old one is known...
    let later = t0 + 2 * detect - Duration::from_millis(1);
    assert!(
        rx.verify(later, &signed(t, 7), 3, Some(2 * detect))
            .is_err()
    );
    // ...and accepted once no packet came for twice the Detection Time.
    assert_eq!(
        rx.verify(t0 + 2 * detect, &signed(t, 7), 3, Some(2 * detect)),
        Ok(())
    );
    assert_eq!(rx.received_sequence(), Some(7));
}

#[test]
fn meticulous_sequence_advances_with_every_packet_keyed_once_a_second() {
    let t0 = Instant::now();
    let mut meticulous = AuthState::new(key(BfdAuthType::MeticulousKeyedSha1), u32::MAX);
    let mut keyed = AuthState::new(key(BfdAuthType::KeyedSha1), 5);
    let mut seqs = (Vec::new(), Vec::new());
    for at in [
        t0,
        t0,
        t0 + SECOND / 2,
        t0 + SECOND,
        t0 + SECOND,
        t0 + 3 * SECOND,
    ] {
        let mut r = unsigned(State::Up, 3);
        meticulous.sign(at, &mut r);
        seqs.0.push(sequence(&r));
        let mut r = unsigned(State::Up, 3);
        keyed.sign(at, &mut r);
        seqs.1.push(sequence(&r));
    }
    assert_eq!(seqs.0, [u32::MAX, 0, 1, 2, 3, 4], "wraps around");
    assert_eq!(seqs.1, [5, 5, 5, 6, 6, 7]);
}
