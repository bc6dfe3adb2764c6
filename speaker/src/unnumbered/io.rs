//! One task per unnumbered interface: a raw ICMPv6 socket bound to the interface sends our
//! router solicitation once and our RA every [`RA_INTERVAL`], and reads RAs; each valid one
//! ([`super::ra::validate`], hop limit from the `IPV6_HOPLIMIT` control message) names the
//! neighbour. State is bounded: one address per interface. The first neighbour heard is kept
//! while it keeps advertising; another one replaces it only after [`NEIGHBOUR_TIMEOUT`] of
//! silence, so a second router on the link cannot make the peer flap.
//!
//! I/O boundary: socket2 and nix on a tokio `AsyncFd`; failures (interface absent, no
//! permission) are logged and retried, never fatal.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ra;
use crate::bgp::io::connect::interface_index;
use crate::task::AbortOnDrop;

/// How often we send our RA (FRR's unnumbered default is 10 s too).
pub const RA_INTERVAL: Duration = Duration::from_secs(10);
/// How long a neighbour may stay silent before another may take its place.
pub const NEIGHBOUR_TIMEOUT: Duration = Duration::from_secs(60);
/// Wait before retrying an interface whose socket failed.
const RETRY: Duration = Duration::from_secs(5);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// A neighbour found (or replaced) on an interface.
pub type Found = (String, Ipv6Addr);

/// The discovery tasks, one per interface; dropping it stops them.
pub struct Discovery {
    tasks: BTreeMap<String, AbortOnDrop>,
    found_tx: mpsc::Sender<Found>,
    found_rx: mpsc::Receiver<Found>,
}

impl Default for Discovery {
    fn default() -> Self {
        let (found_tx, found_rx) = mpsc::channel(16);
        Self {
            tasks: BTreeMap::new(),
            found_tx,
            found_rx,
        }
    }
}

impl Discovery {
    /// Runs discovery on exactly `interfaces`: starts new ones, stops the others.
    pub fn watch(&mut self, interfaces: &std::collections::BTreeSet<String>) {
        self.tasks.retain(|name, _| interfaces.contains(name));
        for name in interfaces {
            if !self.tasks.contains_key(name) {
                let task = tokio::spawn(run(name.clone(), self.found_tx.clone()));
                self.tasks.insert(name.clone(), AbortOnDrop(task));
            }
        }
    }

    /// The next neighbour found (waits forever when there is none to watch).
    pub async fn found(&mut self) -> Option<Found> {
        self.found_rx.recv().await
    }
}

async fn run(interface: String, found: mpsc::Sender<Found>) {
    loop {
        if let Err(error) = discover(&interface, &found).await {
            tracing::warn!(%interface, %error, "BGP unnumbered discovery failed; retrying");
        }
        tokio::time::sleep(RETRY).await;
    }
}

