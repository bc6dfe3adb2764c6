//! rtnetlink link events: a NETLINK_ROUTE socket subscribed to RTMGRP_LINK. Any message (a link
//! added, removed, renamed, going up or down) makes the driver re-enumerate interfaces, so the
//! messages themselves need not be decoded.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};

const RTMGRP_LINK: u32 = 1;

/// A subscription to link events.
#[derive(Debug)]
pub struct LinkEvents {
    fd: AsyncFd<Socket>,
}

impl LinkEvents {
    /// Subscribes to link events of the current network namespace.
    pub fn subscribe() -> Result<Self> {
        let ctx = "subscribing to rtnetlink link events";
        let mut s = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(ctx, e))?;
        s.bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|e| Error::io(ctx, e))?;
        s.set_non_blocking(true).map_err(|e| Error::io(ctx, e))?;
        // The socket moves into the AsyncFd, which owns it until drop, and nothing else holds or
        // closes its descriptor: the I/O-safety hazard behind the deprecation cannot arise.
        // `AsyncFd::register`, its replacement, is `unsafe`, which this crate forbids.
        #[expect(
            deprecated,
            reason = "the safe constructor; register() needs unsafe, forbidden here"
        )]
        Ok(LinkEvents {
            fd: AsyncFd::new(s).map_err(|e| Error::io(ctx, e))?,
        })
    }

    /// Waits for at least one link event and consumes all queued ones.
    pub async fn changed(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut got = false;
            loop {
                let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
                match guard.get_inner().recv(&mut buf, 0) {
                    Ok(_) => got = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ENOBUFS: events were lost, which only means "something changed".
                    Err(e) if e.raw_os_error() == Some(105) => got = true,
                    Err(e) => return Err(e),
                }
            }
            guard.clear_ready();
            if got {
                return Ok(());
            }
        }
    }
}
