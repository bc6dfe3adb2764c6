//! The injected routes: N IPv4 prefixes (/24s from 11.0.0.0, or /32s) packed K per UPDATE with
//! one attribute set, pre-encoded so that encoding is not part of the measurement.

use std::net::Ipv4Addr;

use anyhow::Result;
use bgp_proto::{
    AsPath, AttrValue, EncodeContext, Ipv4Nlri, Ipv4Prefix, Message, Nlri, Origin, PathAttribute,
    Update,
};
use bytes::BytesMut;

/// First address of the injected space.
pub(crate) const BASE: u32 = 0x0b00_0000;

/// The i-th prefix of a workload with prefix length `len` (1..=32); `None` for other lengths.
pub(crate) fn prefix(i: u32, len: u8) -> Option<Ipv4Prefix> {
    let step = 1u32.checked_shl(32 - u32::from(len.clamp(1, 32)))?;
    Ipv4Prefix::new(Ipv4Addr::from(BASE.wrapping_add(i.wrapping_mul(step))), len)
}

fn nlri(range: std::ops::Range<u32>, len: u8) -> Result<Vec<Ipv4Nlri>> {
    range
        .map(|j| prefix(j, len).map(Nlri::new))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("prefix length {len} is not in 1..=32"))
}

/// All announcement UPDATEs, concatenated on the wire, and their count.
pub(crate) fn announcements(
    n: u32,
    len: u8,
    per_update: u32,
    asn: u32,
    next_hop: Ipv4Addr,
    cx: &EncodeContext,
) -> Result<(BytesMut, usize)> {
    let attributes = vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[asn]))),
        PathAttribute::new(AttrValue::NextHop(next_hop)),
    ];
    let mut out = BytesMut::with_capacity(n as usize * 5 + 64 * (n / per_update + 1) as usize);
    let mut count = 0;
    let mut i = 0;
    while i < n {
        let end = (i + per_update).min(n);
        let u = Update {
            withdrawn: Vec::new(),
            attributes: attributes.clone(),
            nlri: nlri(i..end, len)?,
        };
        Message::Update(u).encode(cx, &mut out)?;
        count += 1;
        i = end;
    }
    Ok((out, count))
}

/// All withdrawal UPDATEs (as many prefixes per message as the announcements had).
pub(crate) fn withdrawals(
    n: u32,
    len: u8,
    per_update: u32,
    cx: &EncodeContext,
) -> Result<(BytesMut, usize)> {
    let mut out = BytesMut::with_capacity(n as usize * 5 + 32 * (n / per_update + 1) as usize);
    let mut count = 0;
    let mut i = 0;
    while i < n {
        let end = (i + per_update).min(n);
        let withdrawn = nlri(i..end, len)?;
        Message::Update(Update {
            withdrawn,
            ..Update::default()
        })
        .encode(cx, &mut out)?;
        count += 1;
        i = end;
    }
    Ok((out, count))
}
