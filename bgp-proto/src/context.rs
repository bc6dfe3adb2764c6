//! Session contexts: what the two OPENs negotiated, and the decode/encode contexts derived from it.
//!
//! [`negotiate`] is a pure function of the local and remote OPEN; the FSM calls it on entering
//! OpenConfirm and hands the contexts to its codec. No I/O, no clocks.

use crate::capability::{
    AddPathFamily, Capability, ExtendedNextHopFamily, GracefulRestart, LlgrFamily,
};
use crate::header::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use crate::iana::Family;
use crate::open::Open;

/// What the decoder needs to know about the session. `Default` fits messages received before the
/// OPEN exchange completes (2-octet AS, no ADD-PATH, 4096-octet messages, iBGP rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeContext {
    /// Both sides advertised the 4-octet AS capability: AS_PATH and AGGREGATOR carry 4-octet ASes.
    pub four_octet_as: bool,
    /// Both sides advertised the extended message capability: messages up to 65535 octets.
    pub extended_message: bool,
    /// Families whose received NLRI carry ADD-PATH path identifiers.
    pub add_path: Vec<Family>,
    /// The peer is external: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST from it are discarded
    /// (RFC 7606 §7.5, §7.9, §7.10).
    pub ebgp: bool,
}

/// What the encoder needs to know about the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeContext {
    /// Write 4-octet ASes in AS_PATH and AGGREGATOR (else ASes above 65535 become AS_TRANS).
    pub four_octet_as: bool,
    /// Allow messages up to 65535 octets.
    pub extended_message: bool,
    /// Families whose sent NLRI carry ADD-PATH path identifiers.
    pub add_path: Vec<Family>,
}

impl DecodeContext {
    /// Whether received NLRI of `family` carry path identifiers.
    #[inline]
    pub fn add_path(&self, family: Family) -> bool {
        self.add_path.contains(&family)
    }

    /// Largest acceptable message length.
    #[inline]
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

impl EncodeContext {
    /// Whether sent NLRI of `family` carry path identifiers.
    #[inline]
    pub fn add_path(&self, family: Family) -> bool {
        self.add_path.contains(&family)
    }

    /// Largest message the encoder may produce.
    #[inline]
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// The result of the capability exchange (RFC 5492 and the capability RFCs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Our AS.
    pub local_asn: u32,
    /// The peer's AS (4-octet capability value if it sent one).
    pub remote_asn: u32,
    /// Hold time: the smaller of the two proposals (RFC 4271 §4.2); 0 disables keepalives.
    pub hold_time: u16,
    /// Both advertised 4-octet AS support (RFC 6793).
    pub four_octet_as: bool,
    /// Both advertised extended messages (RFC 8654).
    pub extended_message: bool,
    /// Families both advertised; IPv4 unicast alone when neither side advertised any (RFC 4760 §8
    /// leaves IPv4 unicast implied without multiprotocol capabilities).
    pub families: Vec<Family>,
    /// Families for which we receive path identifiers: we can receive and the peer can send.
    pub add_path_rx: Vec<Family>,
    /// Families for which we send path identifiers: we can send and the peer can receive.
    pub add_path_tx: Vec<Family>,
    /// NLRI/next-hop combinations the peer accepts from us (its extended next hop capability,
    /// limited to what we advertised too).
    pub extended_next_hop: Vec<ExtendedNextHopFamily>,
    /// Both advertised route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Both advertised enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, if both sides advertised one (RFC 4724).
    pub graceful_restart: Option<GracefulRestart>,
    /// The peer's long-lived graceful restart families, if both sides advertised the capability.
    pub long_lived_graceful_restart: Option<Vec<LlgrFamily>>,
    /// The peer's hostname and domain name, if it sent the FQDN capability.
    pub remote_fqdn: Option<(Vec<u8>, Vec<u8>)>,
}

impl Negotiated {
    /// The session is eBGP (different ASes; confederations are the caller's business).
    pub fn ebgp(&self) -> bool {
        self.local_asn != self.remote_asn
    }

    /// Context for decoding what the peer sends.
    pub fn decode_context(&self) -> DecodeContext {
        DecodeContext {
            four_octet_as: self.four_octet_as,
            extended_message: self.extended_message,
            add_path: self.add_path_rx.clone(),
            ebgp: self.ebgp(),
        }
    }

    /// Context for encoding what we send.
    pub fn encode_context(&self) -> EncodeContext {
        EncodeContext {
            four_octet_as: self.four_octet_as,
            extended_message: self.extended_message,
            add_path: self.add_path_tx.clone(),
        }
    }

