//! IEEE 802.1Q VLAN tags: the 4 bytes that follow a TPID of 0x8100 (or 0x88A8): the tag control
//! information (priority, drop eligibility, VLAN id) and the inner EtherType. Pure; no I/O.

use super::ethernet::EtherType;
use super::{be16, put16};
use crate::error::{Error, Result};

/// Length of a tag after its TPID: TCI and inner EtherType.
pub const HEADER_LEN: usize = 4;

/// A zero-copy view of a VLAN tag and what it carries.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds a whole tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds a whole tag.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated("802.1Q tag"));
        }
        Ok(())
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (be16(self.buffer.as_ref(), 0) >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        be16(self.buffer.as_ref(), 0) & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), 0) & 0x0fff
    }

    /// EtherType of what the tag carries.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), 2))
    }

    /// Everything after the tag.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// An owned 802.1Q tag.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VlanRepr {
    /// Priority code point (0–7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (0–4095).
    pub vid: u16,
    /// EtherType of what the tag carries.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// Reads a tag. VID 4095 is reserved by IEEE 802.1Q and rejected.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.vid() == 0x0fff {
            return Err(Error::malformed("802.1Q tag", "reserved VLAN id 4095"));
        }
        Ok(VlanRepr {
            pcp: p.pcp(),
            dei: p.dei(),
            vid: p.vid(),
            ethertype: p.ethertype(),
        })
    }

    /// Tag length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag into the first [`HEADER_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let tci =
            (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff);
        put16(buf, 0, tci);
        put16(buf, 2, self.ethertype.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_tci_fields() {
        // PCP 5, DEI 1, VID 100, carrying ARP.
        let bytes = [0xb0, 0x64, 0x08, 0x06];
        let repr = VlanRepr::parse(&Packet::new_checked(&bytes[..]).expect("len")).expect("parse");
        assert_eq!(
            repr,
            VlanRepr {
                pcp: 5,
                dei: true,
                vid: 100,
                ethertype: EtherType::Arp
            }
        );
    }

    #[test]
    fn reserved_vid_is_rejected() {
        let bytes = [0x0f, 0xff, 0x08, 0x06];
        assert!(VlanRepr::parse(&Packet::new_unchecked(&bytes[..])).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = VlanRepr::parse(&Packet::new_unchecked(&bytes[..]));
            let _ = Packet::new_unchecked(&bytes[..]).payload();
        }

        #[test]
        fn repr_round_trips(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4095, et in any::<u16>()) {
            let repr = VlanRepr { pcp, dei, vid, ethertype: EtherType::from(et) };
            let mut buf = [0u8; HEADER_LEN];
            repr.emit(&mut buf);
            prop_assert_eq!(VlanRepr::parse(&Packet::new_checked(&buf[..]).expect("len")).expect("parse"), repr);
        }
    }
}
