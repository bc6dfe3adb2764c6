//! ARP (RFC 826) for Ethernet and IPv4: the [`Packet`] view and [`ArpRepr`]. Other hardware or
//! protocol types are reported as errors. Pure; no I/O.

use std::net::Ipv4Addr;

use super::ethernet::EthernetAddress;
use super::{array, be16, put16};
use crate::error::{Error, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation codes (RFC 826, RFC 5494); unknown values are kept.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArpOperation {
    /// 1.
    Request,
    /// 2.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            o => ArpOperation::Unknown(o),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> u16 {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(o) => o,
        }
    }
}

/// A zero-copy view of an ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds the fixed header and both address pairs.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the fixed header and the addresses its length fields announce.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 8 {
            return Err(Error::Truncated("arp header"));
        }
        // Sender hardware, sender protocol, target hardware, target protocol address.
        let (hw, proto) = (
            usize::from(self.hardware_len()),
            usize::from(self.protocol_len()),
        );
        let addrs = b.get(8..).unwrap_or_default();
        if [hw, proto, hw, proto]
            .into_iter()
            .try_fold(addrs, |rest, n| rest.get(n..))
            .is_none()
        {
            return Err(Error::Truncated("arp addresses"));
        }
        Ok(())
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref().get(4).copied().unwrap_or(0)
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref().get(5).copied().unwrap_or(0)
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(self.buffer.as_ref(), 6))
    }
}

/// An owned Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpRepr {
    /// Request, reply or other.
    pub operation: ArpOperation,
    /// Sender hardware address (SHA).
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address (SPA).
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (THA).
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address (TPA).
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet; other hardware or protocol types are errors.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.hardware_type() != 1 || p.hardware_len() != 6 {
            return Err(Error::malformed("arp", "hardware is not ethernet"));
        }
        if p.protocol_type() != 0x0800 || p.protocol_len() != 4 {
            return Err(Error::malformed("arp", "protocol is not ipv4"));
        }
        let b = p.buffer.as_ref();
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: EthernetAddress(array(b, 8)),
            source_protocol_addr: Ipv4Addr::from(array::<4>(b, 14)),
            target_hardware_addr: EthernetAddress(array(b, 18)),
            target_protocol_addr: Ipv4Addr::from(array::<4>(b, 24)),
        })
    }

    /// Packet length.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into the first [`PACKET_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(buf) = buf.first_chunk_mut::<PACKET_LEN>() else {
            return;
        };
        put16(buf, 0, 1);
        put16(buf, 2, 0x0800);
        buf[4] = 6;
        buf[5] = 4;
        put16(buf, 6, self.operation.into());
        buf[8..14].copy_from_slice(&self.source_hardware_addr.0);
        buf[14..18].copy_from_slice(&self.source_protocol_addr.octets());
        buf[18..24].copy_from_slice(&self.target_hardware_addr.0);
        buf[24..28].copy_from_slice(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ARP request for 10.0.0.1 from 10.0.0.2 / 02:00:00:00:00:02, as scapy builds it:
    /// `ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", pdst="10.0.0.1")`.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 10, 0,
        0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];

    #[test]
    fn parses_scapy_request() {
        let repr = ArpRepr::parse(&Packet::new_checked(&REQUEST[..]).expect("len")).expect("parse");
        assert_eq!(repr.operation, ArpOperation::Request);
        assert_eq!(repr.source_protocol_addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(repr.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(repr.source_hardware_addr.to_string(), "02:00:00:00:00:02");
        let mut out = [0u8; PACKET_LEN];
        repr.emit(&mut out);
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn non_ethernet_hardware_is_rejected() {
        let mut b = REQUEST;
        b[1] = 6; // IEEE 802
        assert!(ArpRepr::parse(&Packet::new_unchecked(&b[..])).is_err());
    }

    #[test]
    fn length_fields_larger_than_buffer_are_rejected() {
        let mut b = REQUEST;
        b[4] = 200;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Truncated(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ArpRepr::parse(&Packet::new_unchecked(&bytes[..]));
        }

        #[test]
        fn repr_round_trips(op in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<[u8; 4]>(),
                            tha in any::<[u8; 6]>(), tpa in any::<[u8; 4]>()) {
            let repr = ArpRepr {
                operation: ArpOperation::from(op),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut buf = [0u8; PACKET_LEN];
            repr.emit(&mut buf);
            prop_assert_eq!(ArpRepr::parse(&Packet::new_checked(&buf[..]).expect("len")).expect("parse"), repr);
        }
    }
}
