//! Checksum fix-ups on packet memory, on top of the pure arithmetic in `datapath_common::csum`.

use datapath_common::csum;

use crate::parse::{read, write};

/// Replaces the 16-bit big-endian checksum at `off` using `f(old) -> new`.
#[inline(always)]
pub fn update(start: usize, end: usize, off: usize, f: impl FnOnce(u16) -> u16) -> bool {
    match read::<2>(start, end, off) {
        Some(c) => {
            let new = f(u16::from_be_bytes(c));
            write(start, end, off, new.to_be_bytes())
        }
        None => false,
    }
}

/// Incremental update for a 16-byte address change.
#[inline(always)]
pub fn replace_addr(check: u16, old: &[u8; 16], new: &[u8; 16], v4: bool) -> u16 {
    if v4 {
        csum::replace32(
            check,
            [old[0], old[1], old[2], old[3]],
            [new[0], new[1], new[2], new[3]],
        )
    } else {
        csum::replace128(check, old, new)
    }
}
