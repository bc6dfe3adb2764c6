//! BMP version 3 messages (RFC 7854 §4), built as bytes ready for a collector's socket: Initiation,
//! Termination, Peer Up, Peer Down, Route Monitoring and Statistics Report. The BGP PDUs inside
//! (OPEN, UPDATE, NOTIFICATION) are encoded by bgp-proto, always with 4-octet AS numbers, so the
//! per-peer header's A flag stays clear.
//!
//! Pure: no I/O, no clock (timestamps are passed in).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_proto::{EncodeContext, Message, Notification, Open, Update};
use bytes::{BufMut, Bytes, BytesMut};

/// BMP version (RFC 7854 §4.1).
pub const VERSION: u8 = 3;
/// Common header: version (1), message length (4), message type (1).
const COMMON_HEADER_LEN: usize = 6;

/// Message types (RFC 7854 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// Route Monitoring.
    RouteMonitoring = 0,
    /// Statistics Report.
    StatisticsReport = 1,
    /// Peer Down Notification.
    PeerDown = 2,
    /// Peer Up Notification.
    PeerUp = 3,
    /// Initiation.
    Initiation = 4,
    /// Termination.
    Termination = 5,
}

/// Per-peer header flag V: the peer address is IPv6 (RFC 7854 §4.2).
const FLAG_V: u8 = 0x80;
/// Per-peer header flag L: post-policy Adj-RIB-In (RFC 7854 §4.2).
const FLAG_L: u8 = 0x40;

/// Initiation / Termination information TLV types (RFC 7854 §4.3, §4.5).
const TLV_STRING: u16 = 0;
const TLV_SYS_DESCR: u16 = 1;
const TLV_SYS_NAME: u16 = 2;
const TLV_TERMINATION_REASON: u16 = 1;

/// The per-peer header's variable fields (RFC 7854 §4.2). The peer type is always 0 (Global
/// Instance Peer) with a zero distinguisher; the A flag is clear because every PDU we put in a
/// message uses 4-octet AS numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerHeader {
    /// The peer's address (sets the V flag when IPv6).
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Post-policy Adj-RIB-In (the L flag); only meaningful in Route Monitoring and statistics.
    pub post_policy: bool,
    /// When the event happened (or the route was received), since the Unix epoch.
    pub timestamp: Duration,
}

impl PeerHeader {
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(0); // Peer Type: Global Instance Peer
        let mut flags = 0;
        if self.address.is_ipv6() {
            flags |= FLAG_V;
        }
        if self.post_policy {
            flags |= FLAG_L;
        }
        out.put_u8(flags);
        out.put_u64(0); // Peer Distinguisher
        put_address(out, self.address);
        out.put_u32(self.asn);
        out.put_slice(&self.bgp_id.octets());
        // RFC 7854 §4.2: seconds and microseconds since the epoch; the field is 32 bits wide.
        out.put_u32(u32::try_from(self.timestamp.as_secs()).unwrap_or(u32::MAX));
        out.put_u32(self.timestamp.subsec_micros());
    }
}

/// A 16-octet address field: IPv4 in the last four octets, the rest zero (RFC 7854 §4.2).
fn put_address(out: &mut BytesMut, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            out.put_bytes(0, 12);
            out.put_slice(&v4.octets());
        }
        IpAddr::V6(v6) => out.put_slice(&v6.octets()),
    }
}

/// Starts a message: the common header with a length patched by [`finish`].
fn start(kind: MessageType) -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    out.put_u8(VERSION);
    out.put_u32(0);
    out.put_u8(kind as u8);
    out
}

/// Writes the total length into the common header.
fn finish(mut out: BytesMut) -> Bytes {
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX).to_be_bytes();
    if let Some(field) = out.get_mut(1..COMMON_HEADER_LEN - 1) {
        field.copy_from_slice(&len);
    }
    out.freeze()
}

/// An information TLV: type, length, value (RFC 7854 §4.4). Values longer than a TLV holds are
/// cut at the limit.
fn put_tlv(out: &mut BytesMut, kind: u16, value: &[u8]) {
    let value = value.get(..usize::from(u16::MAX)).unwrap_or(value);
    out.put_u16(kind);
    out.put_u16(u16::try_from(value.len()).unwrap_or(u16::MAX));
    out.put_slice(value);
}

/// How BGP PDUs are encoded inside BMP messages: 4-octet AS numbers (the A flag clear), no
/// ADD-PATH identifiers, and the RFC 8654 size limit so any UPDATE a peer may send us fits.
pub fn pdu_context() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        extended_message: true,
        add_path: Vec::new(),
    }
}

fn put_pdu(out: &mut BytesMut, message: &Message) -> bgp_proto::Result<()> {
    message.encode(&pdu_context(), out)
}

/// Initiation (RFC 7854 §4.3) with the mandatory sysDescr and sysName TLVs.
pub fn initiation(sys_name: &str, sys_descr: &str) -> Bytes {
    let mut out = start(MessageType::Initiation);
    put_tlv(&mut out, TLV_SYS_DESCR, sys_descr.as_bytes());
    put_tlv(&mut out, TLV_SYS_NAME, sys_name.as_bytes());
    finish(out)
}

