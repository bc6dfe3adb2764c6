//! The fixed IPv6 header (RFC 8200), the ICMPv6 checksum over the pseudo-header (RFC 8200 §8.1),
//! and the address mappings neighbor discovery needs: solicited-node multicast (RFC 4291 §2.7.1)
//! and IPv6-multicast-to-Ethernet (RFC 2464 §7). Pure; no I/O.

use std::net::Ipv6Addr;

use super::ethernet::EthernetAddress;
use super::{array, be16, put16};
use crate::error::{Error, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A zero-copy view of an IPv6 packet (fixed header only; extension headers are payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the header and the payload length it announces.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header is whole and the buffer holds the announced payload.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated("ipv6 header"));
        }
        if len.saturating_sub(HEADER_LEN) < usize::from(self.payload_len()) {
            return Err(Error::Truncated("ipv6 payload"));
        }
        Ok(())
    }

    /// IP version (6 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0) >> 4
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref().get(6).copied().unwrap_or(0)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref().get(7).copied().unwrap_or(0)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), 8))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), 24))
    }

    /// The payload the header announces (trailing Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..)
            .and_then(|p| p.get(..usize::from(self.payload_len())))
            .unwrap_or_default()
    }
}

/// An owned fixed IPv6 header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads the fixed header; the version must be 6.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::malformed("ipv6", "version is not 6"));
        }
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
        })
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (traffic class and flow label zero) into the first 40 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(buf) = buf.first_chunk_mut::<HEADER_LEN>() else {
            return;
        };
        buf[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(buf, 4, self.payload_len);
        buf[6] = self.next_header;
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src_addr.octets());
        buf[24..40].copy_from_slice(&self.dst_addr.octets());
    }
}

/// The solicited-node multicast address of `addr`: ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        (u16::from(o[14]) << 8) | u16::from(o[15]),
    )
}

/// The Ethernet address an IPv6 multicast address maps to: 33:33 and its last 32 bits (RFC 2464).
pub fn multicast_mac(addr: Ipv6Addr) -> EthernetAddress {
    let o = addr.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The internet checksum of an upper-layer message over the IPv6 pseudo-header (RFC 8200 §8.1).
/// With the message's checksum field zeroed this yields the value to store; over a message that
/// carries its checksum it yields 0 when the checksum is right.
pub fn upper_layer_checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, msg: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    // A u64 of 16-bit words wraps only after 2^48 bytes, far beyond any frame: wrapping_add is
    // plain addition here, without a branch per word.
    let mut add = |bytes: &[u8]| {
        let (words, last) = bytes.as_chunks::<2>();
        for w in words {
            sum = sum.wrapping_add(u64::from(u16::from_be_bytes(*w)));
        }
        if let [last] = last {
            sum = sum.wrapping_add(u64::from(u16::from_be_bytes([*last, 0])));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, next_header]);
    add(msg);
    while sum > 0xffff {
        // Both halves are below 2^48, so the end-around carry cannot wrap.
        sum = (sum & 0xffff).wrapping_add(sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn solicited_node_and_mac_mapping() {
        let a: Ipv6Addr = "fd00:10::1:2:3:4567".parse().expect("addr");
        let s = solicited_node(a);
        assert_eq!(s, "ff02::1:ff03:4567".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(multicast_mac(s).to_string(), "33:33:ff:03:45:67");
    }

    #[test]
    fn payload_longer_than_buffer_is_rejected() {
        let mut b = [0u8; 48];
        b[0] = 0x60;
        b[5] = 9;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Truncated(_))
        ));
        b[5] = 8;
        assert!(Packet::new_checked(&b[..]).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let p = Packet::new_unchecked(&bytes[..]);
            let _ = (p.payload(), p.src_addr(), p.dst_addr());
            let _ = Ipv6Repr::parse(&p);
            let _ = upper_layer_checksum(Ipv6Addr::UNSPECIFIED, ALL_NODES, 58, &bytes);
        }

        #[test]
        fn repr_round_trips(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), nh in any::<u8>(),
                            hl in any::<u8>(), len in 0u16..64) {
            let repr = Ipv6Repr {
                src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst),
                next_header: nh, payload_len: len, hop_limit: hl,
            };
            let mut buf = vec![0u8; HEADER_LEN + usize::from(len)];
            repr.emit(&mut buf);
            prop_assert_eq!(Ipv6Repr::parse(&Packet::new_checked(&buf[..]).expect("len")).expect("parse"), repr);
        }
    }
}
