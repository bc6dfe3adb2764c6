//! The BGP instance's I/O: sockets (connect, listen, socket options), message framing and the
//! owner task that drives every peer's [`super::session::Session`].

pub mod codec;
pub mod connect;
pub mod instance;
pub mod link_local;
pub mod listener;
pub mod md5;
