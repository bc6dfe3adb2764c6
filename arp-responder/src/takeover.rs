//! Takeover announcements: when this node starts answering for a VIP on an interface it sends a
//! gratuitous ARP request and reply (IPv4) or an unsolicited Neighbor Advertisement (IPv6) at once
//! and again at the configured offsets (default 0, 250 ms, 1 s, 2 s), so neighbours whose cache
//! still points at the previous leader switch over. When leadership is lost the remaining
//! announcements are cancelled. Pure: the schedule takes time as a parameter, the driver sends.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::frames::{arp_frame, ndisc_frame};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::ipv6::{ALL_NODES, multicast_mac};
use crate::wire::ndisc::NeighborFlags;
use crate::wire::{ArpOperation, ArpRepr, NdiscRepr};

/// The frames announcing that `mac` now holds `vip`.
///
/// IPv4: a gratuitous ARP request (sender = target = VIP, RFC 5227 §3 "ARP Announcement") and a
/// gratuitous ARP reply whose target hardware address equals the sender's (which Linux requires to
/// treat a reply as gratuitous), both broadcast. IPv6: an unsolicited NA with the Override flag to
/// all-nodes (RFC 4861 §7.2.6).
pub fn announcement_frames(mac: EthernetAddress, vip: IpAddr) -> Vec<Vec<u8>> {
    match vip {
        IpAddr::V4(v4) => vec![
            garp(mac, v4, ArpOperation::Request),
            garp(mac, v4, ArpOperation::Reply),
        ],
        IpAddr::V6(v6) => vec![unsolicited_na(mac, v6)],
    }
}

fn garp(mac: EthernetAddress, vip: Ipv4Addr, operation: ArpOperation) -> Vec<u8> {
    let tha = if operation == ArpOperation::Reply {
        mac
    } else {
        EthernetAddress([0; 6])
    };
    let arp = ArpRepr {
        operation,
        source_hardware_addr: mac,
        source_protocol_addr: vip,
        target_hardware_addr: tha,
        target_protocol_addr: vip,
    };
    arp_frame(mac, EthernetAddress::BROADCAST, &[], &arp)
}

fn unsolicited_na(mac: EthernetAddress, vip: Ipv6Addr) -> Vec<u8> {
    let na = NdiscRepr::NeighborAdvert {
        flags: NeighborFlags {
            router: false,
            solicited: false,
            override_: true,
        },
        target_addr: vip,
        lladdr: Some(mac),
    };
    ndisc_frame(mac, multicast_mac(ALL_NODES), &[], vip, ALL_NODES, &na)
}

/// Pending announcements per (VIP, interface).
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    offsets: Vec<Duration>,
    pending: BTreeMap<(IpAddr, String), (Instant, usize)>,
}

impl Schedule {
    /// A schedule sending at each of `offsets` after a takeover.
    pub fn new(mut offsets: Vec<Duration>) -> Self {
        offsets.sort();
        Schedule {
            offsets,
            pending: BTreeMap::new(),
        }
    }

    /// Starts announcing `vip` on `iface` from `now` (restarts if already pending).
    pub fn start(&mut self, now: Instant, vip: IpAddr, iface: &str) {
        if !self.offsets.is_empty() {
            self.pending.insert((vip, iface.to_owned()), (now, 0));
        }
    }

    /// Cancels everything pending for `vip`.
    pub fn stop(&mut self, vip: IpAddr) {
        self.pending.retain(|(v, _), _| *v != vip);
    }

    /// Cancels everything pending on `iface`.
    pub fn stop_interface(&mut self, iface: &str) {
        self.pending.retain(|(_, i), _| i != iface);
    }

    /// The (VIP, interface) pairs due at `now`; each due step is consumed.
    pub fn due(&mut self, now: Instant) -> Vec<(IpAddr, String)> {
        let mut out = Vec::new();
        let offsets = &self.offsets;
        self.pending.retain(|key, (start, step)| {
            let mut fire = false;
            while offsets.get(*step).is_some_and(|o| *start + *o <= now) {
                *step += 1;
                fire = true;
            }
            if fire {
                out.push(key.clone());
            }
            *step < offsets.len()
        });
        out
    }

    /// When the next step is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter_map(|(start, step)| self.offsets.get(*step).map(|o| *start + *o))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::Frame;
    use crate::wire::{arp, ipv6};

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xaa]);

    #[test]
    fn ipv4_announcement_is_garp_request_and_reply() {
        let frames = announcement_frames(MAC, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(frames.len(), 2);
        let ops: Vec<ArpRepr> = frames
            .iter()
            .map(|f| {
                let eth = Frame::new_checked(&f[..]).expect("eth");
                assert!(eth.dst_addr().is_broadcast());
                ArpRepr::parse(&arp::Packet::new_checked(eth.payload()).expect("arp")).expect("arp")
            })
            .collect();
        assert_eq!(ops[0].operation, ArpOperation::Request);
        assert_eq!(ops[1].operation, ArpOperation::Reply);
        for a in &ops {
            assert_eq!(a.source_protocol_addr, a.target_protocol_addr);
            assert_eq!(a.source_hardware_addr, MAC);
        }
        assert_eq!(ops[1].target_hardware_addr, MAC);
    }

    #[test]
    fn ipv6_announcement_is_unsolicited_override_na() {
        let vip: Ipv6Addr = "fd00::10".parse().expect("ipv6");
        let frames = announcement_frames(MAC, IpAddr::V6(vip));
        let eth = Frame::new_checked(&frames[0][..]).expect("eth");
        let p = ipv6::Packet::new_checked(eth.payload()).expect("ipv6");
        let na = NdiscRepr::parse(p.payload(), p.src_addr(), p.dst_addr()).expect("na");
        assert_eq!(
            na,
            NdiscRepr::NeighborAdvert {
                flags: NeighborFlags {
                    router: false,
                    solicited: false,
                    override_: true
                },
                target_addr: vip,
                lladdr: Some(MAC)
            }
        );
        assert_eq!(p.dst_addr(), ALL_NODES);
    }

    #[test]
    fn schedule_fires_at_each_offset_and_stops_on_cancel() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mut s = Schedule::new(vec![ms(0), ms(250), ms(1000)]);
        s.start(t0, vip, "eth0");
        assert_eq!(s.due(t0).len(), 1);
        assert!(s.due(t0 + ms(100)).is_empty());
        assert_eq!(s.next_due(), Some(t0 + ms(250)));
        assert_eq!(s.due(t0 + ms(260)).len(), 1);
        s.stop(vip);
        assert!(s.due(t0 + ms(2000)).is_empty());
        assert_eq!(s.next_due(), None);
    }
}
