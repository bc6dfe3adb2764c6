//! UPDATE messages (RFC 4271 §4.3): withdrawn routes, the path attribute list and IPv4 NLRI; the
//! list-level RFC 7606 rules (overruns, duplicates, missing well-known attributes); End-of-RIB
//! markers (RFC 4724 §2); AS4 reconstruction (RFC 6793 §4.2.3); re-advertisement preparation.
//!
//! Pure byte conversion: the caller passes the body slice and an output buffer.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use crate::attribute::{
    Action, Aggregator, AsPath, AttrFlags, AttrValue, AttributeError, Community, ExtendedCommunity,
    LargeCommunity, MpNlri, MpReach, MpUnreach, PathAttribute, expected_flags, merge_as4_path,
};
use crate::context::{DecodeContext, EncodeContext};
use crate::error::{Error, Result};
use crate::header::patch_u16;
use crate::iana::{AS_TRANS, AttrType, Family, Origin, UpdateErrorSubcode};
use crate::nlri::{self, Ipv4Nlri};

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes.
    pub withdrawn: Vec<Ipv4Nlri>,
    /// Path attributes in wire order.
    pub attributes: Vec<PathAttribute>,
    /// Reachable IPv4 unicast routes.
    pub nlri: Vec<Ipv4Nlri>,
}

/// The RFC 7606 outcome of decoding an UPDATE whose errors did not need a session reset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Rfc7606 {
    /// No error.
    #[default]
    Clean,
    /// Attributes were dropped (they are absent from [`Update::attributes`]); process the rest.
    AttributeDiscard {
        /// The discarded attributes and why.
        errors: Vec<AttributeError>,
    },
    /// Every prefix in the UPDATE ([`Update::nlri`] and any MP_REACH_NLRI prefixes) must be handled
    /// as withdrawn; MP_UNREACH_NLRI and withdrawn routes keep their meaning.
    TreatAsWithdraw {
        /// Every error found, including attribute discards.
        errors: Vec<AttributeError>,
    },
}

impl Rfc7606 {
    /// Whether the UPDATE was clean.
    pub fn is_clean(&self) -> bool {
        matches!(self, Rfc7606::Clean)
    }

    /// The errors found (empty when clean).
    pub fn errors(&self) -> &[AttributeError] {
        match self {
            Rfc7606::Clean => &[],
            Rfc7606::AttributeDiscard { errors } | Rfc7606::TreatAsWithdraw { errors } => errors,
        }
    }
}

fn list_error(reason: &'static str) -> Error {
    Error::update(
        UpdateErrorSubcode::MalformedAttributeList,
        Vec::new(),
        reason,
    )
}

/// A set of attribute type codes, one bit each.
#[derive(Default)]
struct TypeSet {
    /// Codes 0..=127.
    low: u128,
    /// Codes 128..=255.
    high: u128,
}

impl TypeSet {
    /// The word holding `t`'s bit, and the bit.
    #[inline]
    fn slot(&mut self, t: u8) -> (&mut u128, u128) {
        let bit = 1u128 << (t & 127);
        if t < 128 {
            (&mut self.low, bit)
        } else {
            (&mut self.high, bit)
        }
    }

