//! Socket options neither std nor socket2 offer: TCP MD5 signatures (RFC 2385, `TCP_MD5SIG`) and
//! the GTSM receive filters (RFC 5082, `IP_MINTTL` / `IPV6_MINHOPCOUNT`).
//!
//! I/O boundary: `setsockopt(2)` on a socket the caller owns. The options are declared with nix's
//! public `setsockopt_impl!` extension macro, so the one `libc::setsockopt` call lives in nix's
//! expansion and this crate keeps `unsafe_code = "forbid"`. The MD5 option value is built as plain
//! bytes in the kernel's `struct tcp_md5sig` layout (no `repr(C)` struct whose padding could
//! differ), and nix passes its address and exact length.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

use nix::sys::socket::setsockopt;

use crate::error::{Error, Result};

/// Longest key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// Size of `struct tcp_md5sig`: sockaddr_storage (128) + flags, prefixlen (1 + 1) + keylen (2) +
/// ifindex (4) + key (80).
const TCP_MD5SIG_LEN: usize = 128 + 1 + 1 + 2 + 4 + MAX_KEY_LEN;

/// `TCP_MD5SIG` with the value as raw `struct tcp_md5sig` bytes.
#[derive(Debug, Clone, Copy)]
struct TcpMd5Sig;
nix::setsockopt_impl!(
    TcpMd5Sig,
    libc::IPPROTO_TCP,
    libc::TCP_MD5SIG,
    [u8; TCP_MD5SIG_LEN],
    nix::sys::socket::sockopt::SetStruct<'_, [u8; TCP_MD5SIG_LEN]>
);

/// `IP_MINTTL`: drop IPv4 packets arriving with a smaller TTL.
#[derive(Debug, Clone, Copy)]
struct IpMinTtl;
nix::setsockopt_impl!(
    IpMinTtl,
    libc::IPPROTO_IP,
    libc::IP_MINTTL,
    libc::c_int,
    nix::sys::socket::sockopt::SetStruct<'_, libc::c_int>
);

/// `IPV6_MINHOPCOUNT`: drop IPv6 packets arriving with a smaller hop limit.
#[derive(Debug, Clone, Copy)]
struct Ipv6MinHopCount;
nix::setsockopt_impl!(
    Ipv6MinHopCount,
    libc::IPPROTO_IPV6,
    libc::IPV6_MINHOPCOUNT,
    libc::c_int,
    nix::sys::socket::sockopt::SetStruct<'_, libc::c_int>
);

/// Encodes `struct tcp_md5sig` for `peer` and `key` (an empty key deletes the peer's key).
///
/// `v6_socket` says whether the socket is AF_INET6: such a socket needs IPv4 peers written as
/// IPv4-mapped IPv6 addresses (the kernel rejects AF_INET addresses on it).
fn md5sig_bytes(peer: IpAddr, key: &[u8], v6_socket: bool) -> Result<[u8; TCP_MD5SIG_LEN]> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::Md5KeyTooLong(key.len()));
    }
    let mut buf = [0u8; TCP_MD5SIG_LEN];
    let addr = match (peer, v6_socket) {
        (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
        (other, _) => other,
    };
    match addr {
        IpAddr::V4(v4) => {
            // struct sockaddr_in: family (host order), port (0), address.
            buf[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            buf[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            // struct sockaddr_in6: family, port, flowinfo, address, scope id.
            buf[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            buf[8..24].copy_from_slice(&v6.octets());
        }
    }
    // Offsets 128 (flags) and 129 (prefixlen) stay 0: an exact-address key, no ifindex.
    // The length fits: checked against MAX_KEY_LEN above.
    buf[130..132].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    buf.get_mut(136..136 + key.len())
        .ok_or(Error::Md5KeyTooLong(key.len()))?
        .copy_from_slice(key);
    Ok(buf)
}

/// Installs (or, with an empty key, removes) the TCP MD5 key for `peer` on `socket`.
///
/// On a listening socket the key is inherited by connections accepted from `peer`.
pub fn set_md5_key(socket: &impl AsFd, peer: IpAddr, key: &[u8], v6_socket: bool) -> Result<()> {
    let value = md5sig_bytes(peer, key, v6_socket)?;
    setsockopt(socket, TcpMd5Sig, &value).map_err(|errno| Error::SockOpt {
        option: "TCP_MD5SIG",
        errno,
    })
}

/// Sets the GTSM minimum TTL / hop limit for packets from `peer` (RFC 5082 §3: 255 − (hops − 1)).
pub fn set_min_ttl(socket: &impl AsFd, peer: SocketAddr, min_ttl: u8) -> Result<()> {
    let value = libc::c_int::from(min_ttl);
    let peer_ip = match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match peer_ip {
        IpAddr::V4(_) => setsockopt(socket, IpMinTtl, &value).map_err(|errno| Error::SockOpt {
            option: "IP_MINTTL",
            errno,
        }),
        IpAddr::V6(_) => {
            setsockopt(socket, Ipv6MinHopCount, &value).map_err(|errno| Error::SockOpt {
                option: "IPV6_MINHOPCOUNT",
                errno,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    use super::*;

    #[test]
    fn md5sig_layout_matches_the_kernel_struct() {
        let bytes =
            md5sig_bytes(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), b"secret", false).expect("fits");
        assert_eq!(
            u16::from_ne_bytes([bytes[0], bytes[1]]),
            libc::AF_INET as u16
        );
        assert_eq!(&bytes[4..8], &[10, 1, 2, 3]);
        assert_eq!(u16::from_ne_bytes([bytes[130], bytes[131]]), 6);
        assert_eq!(&bytes[136..142], b"secret");
        let mapped =
            md5sig_bytes(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), b"k", true).expect("fits");
        assert_eq!(
            u16::from_ne_bytes([mapped[0], mapped[1]]),
            libc::AF_INET6 as u16
        );
        assert_eq!(
            &mapped[8..24],
            &Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets()
        );
    }

    #[test]
    fn overlong_key_is_refused_before_the_kernel() {
        let error =
            md5sig_bytes(IpAddr::V6(Ipv6Addr::LOCALHOST), &[b'k'; 81], true).expect_err("too long");
        assert!(matches!(error, Error::Md5KeyTooLong(81)));
    }

    #[test]
    fn kernel_accepts_md5_key_and_min_ttl_on_real_sockets() {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind v4");
        set_md5_key(&v4, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), b"key", false)
            .expect("TCP_MD5SIG on AF_INET");
        set_min_ttl(&v4, "127.0.0.2:179".parse().expect("addr"), 255).expect("IP_MINTTL");
        let v6 = TcpListener::bind("[::1]:0").expect("bind v6");
        set_md5_key(&v6, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), b"key", true)
            .expect("mapped key on AF_INET6");
        set_md5_key(&v6, IpAddr::V6(Ipv6Addr::LOCALHOST), b"key", true).expect("v6 key");
        set_min_ttl(&v6, "[::1]:179".parse().expect("addr"), 254).expect("IPV6_MINHOPCOUNT");
    }
}
