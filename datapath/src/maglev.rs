//! Maglev lookup-table builder, compatible with Cilium's `pkg/maglev` (same table sizes, seed format,
//! backend key strings, MurmurHash3 permutations and weighted fill order).
//!
//! Pure: no I/O, no clocks. The loader turns a [`Table`] into a BPF map value; the CLI prints it.
//!
//! Cilium materialises every backend's full permutation (N × M `u64`s, 1.3 GB for M = 131071 and
//! N = 1000) before filling. We keep only each backend's `(offset, skip)` and its current position in
//! its permutation, and walk it on demand, with a one-bit-per-slot occupancy set that stays in L1.
//! The walk visits exactly the slots Cilium's loop visits, so the tables are identical.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;

use crate::error::{Error, Result};

/// Table sizes Cilium accepts (primes); a cluster must use one of these on every node.
pub const TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// Cilium's default table size.
pub const DEFAULT_TABLE_SIZE: u32 = 16381;

/// Cilium's default cluster-wide seed (`--bpf-lb-maglev-hash-seed`).
pub const DEFAULT_SEED: &str = "JLfvgnHc2kaSUFaI";

/// Weight a backend gets when none is given (Kubernetes/Cilium default).
pub const DEFAULT_WEIGHT: u16 = 100;

/// The three 32-bit seeds decoded from the 12-byte base64 cluster seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed {
    /// Bytes 0–3 (big-endian): seeds MurmurHash3 for the backend permutations.
    pub murmur: u32,
    /// Bytes 4–7: seeds the IPv4 packet jhash.
    pub jhash_v4: u32,
    /// Bytes 8–11: seeds the IPv6 packet jhash.
    pub jhash_v6: u32,
}

impl Seed {
    /// Decodes a standard-alphabet base64 string of exactly 12 bytes.
    pub fn from_base64(s: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| Error::InvalidSeed(format!("{s:?} is not base64: {e}")))?;
        let b: [u8; 12] = bytes.as_slice().try_into().map_err(|_| {
            Error::InvalidSeed(format!("{s:?} decodes to {} bytes, not 12", bytes.len()))
        })?;
        Ok(Self {
            murmur: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            jhash_v4: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            jhash_v6: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

impl Default for Seed {
    fn default() -> Self {
        // The constant is valid base64 of 12 bytes; a unit test pins that.
        Self::from_base64(DEFAULT_SEED).unwrap_or(Self {
            murmur: 0,
            jhash_v4: 0,
            jhash_v6: 0,
        })
    }
}

/// L4 protocol of a backend, spelled as in Cilium's backend key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Proto::Tcp),
            "UDP" => Ok(Proto::Udp),
            "SCTP" => Ok(Proto::Sctp),
            _ => Err(Error::InvalidBackend(format!("unknown protocol {s:?}"))),
        }
    }
}

/// One backend as Maglev sees it: address, protocol and weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Backend IP and port.
    pub addr: SocketAddr,
    /// L4 protocol.
    pub proto: Proto,
    /// Relative weight; 0 means "takes no new flows" and the backend is left out of the table.
    pub weight: u16,
}

impl Backend {
    /// A backend with the default weight.
    pub fn new(addr: SocketAddr, proto: Proto) -> Self {
        Self {
            addr,
            proto,
            weight: DEFAULT_WEIGHT,
        }
    }

    /// The string Cilium sorts and hashes: `[10.0.0.1:80/TCP,State:active]`,
    /// `[[fd00::1]:80/TCP,State:active]` for IPv6.
    pub fn key(&self) -> String {
        match self.addr.ip() {
            IpAddr::V4(ip) => format!("[{ip}:{}/{},State:active]", self.addr.port(), self.proto),
            IpAddr::V6(ip) => format!("[[{ip}]:{}/{},State:active]", self.addr.port(), self.proto),
        }
    }
}

impl FromStr for Backend {
    type Err = Error;

    /// Parses `IP:PORT/PROTO[@WEIGHT]`, with IPv6 as `[IP]:PORT/PROTO`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidBackend(format!("{s:?}: {why}"));
        let (rest, weight) = match s.rsplit_once('@') {
            Some((rest, w)) => (rest, w.parse::<u16>().map_err(|_| bad("bad weight"))?),
            None => (s, DEFAULT_WEIGHT),
        };
        let (addr, proto) = rest
            .rsplit_once('/')
            .ok_or_else(|| bad("expected IP:PORT/PROTO"))?;
        let addr: SocketAddr = addr.parse().map_err(|_| bad("bad IP:PORT"))?;
        Ok(Self {
            addr,
            proto: proto.parse()?,
            weight,
        })
    }
}

