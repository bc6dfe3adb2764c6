//! AF_PACKET sockets bound to one interface. Each socket gets a classic BPF filter so the kernel
//! only queues what the announcer needs: ARP, IPv6 Neighbor Solicitations (without extension
//! headers), Herald heartbeats and in-band VLAN-tagged frames; never our own outgoing frames and
//! never frames whose VLAN tag the kernel stripped into metadata (those belong to the VLAN
//! sub-interface, which has its own socket — answering them here would answer on the wrong VLAN).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::select::Link;
use crate::error::{Error, Result};

const ETH_P_ALL: u16 = 0x0003;
const SKF_AD_OFF: u32 = 0xffff_f000; // -0x1000
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
const PACKET_OUTGOING: u32 = 4;
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// The classic BPF program attached to every socket (see the module docs).
fn filter() -> [SockFilter; 16] {
    [
        /* 0 */ SockFilter::new(LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
        /* 1 */ SockFilter::new(JEQ_K, 0, 12, 0), // tag in metadata -> drop
        /* 2 */ SockFilter::new(LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        /* 3 */ SockFilter::new(JEQ_K, 10, 0, PACKET_OUTGOING), // our own -> drop
        /* 4 */ SockFilter::new(LD_H_ABS, 0, 0, 12),
        /* 5 */ SockFilter::new(JEQ_K, 9, 0, 0x0806),
        /* 6 */ SockFilter::new(JEQ_K, 8, 0, 0x88b5),
        /* 7 */ SockFilter::new(JEQ_K, 7, 0, 0x8100),
        /* 8 */ SockFilter::new(JEQ_K, 6, 0, 0x88a8),
        /* 9 */ SockFilter::new(JEQ_K, 0, 4, 0x86dd),
        /* 10 */ SockFilter::new(LD_B_ABS, 0, 0, 20), // IPv6 next header
        /* 11 */ SockFilter::new(JEQ_K, 0, 2, 58),
        /* 12 */ SockFilter::new(LD_B_ABS, 0, 0, 54), // ICMPv6 type
        /* 13 */ SockFilter::new(JEQ_K, 1, 0, 135),
        /* 14 */ SockFilter::new(RET_K, 0, 0, 0),
        /* 15 */ SockFilter::new(RET_K, 0, 0, 0x0004_0000),
    ]
}

/// A non-blocking AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
    name: String,
}

impl PacketSocket {
    /// Opens a socket on `link`. Needs CAP_NET_RAW.
    pub fn open(link: &Link) -> Result<Self> {
        let ctx = |what: &str| format!("{what} AF_PACKET socket on {}", link.name);
        let proto = Protocol::from(i32::from(ETH_P_ALL.to_be()));
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(proto))
            .map_err(|e| Error::io(ctx("opening"), e))?;
        sock.attach_filter(&filter())
            .map_err(|e| Error::io(ctx("filtering"), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| Error::io(ctx("configuring"), e))?;
        nix::sys::socket::bind(sock.as_raw_fd(), &link.addr)
            .map_err(|e| Error::io(ctx("binding"), e.into()))?;
        // Between socket(2) and bind(2) the socket saw every interface: drop what it queued.
        let mut buf = [0u8; 2048];
        while (&sock).read(&mut buf).is_ok() {}
        // The socket moves into the AsyncFd, which owns it until drop, and nothing else holds or
        // closes its descriptor: the I/O-safety hazard behind the deprecation cannot arise.
        // `AsyncFd::register`, its replacement, is `unsafe`, which this crate forbids.
        #[expect(
            deprecated,
            reason = "the safe constructor; register() needs unsafe, forbidden here"
        )]
        let fd = AsyncFd::new(sock).map_err(|e| Error::io(ctx("registering"), e))?;
        Ok(PacketSocket {
            fd,
            name: link.name.clone(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives one frame into `buf`, returning its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one frame without waiting; a full send queue is reported as `WouldBlock`.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = self.fd.get_ref().write(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short AF_PACKET write",
            ));
        }
        Ok(())
    }
}
