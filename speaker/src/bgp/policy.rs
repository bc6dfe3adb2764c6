//! Export policy, applied at the RIB boundary (never inside the FSM): turns the routes we
//! originate into the Adj-RIB-Out entries one peer gets (AS_PATH with our AS for eBGP,
//! LOCAL_PREF only for iBGP, next hop self). Import policy lives in [`crate::import_policy`].
//! Pure functions: no I/O.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp_proto::{AsPath, AttrValue, Community, LargeCommunity, NextHop, Origin, PathAttribute};
use ipnet::IpNet;

use super::rib::PathAttrs;
use crate::advertise::packing::{AdjRibOut, OutRoute};

/// A route this node originates, with the attributes the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginatedRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// Standard communities.
    pub communities: Vec<Community>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// Extra copies of our AS to prepend (eBGP only).
    pub prepend: u8,
}

impl OriginatedRoute {
    /// A route with no optional attributes.
    pub fn plain(prefix: IpNet) -> Self {
        Self {
            prefix,
            communities: Vec::new(),
            large_communities: Vec::new(),
            med: None,
            local_pref: None,
            prepend: 0,
        }
    }
}

/// What export needs to know about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportContext {
    /// Our AS.
    pub local_asn: u32,
    /// The session is eBGP.
    pub ebgp: bool,
    /// Next hop for IPv4 routes (our address on the session, or configured).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl ExportContext {
    /// Next hops derived from the session's local address.
    pub fn from_local_address(local_asn: u32, ebgp: bool, local: Option<IpAddr>) -> Self {
        let local = local.map(|a| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        });
        Self {
            local_asn,
            ebgp,
            next_hop_v4: match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            next_hop_v6: match local {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
        }
    }
}

/// The attributes `route` is sent with on the session described by `cx`; `None` when the
/// session has no usable next hop for the route's family.
pub fn export(route: &OriginatedRoute, cx: &ExportContext) -> Option<PathAttrs> {
    let next_hop = match route.prefix {
        IpNet::V4(_) => NextHop::Ipv4(cx.next_hop_v4?),
        IpNet::V6(_) => NextHop::Ipv6 {
            global: cx.next_hop_v6?,
            link_local: None,
        },
    };
    let mut attributes = vec![PathAttribute::new(AttrValue::Origin(Origin::Igp))];
    // RFC 4271 §5.1.2: to an external peer the speaker "shall prepend its own AS number as the
    // last element of the sequence"; to an internal peer it "shall not modify the AS_PATH".
    let path = if cx.ebgp {
        let mut path = AsPath::new();
        path.prepend(cx.local_asn, 1 + usize::from(route.prepend));
        path
    } else {
        AsPath::new()
    };
    attributes.push(PathAttribute::new(AttrValue::AsPath(path)));
    if let Some(med) = route.med {
        attributes.push(PathAttribute::new(AttrValue::MultiExitDisc(med)));
    }
    // RFC 4271 §5.1.5: "A BGP speaker MUST NOT include this attribute in UPDATE messages it sends
    // to external peers"; to internal peers it SHALL include it.
    if !cx.ebgp {
        attributes.push(PathAttribute::new(AttrValue::LocalPref(
            route.local_pref.unwrap_or(100),
        )));
    }
    if !route.communities.is_empty() {
        attributes.push(PathAttribute::new(AttrValue::Communities(
            route.communities.clone(),
        )));
    }
    if !route.large_communities.is_empty() {
        attributes.push(PathAttribute::new(AttrValue::LargeCommunities(
            route.large_communities.clone(),
        )));
    }
    Some(PathAttrs {
        attributes,
        next_hop,
    })
}

/// The Adj-RIB-Out for every route in `routes` whose family the session carries; identical
/// attribute sets share one allocation.
pub fn export_all<'a>(
    routes: impl IntoIterator<Item = &'a OriginatedRoute>,
    cx: &ExportContext,
    carries: impl Fn(&IpNet) -> bool,
) -> AdjRibOut {
    let mut shared: HashMap<Vec<PathAttribute>, Arc<Vec<PathAttribute>>> = HashMap::new();
    let mut out = AdjRibOut::new();
    for route in routes {
        if !carries(&route.prefix) {
            continue;
        }
        if let Some(PathAttrs {
            attributes,
            next_hop,
        }) = export(route, cx)
        {
            let attributes = shared
                .entry(attributes)
                .or_insert_with_key(|a| Arc::new(a.clone()))
                .clone();
            out.insert(
                route.prefix,
                OutRoute {
                    attributes,
                    next_hop,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(ebgp: bool) -> ExportContext {
        ExportContext::from_local_address(65001, ebgp, Some("10.0.0.1".parse().expect("ip")))
    }

    #[test]
    fn ebgp_export_prepends_our_as_and_omits_local_pref() {
        let mut route = OriginatedRoute::plain("192.0.2.0/24".parse().expect("net"));
        route.prepend = 2;
        route.local_pref = Some(200);
        let attrs = export(&route, &cx(true)).expect("v4 next hop");
        let path = attrs
            .attributes
            .iter()
            .find_map(|a| match &a.value {
                AttrValue::AsPath(p) => Some(p.clone()),
                _ => None,
            })
            .expect("AS_PATH");
        assert_eq!(path, AsPath::from_sequence(&[65001, 65001, 65001]));
        assert!(
            !attrs
                .attributes
                .iter()
                .any(|a| matches!(a.value, AttrValue::LocalPref(_)))
        );
        assert_eq!(
            attrs.next_hop,
            NextHop::Ipv4("10.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn ibgp_export_keeps_empty_path_and_sets_local_pref() {
        let route = OriginatedRoute::plain("192.0.2.0/24".parse().expect("net"));
        let attrs = export(&route, &cx(false)).expect("v4 next hop");
        assert!(
            attrs
                .attributes
                .iter()
                .any(|a| a.value == AttrValue::LocalPref(100))
        );
        assert!(
            attrs
                .attributes
                .iter()
                .any(|a| a.value == AttrValue::AsPath(AsPath::new()))
        );
    }

    #[test]
    fn route_without_next_hop_of_its_family_is_not_exported() {
        let route = OriginatedRoute::plain("2001:db8::/48".parse().expect("net"));
        assert!(export(&route, &cx(true)).is_none());
    }
}