/// A built Maglev table: for each slot, the index of the backend in the slice given to [`build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    slots: Vec<u32>,
}

impl Table {
    /// The backend index of every slot.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// Table size M.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True for a table with no slots (never returned by [`build`]).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many slots each backend owns, indexed like the input slice of length `n`.
    pub fn counts(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &s in &self.slots {
            if let Some(c) = counts.get_mut(s as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// Checks that `m` is one of [`TABLE_SIZES`].
pub fn check_table_size(m: u32) -> Result<()> {
    if TABLE_SIZES.contains(&m) {
        Ok(())
    } else {
        Err(Error::InvalidTableSize(m))
    }
}

/// A backend's place in the fill: where its permutation starts and how it steps.
struct Walker {
    /// Index into the caller's slice.
    index: u32,
    weight: u64,
    /// Cilium's per-backend turn counter (weighted fill only).
    counter: f64,
    skip: u32,
    /// The permutation value Cilium would read at `perm[i*M + next[i]]`.
    cur: u32,
}

impl Walker {
    /// Claims the first free slot from `cur` on along the permutation, and moves past it.
    ///
    /// A free slot exists (fewer than M slots are taken when a turn starts) and the walk visits
    /// every slot, since `skip` is coprime to the prime M; so this ends within M steps.
    #[inline]
    fn claim_next(&mut self, taken: &mut Occupancy, m: u32) -> u32 {
        let mut c = self.cur;
        while !taken.take(c) {
            c = step(c, self.skip, m);
        }
        self.cur = step(c, self.skip, m);
        c
    }
}

/// The next permutation value after `c`: `(c + skip) % m` for `c, skip < m`.
#[inline]
fn step(c: u32, skip: u32, m: u32) -> u32 {
    let c = c + skip;
    if c >= m { c - m } else { c }
}

/// One bit per table slot, set once the slot has an owner: M / 8 bytes, so it stays in L1.
struct Occupancy {
    words: Vec<u64>,
}

impl Occupancy {
    fn new(m: u32) -> Self {
        Self {
            words: vec![0; (m as usize).div_ceil(64)],
        }
    }

    /// Marks slot `c` taken; false when it already was. A slot beyond the table counts as free
    /// (and stays unmarked), so a walk that strayed there would end rather than spin.
    #[inline]
    fn take(&mut self, c: u32) -> bool {
        let Some(word) = self.words.get_mut((c / 64) as usize) else {
            return true;
        };
        let bit = 1u64 << (c % 64);
        let free = *word & bit == 0;
        *word |= bit;
        free
    }
}

/// Builds the Maglev table of size `m` for `backends`.
///
/// Backends are ordered by [`Backend::key`] (as Cilium does, so every node gets the same table
/// whatever order it learnt them in); backends with weight 0 get no slots. Duplicate backends are
/// rejected, because Cilium could never see two backends with the same key.
pub fn build(m: u32, seed: &Seed, backends: &[Backend]) -> Result<Table> {
    check_table_size(m)?;
    // (key, index into `backends`, weight); keys are unique once checked below, so the sort
    // orders by key alone.
    let mut keyed: Vec<(String, u32, u16)> = Vec::with_capacity(backends.len());
    for (i, b) in backends.iter().enumerate() {
        if b.weight > 0 {
            keyed.push((b.key(), i as u32, b.weight));
        }
    }
    if keyed.is_empty() {
        return Err(Error::NoBackends);
    }
    keyed.sort_unstable();
    if let Some((dup, _)) = keyed
        .iter()
        .zip(keyed.iter().skip(1))
        .find(|(a, b)| a.0 == b.0)
    {
        return Err(Error::InvalidBackend(format!(
            "duplicate backend {}",
            dup.0
        )));
    }

    let l = keyed.len() as f64;
    let mut walkers: Vec<Walker> = keyed
        .iter()
        .map(|(key, index, weight)| {
            let (offset, skip) = offset_and_skip(key.as_bytes(), m, seed.murmur);
            Walker {
                index: *index,
                weight: u64::from(*weight),
                counter: f64::from(*weight) / l,
                skip,
                cur: offset,
            }
        })
        .collect();
    Ok(Table {
        slots: fill(m, &mut walkers),
    })
}

/// Cilium's `getOffsetAndSkip`: offset = h1 % M, skip = h2 % (M − 1) + 1.
fn offset_and_skip(key: &[u8], m: u32, seed: u32) -> (u32, u32) {
    let (h1, h2) = murmur3_x64_128(key, seed);
    let m64 = u64::from(m);
    // Both results are below m, which fits in u32.
    ((h1 % m64) as u32, (h2 % (m64 - 1) + 1) as u32)
}

/// The fill loop: turn `n` starts at backend `n % l`; with weights in use (average weight above 1)
/// a backend whose counter is ahead of `(n + 1) · weight` yields its turn to the next one. The
/// float counter and the truncating comparison are Cilium's, kept bit for bit.
fn fill(m: u32, walkers: &mut [Walker]) -> Vec<u32> {
    let weight_sum: u64 = walkers.iter().map(|w| w.weight).sum();
    let weights_used = weight_sum / walkers.len() as u64 > 1;
    let mut taken = Occupancy::new(m);
    let mut slots = vec![0u32; m as usize];

    for (n, start) in (0..u64::from(m)).zip((0..walkers.len()).cycle()) {
        let turn = if weights_used {
            weighted_turn(walkers, start, n, weight_sum)
        } else {
            walkers.get_mut(start)
        };
        // Always `Some`: `start` is below the walker count, and some backend is eligible in
        // every weighted turn (see `weighted_turn`).
        let Some(w) = turn else { continue };
        let c = w.claim_next(&mut taken, m);
        if let Some(slot) = slots.get_mut(c as usize) {
            *slot = w.index;
        }
    }
    slots
}

/// The backend that takes weighted turn `n`: the first from `start` on, wrapping around, whose
/// counter is not ahead of `(n + 1) · weight`; its counter moves on by the weight sum.
///
/// One always qualifies: before turn `n` the counters add up to `W / l + n · W` (W the weight
/// sum, l the backend count), at most `(n + 1) · W`, the sum of the bounds.
#[inline]
fn weighted_turn(
    walkers: &mut [Walker],
    start: usize,
    n: u64,
    weight_sum: u64,
) -> Option<&mut Walker> {
    let (before, from) = walkers.split_at_mut_checked(start)?;
    let w = from
        .iter_mut()
        .chain(before)
        .find(|w| (n + 1) * w.weight >= w.counter as u64)?;
    w.counter += weight_sum as f64;
    Some(w)
}

/// MurmurHash3_x64_128 (Austin Appleby's reference), returning `(h1, h2)`; both halves start at
/// the 32-bit seed, as in Cilium's `murmur3.Hash128`.
pub fn murmur3_x64_128(data: &[u8], seed: u32) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);

    let (blocks, tail) = data.as_chunks::<16>();
    for block in blocks {
        // Two little-endian u64s: the low and high halves of one little-endian u128.
        let block = u128::from_le_bytes(*block);
        let mut k1 = block as u64;
        let mut k2 = (block >> 64) as u64;
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }

    let mut buf = [0u8; 16];
    for (dst, src) in buf.iter_mut().zip(tail) {
        *dst = *src;
    }
    let buf = u128::from_le_bytes(buf);
    let k1 = buf as u64;
    let k2 = (buf >> 64) as u64;
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }

    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A direct transcription of Cilium's method — every backend's full permutation materialised
/// (N × M entries), then the same fill — kept as the baseline for the benchmark and as a second
/// opinion in tests. Not for production: it allocates N × M `u64`s.
pub mod reference {
    use super::{Backend, Seed, Table, check_table_size, offset_and_skip};
    use crate::error::{Error, Result};

    /// Builds the same table as [`super::build`] the way Cilium does.
    pub fn build(m: u32, seed: &Seed, backends: &[Backend]) -> Result<Table> {
        check_table_size(m)?;
        let mut keyed: Vec<(String, usize)> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight > 0)
            .map(|(i, b)| (b.key(), i))
            .collect();
        if keyed.is_empty() {
            return Err(Error::NoBackends);
        }
        keyed.sort();
        let m = m as usize;
        let l = keyed.len();
        // Row i holds backend i's permutation: offset, offset + skip, ... (mod M).
        let mut perm = vec![0u64; l * m];
        for (row, (key, _)) in perm.chunks_exact_mut(m).zip(&keyed) {
            let (offset, skip) = offset_and_skip(key.as_bytes(), m as u32, seed.murmur);
            let mut p = u64::from(offset);
            for v in row {
                *v = p;
                p = (p + u64::from(skip)) % m as u64;
            }
        }
        let weight_sum: u64 = keyed
            .iter()
            .filter_map(|(_, i)| backends.get(*i))
            .map(|b| u64::from(b.weight))
            .sum();
        let weights_used = weight_sum / l as u64 > 1;
        let mut rows: Vec<Row<'_>> = perm
            .chunks_exact(m)
            .zip(&keyed)
            .filter_map(|(perm, (_, i))| {
                let weight = u64::from(backends.get(*i)?.weight);
                Some(Row {
                    perm,
                    next: 0,
                    index: *i as u32,
                    weight,
                    counter: weight as f64 / l as f64,
                })
            })
            .collect();
        let mut entry = vec![u32::MAX; m];
        for (n, start) in (0..m as u64).zip((0..l).cycle()) {
            let Some((before, from)) = rows.split_at_mut_checked(start) else {
                continue;
            };
            let mut turn = from.iter_mut().chain(before);
            let row = if weights_used {
                turn.find(|r| (n + 1) * r.weight >= r.counter as u64)
            } else {
                turn.next()
            };
            let Some(row) = row else { continue };
            if weights_used {
                row.counter += weight_sum as f64;
            }
            while let Some(&c) = row.perm.get(row.next) {
                row.next += 1;
                if let Some(e) = entry.get_mut(c as usize)
                    && *e == u32::MAX
                {
                    *e = row.index;
                    break;
                }
            }
        }
        Ok(Table { slots: entry })
    }

    /// One backend's materialised permutation and Cilium's `next[i]` into it.
    struct Row<'a> {
        perm: &'a [u64],
        next: usize,
        index: u32,
        weight: u64,
        counter: f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + i as u32 + 1);
                Backend::new(SocketAddr::new(ip.into(), 8080), Proto::Tcp)
            })
            .collect()
    }

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Values from Python's mmh3.hash64(data, seed, signed=False) (the smhasher reference).
        assert_eq!(
            murmur3_x64_128(b"abc", 5),
            (1013314345942519001, 12475344791123688254)
        );
        assert_eq!(murmur3_x64_128(b"", 0), (0, 0));
    }

    #[test]
    fn default_seed_decodes() {
        let seed = Seed::from_base64(DEFAULT_SEED).expect("default seed");
        assert_eq!(seed, Seed::default());
        assert_eq!(seed.murmur, 0x24b7_ef82);
    }

    #[test]
    fn seed_of_wrong_length_is_rejected() {
        assert!(matches!(
            Seed::from_base64("AAAA"),
            Err(Error::InvalidSeed(_))
        ));
        assert!(matches!(
            Seed::from_base64("not base64!"),
            Err(Error::InvalidSeed(_))
        ));
    }

    #[test]
    fn backend_keys_follow_cilium() {
        let b: Backend = "10.1.2.3:80/TCP".parse().expect("v4");
        assert_eq!(b.key(), "[10.1.2.3:80/TCP,State:active]");
        assert_eq!(b.weight, DEFAULT_WEIGHT);
        let b: Backend = "[fd00::1]:53/udp@7".parse().expect("v6");
        assert_eq!(b.key(), "[[fd00::1]:53/UDP,State:active]");
        assert_eq!(b.weight, 7);
        assert!("10.1.2.3/TCP".parse::<Backend>().is_err());
        assert!("10.1.2.3:80/ICMP".parse::<Backend>().is_err());
        assert!("10.1.2.3:80/TCP@x".parse::<Backend>().is_err());
    }

    #[test]
    fn unsupported_table_size_is_rejected() {
        let r = build(1000, &Seed::default(), &v4_backends(3));
        assert!(matches!(r, Err(Error::InvalidTableSize(1000))));
    }

    #[test]
    fn empty_and_duplicate_backend_sets_are_rejected() {
        assert!(matches!(
            build(251, &Seed::default(), &[]),
            Err(Error::NoBackends)
        ));
        let mut b = v4_backends(2);
        b.push(b[0]);
        assert!(matches!(
            build(251, &Seed::default(), &b),
            Err(Error::InvalidBackend(_))
        ));
    }

    #[test]
    fn table_is_deterministic_and_order_independent() {
        let seed = Seed::default();
        let b = v4_backends(7);
        let t1 = build(1021, &seed, &b).expect("build");
        let t2 = build(1021, &seed, &b).expect("build");
        assert_eq!(t1, t2);
        let mut rev = b.clone();
        rev.reverse();
        let t3 = build(1021, &seed, &rev).expect("build");
        // Same backend in every slot, whatever the input order.
        for (s1, s3) in t1.slots().iter().zip(t3.slots()) {
            assert_eq!(b[*s1 as usize], rev[*s3 as usize]);
        }
    }

    #[test]
    fn lazy_build_equals_materialised_permutations() {
        let seed = Seed::from_base64("AAECAwQFBgcICQoL").expect("seed");
        for (m, n) in [(251, 1), (251, 2), (1021, 9), (4093, 40), (16381, 100)] {
            let b = v4_backends(n);
            assert_eq!(
                build(m, &seed, &b).expect("lazy"),
                reference::build(m, &seed, &b).expect("reference"),
                "m={m} n={n}"
            );
        }
        let mut weighted = v4_backends(10);
        for (i, b) in weighted.iter_mut().enumerate() {
            b.weight = (i as u16 + 1) * 13;
        }
        assert_eq!(
            build(2039, &seed, &weighted).expect("lazy"),
            reference::build(2039, &seed, &weighted).expect("reference")
        );
    }

    #[test]
    fn every_backend_gets_within_one_percent_of_its_share() {
        let seed = Seed::default();
        for (m, n) in [(16381u32, 100usize), (65521, 10), (131071, 1000)] {
            if u64::from(m) <= 100 * n as u64 {
                continue;
            }
            let table = build(m, &seed, &v4_backends(n)).expect("build");
            let ideal = f64::from(m) / n as f64;
            for (i, &c) in table.counts(n).iter().enumerate() {
                let dev = (c as f64 - ideal).abs() / f64::from(m);
                assert!(
                    dev <= 0.01,
                    "m={m} n={n} backend {i}: {c} slots, ideal {ideal:.1}"
                );
            }
        }
    }

    #[test]
    fn removing_a_backend_moves_few_other_slots() {
        let seed = Seed::default();
        for n in [3usize, 10, 50] {
            let m = 16381;
            let all = v4_backends(n);
            let before = build(m, &seed, &all).expect("build");
            let removed = n / 2;
            let rest: Vec<Backend> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != removed)
                .map(|(_, b)| *b)
                .collect();
            let after = build(m, &seed, &rest).expect("build");
            let changed = before
                .slots()
                .iter()
                .zip(after.slots())
                .filter(|(b, a)| all[**b as usize] != rest[**a as usize])
                .count();
            let bound = (1.0 / n as f64 + 0.01) * f64::from(m);
            assert!(
                changed as f64 <= bound,
                "n={n}: {changed} slots changed, bound {bound:.0}"
            );
            // The removed backend's slots must all have moved.
            let owned = before.counts(n)[removed];
            assert!(changed >= owned);
        }
    }

    #[test]
    fn weights_set_the_share_of_slots() {
        let seed = Seed::default();
        let mut b = v4_backends(4);
        let weights = [100u16, 200, 300, 400];
        for (b, w) in b.iter_mut().zip(weights) {
            b.weight = w;
        }
        let m = 16381;
        let counts = build(m, &seed, &b).expect("build").counts(4);
        for (c, w) in counts.iter().zip(weights) {
            let want = f64::from(m) * f64::from(w) / 1000.0;
            assert!(
                (*c as f64 - want).abs() / f64::from(m) < 0.01,
                "weight {w}: {c} slots, want {want:.0}"
            );
        }
    }

    #[test]
    fn zero_weight_backends_get_no_slots() {
        let mut b = v4_backends(3);
        b[1].weight = 0;
        let counts = build(251, &Seed::default(), &b).expect("build").counts(3);
        assert_eq!(counts[1], 0);
        assert_eq!(counts[0] + counts[2], 251);
    }
}
