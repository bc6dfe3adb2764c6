//! IPv4 and IPv6 unicast NLRI (RFC 4271 §4.3, RFC 4760 §5) with optional ADD-PATH path
//! identifiers (RFC 7911 §3).
//!
//! Prefixes are compact owned values (address as an integer plus length); host bits beyond the
//! prefix length are cleared on decode, so equal routes compare equal. Pure byte conversion.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

/// An IPv4 prefix: network address (host bits zero) and length 0..=32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

/// An IPv6 prefix: network address (host bits zero) and length 0..=128.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: [u8; 16],
    len: u8,
}

#[inline]
fn mask4(len: u8) -> u32 {
    // A shift by the full width (length 0) is `None`: no network bits.
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

#[inline]
fn mask6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

impl Ipv4Prefix {
    /// A prefix; host bits of `addr` are cleared. `None` if `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then(|| Ipv4Prefix {
            addr: u32::from(addr) & mask4(len),
            len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    #[expect(
        clippy::len_without_is_empty,
        reason = "a prefix length, not a collection"
    )]
    pub fn len(&self) -> u8 {
        self.len
    }
}

impl Ipv6Prefix {
    /// A prefix; host bits of `addr` are cleared. `None` if `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        (len <= 128).then(|| Ipv6Prefix {
            addr: (u128::from(addr) & mask6(len)).to_be_bytes(),
            len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    /// The prefix length.
    #[expect(
        clippy::len_without_is_empty,
        reason = "a prefix length, not a collection"
    )]
    pub fn len(&self) -> u8 {
        self.len
    }
}

impl fmt::Debug for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Debug for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One NLRI entry: a prefix and, on ADD-PATH sessions, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri<P> {
    /// Path identifier (RFC 7911); `None` when ADD-PATH is not in use for the family.
    pub path_id: Option<u32>,
    /// The prefix.
    pub prefix: P,
}

/// An IPv4 unicast NLRI entry.
pub type Ipv4Nlri = Nlri<Ipv4Prefix>;
/// An IPv6 unicast NLRI entry.
pub type Ipv6Nlri = Nlri<Ipv6Prefix>;

impl<P> Nlri<P> {
    /// An entry without a path identifier.
    pub fn new(prefix: P) -> Self {
        Nlri {
            path_id: None,
            prefix,
        }
    }
}

/// Why an NLRI field could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlriError {
    /// A prefix length above the address width.
    PrefixTooLong,
    /// The field ends inside an entry.
    Truncated,
}

/// Splits the RFC 7911 path identifier off the front of `buf` when ADD-PATH is on.
#[inline]
fn path_id(buf: &[u8], add_path: bool) -> Result<(Option<u32>, &[u8]), NlriError> {
    if !add_path {
        return Ok((None, buf));
    }
    let (id, rest) = buf.split_first_chunk::<4>().ok_or(NlriError::Truncated)?;
    Ok((Some(u32::from_be_bytes(*id)), rest))
}

/// Splits one prefix off the front of `buf`: the length octet (at most `max_len` bits) and the
/// `ceil(len / 8)` address octets, returning the length, the octets after the length octet (the
/// address and everything behind it) and the rest of the field.
#[inline]
fn prefix(buf: &[u8], max_len: u8) -> Result<(u8, &[u8], &[u8]), NlriError> {
    let (&len, after_len) = buf.split_first().ok_or(NlriError::Truncated)?;
    if len > max_len {
        return Err(NlriError::PrefixTooLong);
    }
    let (_, rest) = after_len
        .split_at_checked(usize::from(len).div_ceil(8))
        .ok_or(NlriError::Truncated)?;
    Ok((len, after_len, rest))
}

/// Copies the first `ceil(len / 8)` octets of `addr` into a zeroed array.
#[inline]
fn address<const N: usize>(addr: &[u8], len: u8) -> Result<[u8; N], NlriError> {
    let n = usize::from(len).div_ceil(8);
    let mut a = [0u8; N];
    let (Some(dst), Some(src)) = (a.get_mut(..n), addr.get(..n)) else {
        return Err(NlriError::PrefixTooLong);
    };
    dst.copy_from_slice(src);
    Ok(a)
}

/// Entries to reserve for an IPv4 NLRI field of `buf`: enough when every prefix is /17 or longer
/// (3 octets or more of address); a field of shorter prefixes grows the Vec on demand.
#[inline]
pub(crate) fn ipv4_capacity(buf: &[u8], add_path: bool) -> usize {
    // A quotient of a length plus one never saturates.
    if add_path {
        (buf.len() / 8).saturating_add(1)
    } else {
        (buf.len() / 4).saturating_add(1)
    }
}

