//! Pools of LoadBalancer addresses: the validated pool model the allocator works on, and the
//! address arithmetic behind it. Pure; no I/O.
//!
//! Addresses of both families live in one ordered `u128` space so that one ordered set can track
//! every used address: an IPv6 address is its own 128-bit value and an IPv4 address is mapped to
//! `::ffff:a.b.c.d`. Because of that mapping, IPv6 pools may not contain IPv4-mapped addresses
//! (`::ffff:0:0/96`), which are not routable service addresses anyway.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::selector::{LabelSelector, NAMESPACE_NAME_LABEL};

/// First key of the IPv4-mapped range `::ffff:0:0/96`, where IPv4 addresses are kept.
const V4_BASE: u128 = 0xffff_u128 << 32;
/// Last key of the IPv4-mapped range.
const V4_LAST: u128 = V4_BASE | 0xffff_ffff;

/// An IP family, named as Kubernetes names them in `spec.ipFamilies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpFamily {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::IPv4,
            IpAddr::V6(_) => Self::IPv6,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IPv4 => "IPv4",
            Self::IPv6 => "IPv6",
        })
    }
}

/// The ordered key of an address (see the module header for the mapping).
pub(crate) fn addr_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => V4_BASE | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of an ordered key.
pub(crate) fn key_addr(key: u128) -> IpAddr {
    if (V4_BASE..=V4_LAST).contains(&key) {
        // The range check guarantees the low 32 bits are the whole IPv4 address.
        IpAddr::V4(Ipv4Addr::from((key & 0xffff_ffff) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(key))
    }
}

/// The family of an ordered key.
pub(crate) fn key_family(key: u128) -> IpFamily {
    if (V4_BASE..=V4_LAST).contains(&key) {
        IpFamily::IPv4
    } else {
        IpFamily::IPv6
    }
}

/// One block of a pool: a CIDR or an inclusive start/stop range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Every address of the prefix; the first and last are left out unless `allowFirstLastIPs`
    /// is set or the prefix is a /31, /32, /127 or /128.
    Cidr {
        /// The prefix.
        cidr: IpNet,
    },
    /// Every address from `start` to `stop`, both included, whatever `allowFirstLastIPs` says.
    Range {
        /// First address.
        start: IpAddr,
        /// Last address.
        stop: IpAddr,
    },
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cidr { cidr } => write!(f, "{cidr}"),
            Self::Range { start, stop } => write!(f, "{start}-{stop}"),
        }
    }
}

/// An inclusive range of ordered address keys, all of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AddrRange {
    pub(crate) lo: u128,
    pub(crate) hi: u128,
}

impl AddrRange {
    pub(crate) fn family(self) -> IpFamily {
        key_family(self.lo)
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub(crate) fn len(self) -> u128 {
        (self.hi - self.lo).saturating_add(1)
    }
}

/// The settings of a pool, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolSpec {
    /// The address blocks.
    pub blocks: Vec<Block>,
    /// Only services matching this selector may get addresses from the pool (`None`: all).
    pub service_selector: Option<LabelSelector>,
    /// Only services in namespaces matching this selector may use the pool (`None`: all).
    pub namespace_selector: Option<LabelSelector>,
    /// Hand out the first and last address of CIDR blocks too.
    pub allow_first_last_ips: bool,
    /// Keep existing allocations but make no new ones.
    pub disabled: bool,
    /// Used for services that do not name the pool or an address in it. Default true.
    pub auto_assign: bool,
    /// Lower values are tried first; pools without priority come after all that have one
    /// (MetalLB's convention). Ties are broken by pool name.
    pub priority: Option<u32>,
}

/// A validated pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    name: String,
    spec: PoolSpec,
    /// Allocatable ranges, sorted and disjoint.
    ranges: Vec<AddrRange>,
}

