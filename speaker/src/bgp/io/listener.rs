//! The passive side: one listening socket for the instance. Connections are handed to the owner
//! task, which accepts only configured peers and resets the others. TCP MD5 keys are installed on
//! the listening socket per peer address, so the kernel verifies the SYN already.
//!
//! I/O boundary: `bind`/`listen`/`accept` and `setsockopt` on the listening socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::md5;
use crate::error::{Error, Result};

/// Binds the listening socket (`::` also accepts IPv4 through mapped addresses).
pub fn bind(address: IpAddr, port: u16) -> Result<Arc<TcpListener>> {
    let addr = SocketAddr::new(address, port);
    let domain = if address.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io("socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::io("SO_REUSEADDR", e))?;
    if address.is_ipv6() {
        socket
            .set_only_v6(false)
            .map_err(|e| Error::io("IPV6_V6ONLY", e))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("O_NONBLOCK", e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| Error::io(format!("bind {addr}"), e))?;
    socket
        .listen(128)
        .map_err(|e| Error::io(format!("listen {addr}"), e))?;
    let std_listener: std::net::TcpListener = socket.into();
    let listener =
        TcpListener::from_std(std_listener).map_err(|e| Error::io("register listener", e))?;
    Ok(Arc::new(listener))
}

/// Installs (or with an empty key removes) the MD5 key for connections from `peer`.
pub fn set_peer_key(listener: &TcpListener, peer: IpAddr, key: &[u8]) -> Result<()> {
    let v6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
    md5::set_md5_key(listener, peer, key, v6)
}

/// The canonical form of a peer address (IPv4-mapped IPv6 becomes IPv4).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Accepts connections forever, sending each with its canonical peer address to `accepted`.
pub async fn accept_loop(
    listener: Arc<TcpListener>,
    accepted: mpsc::Sender<(TcpStream, SocketAddr)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if accepted.send((stream, canonical(peer))).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Resets a connection (RST instead of FIN), for peers we do not know.
pub fn reset(stream: TcpStream) {
    let sock = socket2::SockRef::from(&stream);
    let _ = sock.set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}