/// Decodes a whole IPv4 NLRI field, appending to `out`.
pub fn decode_ipv4(buf: &[u8], add_path: bool, out: &mut Vec<Ipv4Nlri>) -> Result<(), NlriError> {
    out.reserve(ipv4_capacity(buf, add_path));
    let mut rest = buf;
    while !rest.is_empty() {
        let (path_id, r) = path_id(rest, add_path)?;
        let (len, addr, r) = prefix(r, 32)?;
        // Fast path: read four octets at once and mask; the octets past the prefix belong to the
        // next entry and fall under the mask. Near the end of the field, copy only what is there.
        let raw = match addr.first_chunk::<4>() {
            Some(four) => u32::from_be_bytes(*four),
            None => u32::from_be_bytes(address(addr, len)?),
        };
        rest = r;
        out.push(Nlri {
            path_id,
            prefix: Ipv4Prefix {
                addr: raw & mask4(len),
                len,
            },
        });
    }
    Ok(())
}

/// Entries in an IPv6 NLRI field, counted from the length octets (a malformed field counts what
/// is there; the decoder reports the error). Exact, so the Vec is allocated once: IPv6 prefix
/// lengths vary too much (/48 is 7 octets, /128 17) for an estimate from the field's size.
#[inline]
pub(crate) fn ipv6_capacity(buf: &[u8], add_path: bool) -> usize {
    let id = if add_path { 4 } else { 0 };
    let mut count = 0usize;
    let mut rest = buf.get(id..).unwrap_or_default();
    while let Some((&len, after)) = rest.split_first() {
        count = count.saturating_add(1);
        let skip = usize::from(len).div_ceil(8).saturating_add(id);
        rest = after.get(skip..).unwrap_or_default();
    }
    count
}

/// Decodes a whole IPv6 NLRI field, appending to `out`.
pub fn decode_ipv6(buf: &[u8], add_path: bool, out: &mut Vec<Ipv6Nlri>) -> Result<(), NlriError> {
    out.reserve(ipv6_capacity(buf, add_path));
    let mut rest = buf;
    while !rest.is_empty() {
        let (path_id, r) = path_id(rest, add_path)?;
        let (len, addr, r) = prefix(r, 128)?;
        rest = r;
        // Fast path as for IPv4: sixteen octets at once, the ones past the prefix masked off.
        let raw = match addr.first_chunk::<16>() {
            Some(all) => u128::from_be_bytes(*all),
            None => u128::from_be_bytes(address(addr, len)?),
        };
        let addr = (raw & mask6(len)).to_be_bytes();
        out.push(Nlri {
            path_id,
            prefix: Ipv6Prefix { addr, len },
        });
    }
    Ok(())
}

/// Encoded length of one entry: path identifier, length octet, address octets.
#[expect(clippy::arithmetic_side_effects, reason = "at most 4 + 1 + 16 octets")]
fn entry_len(prefix_len: u8, add_path: bool) -> usize {
    let id = if add_path { 4 } else { 0 };
    id + 1 + usize::from(prefix_len).div_ceil(8)
}

/// Encoded length of IPv4 entries.
pub fn ipv4_len(list: &[Ipv4Nlri], add_path: bool) -> usize {
    list.iter().map(|n| entry_len(n.prefix.len, add_path)).sum()
}

/// Encoded length of IPv6 entries.
pub fn ipv6_len(list: &[Ipv6Nlri], add_path: bool) -> usize {
    list.iter().map(|n| entry_len(n.prefix.len, add_path)).sum()
}

/// Appends IPv4 entries. With `add_path`, an entry without a path identifier is written with 0;
/// without it, path identifiers are not written.
pub fn encode_ipv4(list: &[Ipv4Nlri], add_path: bool, out: &mut impl BufMut) {
    for n in list {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let len = n.prefix.len;
        out.put_u8(len);
        let addr = n.prefix.addr.to_be_bytes();
        // A prefix is at most 32 bits by construction, so the slice is always there.
        out.put_slice(addr.get(..usize::from(len).div_ceil(8)).unwrap_or(&addr));
    }
}

/// As [`encode_ipv4`], into a `BytesMut`, with one fixed-width copy per entry instead of two
/// variable-length ones: each entry is copied whole (full address) and the next one overwrites
/// the octets it does not use. This is the UPDATE body's hot loop (hundreds of prefixes).
pub fn encode_ipv4_into(list: &[Ipv4Nlri], add_path: bool, out: &mut BytesMut) {
    let start = out.len();
    let end = start.saturating_add(ipv4_len(list, add_path));
    // Room for the last entry's full width; cut back to `end` below.
    out.resize(end.saturating_add(9), 0);
    let mut dst = out.get_mut(start..).unwrap_or_default();
    for n in list {
        let len = n.prefix.len;
        let [a0, a1, a2, a3] = n.prefix.addr.to_be_bytes();
        let used = entry_len(len, add_path);
        if add_path {
            let [i0, i1, i2, i3] = n.path_id.unwrap_or(0).to_be_bytes();
            put_fixed(&mut dst, [i0, i1, i2, i3, len, a0, a1, a2, a3], used);
        } else {
            put_fixed(&mut dst, [len, a0, a1, a2, a3], used);
        }
    }
    out.truncate(end);
}