fn socket(interface: &str, ifindex: u32) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    // RFC 4861 §6.1.2 / §4.2: sent and received with hop limit 255.
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_if_v6(ifindex)?;
    socket.set_multicast_loop_v6(false)?;
    socket.set_recv_hoplimit_v6(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The interface's MAC address, for the RA's source link-layer address option.
fn mac(interface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    let mut out = [0u8; 6];
    let mut parts = text.trim().split(':');
    for octet in &mut out {
        *octet = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

async fn discover(interface: &str, found: &mpsc::Sender<Found>) -> crate::error::Result<()> {
    let ifindex = interface_index(interface)?;
    let io = |what: &str, e: std::io::Error| {
        crate::error::Error::io(format!("{what} on {interface}"), e)
    };
    let socket = socket(interface, ifindex).map_err(|e| io("ICMPv6 socket", e))?;
    // The socket moves into the AsyncFd, which owns it until drop, and nothing else holds or
    // closes its descriptor: the I/O-safety hazard behind the deprecation cannot arise.
    #[expect(
        deprecated,
        reason = "the safe constructor; register() needs unsafe, forbidden here"
    )]
    let fd = AsyncFd::new(socket).map_err(|e| io("register socket", e))?;
    let advert = ra::advertisement(mac(interface));
    let send = |packet: &[u8], to: Ipv6Addr| {
        let target = SockAddr::from(SocketAddrV6::new(to, 0, 0, ifindex));
        if let Err(e) = fd.get_ref().send_to(packet, &target) {
            tracing::debug!(%interface, error = %e, "ICMPv6 send failed");
        }
    };
    send(&ra::solicitation(), ALL_ROUTERS);
    let mut tick = tokio::time::interval(RA_INTERVAL);
    let mut current: Option<(Ipv6Addr, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => send(&advert, ALL_NODES),
            ready = fd.readable() => {
                let mut guard = ready.map_err(|e| io("wait for ICMPv6", e))?;
                while let Some((source, hop_limit, packet)) = receive(fd.get_ref())? {
                    match ra::validate(&packet, source, hop_limit) {
                        Ok(()) => {}
                        Err(ra::RaError::NotRa(_)) => continue,
                        Err(why) => {
                            tracing::debug!(%interface, %source, %why, "router advertisement ignored");
                            continue;
                        }
                    }
                    let (next, replaced) = heard(current, source, Instant::now());
                    current = next;
                    if replaced {
                        tracing::info!(%interface, neighbour = %source, "BGP unnumbered neighbour found");
                        if found.send((interface.to_owned(), source)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                guard.clear_ready();
            }
        }
    }
}

/// The neighbour after a valid RA from `source` at `now`, and whether it is a new one: the
/// current neighbour is kept (and refreshed) while it advertises; another takes its place only
/// once the current one has been silent for [`NEIGHBOUR_TIMEOUT`].
fn heard(
    current: Option<(Ipv6Addr, Instant)>,
    source: Ipv6Addr,
    now: Instant,
) -> (Option<(Ipv6Addr, Instant)>, bool) {
    match current {
        None => (Some((source, now)), true),
        Some((address, _)) if address == source => (Some((source, now)), false),
        Some((_, last)) if now.duration_since(last) > NEIGHBOUR_TIMEOUT => {
            (Some((source, now)), true)
        }
        kept => (kept, false),
    }
}

/// One datagram, if one is waiting: source, hop limit (0 when the kernel gave none) and the
/// ICMPv6 message.
fn receive(socket: &Socket) -> crate::error::Result<Option<(Ipv6Addr, u8, Vec<u8>)>> {
    let mut buffer = [0u8; 1500];
    let mut control = nix::cmsg_space!(nix::libc::c_int);
    let mut iov = [std::io::IoSliceMut::new(&mut buffer)];
    let message = match recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN) => return Ok(None),
        Err(e) => {
            return Err(crate::error::Error::io(
                "receive ICMPv6",
                std::io::Error::from(e),
            ));
        }
    };
    let bytes = message.bytes;
    let source = message.address.map(|a| a.ip());
    let mut hop_limit = 0;
    if let Ok(cmsgs) = message.cmsgs() {
        for cmsg in cmsgs {
            if let ControlMessageOwned::Ipv6HopLimit(h) = cmsg {
                hop_limit = u8::try_from(h).unwrap_or(0);
            }
        }
    }
    let Some(source) = source else {
        return Ok(Some((Ipv6Addr::UNSPECIFIED, 0, Vec::new())));
    };
    Ok(Some((
        source,
        hop_limit,
        buffer.get(..bytes).unwrap_or_default().to_vec(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_neighbour_stays_until_it_falls_silent() {
        let a: Ipv6Addr = "fe80::a".parse().expect("ip");
        let b: Ipv6Addr = "fe80::b".parse().expect("ip");
        let t0 = Instant::now();
        let (current, new) = heard(None, a, t0);
        assert!(new);
        // Another router on the link does not take over while `a` advertises.
        let (current, new) = heard(current, b, t0 + Duration::from_secs(5));
        assert!(!new);
        assert_eq!(current.map(|c| c.0), Some(a));
        let (current, new) = heard(current, a, t0 + Duration::from_secs(50));
        assert!(!new, "a refresh is not news");
        let (current, new) = heard(current, b, t0 + Duration::from_secs(100));
        assert!(!new, "a was heard 50 s ago");
        let (current, new) = heard(current, b, t0 + Duration::from_secs(111));
        assert!(new, "a silent for more than {NEIGHBOUR_TIMEOUT:?}");
        assert_eq!(current.map(|c| c.0), Some(b));
    }

    #[test]
    fn mac_addresses_parse_from_sysfs_text() {
        assert_eq!(mac("lo"), Some([0; 6]));
        assert_eq!(mac("no-such-if0"), None);
    }
}
