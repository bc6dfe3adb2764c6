//! Bidirectional Forwarding Detection for BGP sessions: RFC 5880 asynchronous mode over RFC 5881
//! single-hop (UDP 3784) and RFC 5883 multihop (UDP 4784), IPv4 and IPv6.
//!
//! - [`packet`]: the control packet codec (pure; bytes in, bytes out).
//! - [`auth`]: RFC 5880 §6.7.4 Keyed SHA1 / Meticulous Keyed SHA1 signing and checking (pure,
//!   apart from reading the key file).
//! - [`session`]: the per-session state machine (pure; time is an input, no sockets, no clock).
//! - [`io`]: the tokio driver owning the sockets, the clock and the subscriber channels; this is
//!   the only I/O boundary of the module.
//!
//! The BGP driver registers one session per BGP peer that has `bfd` configured with
//! [`Bfd::register`] and tears the BGP session down when a [`BfdEvent`] reports
//! [`State::Down`] after [`State::Up`].
//!
//! Authentication: Keyed SHA1 and Meticulous Keyed SHA1 (Auth Type 4 and 5). Simple Password
//! and the MD5 types are not implemented; a session with authentication configured discards
//! them like any packet of the wrong type, one without discards every packet with the A bit
//! (RFC 5880 §6.8.6).
//!
//! Not implemented: demand mode and the echo function (we never set the D bit and always
//! advertise a Required Min Echo RX Interval of zero).

pub mod auth;
pub mod error;
pub mod io;
pub mod packet;
pub mod session;

pub use auth::AuthKey;
pub use error::{Error, Result};
pub use io::{AuthFailureCounter, Bfd, BfdEvent, BfdSession, SessionKey, SessionSpec};
pub use packet::{AuthSection, AuthType, Diagnostic, Packet, Repr, Sha1Auth, State};
pub use session::{Input, Output, Prng, Session, SessionConfig};
