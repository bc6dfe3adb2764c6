//! Interface enumeration and selection. Links come from `getifaddrs(3)`'s AF_PACKET entries, which
//! list every interface, including those with no IP address; only Ethernet-like links (Ethernet,
//! VLAN sub-interfaces, bonds, bridges) with a MAC address are considered. Selection applies the
//! include/exclude regexes from the configuration to the name.

use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{LinkAddr, SockaddrLike};
use regex::Regex;

use crate::config::InterfaceSelection;
use crate::error::{Error, Result};
use crate::wire::EthernetAddress;

/// ARPHRD_ETHER.
const ARPHRD_ETHER: u16 = 1;

/// Compiled include/exclude rules.
#[derive(Clone, Debug)]
pub struct InterfaceSelector {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl InterfaceSelector {
    /// Compiles the configured regexes.
    pub fn new(sel: &InterfaceSelection) -> Result<Self> {
        let compile = |v: &[String]| {
            v.iter()
                .map(|r| {
                    Regex::new(r).map_err(|e| Error::Config(format!("interface regex {r:?}: {e}")))
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(InterfaceSelector {
            include: compile(&sel.include)?,
            exclude: compile(&sel.exclude)?,
        })
    }

    /// Whether an interface named `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// An Ethernet-like link.
#[derive(Clone, Debug)]
pub struct Link {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub ifindex: u32,
    /// MAC address.
    pub mac: EthernetAddress,
    /// Administratively up and running (carrier).
    pub up: bool,
    /// The AF_PACKET address to bind a socket to this link.
    pub(crate) addr: LinkAddr,
}

/// Lists Ethernet-like links of the current network namespace.
pub fn list_links() -> Result<Vec<Link>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| Error::io("getifaddrs", e.into()))?;
    let mut out: Vec<Link> = Vec::new();
    for a in addrs {
        let Some(storage) = a.address else { continue };
        let Some(ll) = storage.as_link_addr() else {
            continue;
        };
        if ll.family() != Some(nix::sys::socket::AddressFamily::Packet)
            || ll.hatype() != ARPHRD_ETHER
        {
            continue;
        }
        let Some(mac) = ll.addr().map(EthernetAddress) else {
            continue;
        };
        if !mac.is_unicast() {
            continue;
        }
        let Ok(ifindex) = u32::try_from(ll.ifindex()) else {
            continue;
        };
        let up = a.flags.contains(InterfaceFlags::IFF_UP)
            && a.flags.contains(InterfaceFlags::IFF_RUNNING);
        if out.iter().all(|l| l.ifindex != ifindex) {
            out.push(Link {
                name: a.interface_name,
                ifindex,
                mac,
                up,
                addr: *ll,
            });
        }
    }
    out.sort_by_key(|l| l.ifindex);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_excludes_skip_virtual_interfaces() {
        let s = InterfaceSelector::new(&InterfaceSelection::default()).expect("compile");
        for name in [
            "lo",
            "veth1234",
            "docker0",
            "cilium_host",
            "lxc12ab",
            "cni0",
            "flannel.1",
            "kube-ipvs0",
        ] {
            assert!(!s.selects(name), "{name} selected");
        }
        for name in ["eth0", "ens3", "bond0", "eth0.100", "enp1s0f0"] {
            assert!(s.selects(name), "{name} not selected");
        }
    }

    #[test]
    fn include_list_restricts_and_exclude_wins() {
        let s = InterfaceSelector::new(&InterfaceSelection {
            include: vec!["^eth".into(), "^bond".into()],
            exclude: vec!["^eth9$".into()],
        })
        .expect("compile");
        assert!(s.selects("eth0") && s.selects("bond0"));
        assert!(!s.selects("ens3") && !s.selects("eth9"));
    }

    #[test]
    fn lists_links_without_panicking() {
        // Loopback is not Ethernet, so it never appears.
        let links = list_links().expect("getifaddrs works");
        assert!(links.iter().all(|l| l.name != "lo" && l.ifindex > 0));
    }
}
