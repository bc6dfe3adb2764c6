//! Adj-RIB-Out diffing and UPDATE packing: from the routes last sent to a peer and the routes it
//! should now have, the fewest UPDATE messages that move the peer from one to the other.
//!
//! - Only differences are sent: a route whose attributes and next hop did not change produces
//!   nothing (minimal churn); a route that disappeared is withdrawn; a changed one is re-announced
//!   (an announcement implicitly replaces the previous path, RFC 4271 §3.1).
//! - Withdrawals come first, IPv4 in the Withdrawn Routes field and IPv6 in MP_UNREACH_NLRI.
//! - Announcements are grouped by identical (attributes, next hop) and each message carries as
//!   many prefixes as fit the negotiated maximum message size (4096, or 65535 with RFC 8654).
//! - IPv4 prefixes with an IPv4 next hop use NEXT_HOP + the NLRI field; IPv6 prefixes use
//!   MP_REACH_NLRI with a global and, on shared segments, a link-local next hop (RFC 2545 §3);
//!   IPv4 prefixes with an IPv6 next hop use MP_REACH_NLRI (RFC 8950); an IPv4 next hop for IPv6
//!   prefixes is sent as an IPv4-mapped IPv6 address (RFC 4798 §3).
//! - When ADD-PATH send was negotiated for a family, every prefix carries path identifier
//!   [`ADD_PATH_ID`] (we send one path per prefix).
//! - A route that cannot be sent (its attributes do not fit the negotiated message size, or do
//!   not encode for the session) skips only itself: it is returned in [`Packed::skipped`] with
//!   the reason, and every other announcement and every withdrawal still goes out.
//!
//! Pure: builds [`bgp_proto::Update`] values; the session encodes and sends them.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use bgp_proto::iana::Family as WireFamily;
use bgp_proto::{
    AttrValue, EncodeContext, HEADER_LEN, Ipv4Nlri, Ipv4Prefix, Ipv6Nlri, Ipv6Prefix, MpNlri,
    MpReach, MpUnreach, NextHop, Nlri, PathAttribute, Update,
};
use ipnet::IpNet;

use super::desired::RouteAttributes;
use crate::error::{Error, Result};

/// The path identifier of every prefix we send on ADD-PATH sessions.
pub const ADD_PATH_ID: u32 = 1;

/// A route in a peer's Adj-RIB-Out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutRoute {
    /// Path attributes without NEXT_HOP, MP_REACH_NLRI and MP_UNREACH_NLRI.
    pub attributes: RouteAttributes,
    /// The next hop sent to this peer.
    pub next_hop: NextHop,
}

impl OutRoute {
    fn same_as(&self, other: &OutRoute) -> bool {
        (std::sync::Arc::ptr_eq(&self.attributes, &other.attributes)
            || self.attributes == other.attributes)
            && self.next_hop == other.next_hop
    }
}

/// Routes sent (or to be sent) to one peer, all families together.
pub type AdjRibOut = BTreeMap<IpNet, OutRoute>;

/// What changed between two Adj-RIB-Out states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff<'a> {
    /// Prefixes to withdraw, in order.
    pub withdraw: Vec<IpNet>,
    /// Routes to announce (new or changed), in prefix order.
    pub announce: Vec<(IpNet, &'a OutRoute)>,
}

impl Diff<'_> {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }
}

/// The differences between what a peer has (`previous`) and what it should have (`desired`):
/// one ordered merge walk over both maps.
pub fn diff<'a>(previous: &AdjRibOut, desired: &'a AdjRibOut) -> Diff<'a> {
    let mut out = Diff::default();
    let mut prev = previous.iter().peekable();
    let mut next = desired.iter().peekable();
    loop {
        match (prev.peek(), next.peek()) {
            (None, None) => break,
            (Some((p, _)), None) => {
                out.withdraw.push(**p);
                prev.next();
            }
            (None, Some((n, route))) => {
                out.announce.push((**n, *route));
                next.next();
            }
            (Some((p, old)), Some((n, new))) => match p.cmp(n) {
                std::cmp::Ordering::Less => {
                    out.withdraw.push(**p);
                    prev.next();
                }
                std::cmp::Ordering::Greater => {
                    out.announce.push((**n, *new));
                    next.next();
                }
                std::cmp::Ordering::Equal => {
                    if !old.same_as(new) {
                        out.announce.push((**n, *new));
                    }
                    prev.next();
                    next.next();
                }
            },
        }
    }
    out
}