    /// Keepalive interval: a third of the hold time (RFC 4271 §4.4), 0 when the hold time is 0.
    pub fn keepalive_time(&self) -> u16 {
        self.hold_time / 3
    }
}

fn has(open: &Open, pred: impl Fn(&Capability) -> bool) -> bool {
    open.capabilities.iter().any(pred)
}

fn families(open: &Open) -> Vec<Family> {
    open.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn add_path(open: &Open) -> Vec<AddPathFamily> {
    open.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::AddPath(v) => Some(v.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Computes what a session between `local` and `remote` supports. Pure and symmetric in the sense
/// that `negotiate(a, b).add_path_tx == negotiate(b, a).add_path_rx`.
pub fn negotiate(local: &Open, remote: &Open) -> Negotiated {
    let local_fams = families(local);
    let remote_fams = families(remote);
    let families = if local_fams.is_empty() && remote_fams.is_empty() {
        vec![Family::IPV4_UNICAST]
    } else {
        let mut f: Vec<Family> = local_fams
            .iter()
            .copied()
            .filter(|f| remote_fams.contains(f))
            .collect();
        f.sort();
        f.dedup();
        f
    };

    let lap = add_path(local);
    let rap = add_path(remote);
    let mut add_path_rx = Vec::new();
    let mut add_path_tx = Vec::new();
    for l in &lap {
        // RFC 7911 §4: path identifiers are sent only for families the peer can receive and we
        // can send (and the other way round), and only for families in use on the session.
        if !families.contains(&l.family) {
            continue;
        }
        for r in rap.iter().filter(|r| r.family == l.family) {
            if l.mode.can_receive() && r.mode.can_send() && !add_path_rx.contains(&l.family) {
                add_path_rx.push(l.family);
            }
            if l.mode.can_send() && r.mode.can_receive() && !add_path_tx.contains(&l.family) {
                add_path_tx.push(l.family);
            }
        }
    }
    // Sets, in a canonical order: an OPEN may list a family more than once with different modes,
    // and the result must not depend on which side's entries came first.
    add_path_rx.sort();
    add_path_tx.sort();

    let ext_nh = |o: &Open| -> Vec<ExtendedNextHopFamily> {
        o.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::ExtendedNextHop(v) => Some(v.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let local_enh = ext_nh(local);
    let extended_next_hop = ext_nh(remote)
        .into_iter()
        .filter(|e| local_enh.contains(e))
        .collect();

    let gr = |o: &Open| {
        o.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
    };
    let llgr = |o: &Open| {
        o.capabilities.iter().find_map(|c| match c {
            Capability::LongLivedGracefulRestart(v) => Some(v.clone()),
            _ => None,
        })
    };
    let graceful_restart = gr(local).and(gr(remote));
    let long_lived_graceful_restart = llgr(local).and(llgr(remote));
    let remote_fqdn = remote.capabilities.iter().find_map(|c| match c {
        Capability::Fqdn { hostname, domain } => Some((hostname.clone(), domain.clone())),
        _ => None,
    });

    let four_octet_as = local.four_octet_as().is_some() && remote.four_octet_as().is_some();
    Negotiated {
        local_asn: local.asn(),
        remote_asn: remote.asn(),
        hold_time: local.hold_time.min(remote.hold_time),
        four_octet_as,
        extended_message: has(local, |c| matches!(c, Capability::ExtendedMessage))
            && has(remote, |c| matches!(c, Capability::ExtendedMessage)),
        families,
        add_path_rx,
        add_path_tx,
        extended_next_hop,
        route_refresh: has(local, |c| matches!(c, Capability::RouteRefresh))
            && has(remote, |c| matches!(c, Capability::RouteRefresh)),
        enhanced_route_refresh: has(local, |c| matches!(c, Capability::EnhancedRouteRefresh))
            && has(remote, |c| matches!(c, Capability::EnhancedRouteRefresh)),
        graceful_restart,
        long_lived_graceful_restart,
        remote_fqdn,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::capability::AddPathMode;

    fn open(asn: u32, hold: u16, caps: Vec<Capability>) -> Open {
        Open::new(asn, hold, Ipv4Addr::new(10, 0, 0, 1), caps)
    }

    #[test]
    fn negotiation_intersects_and_orients_add_path() {
        let local = open(
            65001,
            90,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::FourOctetAs(65001),
                Capability::AddPath(vec![
                    AddPathFamily {
                        family: Family::IPV4_UNICAST,
                        mode: AddPathMode::BOTH,
                    },
                    AddPathFamily {
                        family: Family::IPV6_UNICAST,
                        mode: AddPathMode::RECEIVE,
                    },
                ]),
                Capability::ExtendedMessage,
                Capability::RouteRefresh,
            ],
        );
        let remote = open(
            4_200_000_000,
            30,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(4_200_000_000),
                Capability::AddPath(vec![AddPathFamily {
                    family: Family::IPV4_UNICAST,
                    mode: AddPathMode::RECEIVE,
                }]),
                Capability::RouteRefresh,
            ],
        );
        let n = negotiate(&local, &remote);
        assert_eq!(n.hold_time, 30);
        assert_eq!(n.keepalive_time(), 10);
        assert!(n.four_octet_as);
        assert!(!n.extended_message);
        assert!(n.route_refresh);
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
        assert_eq!(n.add_path_tx, vec![Family::IPV4_UNICAST]);
        assert!(n.add_path_rx.is_empty());
        assert_eq!(n.remote_asn, 4_200_000_000);
        assert!(n.ebgp());
        let back = negotiate(&remote, &local);
        assert_eq!(back.add_path_rx, n.add_path_tx);
        assert_eq!(n.decode_context().max_message_len(), 4096);
    }

    #[test]
    fn no_multiprotocol_means_ipv4_unicast_and_two_octet_as() {
        let n = negotiate(&open(65001, 0, vec![]), &open(65001, 90, vec![]));
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
        assert_eq!(n.hold_time, 0);
        assert!(!n.four_octet_as && !n.ebgp());
    }

    /// Found by the `open` fuzz target: a family listed in two ADD-PATH entries (send, then
    /// receive) gave rx and tx lists in different orders depending on which entry came first.
    #[test]
    fn add_path_lists_do_not_depend_on_entry_order() {
        let ap = |family, mode| AddPathFamily { family, mode };
        let caps = |entries| {
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::AddPath(entries),
            ]
        };
        let a = open(
            65001,
            90,
            caps(vec![
                ap(Family::IPV6_UNICAST, AddPathMode::SEND),
                ap(Family::IPV4_UNICAST, AddPathMode::RECEIVE),
                ap(Family::IPV4_UNICAST, AddPathMode::SEND),
                ap(Family::IPV6_UNICAST, AddPathMode::RECEIVE),
            ]),
        );
        let n = negotiate(&a, &a);
        let both = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        assert_eq!(n.add_path_rx, both);
        assert_eq!(n.add_path_tx, both);
    }
}