/// Copies all of `entry` to the front of `dst`, then moves `dst` past the first `used` octets.
#[inline(always)]
fn put_fixed<const N: usize>(dst: &mut &mut [u8], entry: [u8; N], used: usize) {
    if let Some(head) = dst.first_chunk_mut::<N>() {
        *head = entry;
    }
    *dst = std::mem::take(dst).get_mut(used..).unwrap_or_default();
}

/// Appends IPv6 entries; path identifiers as for [`encode_ipv4`].
pub fn encode_ipv6(list: &[Ipv6Nlri], add_path: bool, out: &mut impl BufMut) {
    for n in list {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let len = n.prefix.len;
        out.put_u8(len);
        // A prefix is at most 128 bits by construction, so the slice is always there.
        let addr = &n.prefix.addr;
        out.put_slice(addr.get(..usize::from(len).div_ceil(8)).unwrap_or(addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_decode_clears_host_bits_and_round_trips() {
        let mut out = Vec::new();
        decode_ipv4(&[24, 10, 1, 2, 0, 20, 172, 16, 0xff], false, &mut out).unwrap();
        assert_eq!(
            out[0].prefix,
            Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 0), 24).unwrap()
        );
        assert_eq!(out[1].prefix.len(), 0);
        assert_eq!(out[2].prefix.addr(), Ipv4Addr::new(172, 16, 0xf0, 0));
        let mut buf = Vec::new();
        encode_ipv4(&out, false, &mut buf);
        assert_eq!(buf, vec![24, 10, 1, 2, 0, 20, 172, 16, 0xf0]);
        assert_eq!(ipv4_len(&out, false), buf.len());
    }

    #[test]
    fn the_bytes_mut_encoder_writes_what_the_generic_one_writes() {
        let list: Vec<Ipv4Nlri> = [
            (0u32, 0u8),
            (0x0a01_0203, 8),
            (0x0a01_0203, 17),
            (0xc000_0201, 32),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(a, len))| Nlri {
            path_id: Some(i as u32 + 7),
            prefix: Ipv4Prefix::new(Ipv4Addr::from(a), len).unwrap(),
        })
        .collect();
        for add_path in [false, true] {
            let mut generic = Vec::new();
            encode_ipv4(&list, add_path, &mut generic);
            let mut fast = BytesMut::from(&b"head"[..]);
            encode_ipv4_into(&list, add_path, &mut fast);
            assert_eq!(&fast[..4], b"head");
            assert_eq!(&fast[4..], &generic[..], "add_path {add_path}");
        }
    }

    #[test]
    fn the_ipv6_reservation_is_the_exact_entry_count() {
        let list: Vec<Ipv6Nlri> = [0u8, 1, 48, 64, 127, 128]
            .iter()
            .map(|&len| Nlri {
                path_id: Some(u32::from(len)),
                prefix: Ipv6Prefix::new("2001:db8:ffff:ffff::1".parse().unwrap(), len).unwrap(),
            })
            .collect();
        for add_path in [false, true] {
            let mut buf = Vec::new();
            encode_ipv6(&list, add_path, &mut buf);
            assert_eq!(
                ipv6_capacity(&buf, add_path),
                list.len(),
                "add_path {add_path}"
            );
            // Truncated or garbage fields still give a bounded count, never more than octets.
            assert!(ipv6_capacity(&buf[..buf.len() - 1], add_path) <= list.len());
            assert!(ipv6_capacity(&[0xff; 40], add_path) <= 40);
        }
    }

    #[test]
    fn add_path_ids_are_read_and_written() {
        let wire = [0, 0, 0, 7, 32, 192, 0, 2, 1];
        let mut out = Vec::new();
        decode_ipv4(&wire, true, &mut out).unwrap();
        assert_eq!(out[0].path_id, Some(7));
        let mut buf = Vec::new();
        encode_ipv4(&out, true, &mut buf);
        assert_eq!(buf, wire);
    }

    #[test]
    fn ipv6_round_trips() {
        let p = Ipv6Prefix::new("2001:db8:1::".parse().unwrap(), 48).unwrap();
        let list = vec![Nlri {
            path_id: Some(1),
            prefix: p,
        }];
        let mut buf = Vec::new();
        encode_ipv6(&list, true, &mut buf);
        assert_eq!(buf.len(), ipv6_len(&list, true));
        let mut out = Vec::new();
        decode_ipv6(&buf, true, &mut out).unwrap();
        assert_eq!(out, list);
    }

    #[test]
    fn malformed_nlri_is_reported() {
        let mut out = Vec::new();
        assert_eq!(
            decode_ipv4(&[33, 1, 2, 3, 4, 5], false, &mut out),
            Err(NlriError::PrefixTooLong)
        );
        assert_eq!(
            decode_ipv4(&[24, 1, 2], false, &mut out),
            Err(NlriError::Truncated)
        );
        assert_eq!(
            decode_ipv4(&[0, 0, 1], true, &mut out),
            Err(NlriError::Truncated)
        );
        assert_eq!(
            decode_ipv6(&[129], false, &mut Vec::new()),
            Err(NlriError::PrefixTooLong)
        );
    }
}