    #[inline]
    fn insert(&mut self, t: u8) -> bool {
        let (word, bit) = self.slot(t);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    #[inline]
    fn contains(&self, t: u8) -> bool {
        let word = if t < 128 { self.low } else { self.high };
        word & (1u128 << (t & 127)) != 0
    }
}

impl Update {
    /// Decodes an UPDATE body (everything after the header).
    ///
    /// Errors that RFC 7606 resolves without a reset come back in the [`Rfc7606`] value; the
    /// `Err` case carries the NOTIFICATION for a session reset.
    pub fn decode(body: &[u8], cx: &DecodeContext) -> Result<(Update, Rfc7606)> {
        // RFC 4271 §6.3: "If the Withdrawn Routes Length or Total Attribute Length is too large
        // (i.e., if Withdrawn Routes Length + Total Attribute Length + 23 exceeds the message
        // Length), then the Error Subcode MUST be set to Malformed Attribute List." RFC 7606 §5.3
        // keeps this a session reset since the NLRI cannot be located.
        let Some((wl, rest)) = body.split_first_chunk::<2>() else {
            return Err(list_error("UPDATE body shorter than 4 octets"));
        };
        let wlen = usize::from(u16::from_be_bytes(*wl));
        let Some((withdrawn_raw, rest)) = rest.split_at_checked(wlen) else {
            return Err(list_error("withdrawn routes length exceeds the message"));
        };
        let Some((al, rest)) = rest.split_first_chunk::<2>() else {
            return Err(list_error("withdrawn routes length exceeds the message"));
        };
        let alen = usize::from(u16::from_be_bytes(*al));
        let Some((attrs_raw, nlri_raw)) = rest.split_at_checked(alen) else {
            return Err(list_error("total attribute length exceeds the message"));
        };

        let v4_add_path = cx.add_path(Family::IPV4_UNICAST);
        let mut update = Update::default();
        // RFC 4271 §6.3: "The NLRI field in the UPDATE message is checked for syntactic validity.
        // If the field is syntactically incorrect, then the Error Subcode MUST be set to Invalid
        // Network Field." RFC 7606 §5.3 keeps that a session reset.
        let invalid_network = |_| {
            Error::update(
                UpdateErrorSubcode::InvalidNetworkField,
                Vec::new(),
                "malformed IPv4 prefix",
            )
        };
        // Allocating each list at its final size up front skips the grow path `reserve` takes on
        // an empty Vec (a measurable share of a one-prefix UPDATE).
        if !withdrawn_raw.is_empty() {
            update.withdrawn = Vec::with_capacity(nlri::ipv4_capacity(withdrawn_raw, v4_add_path));
            nlri::decode_ipv4(withdrawn_raw, v4_add_path, &mut update.withdrawn)
                .map_err(invalid_network)?;
        }
        if !nlri_raw.is_empty() {
            update.nlri = Vec::with_capacity(nlri::ipv4_capacity(nlri_raw, v4_add_path));
            nlri::decode_ipv4(nlri_raw, v4_add_path, &mut update.nlri).map_err(invalid_network)?;
        }

        let mut errors: Vec<AttributeError> = Vec::new();
        let mut seen = TypeSet::default();
        // A quotient of a length plus one never saturates.
        update.attributes = Vec::with_capacity((alen / 8).saturating_add(1));
        let mut a = attrs_raw;
        while !a.is_empty() {
            // RFC 7606 §4: "fewer than three octets remain (or fewer than four octets, if the
            // Attribute Flags field has the Extended Length bit set) when beginning to parse the
            // attribute", or "the length of the last encountered path attribute would cause the
            // Total Attribute Length to be exceeded": "the 'treat-as-withdraw' approach MUST be
            // used ... and the Total Attribute Length MUST be relied upon to enable the beginning
            // of the NLRI field to be located."
            let parsed = match a.split_first_chunk::<3>() {
                Some((head @ &[flags, ty, l], rest)) if flags & AttrFlags::EXTENDED_LENGTH == 0 => {
                    Some((head.as_slice(), flags, ty, usize::from(l), rest))
                }
                _ => a.split_first_chunk::<4>().map(|(head, rest)| {
                    let &[flags, ty, l0, l1] = head;
                    let len = usize::from(u16::from_be_bytes([l0, l1]));
                    (head.as_slice(), flags, ty, len, rest)
                }),
            };
            let Some((header, flags, ty, value, next)) = parsed.and_then(|(h, f, t, len, rest)| {
                let (value, next) = rest.split_at_checked(len)?;
                Some((h, f, t, value, next))
            }) else {
                errors.push(AttributeError {
                    type_code: AttrType::Unknown(0),
                    subcode: UpdateErrorSubcode::AttributeLengthError,
                    action: Action::TreatAsWithdraw,
                    reason: "attribute overruns the total attribute length",
                });
                break;
            };
            a = next;
            // The attribute as received, for the NOTIFICATION data of a session reset.
            let whole = || [header, value].concat();
            let kind = AttrType::from(ty);

            if !seen.insert(ty) {
                // RFC 7606 §3(g): "If the MP_REACH_NLRI attribute or the MP_UNREACH_NLRI attribute
                // appears more than once in the UPDATE message, then a NOTIFICATION message MUST be
                // sent with the Error Subcode 'Malformed Attribute List'. If any other attribute
                // ... appears more than once ... all the occurrences of the attribute other than
                // the first one SHALL be discarded".
                if matches!(kind, AttrType::MpReachNlri | AttrType::MpUnreachNlri) {
                    return Err(list_error("MP_REACH_NLRI or MP_UNREACH_NLRI repeated"));
                }
                errors.push(AttributeError {
                    type_code: kind,
                    subcode: UpdateErrorSubcode::MalformedAttributeList,
                    action: Action::AttributeDiscard,
                    reason: "repeated attribute",
                });
                continue;
            }

            // RFC 4271 §4.3: the lower-order four bits of the flags octet are unused: "They MUST be
            // zero when sent and MUST be ignored when received."
            let attr_flags = AttrFlags(flags & 0xf0);
            match expected_flags(kind) {
                None if !attr_flags.optional() => {
                    // RFC 4271 §6.3: "If any of the well-known mandatory attributes are not
                    // recognized, then the Error Subcode MUST be set to Unrecognized Well-known
                    // Attribute. The Data field MUST contain the unrecognized attribute".
                    return Err(Error::update(
                        UpdateErrorSubcode::UnrecognizedWellKnownAttribute,
                        whole(),
                        "unrecognized well-known attribute",
                    ));
                }
                Some(expected) if flags & 0xc0 != expected => {
                    // RFC 7606 §3(c): "If the value of either the Optional or Transitive bits in
                    // the Attribute Flags is in conflict with their specified values, then the
                    // attribute MUST be treated as malformed and the 'treat-as-withdraw' approach
                    // used, unless the specification for the attribute mandates different handling
                    // for malformed attributes."
                    let action =
                        crate::attribute::malformed_action(kind).max(Action::TreatAsWithdraw);
                    let action = if matches!(kind, AttrType::As4Path | AttrType::As4Aggregator) {
                        Action::AttributeDiscard
                    } else {
                        action
                    };
                    if action == Action::SessionReset {
                        return Err(Error::update(
                            UpdateErrorSubcode::AttributeFlagsError,
                            whole(),
                            "attribute flags conflict with the attribute type",
                        ));
                    }
                    errors.push(AttributeError {
                        type_code: kind,
                        subcode: UpdateErrorSubcode::AttributeFlagsError,
                        action,
                        reason: "attribute flags conflict with the attribute type",
                    });
                    continue;
                }
                _ => {}
            }

            // RFC 7606 §7.5: "If the LOCAL_PREF attribute is received from an external neighbor,
            // it SHALL be discarded using the approach of 'attribute discard'"; §7.9 and §7.10 say
            // the same of ORIGINATOR_ID and CLUSTER_LIST.
            if cx.ebgp
                && matches!(
                    kind,
                    AttrType::LocalPref | AttrType::OriginatorId | AttrType::ClusterList
                )
            {
                errors.push(AttributeError {
                    type_code: kind,
                    subcode: UpdateErrorSubcode::Unspecific,
                    action: Action::AttributeDiscard,
                    reason: "iBGP-only attribute received from an external peer",
                });
                continue;
            }
            // RFC 6793 §4.1: "A NEW BGP speaker ... MUST NOT send the AS4_PATH attribute and the
            // AS4_AGGREGATOR attribute to a NEW BGP speaker" and discards any it receives (§6).
            if cx.four_octet_as && matches!(kind, AttrType::As4Path | AttrType::As4Aggregator) {
                errors.push(AttributeError {
                    type_code: kind,
                    subcode: UpdateErrorSubcode::Unspecific,
                    action: Action::AttributeDiscard,
                    reason: "AS4 attribute received on a 4-octet AS session",
                });
                continue;
            }

            match AttrValue::decode_into(kind, value, cx, attr_flags, &mut update.attributes) {
                Ok(()) => {}
                Err(e) if e.action == Action::SessionReset => {
                    return Err(Error::update(e.subcode, whole(), e.reason));
                }
                Err(e) => {
                    errors.push(e);
                }
            }
        }

        let reach_v4 = !update.nlri.is_empty();
        let reach_mp = update.mp_reach().is_some_and(|m| !m.nlri.is_empty());
        if reach_v4 || reach_mp {
            // RFC 7606 §3(d): "If any of the well-known mandatory attributes are not present in an
            // UPDATE message, then 'treat-as-withdraw' MUST be used. (Note that [RFC4760]
            // reclassifies NEXT_HOP as what is effectively discretionary.)"
            let mandatory: &[AttrType] = if reach_v4 {
                &[AttrType::Origin, AttrType::AsPath, AttrType::NextHop]
            } else {
                &[AttrType::Origin, AttrType::AsPath]
            };
            for &t in mandatory {
                let code = u8::from(t);
                if !seen.contains(code) {
                    errors.push(AttributeError {
                        type_code: t,
                        subcode: UpdateErrorSubcode::MissingWellKnownAttribute,
                        action: Action::TreatAsWithdraw,
                        reason: "missing well-known mandatory attribute",
                    });
                }
            }
        }

        let outcome = match errors.iter().map(|e| e.action).max() {
            None => Rfc7606::Clean,
            Some(Action::AttributeDiscard) => Rfc7606::AttributeDiscard { errors },
            Some(_) => Rfc7606::TreatAsWithdraw { errors },
        };
        Ok((update, outcome))
    }

