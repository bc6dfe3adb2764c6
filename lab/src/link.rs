//! Links between namespaces: veth pairs, Linux bridges, and the "blackhole ingress" fault injector.
//! Each is a guard that deletes what it created on drop. I/O boundary: `ip -n NS link`, `tc -n NS`.

use crate::netns::Netns;
use crate::{Error, Result, cmd};

/// Linux limit on interface names (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Checks that `name` is a valid interface name.
pub fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: format!(
                "interface names are 1..={MAX_IFNAME_LEN} characters without '/', ':' or spaces"
            ),
        });
    }
    Ok(())
}

fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    cmd::ip(&full)
}

fn ignore_not_found(r: Result<String>) -> Result<()> {
    match r {
        Err(e) if !cmd::is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Deletes interface `dev` in namespace `ns`; a missing namespace or interface is not an error.
pub fn delete_link(ns: &str, dev: &str) -> Result<()> {
    if !Netns::exists(ns) {
        return Ok(());
    }
    ignore_not_found(ip_in(ns, &["link", "del", "dev", dev]))
}

/// A veth pair with one end in each of two namespaces, both ends up. Deleting one end deletes both.
#[derive(Debug)]
pub struct VethPair {
    a_ns: String,
    a_if: String,
    b_ns: String,
    b_if: String,
    keep: bool,
}

impl VethPair {
    /// Creates `a_if` in `a` and its peer `b_if` in `b` (names only need to be unique per namespace,
    /// so `eth1` on both sides is fine) and sets both up.
    pub fn create(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<Self> {
        Self::create_named(a.name(), a_if, b.name(), b_if)
    }

    /// Like [`VethPair::create`], with namespaces given by name.
    pub fn create_named(a_ns: &str, a_if: &str, b_ns: &str, b_if: &str) -> Result<Self> {
        validate_ifname(a_if)?;
        validate_ifname(b_if)?;
        cmd::ip(&[
            "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns,
        ])?;
        let pair = Self {
            a_ns: a_ns.to_owned(),
            a_if: a_if.to_owned(),
            b_ns: b_ns.to_owned(),
            b_if: b_if.to_owned(),
            keep: false,
        };
        ip_in(a_ns, &["link", "set", a_if, "up"])?;
        ip_in(b_ns, &["link", "set", b_if, "up"])?;
        Ok(pair)
    }

    /// `(namespace, interface)` of the A end.
    pub fn a(&self) -> (&str, &str) {
        (&self.a_ns, &self.a_if)
    }

    /// `(namespace, interface)` of the B end.
    pub fn b(&self) -> (&str, &str) {
        (&self.b_ns, &self.b_if)
    }

    /// Disarms the guard; the pair outlives it.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = delete_link(&self.a_ns, &self.a_if)
        {
            eprintln!("herald-lab: deleting veth {}/{}: {e}", self.a_ns, self.a_if);
        }
    }
}

/// A Linux bridge inside a namespace (a containerlab `kind: bridge` node gets a namespace of its own).
#[derive(Debug)]
pub struct Bridge {
    ns: String,
    name: String,
    keep: bool,
}

impl Bridge {
    /// Creates bridge `name` in `ns` and sets it up.
    pub fn create(ns: &Netns, name: &str) -> Result<Self> {
        Self::create_named(ns.name(), name)
    }

    /// Like [`Bridge::create`], with the namespace given by name.
    pub fn create_named(ns: &str, name: &str) -> Result<Self> {
        validate_ifname(name)?;
        ip_in(ns, &["link", "add", name, "type", "bridge"])?;
        let bridge = Self {
            ns: ns.to_owned(),
            name: name.to_owned(),
            keep: false,
        };
        ip_in(ns, &["link", "set", name, "up"])?;
        Ok(bridge)
    }

    /// The bridge's interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Enslaves `dev` (in the same namespace) to the bridge and sets it up.
    pub fn attach(&self, dev: &str) -> Result<()> {
        ip_in(&self.ns, &["link", "set", dev, "master", &self.name])?;
        ip_in(&self.ns, &["link", "set", dev, "up"]).map(drop)
    }

    /// Disarms the guard; the bridge outlives it.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = delete_link(&self.ns, &self.name)
        {
            eprintln!("herald-lab: deleting bridge {}/{}: {e}", self.ns, self.name);
        }
    }
}

/// Drops every frame arriving on an interface while the link stays up (so BFD and BGP see silence,
/// not link loss): a tc ingress `u32` match-all filter redirects to an IFB device that is down.
/// Lifted on drop. This machine has no netem/gact, hence the IFB trick.
#[derive(Debug)]
pub struct Blackhole {
    ns: String,
    dev: String,
    ifb: String,
    lifted: bool,
}

impl Blackhole {
    /// Starts dropping all ingress traffic on `dev` in `ns`.
    pub fn ingress(ns: &Netns, dev: &str) -> Result<Self> {
        let shown = ns.ip(&["-o", "link", "show", "dev", dev])?;
        let ifindex = shown.split(':').next().unwrap_or_default().trim();
        if ifindex.is_empty() || !ifindex.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Parse {
                what: format!("ifindex of {dev}"),
                reason: shown,
            });
        }
        let ifb = format!("hbh{ifindex}");
        ns.ip(&["link", "add", &ifb, "type", "ifb"])?;
        let hole = Self {
            ns: ns.name().to_owned(),
            dev: dev.to_owned(),
            ifb,
            lifted: false,
        };
        hole.tc(&["qdisc", "add", "dev", dev, "ingress"])?;
        hole.tc(&[
            "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "u32", "match",
            "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", &hole.ifb,
        ])?;
        Ok(hole)
    }

    fn tc(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        cmd::run("tc", &full)
    }

    /// Restores traffic (also done on drop).
    pub fn lift(mut self) -> Result<()> {
        self.lift_inner()
    }

    fn lift_inner(&mut self) -> Result<()> {
        if self.lifted || !Netns::exists(&self.ns) {
            return Ok(());
        }
        self.lifted = true;
        ignore_not_found(self.tc(&["qdisc", "del", "dev", &self.dev, "ingress"]))?;
        delete_link(&self.ns, &self.ifb)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        if let Err(e) = self.lift_inner() {
            eprintln!(
                "herald-lab: lifting blackhole on {}/{}: {e}",
                self.ns, self.dev
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_longer_than_15_are_rejected() {
        assert!(validate_ifname("eth1").is_ok());
        assert!(validate_ifname("abcdefghijklmno").is_ok());
        assert!(validate_ifname("abcdefghijklmnop").is_err());
        assert!(validate_ifname("a/b").is_err());
    }
}
