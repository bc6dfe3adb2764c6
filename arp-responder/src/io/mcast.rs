//! Solicited-node multicast membership for IPv6 VIPs. Neighbor Solicitations for a VIP go to its
//! solicited-node group (ff02::1:ffXX:XXXX); unless the interface has joined that group the NIC
//! (or a multicast-snooping switch) may drop them. Joining through an IPv6 UDP socket with
//! IPV6_JOIN_GROUP on the interface index programs the NIC's filter and sends MLD reports; the
//! membership lasts as long as the socket.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use socket2::{Domain, Socket, Type};

use crate::error::{Error, Result};
use crate::wire::ipv6::solicited_node;

/// The groups joined, per (VIP, interface index).
#[derive(Debug, Default)]
pub struct SolicitedNodeGroups {
    joined: BTreeMap<(Ipv6Addr, u32), Socket>,
}

impl SolicitedNodeGroups {
    /// Makes the joined set equal to `want`: joins what is missing, leaves what is no longer
    /// wanted. Returns the errors of joins that failed (the rest still happen).
    pub fn sync(&mut self, want: &BTreeSet<(Ipv6Addr, u32)>) -> Vec<Error> {
        self.joined.retain(|k, _| want.contains(k));
        let mut errors = Vec::new();
        for &(vip, ifindex) in want {
            if self.joined.contains_key(&(vip, ifindex)) {
                continue;
            }
            match join(vip, ifindex) {
                Ok(s) => {
                    self.joined.insert((vip, ifindex), s);
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// The (VIP, interface index) pairs currently joined.
    pub fn joined(&self) -> BTreeSet<(Ipv6Addr, u32)> {
        self.joined.keys().copied().collect()
    }
}

fn join(vip: Ipv6Addr, ifindex: u32) -> Result<Socket> {
    let group = solicited_node(vip);
    let ctx = || format!("joining {group} on ifindex {ifindex}");
    let s = Socket::new(Domain::IPV6, Type::DGRAM, None).map_err(|e| Error::io(ctx(), e))?;
    s.join_multicast_v6(&group, ifindex)
        .map_err(|e| Error::io(ctx(), e))?;
    Ok(s)
}
