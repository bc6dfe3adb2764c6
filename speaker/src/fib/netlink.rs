//! The rtnetlink [`FibWriter`]: routes in one kernel table, marked with our route protocol so we
//! recognise (and only ever touch) our own. This file is the FIB's whole I/O boundary.
//!
//! The netlink socket belongs to the network namespace of the thread that calls
//! [`NetlinkFib::connect`]; tests enter a namespace with `setns` on a dedicated thread first.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType, RouteVia,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};

use super::{FibNextHop, FibRoutes, FibWriter};
use crate::error::{Error, Result};

/// `RTPROT_BGP` from `linux/rtnetlink.h`: FRR's bgpd marks its routes with it, so Herald does not.
pub const RTPROT_BGP: u8 = 186;

/// The route protocol Herald's routes carry by default (`bgp.fibImport.protocol`). Chosen outside
/// `linux/rtnetlink.h` and iproute2's `rt_protos` (bgp 186, isis 187, ospf 188, rip 189, eigrp
/// 192) and outside the range FRR's zebra uses for its daemons (186–198), so Herald never adopts
/// or deletes another routing daemon's routes.
pub const HERALD_RTPROT: u8 = 203;

/// Installs routes into one kernel routing table over rtnetlink.
#[derive(Debug)]
pub struct NetlinkFib {
    handle: Handle,
    table: u32,
    protocol: u8,
    metric: Option<u32>,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for NetlinkFib {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn netlink_err(op: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Netlink {
        op: op.into(),
        reason: e.to_string(),
    }
}

impl NetlinkFib {
    /// Opens a route netlink socket in the calling thread's network namespace. `table` is the
    /// kernel table (254 = main), `protocol` marks our routes (routes with another protocol in
    /// the table are never touched), `metric` is the route priority (none: the kernel's 0 for
    /// IPv4, 1024 for IPv6). Must run inside a tokio runtime.
    pub fn connect(table: u32, protocol: u8, metric: Option<u32>) -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::io("open route netlink socket", e))?;
        let connection = tokio::spawn(connection);
        Ok(Self {
            handle,
            table,
            protocol,
            metric,
            connection,
        })
    }

    /// The kernel table routes go to.
    pub fn table(&self) -> u32 {
        self.table
    }

    fn base(&self, prefix: IpNet) -> Result<RouteMessageBuilder<IpAddr>> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(prefix.network(), prefix.prefix_len())
            .map_err(|e| netlink_err(format!("route {prefix}"), e))?
            .table_id(self.table)
            .protocol(RouteProtocol::from(self.protocol))
            .kind(RouteType::Unicast);
        if let Some(metric) = self.metric {
            b = b.priority(metric);
        }
        Ok(b)
    }

    fn family(prefix: &IpNet) -> AddressFamily {
        match prefix {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        }
    }

    fn message(&self, prefix: IpNet, next_hops: &BTreeSet<FibNextHop>) -> Result<RouteMessage> {
        let op = || format!("route {prefix} table {}", self.table);
        let mut b = self.base(prefix)?;
        let mut hops = next_hops.iter();
        match (hops.next(), hops.next()) {
            (None, _) => return Err(netlink_err(op(), "no next hop")),
            (Some(hop), None) => {
                b = b.gateway(hop.gateway).map_err(|e| netlink_err(op(), e))?;
                if let Some(ifindex) = hop.ifindex {
                    b = b.output_interface(ifindex);
                }
            }
            _ => {
                let family = Self::family(&prefix);
                let list = next_hops
                    .iter()
                    .map(|hop| {
                        let mut nh = RouteNextHopBuilder::new(family)
                            .via(hop.gateway)
                            .map_err(|e| netlink_err(op(), e))?;
                        if let Some(ifindex) = hop.ifindex {
                            nh = nh.interface(ifindex);
                        }
                        Ok(nh.build())
                    })
                    .collect::<Result<Vec<_>>>()?;
                b = b.multipath(list);
            }
        }
        Ok(b.build())
    }

    /// Whether a dumped route is one of ours: our table, our protocol, unicast.
    fn is_ours(&self, m: &RouteMessage) -> bool {
        let table = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(m.header.table));
        table == self.table
            && u8::from(m.header.protocol) == self.protocol
            && m.header.kind == RouteType::Unicast
    }

    async fn dump(&self, family: AddressFamily, out: &mut FibRoutes) -> Result<()> {
        let mut query = RouteMessage::default();
        query.header.address_family = family;
        let mut stream = self.handle.route().get(query).execute();
        while let Some(m) = stream
            .try_next()
            .await
            .map_err(|e| netlink_err("dump routes", e))?
        {
            if !self.is_ours(&m) {
                continue;
            }
            if let Some((prefix, hops)) = parse_route(&m) {
                out.entry(prefix).or_default().extend(hops);
            }
        }
        Ok(())
    }
}