impl Pool {
    /// Validates `spec` and computes the pool's allocatable ranges.
    ///
    /// Rejects: no blocks, `start > stop`, a range mixing families, IPv4-mapped IPv6 addresses,
    /// blocks overlapping each other, malformed selectors.
    pub fn new(name: impl Into<String>, spec: PoolSpec) -> Result<Self> {
        let name = name.into();
        let invalid = |reason: String| Error::InvalidPool {
            pool: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("pool name is empty".into()));
        }
        if spec.blocks.is_empty() {
            return Err(invalid("pool has no blocks".into()));
        }
        for sel in [&spec.service_selector, &spec.namespace_selector]
            .into_iter()
            .flatten()
        {
            sel.validate().map_err(|e| invalid(e.to_string()))?;
        }
        let mut ranges = Vec::with_capacity(spec.blocks.len());
        for block in &spec.blocks {
            let (lo, hi, whole) = match *block {
                Block::Cidr { cidr } => {
                    let cidr = cidr.trunc();
                    let tiny = cidr.max_prefix_len() - cidr.prefix_len() <= 1;
                    (
                        addr_key(cidr.network()),
                        addr_key(cidr.broadcast()),
                        tiny || spec.allow_first_last_ips,
                    )
                }
                Block::Range { start, stop } => {
                    if IpFamily::of(start) != IpFamily::of(stop) {
                        return Err(invalid(format!(
                            "block {block}: start and stop differ in family"
                        )));
                    }
                    if addr_key(start) > addr_key(stop) {
                        return Err(invalid(format!("block {block}: start is after stop")));
                    }
                    (addr_key(start), addr_key(stop), true)
                }
            };
            let is_v6 = match *block {
                Block::Cidr { cidr } => matches!(cidr, IpNet::V6(_)),
                Block::Range { start, .. } => start.is_ipv6(),
            };
            if is_v6 && lo <= V4_LAST && hi >= V4_BASE {
                return Err(invalid(format!(
                    "block {block} contains IPv4-mapped IPv6 addresses (::ffff:0:0/96)"
                )));
            }
            let (lo, hi) = if whole { (lo, hi) } else { (lo + 1, hi - 1) };
            ranges.push(AddrRange { lo, hi });
        }
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            if let [a, b] = pair
                && b.lo <= a.hi
            {
                return Err(invalid(format!(
                    "blocks overlap each other at {}",
                    key_addr(b.lo)
                )));
            }
        }
        Ok(Self { name, spec, ranges })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's settings.
    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// The allocatable ranges, sorted.
    pub(crate) fn ranges(&self) -> &[AddrRange] {
        &self.ranges
    }

    /// The sort key of allocation order: priority (lower first, unset last), then name.
    pub(crate) fn order_key(&self) -> (bool, u32, &str) {
        (
            self.spec.priority.is_none(),
            self.spec.priority.unwrap_or(u32::MAX),
            &self.name,
        )
    }

    /// True when `ip` is one of the pool's allocatable addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_key(addr_key(ip))
    }

    pub(crate) fn contains_key(&self, key: u128) -> bool {
        let idx = self.ranges.partition_point(|r| r.hi < key);
        self.ranges.get(idx).is_some_and(|r| r.lo <= key)
    }

    /// True when the pool has allocatable addresses of `family`.
    pub fn has_family(&self, family: IpFamily) -> bool {
        self.ranges.iter().any(|r| r.family() == family)
    }

    /// Number of allocatable addresses (saturating at `u128::MAX`).
    pub fn total(&self) -> u128 {
        self.ranges
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.len()))
    }

    /// True when a service with these labels (including pseudo-labels) in a namespace with
    /// these labels passes the pool's selectors.
    pub fn selects(
        &self,
        service_labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> bool {
        self.spec
            .service_selector
            .as_ref()
            .is_none_or(|s| s.matches(service_labels))
            && self
                .spec
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(namespace_labels))
    }
}

