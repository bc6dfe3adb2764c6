//! Next-hop resolution for Geneve encapsulation: the XDP program writes a fixed outer destination
//! MAC per backend node, so user space must find which gateway (or on-link neighbour) the kernel
//! would use towards a node's underlay address and that neighbour's MAC address.
//!
//! Parsing and route selection are pure functions over the text of `/proc/net/route` and
//! `/proc/net/arp`. The I/O boundary is [`next_hop`] and [`interface_mac`]: they read those files
//! through `/proc/thread-self/net` (so a thread that entered another network namespace with
//! `setns` sees that namespace's tables), send one UDP datagram to provoke ARP when the neighbour
//! is not resolved yet, and ask `getifaddrs` for interface addresses.
//!
//! IPv6 underlay addresses: the route comes from `/proc/net/ipv6_route` (longest prefix, then
//! lowest metric, as for IPv4), and the neighbour's MAC from `ip -6 neigh show` (IPv6
//! neighbours are not in procfs); a datagram to the discard port provokes neighbour discovery
//! the same way.
//!
//! Limits: main routing table only (what `/proc/net/route` shows; IPv6: every table's routes,
//! the local table's are never to another node), and for a multipath route the first next hop
//! only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Route flag: the route is usable.
const RTF_UP: u16 = 0x0001;
/// Route flag: the destination is behind a gateway.
const RTF_GATEWAY: u16 = 0x0002;
/// ARP entry flag: resolution completed.
const ATF_COM: u16 = 0x02;
/// The discard port: the datagram that provokes ARP resolution is aimed at it.
const DISCARD_PORT: u16 = 9;

/// One IPv4 route of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Output interface.
    pub ifname: String,
    /// Destination network.
    pub dest: Ipv4Addr,
    /// Destination netmask.
    pub mask: Ipv4Addr,
    /// Gateway, when the destination is not on-link.
    pub gateway: Option<Ipv4Addr>,
    /// Route metric (lower wins among equally specific routes).
    pub metric: u32,
}

impl Route {
    fn prefix_len(&self) -> u32 {
        u32::from(self.mask).count_ones()
    }

    fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & u32::from(self.mask) == u32::from(self.dest) & u32::from(self.mask)
    }
}

/// One entry of the IPv4 neighbour (ARP) table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Neighbour address.
    pub addr: Ipv4Addr,
    /// Its link-layer address.
    pub mac: [u8; 6],
    /// Interface it was learnt on.
    pub ifname: String,
    /// Whether resolution completed (incomplete entries carry a zero MAC).
    pub complete: bool,
}

/// Where packets for an underlay address go: the neighbour to hand them to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The gateway, or the destination itself when it is on-link.
    pub addr: IpAddr,
    /// Output interface.
    pub ifname: String,
    /// The neighbour's MAC address.
    pub mac: [u8; 6],
}

/// `/proc/net/route` prints each `__be32` as a host-order hex integer.
fn proc_ipv4(hex: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

/// Parses the text of `/proc/net/route` (header line first). Routes that are not up are left out.
pub fn parse_routes(text: &str) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad = || Error::Neighbour(format!("/proc/net/route line {}: {line:?}", n + 1));
        let [
            ifname,
            dest,
            gateway,
            flags,
            _refcnt,
            _use,
            metric,
            mask,
            ..,
        ] = f.as_slice()
        else {
            return Err(bad());
        };
        let dest = proc_ipv4(dest).ok_or_else(bad)?;
        let gateway = proc_ipv4(gateway).ok_or_else(bad)?;
        let flags = u16::from_str_radix(flags, 16).map_err(|_| bad())?;
        let metric = metric.parse().map_err(|_| bad())?;
        let mask = proc_ipv4(mask).ok_or_else(bad)?;
        if flags & RTF_UP == 0 {
            continue;
        }
        out.push(Route {
            ifname: ifname.to_string(),
            dest,
            mask,
            gateway: (flags & RTF_GATEWAY != 0).then_some(gateway),
            metric,
        });
    }
    Ok(out)
}

