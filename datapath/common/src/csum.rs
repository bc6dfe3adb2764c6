//! Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624), shared by the XDP
//! program, the TC programs and the tests. Checksums are handled as the 16-bit value read
//! big-endian from the wire.

/// Folds a 32-bit one's-complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one 16-bit word changing from `old` to `new`.
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!check) + u32::from(!old) + u32::from(new))
}

/// Updates `check` for a 4-byte field (an IPv4 address) changing from `old` to `new`.
#[inline(always)]
pub fn replace32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let [o0, o1, o2, o3] = old;
    let [n0, n1, n2, n3] = new;
    let c = replace16(
        check,
        u16::from_be_bytes([o0, o1]),
        u16::from_be_bytes([n0, n1]),
    );
    replace16(
        c,
        u16::from_be_bytes([o2, o3]),
        u16::from_be_bytes([n2, n3]),
    )
}

/// Updates `check` for a 16-byte field (an IPv6 address) changing from `old` to `new`.
#[inline(always)]
pub fn replace128(check: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    // 16 is a multiple of 2: the remainders are empty.
    let (old, _) = old.as_chunks::<2>();
    let (new, _) = new.as_chunks::<2>();
    old.iter().zip(new).fold(check, |c, (o, n)| {
        replace16(c, u16::from_be_bytes(*o), u16::from_be_bytes(*n))
    })
}

/// The one's-complement sum of `words` 16-bit big-endian words of `bytes` (no final complement).
#[inline(always)]
pub fn sum_words(bytes: &[u8], acc: u32) -> u32 {
    let (words, tail) = bytes.as_chunks::<2>();
    let mut sum = acc;
    for w in words {
        sum += u32::from(u16::from_be_bytes(*w));
    }
    // An odd trailing byte is the high half of a word padded with zero.
    if let [last] = tail {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// The IPv4 header checksum of a 20-byte header whose checksum field is zero.
#[inline(always)]
pub fn ipv4_header(hdr: &[u8; 20]) -> u16 {
    let (words, _) = hdr.as_chunks::<2>();
    let mut sum = 0u32;
    for w in words {
        sum += u32::from(u16::from_be_bytes(*w));
    }
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real IPv4 header (RFC 1071 style example): 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn ipv4_header_checksum_matches_known_value() {
        assert_eq!(ipv4_header(&HDR), 0xb861);
    }

    #[test]
    fn incremental_update_equals_recomputation() {
        let mut h = HDR;
        let c0 = ipv4_header(&h);
        let new = [10, 1, 2, 3];
        let c1 = replace32(c0, [h[16], h[17], h[18], h[19]], new);
        h[16..20].copy_from_slice(&new);
        assert_eq!(c1, ipv4_header(&h));
        let mut h2 = h;
        h2[2..4].copy_from_slice(&0x0200u16.to_be_bytes());
        assert_eq!(replace16(c1, 0x0073, 0x0200), ipv4_header(&h2));
        let old6 = [0u8; 16];
        let new6 = [0xfd; 16];
        let base = !fold(sum_words(&old6, 0x1234));
        assert_eq!(
            replace128(base, &old6, &new6),
            !fold(sum_words(&new6, 0x1234))
        );
    }
}