/// Labels of a namespace when nothing else is known about it: the name label Kubernetes sets.
pub fn default_namespace_labels(namespace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Block {
        Block::Cidr {
            cidr: s.parse().expect("test cidr"),
        }
    }

    fn pool(blocks: Vec<Block>, allow_first_last_ips: bool) -> Result<Pool> {
        Pool::new(
            "p",
            PoolSpec {
                blocks,
                allow_first_last_ips,
                auto_assign: true,
                ..Default::default()
            },
        )
    }

    #[test]
    fn keys_round_trip_both_families() {
        for ip in [
            "10.1.2.3",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(key_addr(addr_key(ip)), ip);
            assert_eq!(key_family(addr_key(ip)), IpFamily::of(ip));
        }
    }

    #[test]
    fn cidr_excludes_first_and_last_unless_allowed() {
        let p = pool(vec![cidr("10.0.0.0/30")], false).expect("pool");
        assert_eq!(p.total(), 2);
        assert!(!p.contains("10.0.0.0".parse().expect("ip")));
        assert!(p.contains("10.0.0.1".parse().expect("ip")));
        assert!(!p.contains("10.0.0.3".parse().expect("ip")));
        let p = pool(vec![cidr("10.0.0.0/30")], true).expect("pool");
        assert_eq!(p.total(), 4);
        assert!(p.contains("10.0.0.0".parse().expect("ip")));
    }

    #[test]
    fn tiny_prefixes_are_used_whole() {
        assert_eq!(
            pool(vec![cidr("10.0.0.4/31")], false).expect("p").total(),
            2
        );
        assert_eq!(
            pool(vec![cidr("10.0.0.4/32")], false).expect("p").total(),
            1
        );
        assert_eq!(
            pool(vec![cidr("2001:db8::/127")], false)
                .expect("p")
                .total(),
            2
        );
        assert_eq!(
            pool(vec![cidr("2001:db8::1/128")], false)
                .expect("p")
                .total(),
            1
        );
    }

    #[test]
    fn ranges_are_inclusive_and_ignore_first_last_rule() {
        let p = pool(
            vec![Block::Range {
                start: "10.0.0.0".parse().expect("ip"),
                stop: "10.0.0.9".parse().expect("ip"),
            }],
            false,
        )
        .expect("pool");
        assert_eq!(p.total(), 10);
        assert!(p.contains("10.0.0.0".parse().expect("ip")));
        assert!(p.contains("10.0.0.9".parse().expect("ip")));
    }

    #[test]
    fn huge_ipv6_pool_counts_without_enumerating() {
        let p = pool(vec![cidr("2001:db8::/64")], true).expect("pool");
        assert_eq!(p.total(), 1u128 << 64);
        let p = pool(vec![cidr("2001:db8::/32")], true).expect("pool");
        assert_eq!(p.total(), 1u128 << 96);
    }

    #[test]
    fn invalid_blocks_are_rejected() {
        let range = |a: &str, b: &str| Block::Range {
            start: a.parse().expect("ip"),
            stop: b.parse().expect("ip"),
        };
        assert!(pool(vec![], false).is_err());
        assert!(pool(vec![range("10.0.0.9", "10.0.0.1")], false).is_err());
        assert!(pool(vec![range("10.0.0.1", "2001:db8::1")], false).is_err());
        assert!(pool(vec![cidr("::ffff:0:0/96")], false).is_err());
        assert!(pool(vec![cidr("10.0.0.0/24"), cidr("10.0.0.128/25")], false).is_err());
    }

    #[test]
    fn unset_priority_sorts_after_any_priority() {
        let mk = |name: &str, priority| {
            Pool::new(
                name,
                PoolSpec {
                    blocks: vec![cidr("10.0.0.0/24")],
                    priority,
                    ..Default::default()
                },
            )
            .expect("pool")
        };
        let mut pools = [
            mk("a", None),
            mk("b", Some(5)),
            mk("c", Some(1)),
            mk("d", Some(5)),
        ];
        pools.sort_by(|x, y| x.order_key().cmp(&y.order_key()));
        let names: Vec<_> = pools.iter().map(Pool::name).collect();
        assert_eq!(names, ["c", "b", "d", "a"]);
    }
}
