//! IPv4 and IPv6 unicast NLRI (RFC 4271 §4.3, RFC 4760 §5) with optional ADD-PATH path
//! identifiers (RFC 7911 §3).
//!
//! Prefixes are compact owned values (address as an integer plus length); host bits beyond the
//! prefix length are cleared on decode, so equal routes compare equal. Pure byte conversion.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BufMut;

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
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

#[inline]
fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
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

#[inline]
fn read_path_id(buf: &[u8], i: &mut usize) -> Result<u32, NlriError> {
    let b = buf.get(*i..*i + 4).ok_or(NlriError::Truncated)?;
    *i += 4;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Entries to reserve for an IPv4 NLRI field of `buf`: enough when every prefix is /17 or longer
/// (3 octets or more of address); a field of shorter prefixes grows the Vec on demand.
#[inline]
pub(crate) fn ipv4_capacity(buf: &[u8], add_path: bool) -> usize {
    if add_path {
        buf.len() / 8 + 1
    } else {
        buf.len() / 4 + 1
    }
}

/// Decodes a whole IPv4 NLRI field, appending to `out`.
pub fn decode_ipv4(buf: &[u8], add_path: bool, out: &mut Vec<Ipv4Nlri>) -> Result<(), NlriError> {
    out.reserve(ipv4_capacity(buf, add_path));
    let mut i = 0;
    while i < buf.len() {
        let path_id = if add_path {
            Some(read_path_id(buf, &mut i)?)
        } else {
            None
        };
        let len = *buf.get(i).ok_or(NlriError::Truncated)?;
        if len > 32 {
            return Err(NlriError::PrefixTooLong);
        }
        let n = usize::from(len).div_ceil(8);
        // Fast path: read four octets at once and mask; the octets past the prefix belong to the
        // next entry and fall under the mask. Near the end of the field, copy only what is there.
        let raw = match buf.get(i + 1..i + 5) {
            Some(b) if i + 1 + n <= buf.len() => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            _ => {
                let bytes = buf.get(i + 1..i + 1 + n).ok_or(NlriError::Truncated)?;
                let mut a = [0u8; 4];
                a[..n].copy_from_slice(bytes);
                u32::from_be_bytes(a)
            }
        };
        i += 1 + n;
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

/// Entries to reserve for an IPv6 NLRI field: enough when every prefix is /57 or longer.
#[inline]
pub(crate) fn ipv6_capacity(buf: &[u8]) -> usize {
    buf.len() / 9 + 1
}

/// Decodes a whole IPv6 NLRI field, appending to `out`.
pub fn decode_ipv6(buf: &[u8], add_path: bool, out: &mut Vec<Ipv6Nlri>) -> Result<(), NlriError> {
    out.reserve(ipv6_capacity(buf));
    let mut i = 0;
    while i < buf.len() {
        let path_id = if add_path {
            Some(read_path_id(buf, &mut i)?)
        } else {
            None
        };
        let len = *buf.get(i).ok_or(NlriError::Truncated)?;
        if len > 128 {
            return Err(NlriError::PrefixTooLong);
        }
        let n = usize::from(len).div_ceil(8);
        let bytes = buf.get(i + 1..i + 1 + n).ok_or(NlriError::Truncated)?;
        let mut a = [0u8; 16];
        a[..n].copy_from_slice(bytes);
        i += 1 + n;
        let addr = (u128::from_be_bytes(a) & mask6(len)).to_be_bytes();
        out.push(Nlri {
            path_id,
            prefix: Ipv6Prefix { addr, len },
        });
    }
    Ok(())
}

/// Encoded length of IPv4 entries.
pub fn ipv4_len(list: &[Ipv4Nlri], add_path: bool) -> usize {
    list.iter()
        .map(|n| 1 + usize::from(n.prefix.len).div_ceil(8) + if add_path { 4 } else { 0 })
        .sum()
}

/// Encoded length of IPv6 entries.
pub fn ipv6_len(list: &[Ipv6Nlri], add_path: bool) -> usize {
    list.iter()
        .map(|n| 1 + usize::from(n.prefix.len).div_ceil(8) + if add_path { 4 } else { 0 })
        .sum()
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
        out.put_slice(&n.prefix.addr.to_be_bytes()[..usize::from(len).div_ceil(8)]);
    }
}

/// Appends IPv6 entries; path identifiers as for [`encode_ipv4`].
pub fn encode_ipv6(list: &[Ipv6Nlri], add_path: bool, out: &mut impl BufMut) {
    for n in list {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let len = n.prefix.len;
        out.put_u8(len);
        out.put_slice(&n.prefix.addr[..usize::from(len).div_ceil(8)]);
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
