//! Rows of `speaker routes advertised|received`: one route per row with its path attributes
//! rendered for people (and serialised as JSON for scripts). Pure: built from the session's
//! Adj-RIB-In / Adj-RIB-Out values.

use std::net::IpAddr;

use bgp_proto::iana::SegmentType;
use bgp_proto::{AttrValue, NextHop, PathAttribute};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::rib::AdjRibIn;
use crate::advertise::packing::AdjRibOut;
use crate::config::Family;

/// Which routes `speaker routes` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteQuery {
    /// Received routes (Adj-RIB-In) rather than advertised ones (Adj-RIB-Out).
    pub received: bool,
    /// Only this peer (configured name or address).
    #[serde(default)]
    pub peer: Option<String>,
    /// Only this family.
    #[serde(default)]
    pub family: Option<Family>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRow {
    /// The peer's name (or address).
    pub peer: String,
    /// The peer's address.
    pub peer_address: IpAddr,
    /// The prefix.
    pub prefix: IpNet,
    /// Next hop (global address).
    pub next_hop: Option<IpAddr>,
    /// IPv6 link-local next hop, when sent or received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_local_next_hop: Option<IpAddr>,
    /// AS_PATH as text (`{...}` for AS_SETs).
    pub as_path: String,
    /// ORIGIN: `i`, `e` or `?`.
    pub origin: String,
    /// MULTI_EXIT_DISC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// LOCAL_PREF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Standard, large (`g:l1:l2`) and extended (hex) communities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Received routes: the import policy accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    /// Received routes: kept stale for a restarting peer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

fn family_matches(prefix: &IpNet, family: Option<Family>) -> bool {
    match family {
        None => true,
        Some(Family::Ipv4Unicast) => prefix.addr().is_ipv4(),
        Some(Family::Ipv6Unicast) => prefix.addr().is_ipv6(),
    }
}

fn render_as_path(attributes: &[PathAttribute]) -> String {
    let Some(path) = attributes.iter().find_map(|a| match &a.value {
        AttrValue::AsPath(p) => Some(p),
        _ => None,
    }) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for segment in path.segments() {
        let asns: Vec<String> = segment.asns.iter().map(ToString::to_string).collect();
        match segment.kind {
            SegmentType::AsSequence => parts.extend(asns),
            _ => parts.push(format!("{{{}}}", asns.join(","))),
        }
    }
    parts.join(" ")
}

fn row(
    peer: &str,
    peer_address: IpAddr,
    prefix: IpNet,
    attributes: &[PathAttribute],
    next_hop: &NextHop,
) -> RouteRow {
    let (next_hop, link_local) = match next_hop {
        NextHop::Ipv4(a) => (Some(IpAddr::V4(*a)), None),
        NextHop::Ipv6 { global, link_local } => {
            (Some(IpAddr::V6(*global)), link_local.map(IpAddr::V6))
        }
        NextHop::Raw(_) => (None, None),
    };
    let mut out = RouteRow {
        peer: peer.to_owned(),
        peer_address,
        prefix,
        next_hop,
        link_local_next_hop: link_local,
        as_path: render_as_path(attributes),
        origin: String::new(),
        med: None,
        local_pref: None,
        communities: Vec::new(),
        accepted: None,
        stale: false,
    };
    for a in attributes {
        match &a.value {
            AttrValue::Origin(o) => {
                out.origin = match u8::from(*o) {
                    0 => "i",
                    1 => "e",
                    _ => "?",
                }
                .to_owned();
            }
            AttrValue::MultiExitDisc(m) => out.med = Some(*m),
            AttrValue::LocalPref(l) => out.local_pref = Some(*l),
            AttrValue::Communities(c) => out.communities.extend(c.iter().map(ToString::to_string)),
            AttrValue::LargeCommunities(c) => {
                out.communities.extend(c.iter().map(ToString::to_string));
            }
            AttrValue::ExtendedCommunities(c) => out.communities.extend(c.iter().map(|e| {
                format!(
                    "0x{}",
                    e.0.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            })),
            _ => {}
        }
    }
    out
}

/// Rows for the routes sent to one peer.
pub fn advertised_rows(
    peer: &str,
    address: IpAddr,
    routes: &AdjRibOut,
    family: Option<Family>,
) -> Vec<RouteRow> {
    routes
        .iter()
        .filter(|(p, _)| family_matches(p, family))
        .map(|(p, r)| row(peer, address, *p, &r.attributes, &r.next_hop))
        .collect()
}

/// Rows for the routes received from one peer (accepted or not).
pub fn received_rows(
    peer: &str,
    address: IpAddr,
    rib: &AdjRibIn,
    family: Option<Family>,
) -> Vec<RouteRow> {
    rib.iter()
        .filter(|(p, _)| family_matches(p, family))
        .map(|(p, e)| {
            let mut r = row(peer, address, p, &e.attrs.attributes, &e.attrs.next_hop);
            r.accepted = Some(e.accepted);
            r.stale = e.stale;
            r
        })
        .collect()
}

/// A table of routes for people.
pub fn render(rows: &[RouteRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<26} {:<20} {:>6} {:>6} {:<3} COMMUNITIES",
        "PEER", "PREFIX", "NEXT HOP", "AS PATH", "MED", "LPREF", "ORG"
    );
    for r in rows {
        let opt = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let mut flags = String::new();
        if r.accepted == Some(false) {
            flags.push_str(" (rejected)");
        }
        if r.stale {
            flags.push_str(" (stale)");
        }
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<26} {:<20} {:>6} {:>6} {:<3} {}{flags}",
            r.peer,
            r.prefix.to_string(),
            r.next_hop.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            if r.as_path.is_empty() {
                "(local)"
            } else {
                &r.as_path
            },
            opt(r.med),
            opt(r.local_pref),
            r.origin,
            r.communities.join(" "),
        );
    }
    let _ = writeln!(out, "{} routes", rows.len());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bgp_proto::{AsPath, Community, LargeCommunity, Origin};

    use super::*;
    use crate::advertise::packing::OutRoute;

    #[test]
    fn rows_render_attributes_and_filter_by_family() {
        let attributes = Arc::new(vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65001, 65001]))),
            PathAttribute::new(AttrValue::MultiExitDisc(10)),
            PathAttribute::new(AttrValue::Communities(vec![Community::new(65000, 100)])),
            PathAttribute::new(AttrValue::LargeCommunities(vec![LargeCommunity {
                global: 65000,
                local1: 1,
                local2: 2,
            }])),
        ]);
        let mut routes = AdjRibOut::new();
        for p in ["192.0.2.0/24", "2001:db8::/48"] {
            routes.insert(
                p.parse().expect("net"),
                OutRoute {
                    attributes: attributes.clone(),
                    next_hop: NextHop::Ipv4("10.0.0.1".parse().expect("ip")),
                },
            );
        }
        let peer: IpAddr = "10.0.0.254".parse().expect("ip");
        let rows = advertised_rows("tor", peer, &routes, Some(Family::Ipv4Unicast));
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.as_path, "65001 65001");
        assert_eq!(r.origin, "i");
        assert_eq!(r.med, Some(10));
        assert_eq!(r.communities, ["65000:100", "65000:1:2"]);
        let table = render(&rows);
        assert!(
            table.contains("192.0.2.0/24") && table.contains("1 routes"),
            "{table}"
        );
    }
}