/// The UPDATEs of a diff, and the announcements that could not be put in one.
#[derive(Debug, Default)]
pub struct Packed {
    /// The messages, withdrawals first.
    pub updates: Vec<Update>,
    /// Announcements left out (the peer does not get them), in the order met, each with why.
    pub skipped: Vec<(IpNet, Error)>,
}

/// The UPDATE messages that take a peer from `previous` to `desired`.
pub fn updates(previous: &AdjRibOut, desired: &AdjRibOut, cx: &EncodeContext) -> Packed {
    pack(&diff(previous, desired), cx)
}

/// The UPDATE messages carrying a diff, withdrawals first. Announcements that cannot be encoded
/// are skipped one by one (see [`Packed::skipped`]); the rest of the diff is always packed.
pub fn pack(diff: &Diff<'_>, cx: &EncodeContext) -> Packed {
    let max = cx.max_message_len();
    let mut out = Packed::default();
    pack_withdrawals(&diff.withdraw, cx, max, &mut out.updates);
    for group in group_announcements(&diff.announce) {
        pack_group(&group, cx, max, &mut out);
    }
    out
}

/// Encoded size of one NLRI entry: length octet, prefix octets, optional path identifier.
fn nlri_len(prefix: &IpNet, add_path: bool) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8) + if add_path { 4 } else { 0 }
}

/// Size of an attribute with a value of `value_len` octets (Extended Length above 255).
fn attr_len(value_len: usize) -> usize {
    value_len + if value_len > 255 { 4 } else { 3 }
}

fn v4_nlri(prefix: &IpNet, add_path: bool) -> Result<Ipv4Nlri> {
    match prefix {
        IpNet::V4(n) => Ipv4Prefix::new(n.network(), n.prefix_len())
            .map(|p| Nlri {
                path_id: add_path.then_some(ADD_PATH_ID),
                prefix: p,
            })
            .ok_or(Error::Unencodable {
                prefix: *prefix,
                reason: "bad IPv4 prefix",
            }),
        IpNet::V6(_) => Err(Error::Unencodable {
            prefix: *prefix,
            reason: "not IPv4",
        }),
    }
}

fn v6_nlri(prefix: &IpNet, add_path: bool) -> Result<Ipv6Nlri> {
    match prefix {
        IpNet::V6(n) => Ipv6Prefix::new(n.network(), n.prefix_len())
            .map(|p| Nlri {
                path_id: add_path.then_some(ADD_PATH_ID),
                prefix: p,
            })
            .ok_or(Error::Unencodable {
                prefix: *prefix,
                reason: "bad IPv6 prefix",
            }),
        IpNet::V4(_) => Err(Error::Unencodable {
            prefix: *prefix,
            reason: "not IPv6",
        }),
    }
}

fn wire_family(prefix: &IpNet) -> WireFamily {
    match prefix {
        IpNet::V4(_) => WireFamily::IPV4_UNICAST,
        IpNet::V6(_) => WireFamily::IPV6_UNICAST,
    }
}

/// Withdrawals never fail: a prefix is always expressible in the Withdrawn Routes field or
/// MP_UNREACH_NLRI (the family filters below make the conversions total).
fn pack_withdrawals(withdraw: &[IpNet], cx: &EncodeContext, max: usize, out: &mut Vec<Update>) {
    // IPv4: the Withdrawn Routes field of an UPDATE without attributes.
    let ap4 = cx.add_path(WireFamily::IPV4_UNICAST);
    let fixed4 = HEADER_LEN + 4;
    let mut batch: Vec<Ipv4Nlri> = Vec::new();
    let mut size = fixed4;
    for p in withdraw.iter().filter(|p| matches!(p, IpNet::V4(_))) {
        let n = nlri_len(p, ap4);
        if size + n > max && !batch.is_empty() {
            out.push(Update {
                withdrawn: std::mem::take(&mut batch),
                ..Update::default()
            });
            size = fixed4;
        }
        let Ok(nlri) = v4_nlri(p, ap4) else {
            continue;
        };
        batch.push(nlri);
        size += n;
    }
    if !batch.is_empty() {
        out.push(Update {
            withdrawn: batch,
            ..Update::default()
        });
    }
    // IPv6: MP_UNREACH_NLRI (AFI, SAFI, prefixes) as the only attribute.
    let ap6 = cx.add_path(WireFamily::IPV6_UNICAST);
    let mut batch: Vec<Ipv6Nlri> = Vec::new();
    let mut value = 3;
    let unreach = |batch: Vec<Ipv6Nlri>| Update {
        attributes: vec![PathAttribute::new(AttrValue::MpUnreach(MpUnreach {
            family: WireFamily::IPV6_UNICAST,
            withdrawn: MpNlri::Ipv6(batch),
        }))],
        ..Update::default()
    };
    for p in withdraw.iter().filter(|p| matches!(p, IpNet::V6(_))) {
        let n = nlri_len(p, ap6);
        if HEADER_LEN + 4 + attr_len(value + n) > max && !batch.is_empty() {
            out.push(unreach(std::mem::take(&mut batch)));
            value = 3;
        }
        let Ok(nlri) = v6_nlri(p, ap6) else {
            continue;
        };
        batch.push(nlri);
        value += n;
    }
    if !batch.is_empty() {
        out.push(unreach(batch));
    }
}