/// The route the kernel's main table would pick for `addr`: longest prefix, then lowest metric.
pub fn route_to(routes: &[Route], addr: Ipv4Addr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| r.contains(addr))
        .min_by_key(|r| (std::cmp::Reverse(r.prefix_len()), r.metric))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses the text of `/proc/net/arp` (header line first).
pub fn parse_arp(text: &str) -> Result<Vec<Neighbour>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad = || Error::Neighbour(format!("/proc/net/arp line {}: {line:?}", n + 1));
        let [addr, _hw_type, flags, mac, _mask, ifname, ..] = f.as_slice() else {
            return Err(bad());
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let flags = u16::from_str_radix(flags.trim_start_matches("0x"), 16).map_err(|_| bad())?;
        let mac = parse_mac(mac).ok_or_else(bad)?;
        out.push(Neighbour {
            addr,
            mac,
            ifname: ifname.to_string(),
            complete: flags & ATF_COM != 0,
        });
    }
    Ok(out)
}

/// The completed neighbour entry for `addr` on `ifname`, if any.
pub fn find_neighbour<'a>(
    table: &'a [Neighbour],
    addr: Ipv4Addr,
    ifname: &str,
) -> Option<&'a Neighbour> {
    table
        .iter()
        .find(|n| n.addr == addr && n.ifname == ifname && n.complete && n.mac != [0; 6])
}

fn read_proc_net(file: &str) -> Result<String> {
    // `thread-self`, not `self`: network namespaces are per thread.
    let path = format!("/proc/thread-self/net/{file}");
    std::fs::read_to_string(&path).map_err(|e| Error::Neighbour(format!("{path}: {e}")))
}

/// Resolves the next hop towards underlay address `dest` (IPv4 or IPv6) in the calling thread's
/// network namespace: route lookup, then the neighbour's MAC. When the neighbour is not
/// resolved yet, one empty UDP datagram to `dest`'s discard port makes the kernel resolve it,
/// and the table is polled until `timeout`.
pub fn next_hop(dest: IpAddr, timeout: Duration) -> Result<NextHop> {
    match dest {
        IpAddr::V4(d) => next_hop4(d, timeout),
        IpAddr::V6(d) => next_hop6(d, timeout),
    }
}

fn next_hop4(dest: Ipv4Addr, timeout: Duration) -> Result<NextHop> {
    let routes = parse_routes(&read_proc_net("route")?)?;
    let route = route_to(&routes, dest)
        .ok_or_else(|| Error::Neighbour(format!("no route to {dest}")))?
        .clone();
    let hop = route.gateway.unwrap_or(dest);
    let deadline = Instant::now() + timeout;
    let mut provoked = false;
    loop {
        let table = parse_arp(&read_proc_net("arp")?)?;
        if let Some(n) = find_neighbour(&table, hop, &route.ifname) {
            return Ok(NextHop {
                addr: IpAddr::V4(hop),
                ifname: route.ifname,
                mac: n.mac,
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Neighbour(format!(
                "next hop {hop} on {} towards {dest} not resolved within {timeout:?}",
                route.ifname
            )));
        }
        if !provoked {
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
            s.send_to(&[], SocketAddrV4::new(dest, DISCARD_PORT))?;
            provoked = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The MAC address of interface `ifname` in the calling thread's network namespace.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6]> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| Error::Io(e.into()))?;
    for a in addrs {
        if a.interface_name != ifname {
            continue;
        }
        if let Some(mac) = a
            .address
            .as_ref()
            .and_then(|s| s.as_link_addr())
            .and_then(|l| l.addr())
        {
            return Ok(mac);
        }
    }
    Err(Error::Neighbour(format!(
        "interface {ifname} has no MAC address"
    )))
}

/// The first IPv4 address of interface `ifname` in the calling thread's network namespace.
pub fn interface_ipv4(ifname: &str) -> Result<Option<Ipv4Addr>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| Error::Io(e.into()))?;
    Ok(addrs
        .filter(|a| a.interface_name == ifname)
        .find_map(|a| a.address.as_ref()?.as_sockaddr_in().map(|s| s.ip())))
}

/// Every IPv4 and IPv6 address of the calling thread's network namespace.
pub fn local_addrs() -> Result<std::collections::BTreeSet<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| Error::Io(e.into()))?;
    Ok(addrs
        .filter_map(|a| {
            let sa = a.address.as_ref()?;
            sa.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| sa.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .collect())
}

/// One IPv6 route (any table, as `/proc/net/ipv6_route` lists them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route6 {
    /// Output interface.
    pub ifname: String,
    /// Destination network.
    pub dest: Ipv6Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Gateway, when the destination is not on-link.
    pub gateway: Option<Ipv6Addr>,
    /// Route metric.
    pub metric: u32,
}

