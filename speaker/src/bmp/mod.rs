//! BGP Monitoring Protocol (RFC 7854): the agent reports its peers and the routes they send to
//! one or more collectors named in `bgp.bmp`.
//!
//! - [`message`]: the BMP messages as bytes (pure).
//! - [`feed`]: which messages a peer's events become, and the full dump a newly connected
//!   collector gets (pure over the sessions' state).
//! - [`collector`]: one task per collector: connect with backoff, write from a queue bounded in
//!   bytes (its I/O boundary is that socket).
//! - [`hub`]: the collectors of one BGP instance, fed by the instance's owner task.

pub mod collector;
pub mod feed;
pub mod hub;
pub mod message;
