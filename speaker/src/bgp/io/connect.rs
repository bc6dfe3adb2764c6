//! Outgoing BGP connections and the per-peer socket options shared with accepted ones: source
//! address, TTL for eBGP / multihop, GTSM (RFC 5082) and TCP MD5 (RFC 2385); the scope (interface
//! index) of a link-local peer's address.
//!
//! I/O boundary: socket creation, `setsockopt` and `connect(2)` through socket2 and tokio.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::md5;
use crate::config::PeerConfig;
use crate::error::{Error, Result};

/// Socket options for one peer, derived from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SocketOptions {
    /// TTL / hop limit of our packets; `None` leaves the system default.
    pub ttl: Option<u32>,
    /// GTSM: drop packets from the peer arriving with a lower TTL / hop limit.
    pub min_ttl: Option<u8>,
    /// TCP MD5 key.
    pub md5_key: Option<Vec<u8>>,
}

impl SocketOptions {
    /// The options for `peer`; `ebgp` says whether its AS differs from ours. Reads the password
    /// file if there is one.
    pub fn for_peer(peer: &PeerConfig, ebgp: bool) -> Result<Self> {
        let md5_key = match &peer.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
                let key = text.trim().as_bytes().to_vec();
                if key.len() > md5::MAX_KEY_LEN {
                    return Err(Error::Md5KeyTooLong(key.len()));
                }
                Some(key)
            }
            None => None,
        };
        let (ttl, min_ttl) = match (peer.gtsm, peer.ebgp_multihop) {
            // RFC 5082 §3: send with TTL 255 and accept only TTL ≥ 255 − (hops − 1) (the
            // "trusted hop count" is the number of hops to the peer).
            (Some(gtsm), _) => (Some(255), Some(255 - (gtsm.hops.0 - 1))),
            (None, Some(hops)) => (Some(u32::from(hops.0)), None),
            // Classic eBGP: the peer must be directly connected.
            (None, None) if ebgp => (Some(1), None),
            (None, None) => (None, None),
        };
        Ok(Self {
            ttl,
            min_ttl,
            md5_key,
        })
    }

    /// Applies TTL and GTSM to a connected (or accepted) socket.
    pub fn apply_to_stream(&self, socket: &impl std::os::fd::AsFd, peer: SocketAddr) -> Result<()> {
        let sock = socket2::SockRef::from(socket);
        if let Some(ttl) = self.ttl {
            let v6 = sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| a.is_ipv6());
            if v6 {
                sock.set_unicast_hops_v6(ttl)
                    .map_err(|e| Error::io("IPV6_UNICAST_HOPS", e))?;
                // A v6 socket carrying IPv4 (mapped) traffic uses IP_TTL.
                if is_v4(peer.ip()) {
                    sock.set_ttl_v4(ttl).map_err(|e| Error::io("IP_TTL", e))?;
                }
            } else {
                sock.set_ttl_v4(ttl).map_err(|e| Error::io("IP_TTL", e))?;
            }
        }
        if let Some(min) = self.min_ttl {
            md5::set_min_ttl(socket, peer, min)?;
        }
        Ok(())
    }
}

/// The interface index of `interface`, looked up now (the interface may come and go).
pub fn interface_index(interface: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(interface).map_err(|e| {
        Error::io(
            format!("interface {interface}"),
            std::io::Error::from_raw_os_error(e as i32),
        )
    })
}

/// Where to connect to a peer: its address and port, scoped to `interface` for a link-local
/// address (`fe80::1%eth1`; without the scope the kernel cannot tell the link).
pub fn target(peer: IpAddr, port: u16, interface: Option<&str>) -> Result<SocketAddr> {
    match (peer, interface) {
        (IpAddr::V6(a), Some(name)) => Ok(SocketAddr::V6(SocketAddrV6::new(
            a,
            port,
            0,
            interface_index(name)?,
        ))),
        _ => Ok(SocketAddr::new(peer, port)),
    }
}

fn is_v4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

/// Connects to `peer` from `local` (address only; the port is chosen by the kernel), with the
/// peer's socket options set before the SYN. Fails after `timeout`.
pub async fn connect(
    peer: SocketAddr,
    local: Option<IpAddr>,
    options: &SocketOptions,
    timeout: Duration,
) -> Result<TcpStream> {
    let domain = if peer.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io("socket", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("O_NONBLOCK", e))?;
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| Error::io("TCP_NODELAY", e))?;
    if let Some(local) = local {
        socket
            .bind(&SocketAddr::new(local, 0).into())
            .map_err(|e| Error::io(format!("bind {local}"), e))?;
    }
    if let Some(key) = &options.md5_key {
        md5::set_md5_key(&socket, peer.ip(), key, peer.is_ipv6())?;
    }
    options.apply_to_stream(&socket, peer)?;
    let std_stream: std::net::TcpStream = socket.into();
    let socket = TcpSocket::from_std_stream(std_stream);
    match tokio::time::timeout(timeout, socket.connect(peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(Error::io(format!("connect {peer}"), e)),
        Err(_) => Err(Error::io(
            format!("connect {peer}"),
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_targets_carry_the_interface_index_as_scope() {
        let ll: IpAddr = "fe80::2".parse().expect("ip");
        let lo = interface_index("lo").expect("lo exists");
        match target(ll, 179, Some("lo")).expect("scoped") {
            SocketAddr::V6(a) => assert_eq!((a.scope_id(), a.port()), (lo, 179)),
            other => panic!("{other}"),
        }
        let global: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(
            target(global, 179, None).expect("plain"),
            SocketAddr::new(global, 179)
        );
        let missing = target(ll, 179, Some("no-such-if0"))
            .expect_err("unknown interface")
            .to_string();
        assert!(missing.contains("no-such-if0"), "{missing}");
    }
}
