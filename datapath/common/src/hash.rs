//! Bob Jenkins' lookup3 `jhash` as the Linux kernel (and Cilium's `bpf/lib/jhash.h`) define it, and
//! the packet hash Cilium's Maglev lookup uses. Words are the packet bytes read little-endian, i.e.
//! what a `__be32` load yields on the x86/bpfel hosts Cilium runs on.

/// The kernel's `JHASH_INITVAL`.
pub const JHASH_INITVAL: u32 = 0xdead_beef;

#[inline(always)]
fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// The kernel's `jhash_3words(a, b, c, initval)`.
#[inline(always)]
pub fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    let iv = initval.wrapping_add(JHASH_INITVAL).wrapping_add(3 << 2);
    final_mix(a.wrapping_add(iv), b.wrapping_add(iv), c.wrapping_add(iv))
}

/// Reads 4 wire bytes as a `__be32` load on a little-endian host does.
#[inline(always)]
pub fn wire_u32(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b)
}

/// Reads 2 wire bytes as a `__be16` load on a little-endian host does.
#[inline(always)]
pub fn wire_u16(b: [u8; 2]) -> u16 {
    u16::from_le_bytes(b)
}

/// Maglev packet hash for IPv4: `jhash_3words(saddr, (dport << 16) | sport, proto, seed)`, with the
/// destination (service) address left out so every node and every VIP of a service agree. Ports
/// are the wire bytes; pass `sport = [0, 0]` for session affinity.
#[inline(always)]
pub fn packet_hash_v4(saddr: [u8; 4], sport: [u8; 2], dport: [u8; 2], proto: u8, seed: u32) -> u32 {
    let ports = (u32::from(wire_u16(dport)) << 16) | u32::from(wire_u16(sport));
    jhash_3words(wire_u32(saddr), ports, u32::from(proto), seed)
}

/// Maglev packet hash for IPv6: the source address's four words, the ports and the protocol
/// through two lookup3 mixing rounds and the final mix, seeded with the IPv6 seed.
#[inline(always)]
pub fn packet_hash_v6(
    saddr: [u8; 16],
    sport: [u8; 2],
    dport: [u8; 2],
    proto: u8,
    seed: u32,
) -> u32 {
    let mut words = [0u32; 4];
    for (w, bytes) in words.iter_mut().zip(saddr.as_chunks::<4>().0) {
        *w = wire_u32(*bytes);
    }
    let [w0, w1, w2, w3] = words;
    let (mut a, mut b, mut c) = (w0, w1, w2);
    mix(&mut a, &mut b, &mut c);
    a = a.wrapping_add(w3);
    b = b.wrapping_add((u32::from(wire_u16(dport)) << 16) | u32::from(wire_u16(sport)));
    c ^= u32::from(proto);
    mix(&mut a, &mut b, &mut c);
    a = a.wrapping_add(seed);
    final_mix(a, b, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jhash_3words_matches_kernel_values() {
        // Printed by datapath/tests/vectors/jhash_ref.c (the kernel's jhash compiled with gcc).
        assert_eq!(jhash_3words(0, 0, 0, 0), 459_859_287);
        assert_eq!(jhash_3words(1, 2, 3, 4), 2_164_462_655);
        // 10.0.0.1 -> :80 from :1234, TCP, default seed's IPv4 jhash word (0x71dcda46).
        assert_eq!(
            packet_hash_v4([10, 0, 0, 1], [0x04, 0xd2], [0, 80], 6, 0x71dc_da46),
            1_875_563_546
        );
    }

    #[test]
    fn affinity_hash_ignores_source_port_only() {
        let a = packet_hash_v4([10, 0, 0, 1], [0, 0], [0, 80], 6, 7);
        let b = packet_hash_v4([10, 0, 0, 2], [0, 0], [0, 80], 6, 7);
        assert_ne!(a, b);
        let c = packet_hash_v6([0xfd; 16], [1, 2], [0, 80], 6, 7);
        let d = packet_hash_v6([0xfd; 16], [1, 3], [0, 80], 6, 7);
        assert_ne!(c, d);
    }
}