/// Route flag: unreachable / prohibit / blackhole.
const RTF_REJECT: u32 = 0x0200;

fn hex_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
}

/// Parses the text of `/proc/net/ipv6_route` (no header line). Routes that are not up, and
/// reject routes, are left out.
pub fn parse_routes6(text: &str) -> Result<Vec<Route6>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad = || Error::Neighbour(format!("/proc/net/ipv6_route line {}: {line:?}", n + 1));
        let [
            dest,
            plen,
            _src,
            _src_plen,
            gateway,
            metric,
            _refcnt,
            _use,
            flags,
            ifname,
            ..,
        ] = f.as_slice()
        else {
            return Err(bad());
        };
        let dest = hex_ipv6(dest).ok_or_else(bad)?;
        let prefix_len = u8::from_str_radix(plen, 16).map_err(|_| bad())?;
        let gateway = hex_ipv6(gateway).ok_or_else(bad)?;
        let metric = u32::from_str_radix(metric, 16).map_err(|_| bad())?;
        let flags = u32::from_str_radix(flags, 16).map_err(|_| bad())?;
        if prefix_len > 128 {
            return Err(bad());
        }
        if flags & u32::from(RTF_UP) == 0 || flags & RTF_REJECT != 0 {
            continue;
        }
        out.push(Route6 {
            ifname: ifname.to_string(),
            dest,
            prefix_len,
            gateway: (flags & u32::from(RTF_GATEWAY) != 0).then_some(gateway),
            metric,
        });
    }
    Ok(out)
}

/// The IPv6 route the kernel would pick for `addr`: longest prefix, then lowest metric.
pub fn route6_to(routes: &[Route6], addr: Ipv6Addr) -> Option<&Route6> {
    routes
        .iter()
        .filter(|r| {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(r.prefix_len))
                .unwrap_or(0);
            u128::from(addr) & mask == u128::from(r.dest) & mask
        })
        .min_by_key(|r| (std::cmp::Reverse(r.prefix_len), r.metric))
}

/// The MAC in one line of `ip -6 neigh show` output, when resolution completed (`lladdr`
/// present, state neither `FAILED` nor `INCOMPLETE`).
pub fn parse_ip_neigh_line(line: &str) -> Option<[u8; 6]> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.iter().any(|w| *w == "FAILED" || *w == "INCOMPLETE") {
        return None;
    }
    let at = f.iter().position(|w| *w == "lladdr")?;
    parse_mac(f.get(at + 1)?).filter(|m| *m != [0; 6])
}