fn addr_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The gateway of a next hop attribute: RTA_GATEWAY, or RTA_VIA for a gateway of the other
/// family (an IPv4 route via an IPv6 gateway, RFC 8950; rtnetlink's builders emit RTA_VIA for it).
fn gateway_of(a: &RouteAttribute) -> Option<IpAddr> {
    match a {
        RouteAttribute::Gateway(g) => addr_of(g),
        RouteAttribute::Via(RouteVia::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Via(RouteVia::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A next hop as we describe it: the interface is kept only where it is part of the address
/// (IPv6 link-local gateways), so a route installed with "kernel picks the device" reads back
/// equal to what was asked for.
fn next_hop(gateway: IpAddr, ifindex: u32) -> FibNextHop {
    let link_local = matches!(gateway, IpAddr::V6(a) if a.is_unicast_link_local());
    FibNextHop {
        gateway,
        ifindex: (link_local && ifindex != 0).then_some(ifindex),
    }
}

/// Prefix and next hops of a dumped route; `None` for routes without a gateway.
fn parse_route(m: &RouteMessage) -> Option<(IpNet, Vec<FibNextHop>)> {
    let len = m.header.destination_prefix_length;
    let dst = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => addr_of(d),
        _ => None,
    });
    let dst = match (dst, m.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, AddressFamily::Inet6) => IpAddr::from([0u16; 8]),
        (None, _) => return None,
    };
    let prefix = IpNet::new(dst, len).ok()?;
    let oif = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        })
        .unwrap_or(0);
    let mut hops = Vec::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::MultiPath(list) => {
                for nh in list {
                    let gw = nh.attributes.iter().find_map(gateway_of);
                    if let Some(g) = gw {
                        hops.push(next_hop(g, nh.interface_index));
                    }
                }
            }
            other => {
                if let Some(g) = gateway_of(other) {
                    hops.push(next_hop(g, oif));
                }
            }
        }
    }
    (!hops.is_empty()).then_some((prefix, hops))
}

impl FibWriter for NetlinkFib {
    async fn add(&mut self, prefix: IpNet, next_hops: &BTreeSet<FibNextHop>) -> Result<()> {
        let message = self.message(prefix, next_hops)?;
        // rtnetlink's add is NLM_F_CREATE | NLM_F_EXCL: the kernel refuses it if any route holds
        // the prefix at this table and metric, whatever its protocol.
        let op = format!("add {prefix} table {}", self.table);
        match self.handle.route().add(message).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => {
                Err(netlink_err(
                    op,
                    format!(
                        "EEXIST: a route that is not Herald's (protocol other than {}) holds \
                         this prefix at the same metric; it is left in place",
                        self.protocol
                    ),
                ))
            }
            Err(e) => Err(netlink_err(op, e)),
        }
    }

    async fn replace(&mut self, prefix: IpNet, next_hops: &BTreeSet<FibNextHop>) -> Result<()> {
        let message = self.message(prefix, next_hops)?;
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|e| netlink_err(format!("replace {prefix} table {}", self.table), e))
    }

    async fn remove(&mut self, prefix: IpNet) -> Result<()> {
        let message = self.base(prefix)?.build();
        match self.handle.route().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ESRCH => Ok(()),
            Err(e) => Err(netlink_err(
                format!("remove {prefix} table {}", self.table),
                e,
            )),
        }
    }

    async fn installed(&mut self) -> Result<FibRoutes> {
        let mut out = FibRoutes::new();
        self.dump(AddressFamily::Inet, &mut out).await?;
        self.dump(AddressFamily::Inet6, &mut out).await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_route_via_ipv6_gateway_is_built_and_read_back() {
        let fib_like = |prefix: IpNet, gateway: IpAddr| {
            RouteMessageBuilder::<IpAddr>::new()
                .destination_prefix(prefix.network(), prefix.prefix_len())
                .expect("prefix")
                .gateway(gateway)
                .expect("gateway")
                .build()
        };
        let prefix: IpNet = "10.1.0.0/24".parse().expect("net");
        let gateway: IpAddr = "2001:db8::2".parse().expect("ip");
        let m = fib_like(prefix, gateway);
        assert!(
            m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Via(RouteVia::Inet6(_)))),
            "RTA_VIA expected: {m:?}"
        );
        let (p, hops) = parse_route(&m).expect("a route with a gateway");
        assert_eq!(p, prefix);
        assert_eq!(hops, vec![FibNextHop::via(gateway)]);
    }

    #[test]
    fn ifindex_is_kept_only_for_link_local_gateways() {
        assert_eq!(next_hop("192.0.2.1".parse().expect("a"), 7).ifindex, None);
        assert_eq!(next_hop("2001:db8::1".parse().expect("a"), 7).ifindex, None);
        assert_eq!(next_hop("fe80::1".parse().expect("a"), 7).ifindex, Some(7));
        assert_eq!(next_hop("fe80::1".parse().expect("a"), 0).ifindex, None);
    }
}
