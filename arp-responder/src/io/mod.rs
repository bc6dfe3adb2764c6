//! The I/O boundary: enumerating and selecting interfaces ([`select`]), AF_PACKET sockets bound to
//! one interface ([`packet`]), solicited-node multicast membership for IPv6 VIPs ([`mcast`]) and
//! rtnetlink link events ([`netlink`]). Everything else in the crate is pure.
//!
//! No `unsafe` here (the workspace forbids it): sockets come from socket2, the AF_PACKET
//! `sockaddr_ll` to bind to is the one `getifaddrs(3)` returns for the interface (via nix), and the
//! kernel-side classic BPF filter goes through socket2's `attach_filter`.

pub mod mcast;
pub mod netlink;
pub mod packet;
pub mod select;