/// The MAC of IPv6 neighbour `addr` on `ifname`, if resolved (asks `ip -6 neigh show`).
fn neighbour6(addr: Ipv6Addr, ifname: &str) -> Result<Option<[u8; 6]>> {
    let out = std::process::Command::new("ip")
        .args([
            "-6",
            "neigh",
            "show",
            "to",
            &addr.to_string(),
            "dev",
            ifname,
        ])
        .output()
        .map_err(|e| Error::Neighbour(format!("ip -6 neigh: {e}")))?;
    if !out.status.success() {
        return Err(Error::Neighbour(format!(
            "ip -6 neigh show to {addr} dev {ifname}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(parse_ip_neigh_line))
}

fn next_hop6(dest: Ipv6Addr, timeout: Duration) -> Result<NextHop> {
    let routes = parse_routes6(&read_proc_net("ipv6_route")?)?;
    let route = route6_to(&routes, dest)
        .ok_or_else(|| Error::Neighbour(format!("no route to {dest}")))?
        .clone();
    let hop = route.gateway.unwrap_or(dest);
    let deadline = Instant::now() + timeout;
    let mut provoked = false;
    loop {
        if let Some(mac) = neighbour6(hop, &route.ifname)? {
            return Ok(NextHop {
                addr: IpAddr::V6(hop),
                ifname: route.ifname,
                mac,
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Neighbour(format!(
                "next hop {hop} on {} towards {dest} not resolved within {timeout:?}",
                route.ifname
            )));
        }
        if !provoked {
            let s = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
            s.send_to(&[], SocketAddr::from((dest, DISCARD_PORT)))?;
            provoked = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The MTU of interface `ifname` in the calling thread's network namespace (`SIOCGIFMTU` on a
/// socket opened there; sysfs would show the namespace it was mounted in instead).
pub fn interface_mtu(ifname: &str) -> Result<u16> {
    use std::os::fd::AsRawFd as _;
    let name = ifname.as_bytes();
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(Error::Neighbour(format!(
            "{ifname:?} is not an interface name"
        )));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as nix::libc::c_char;
    }
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    // SAFETY: SIOCGIFMTU reads a NUL-terminated name from and writes the MTU into `req`, which
    // lives across the call; the socket fd is valid.
    let rc = unsafe { nix::libc::ioctl(sock.as_raw_fd(), nix::libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return Err(Error::Neighbour(format!(
            "MTU of {ifname}: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u16::try_from(mtu.max(0)).unwrap_or(u16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a lab node (little-endian host): default via 10.0.1.1 dev eth0, the
    // on-link 10.0.1.0/24, a more specific 10.0.9.0/24 via 10.0.1.9 with metric 5, a route
    // that is down.
    const ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0009000A\t0901000A\t0003\t0\t0\t5\t00FFFFFF\t0\t0\t0
eth0\t0009000A\t0801000A\t0003\t0\t0\t1\t00FFFFFF\t0\t0\t0
eth2\t0007000A\t0701000A\t0002\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
10.0.1.1         0x1         0x2         02:fc:00:00:00:05     *        eth0
10.0.1.7         0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.1.8         0x1         0x2         0a:0b:0c:0d:0e:0f     *        eth1
";

    #[test]
    fn route_fields_are_decoded_from_host_order_hex() {
        let routes = parse_routes(ROUTES).expect("parse");
        assert_eq!(routes.len(), 4, "the down route is left out");
        assert_eq!(routes[0].gateway, Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(routes[0].mask, Ipv4Addr::UNSPECIFIED);
        assert_eq!(routes[1].dest, Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(routes[1].mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(routes[1].gateway, None);
    }

    #[test]
    fn longest_prefix_then_lowest_metric_wins() {
        let routes = parse_routes(ROUTES).expect("parse");
        let r = route_to(&routes, Ipv4Addr::new(10, 0, 9, 3)).expect("route");
        assert_eq!(
            (r.ifname.as_str(), r.gateway),
            ("eth0", Some(Ipv4Addr::new(10, 0, 1, 8)))
        );
        let r = route_to(&routes, Ipv4Addr::new(10, 0, 1, 20)).expect("route");
        assert_eq!(r.gateway, None, "on-link");
        let r = route_to(&routes, Ipv4Addr::new(192, 168, 0, 1)).expect("route");
        assert_eq!(r.gateway, Some(Ipv4Addr::new(10, 0, 1, 1)), "default");
        assert!(route_to(&routes[1..2], Ipv4Addr::new(10, 0, 2, 1)).is_none());
    }

    #[test]
    fn only_completed_neighbours_on_the_right_interface_count() {
        let table = parse_arp(ARP).expect("parse");
        assert_eq!(table.len(), 3);
        let n = find_neighbour(&table, Ipv4Addr::new(10, 0, 1, 1), "eth0").expect("found");
        assert_eq!(n.mac, [0x02, 0xfc, 0, 0, 0, 5]);
        assert!(find_neighbour(&table, Ipv4Addr::new(10, 0, 1, 7), "eth0").is_none());
        assert!(find_neighbour(&table, Ipv4Addr::new(10, 0, 1, 8), "eth0").is_none());
        assert!(find_neighbour(&table, Ipv4Addr::new(10, 0, 1, 8), "eth1").is_some());
    }

    // A lab node with an IPv6 underlay: default via fd00:0:1::1 on eth0 (metric 1024), the
    // on-link fd00:0:1::/64, a more specific fd00:0:9::/64 via fd00:0:1::9, an unreachable route.
    const ROUTES6: &str = "\
fd000000000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd000000000900000000000000000000 40 00000000000000000000000000000000 00 fd000000000100000000000000000009 00000400 00000001 00000000 00000003     eth0
fd000000000700000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00200201       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000100000000000000000001 00000400 00000001 00000000 00000003     eth0
";

    #[test]
    fn ipv6_routes_pick_the_longest_prefix_and_skip_reject_routes() {
        let routes = parse_routes6(ROUTES6).expect("parse");
        assert_eq!(routes.len(), 3, "the unreachable route is left out");
        let a = |s: &str| s.parse::<Ipv6Addr>().expect("addr");
        let r = route6_to(&routes, a("fd00:0:9::3")).expect("route");
        assert_eq!(r.gateway, Some(a("fd00:0:1::9")));
        let r = route6_to(&routes, a("fd00:0:1::20")).expect("route");
        assert_eq!((r.gateway, r.ifname.as_str()), (None, "eth0"), "on-link");
        let r = route6_to(&routes, a("fd00:0:7::1")).expect("route");
        assert_eq!(r.gateway, Some(a("fd00:0:1::1")), "default, not the reject");
        assert!(parse_routes6("fd00 40").is_err());
    }

    #[test]
    fn ip_neigh_lines_give_a_mac_only_once_resolved() {
        assert_eq!(
            parse_ip_neigh_line("fd00:0:1::1 lladdr 02:fc:00:00:00:05 router REACHABLE"),
            Some([0x02, 0xfc, 0, 0, 0, 5])
        );
        assert_eq!(
            parse_ip_neigh_line("fd00:0:1::1 lladdr 02:fc:00:00:00:05 STALE"),
            Some([0x02, 0xfc, 0, 0, 0, 5])
        );
        assert_eq!(parse_ip_neigh_line("fd00:0:1::1  INCOMPLETE"), None);
        assert_eq!(parse_ip_neigh_line("fd00:0:1::1  FAILED"), None);
        assert_eq!(parse_ip_neigh_line("fd00:0:1::1 lladdr zz"), None);
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert!(parse_routes("h\neth0 zz").is_err());
        assert!(parse_arp("h\n10.0.0.1 0x1 0x2 02:00 * eth0").is_err());
        assert!(parse_arp("h\n10.0.0.1 0x1 0x2 02:00:00:00:00:00:00 * eth0").is_err());
    }

    #[test]
    fn this_namespaces_real_tables_parse() {
        // The kernel's own output, whatever this namespace holds, must parse.
        let routes = parse_routes(&read_proc_net("route").expect("read")).expect("parse");
        let _ = parse_arp(&read_proc_net("arp").expect("read")).expect("parse");
        let _ = parse_routes6(&read_proc_net("ipv6_route").expect("read")).expect("parse");
        for r in &routes {
            assert!(!r.ifname.is_empty());
        }
    }
}