/// Announcements sharing attributes, next hop and prefix family.
struct Group<'a> {
    route: &'a OutRoute,
    prefixes: Vec<IpNet>,
}

/// Groups announcements by (family, attributes, next hop), in order of each group's first prefix.
fn group_announcements<'a>(announce: &[(IpNet, &'a OutRoute)]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut index: HashMap<(bool, &'a OutRoute), usize> = HashMap::new();
    // Most runs share one attribute allocation: remember the last group to skip hashing.
    let mut last: Option<(bool, &'a OutRoute, usize)> = None;
    for &(prefix, route) in announce {
        let v4 = matches!(prefix, IpNet::V4(_));
        if let Some((lv4, lroute, i)) = last
            && lv4 == v4
            && lroute.same_as(route)
            && let Some(group) = groups.get_mut(i)
        {
            group.prefixes.push(prefix);
            continue;
        }
        let i = *index.entry((v4, route)).or_insert_with(|| {
            groups.push(Group {
                route,
                prefixes: Vec::new(),
            });
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(i) {
            group.prefixes.push(prefix);
        }
        last = Some((v4, route, i));
    }
    groups
}

/// The MP_REACH_NLRI next hop for a family.
fn mp_next_hop(next_hop: &NextHop) -> NextHop {
    match next_hop {
        NextHop::Ipv4(a) => NextHop::Ipv6 {
            global: a.to_ipv6_mapped(),
            link_local: None,
        },
        other => other.clone(),
    }
}

/// Why the attributes of a group cannot be sent with `cx`, if they cannot: encoded once into a
/// scratch buffer, so a failure the size estimate does not see skips the group instead of
/// failing the whole message at send time.
fn attributes_unencodable(attrs: &[PathAttribute], cx: &EncodeContext) -> Option<&'static str> {
    let mut scratch = bytes::BytesMut::new();
    attrs.iter().find_map(|a| match a.encode(cx, &mut scratch) {
        Ok(()) => None,
        Err(bgp_proto::Error::Unencodable(reason)) => Some(reason),
        Err(_) => Some("a path attribute cannot be encoded for this session"),
    })
}

fn pack_group(group: &Group<'_>, cx: &EncodeContext, max: usize, out: &mut Packed) {
    let Some(first) = group.prefixes.first() else {
        return;
    };
    let attrs: &[PathAttribute] = &group.route.attributes;
    if let Some(reason) = attributes_unencodable(attrs, cx) {
        out.skipped.extend(
            group
                .prefixes
                .iter()
                .map(|p| (*p, Error::Unencodable { prefix: *p, reason })),
        );
        return;
    }
    let family = wire_family(first);
    let add_path = cx.add_path(family);
    let attrs_len: usize = attrs.iter().map(|a| a.encoded_len(cx)).sum();
    let fixed = HEADER_LEN + 4 + attrs_len;
    let classic = matches!(
        (first, &group.route.next_hop),
        (IpNet::V4(_), NextHop::Ipv4(_))
    );
    let next_hop = if classic {
        group.route.next_hop.clone()
    } else if family == WireFamily::IPV6_UNICAST {
        mp_next_hop(&group.route.next_hop)
    } else {
        group.route.next_hop.clone()
    };
    // Size of the message holding `nlri` octets of prefixes.
    let size = |nlri: usize| {
        if classic {
            fixed + attr_len(4) + nlri
        } else {
            fixed + attr_len(5 + next_hop.len() + nlri)
        }
    };
    let mut batch: Vec<IpNet> = Vec::new();
    let mut nlri = 0;
    for p in &group.prefixes {
        let n = nlri_len(p, add_path);
        if size(n) > max {
            out.skipped.push((
                *p,
                Error::RouteTooLarge {
                    prefix: *p,
                    len: size(n),
                    max,
                },
            ));
            continue;
        }
        if size(nlri + n) > max {
            flush(&mut batch, attrs, &next_hop, classic, add_path, out);
            nlri = 0;
        }
        batch.push(*p);
        nlri += n;
    }
    flush(&mut batch, attrs, &next_hop, classic, add_path, out);
}

/// Builds the UPDATE for `batch` (if any) and empties it; a failure skips the batch's prefixes.
fn flush(
    batch: &mut Vec<IpNet>,
    attrs: &[PathAttribute],
    next_hop: &NextHop,
    classic: bool,
    add_path: bool,
    out: &mut Packed,
) {
    let Some(&first) = batch.first() else {
        return;
    };
    match build(first, batch, attrs, next_hop, classic, add_path) {
        Ok(update) => out.updates.push(update),
        Err(error) => {
            let reason = match error {
                Error::Unencodable { reason, .. } => reason,
                _ => "the UPDATE cannot be built",
            };
            out.skipped.extend(
                batch
                    .iter()
                    .map(|p| (*p, Error::Unencodable { prefix: *p, reason })),
            );
        }
    }
    batch.clear();
}

/// One UPDATE for `prefixes` (`first` is the first of them) of one family sharing attributes and
/// next hop; attributes in type-code order with NEXT_HOP or MP_REACH_NLRI slotted in.
fn build(
    first: IpNet,
    prefixes: &[IpNet],
    attrs: &[PathAttribute],
    next_hop: &NextHop,
    classic: bool,
    add_path: bool,
) -> Result<Update> {
    let mut attributes = Vec::with_capacity(attrs.len() + 1);
    attributes.extend_from_slice(attrs);
    let mut update = Update::default();
    if classic {
        let NextHop::Ipv4(a) = next_hop else {
            return Err(Error::Unencodable {
                prefix: first,
                reason: "IPv4 next hop expected",
            });
        };
        attributes.push(PathAttribute::new(AttrValue::NextHop(*a)));
        update.nlri = prefixes
            .iter()
            .map(|p| v4_nlri(p, add_path))
            .collect::<Result<_>>()?;
    } else {
        let (family, nlri) = match first {
            IpNet::V4(_) => (
                WireFamily::IPV4_UNICAST,
                MpNlri::Ipv4(
                    prefixes
                        .iter()
                        .map(|p| v4_nlri(p, add_path))
                        .collect::<Result<_>>()?,
                ),
            ),
            IpNet::V6(_) => (
                WireFamily::IPV6_UNICAST,
                MpNlri::Ipv6(
                    prefixes
                        .iter()
                        .map(|p| v6_nlri(p, add_path))
                        .collect::<Result<_>>()?,
                ),
            ),
        };
        attributes.push(PathAttribute::new(AttrValue::MpReach(MpReach {
            family,
            next_hop: next_hop.clone(),
            nlri,
        })));
    }
    attributes.sort_by_key(|a| u8::from(a.value.type_code()));
    update.attributes = attributes;
    Ok(update)
}

/// The Adj-RIB-Out for one peer and family from [`super::desired()`]'s routes: every route gets the
/// session's next hop (see [`next_hop_self`]).
pub fn adj_rib_out(routes: &BTreeMap<IpNet, RouteAttributes>, next_hop: &NextHop) -> AdjRibOut {
    routes
        .iter()
        .map(|(prefix, attributes)| {
            let route = OutRoute {
                attributes: attributes.clone(),
                next_hop: next_hop.clone(),
            };
            (*prefix, route)
        })
        .collect()
}

/// The next hop of our own routes for one session: the session's local address, plus for IPv6
/// the link-local address of the interface when the peer is on a shared segment.
pub fn next_hop_self(local: IpAddr, link_local: Option<Ipv6Addr>) -> NextHop {
    match local {
        IpAddr::V4(a) => NextHop::Ipv4(a),
        IpAddr::V6(global) => NextHop::Ipv6 { global, link_local },
    }
}

#[cfg(test)]
#[path = "packing_tests.rs"]
mod tests;