    /// Appends the UPDATE body, back-patching the two length fields.
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: offsets into `out`, which only grows past them"
    )]
    pub fn encode_body(&self, cx: &EncodeContext, out: &mut BytesMut) -> Result<()> {
        let v4_add_path = cx.add_path(Family::IPV4_UNICAST);
        let start = out.len();
        out.put_u16(0);
        nlri::encode_ipv4_into(&self.withdrawn, v4_add_path, out);
        let wlen = out.len() - start - 2;
        let attr_start = out.len();
        out.put_u16(0);
        for a in &self.attributes {
            a.encode(cx, out)?;
        }
        let alen = out.len() - attr_start - 2;
        let (Ok(wlen), Ok(alen)) = (u16::try_from(wlen), u16::try_from(alen)) else {
            return Err(Error::MessageTooLong {
                len: out.len() - start + 19,
                max: cx.max_message_len(),
            });
        };
        patch_u16(out, start, wlen)?;
        patch_u16(out, attr_start, alen)?;
        nlri::encode_ipv4_into(&self.nlri, v4_add_path, out);
        Ok(())
    }

    /// Encoded body length.
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: sums lengths of values held in memory"
    )]
    pub fn encoded_len(&self, cx: &EncodeContext) -> usize {
        let ap = cx.add_path(Family::IPV4_UNICAST);
        4 + nlri::ipv4_len(&self.withdrawn, ap)
            + self
                .attributes
                .iter()
                .map(|a| a.encoded_len(cx))
                .sum::<usize>()
            + nlri::ipv4_len(&self.nlri, ap)
    }

    /// The first attribute of a type.
    pub fn attribute(&self, ty: AttrType) -> Option<&PathAttribute> {
        self.attributes.iter().find(|a| a.value.type_code() == ty)
    }

    fn find<'a, T>(&'a self, f: impl Fn(&'a AttrValue) -> Option<T>) -> Option<T> {
        self.attributes.iter().find_map(|a| f(&a.value))
    }

    /// ORIGIN.
    pub fn origin(&self) -> Option<Origin> {
        self.find(|v| match v {
            AttrValue::Origin(o) => Some(*o),
            _ => None,
        })
    }

    /// AS_PATH as received.
    pub fn as_path(&self) -> Option<&AsPath> {
        self.find(|v| match v {
            AttrValue::AsPath(p) => Some(p),
            _ => None,
        })
    }

    /// NEXT_HOP.
    pub fn next_hop(&self) -> Option<Ipv4Addr> {
        self.find(|v| match v {
            AttrValue::NextHop(a) => Some(*a),
            _ => None,
        })
    }

    /// MULTI_EXIT_DISC.
    pub fn med(&self) -> Option<u32> {
        self.find(|v| match v {
            AttrValue::MultiExitDisc(m) => Some(*m),
            _ => None,
        })
    }

    /// LOCAL_PREF.
    pub fn local_pref(&self) -> Option<u32> {
        self.find(|v| match v {
            AttrValue::LocalPref(p) => Some(*p),
            _ => None,
        })
    }

    /// COMMUNITIES (empty slice if absent).
    pub fn communities(&self) -> &[Community] {
        self.find(|v| match v {
            AttrValue::Communities(c) => Some(c.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
    }

    /// EXTENDED_COMMUNITIES (empty slice if absent).
    pub fn extended_communities(&self) -> &[ExtendedCommunity] {
        self.find(|v| match v {
            AttrValue::ExtendedCommunities(c) => Some(c.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
    }

    /// LARGE_COMMUNITY (empty slice if absent).
    pub fn large_communities(&self) -> &[LargeCommunity] {
        self.find(|v| match v {
            AttrValue::LargeCommunities(c) => Some(c.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
    }

    /// MP_REACH_NLRI.
    pub fn mp_reach(&self) -> Option<&MpReach> {
        self.find(|v| match v {
            AttrValue::MpReach(m) => Some(m),
            _ => None,
        })
    }

    /// MP_UNREACH_NLRI.
    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        self.find(|v| match v {
            AttrValue::MpUnreach(m) => Some(m),
            _ => None,
        })
    }

    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast, else an
    /// UPDATE holding only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        let withdrawn = match family {
            Family::IPV6_UNICAST => MpNlri::Ipv6(Vec::new()),
            _ => MpNlri::Raw(Vec::new()),
        };
        Update {
            attributes: vec![PathAttribute::new(AttrValue::MpUnreach(MpUnreach {
                family,
                withdrawn,
            }))],
            ..Update::default()
        }
    }

    /// The family this UPDATE marks End-of-RIB for, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [
                PathAttribute {
                    value: AttrValue::MpUnreach(m),
                    ..
                },
            ] if m.withdrawn.is_empty() => Some(m.family),
            _ => None,
        }
    }

    /// Prepares a received UPDATE's attributes for re-advertisement (RFC 4271 §5): unrecognized
    /// optional non-transitive attributes are dropped ("MUST be quietly ignored and not passed
    /// along"), and unrecognized optional transitive ones get the Partial bit ("the Partial bit in
    /// the attribute flags octet is set to 1, and the attribute is retained for propagation").
    pub fn prepare_readvertise(&mut self) {
        self.attributes.retain_mut(|a| {
            if !matches!(a.value, AttrValue::Unknown { .. }) {
                return true;
            }
            if !a.flags.transitive() {
                return false;
            }
            a.flags.0 |= AttrFlags::PARTIAL;
            true
        });
    }

    /// Replaces AS_PATH and AGGREGATOR by their 4-octet forms rebuilt from AS4_PATH and
    /// AS4_AGGREGATOR (RFC 6793 §4.2.3), and removes the AS4 attributes. Call it on UPDATEs from a
    /// peer that did not negotiate 4-octet AS.
    ///
    /// "If the AGGREGATOR attribute contains an AS number other than AS_TRANS, then ... the
    /// AS4_AGGREGATOR attribute and the AS4_PATH attribute \[are\] ignored"; otherwise AS4_AGGREGATOR
    /// replaces AGGREGATOR and the paths are merged.
    pub fn merge_as4(&mut self) {
        let as4_path = self.find(|v| match v {
            AttrValue::As4Path(p) => Some(p.clone()),
            _ => None,
        });
        let as4_agg = self.find(|v| match v {
            AttrValue::As4Aggregator(a) => Some(*a),
            _ => None,
        });
        let agg = self.find(|v| match v {
            AttrValue::Aggregator(a) => Some(*a),
            _ => None,
        });
        let ignore = agg.is_some_and(|a| a.asn != u32::from(AS_TRANS));
        self.attributes
            .retain(|a| !matches!(a.value, AttrValue::As4Path(_) | AttrValue::As4Aggregator(_)));
        if ignore {
            return;
        }
        for a in &mut self.attributes {
            match &mut a.value {
                AttrValue::Aggregator(ag) => {
                    if let Some(new) = as4_agg {
                        *ag = Aggregator {
                            asn: new.asn,
                            addr: new.addr,
                        };
                    }
                }
                AttrValue::AsPath(p) => {
                    if let Some(p4) = &as4_path {
                        *p = merge_as4_path(p, p4);
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds AS4_PATH / AS4_AGGREGATOR when AS_PATH / AGGREGATOR hold ASes above 65535, for an
    /// UPDATE about to be sent to a peer without 4-octet AS support (RFC 6793 §4.2.2).
    pub fn add_as4_for_two_octet_peer(&mut self) {
        let mut extra = Vec::new();
        if let Some(p) = self.as_path().filter(|p| p.needs_four_octets()) {
            let mut p4 = AsPath::new();
            // RFC 6793 §4.2.2: confederation segments are not carried in AS4_PATH.
            for s in p.segments() {
                if matches!(
                    s.kind,
                    crate::iana::SegmentType::AsSequence | crate::iana::SegmentType::AsSet
                ) {
                    p4.push_segment(s.kind, s.asns);
                }
            }
            extra.push(PathAttribute::new(AttrValue::As4Path(p4)));
        }
        let agg = self.find(|v| match v {
            AttrValue::Aggregator(a) if a.asn > 0xffff => Some(*a),
            _ => None,
        });
        if let Some(a) = agg {
            extra.push(PathAttribute::new(AttrValue::As4Aggregator(a)));
        }
        self.attributes
            .retain(|a| !matches!(a.value, AttrValue::As4Path(_) | AttrValue::As4Aggregator(_)));
        self.attributes.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlri::Ipv4Prefix;

    #[test]
    fn unused_flag_bits_are_ignored_on_receipt() {
        // Found by the `roundtrip` fuzz target: an unknown attribute with flags 0xff re-encoded
        // as 0xf0, so decode(encode(decode(x))) differed from decode(x).
        let body = [0, 0, 0, 4, 0xff, 0, 0, 0];
        let (u, outcome) = Update::decode(&body, &DecodeContext::default()).unwrap();
        assert!(outcome.is_clean());
        assert_eq!(u.attributes[0].flags, AttrFlags(0xf0));
        let mut buf = BytesMut::new();
        u.encode_body(&EncodeContext::default(), &mut buf).unwrap();
        assert_eq!(
            Update::decode(&buf, &DecodeContext::default()).unwrap().0,
            u
        );
    }

    #[test]
    fn end_of_rib_markers_round_trip() {
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let eor = Update::end_of_rib(f);
            let mut buf = BytesMut::new();
            eor.encode_body(&EncodeContext::default(), &mut buf)
                .unwrap();
            let (back, outcome) = Update::decode(&buf, &DecodeContext::default()).unwrap();
            assert!(outcome.is_clean());
            assert_eq!(back.end_of_rib_family(), Some(f));
        }
        assert_eq!(
            Update::end_of_rib(Family::IPV4_UNICAST).encoded_len(&EncodeContext::default()),
            4
        );
    }

    #[test]
    fn readvertise_sets_partial_and_drops_non_transitive() {
        let mut u = Update {
            attributes: vec![
                PathAttribute {
                    flags: AttrFlags(0xc0),
                    value: AttrValue::Unknown {
                        type_code: 99,
                        data: vec![1],
                    },
                },
                PathAttribute {
                    flags: AttrFlags(0x80),
                    value: AttrValue::Unknown {
                        type_code: 98,
                        data: vec![1],
                    },
                },
                PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            ],
            ..Update::default()
        };
        u.prepare_readvertise();
        assert_eq!(u.attributes.len(), 2);
        assert_eq!(u.attributes[0].flags.0, 0xe0);
        let mut buf = BytesMut::new();
        u.encode_body(&EncodeContext::default(), &mut buf).unwrap();
        assert_eq!(buf[4], 0xe0);
    }

    #[test]
    fn as4_attributes_merge_and_split() {
        let mut u = Update {
            attributes: vec![
                PathAttribute::new(AttrValue::Origin(Origin::Igp)),
                PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[
                    65001,
                    4_200_000_000,
                ]))),
                PathAttribute::new(AttrValue::Aggregator(Aggregator {
                    asn: 4_200_000_000,
                    addr: Ipv4Addr::LOCALHOST,
                })),
            ],
            nlri: vec![Ipv4Nlri::new(
                Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap(),
            )],
            ..Update::default()
        };
        u.attributes
            .push(PathAttribute::new(AttrValue::NextHop(Ipv4Addr::LOCALHOST)));
        u.add_as4_for_two_octet_peer();
        let cx2 = EncodeContext::default();
        let mut buf = BytesMut::new();
        u.encode_body(&cx2, &mut buf).unwrap();
        let (mut back, outcome) = Update::decode(&buf, &DecodeContext::default()).unwrap();
        assert!(outcome.is_clean(), "{outcome:?}");
        assert_eq!(
            back.as_path(),
            Some(&AsPath::from_sequence(&[65001, 23456]))
        );
        back.merge_as4();
        assert_eq!(
            back.as_path(),
            Some(&AsPath::from_sequence(&[65001, 4_200_000_000]))
        );
        assert!(back.attribute(AttrType::As4Path).is_none());
        let agg = back.find(|v| match v {
            AttrValue::Aggregator(a) => Some(a.asn),
            _ => None,
        });
        assert_eq!(agg, Some(4_200_000_000));
    }
}