/// Why we end a BMP session (RFC 7854 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum TerminationReason {
    /// Session administratively closed.
    AdministrativelyClosed = 0,
    /// Unspecified reason.
    Unspecified = 1,
    /// Out of resources.
    OutOfResources = 2,
}

/// Termination (RFC 7854 §4.5): a free-text string and the reason code.
pub fn termination(reason: TerminationReason, text: &str) -> Bytes {
    let mut out = start(MessageType::Termination);
    put_tlv(&mut out, TLV_STRING, text.as_bytes());
    put_tlv(
        &mut out,
        TLV_TERMINATION_REASON,
        &(reason as u16).to_be_bytes(),
    );
    finish(out)
}

/// Peer Up Notification (RFC 7854 §4.10): our address and port on the session, the peer's
/// port, and the OPEN messages sent and received.
pub fn peer_up(
    header: &PeerHeader,
    local: SocketAddr,
    remote_port: u16,
    sent_open: &Open,
    received_open: &Open,
) -> bgp_proto::Result<Bytes> {
    let mut out = start(MessageType::PeerUp);
    PeerHeader {
        post_policy: false,
        ..*header
    }
    .encode(&mut out);
    put_address(&mut out, local.ip());
    out.put_u16(local.port());
    out.put_u16(remote_port);
    put_pdu(&mut out, &Message::Open(sent_open.clone()))?;
    put_pdu(&mut out, &Message::Open(received_open.clone()))?;
    Ok(finish(out))
}

/// Why a peer went down (RFC 7854 §4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerDownReason {
    /// 1: we closed the session with this NOTIFICATION.
    LocalNotification(Notification),
    /// 2: we closed the session without a NOTIFICATION; the FSM event that caused it.
    LocalNoNotification(u16),
    /// 3: the peer sent this NOTIFICATION.
    RemoteNotification(Notification),
    /// 4: the connection closed without a NOTIFICATION.
    RemoteNoNotification,
    /// 5: the peer was removed from the configuration (no data).
    Deconfigured,
}

impl PeerDownReason {
    fn code(&self) -> u8 {
        match self {
            PeerDownReason::LocalNotification(_) => 1,
            PeerDownReason::LocalNoNotification(_) => 2,
            PeerDownReason::RemoteNotification(_) => 3,
            PeerDownReason::RemoteNoNotification => 4,
            PeerDownReason::Deconfigured => 5,
        }
    }
}

/// Peer Down Notification (RFC 7854 §4.9).
pub fn peer_down(header: &PeerHeader, reason: &PeerDownReason) -> bgp_proto::Result<Bytes> {
    let mut out = start(MessageType::PeerDown);
    PeerHeader {
        post_policy: false,
        ..*header
    }
    .encode(&mut out);
    out.put_u8(reason.code());
    match reason {
        PeerDownReason::LocalNotification(n) | PeerDownReason::RemoteNotification(n) => {
            put_pdu(&mut out, &Message::Notification(n.clone()))?;
        }
        PeerDownReason::LocalNoNotification(event) => out.put_u16(*event),
        PeerDownReason::RemoteNoNotification | PeerDownReason::Deconfigured => {}
    }
    Ok(finish(out))
}

/// Route Monitoring (RFC 7854 §4.6): one UPDATE, pre- or post-policy as the header's L flag says.
pub fn route_monitoring(header: &PeerHeader, update: &Update) -> bgp_proto::Result<Bytes> {
    let mut out = start(MessageType::RouteMonitoring);
    header.encode(&mut out);
    put_pdu(&mut out, &Message::Update(update.clone()))?;
    Ok(finish(out))
}

/// One statistic of a Statistics Report (RFC 7854 §4.8, RFC 8671 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Type 0, 32-bit counter: prefixes rejected by inbound policy.
    RejectedByPolicy(u32),
    /// Type 7, 64-bit gauge: routes in the Adj-RIB-In (pre-policy).
    AdjRibIn(u64),
    /// Type 8, 64-bit gauge: routes in the Loc-RIB.
    LocRib(u64),
    /// Type 11, 32-bit counter: UPDATEs subjected to treat-as-withdraw (RFC 7606).
    TreatAsWithdraw(u32),
}

impl Stat {
    fn encode(&self, out: &mut BytesMut) {
        let (kind, counter, gauge) = match *self {
            Stat::RejectedByPolicy(n) => (0, Some(n), None),
            Stat::AdjRibIn(n) => (7, None, Some(n)),
            Stat::LocRib(n) => (8, None, Some(n)),
            Stat::TreatAsWithdraw(n) => (11, Some(n), None),
        };
        out.put_u16(kind);
        if let Some(n) = counter {
            out.put_u16(4);
            out.put_u32(n);
        }
        if let Some(n) = gauge {
            out.put_u16(8);
            out.put_u64(n);
        }
    }
}

/// Statistics Report (RFC 7854 §4.8) for one peer.
pub fn statistics(header: &PeerHeader, stats: &[Stat]) -> Bytes {
    let mut out = start(MessageType::StatisticsReport);
    PeerHeader {
        post_policy: false,
        ..*header
    }
    .encode(&mut out);
    out.put_u32(u32::try_from(stats.len()).unwrap_or(u32::MAX));
    for stat in stats {
        stat.encode(&mut out);
    }
    finish(out)
}

#[cfg(test)]
mod tests;
