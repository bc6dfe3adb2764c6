//! `#[repr(C)]` map keys and values, protocol constants and the pure packet arithmetic (jhash,
//! Internet checksums) shared by the eBPF programs and the user-space loader. `no_std`, no I/O, no
//! implicit padding: every struct's fields add up to its size, which the tests pin.
//!
//! Nothing here panics: `unwrap`, `expect` and unchecked indexing are denied outside tests, for
//! the eBPF build of this crate as for the user-space one.
#![no_std]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod csum;
pub mod hash;
pub mod maps;

pub use maps::*;

/// Geneve's IANA UDP port.
pub const GENEVE_PORT: u16 = 6081;
/// Geneve protocol type for an inner Ethernet frame (Transparent Ethernet Bridging).
pub const ETH_P_TEB: u16 = 0x6558;
/// Option class Cilium registered for its Geneve options.
pub const GENEVE_OPT_CLASS_CILIUM: u16 = 0x014B;
/// Option type of Cilium's DSR option (critical bit set).
pub const GENEVE_OPT_TYPE_DSR: u8 = 0x81;
/// DSR option payload length in 4-byte words, IPv4 service: address, port, 2 bytes pad.
pub const GENEVE_OPT_DSR_LEN_V4: u8 = 2;
/// DSR option payload length in 4-byte words, IPv6 service.
pub const GENEVE_OPT_DSR_LEN_V6: u8 = 5;
/// Outer IPv4 + UDP + Geneve base header: the encapsulation's fixed bytes over an IPv4
/// underlay (the DSR option and the inner Ethernet header come on top).
pub const OUTER_FIXED_V4: usize = 20 + 8 + 8;
/// Outer IPv6 + UDP + Geneve base header: the fixed bytes over an IPv6 underlay.
pub const OUTER_FIXED_V6: usize = 40 + 8 + 8;

/// EtherType IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType IPv6.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// EtherType 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// IP protocol TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// Address family tag stored in keys: IPv4 (address in the first 4 bytes, rest zero).
pub const FAMILY_V4: u8 = 4;
/// Address family tag stored in keys: IPv6.
pub const FAMILY_V6: u8 = 6;
